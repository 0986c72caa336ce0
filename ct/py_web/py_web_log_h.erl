%% logger handler for tests: forwards events to a process.
-module(py_web_log_h).
-compile(nowarn_missing_spec).
-export([log/2]).

log(Event, #{config := #{pid := Pid}}) -> Pid ! {log, Event}, ok.
