%% A logger handler for the socket-level fuzzer: every event at its level
%% (error) goes to the test process, which fails if it got any.
-module(py_web_fuzz_watch).

-export([log/2]).

-spec log(logger:log_event(), logger:handler_config()) -> ok.
log(Event, #{config := #{pid := Pid}}) ->
    Pid ! {py_web_fuzz_watch, Event},
    ok.
