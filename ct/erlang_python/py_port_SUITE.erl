%% The processes mode's own behaviour (whatever ERLANG_PYTHON_MODE says, this suite runs
%% in it): faults stay in their worker process (segfault under load, a hung synchronous
%% call, an async app blocking its loop, kill -9 mid-stream, bad bytes on the port), the
%% process comes back, recycling after max_requests and above max_memory loses no
%% request, lifespans are replayed on new processes, least-in-flight balancing with WSGI
%% busy workers avoided, draining at stop, and a worker process that cannot start.
%%
%% Python side: py_port_SUITE_data/ep_port_helper.py.
-module(py_port_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-compile(nowarn_missing_spec).

-export([all/0, groups/0, init_per_suite/1, end_per_suite/1,
         init_per_testcase/2, end_per_testcase/2]).
-export([segfault_under_load/1, hung_sync_call_killed/1, blocked_loop_killed/1,
         kill9_mid_stream/1, kill9_mid_websocket/1, bad_bytes_on_the_port/1,
         python_exit_status/1,
         recycle_max_requests/1, recycle_max_memory/1, lifespan_replayed/1,
         least_in_flight_avoids_wsgi/1, drain_at_stop/1, stop_timeout_kills/1,
         python_cannot_start/1]).

-define(H, ep_port_helper).
-define(ENV, [{workers, 2}, {max_requests, infinity}, {max_requests_jitter, 0},
              {max_memory, infinity}, {kill_grace, 1000}, {stop_timeout, 5000}]).

all() ->
    [{group, faults}, {group, recycling}, {group, balancing}, {group, lifecycle}].

groups() ->
    [{faults, [], [segfault_under_load, hung_sync_call_killed, blocked_loop_killed,
                   kill9_mid_stream, kill9_mid_websocket, bad_bytes_on_the_port,
                   python_exit_status]},
     {recycling, [], [recycle_max_requests, recycle_max_memory, lifespan_replayed]},
     {balancing, [], [least_in_flight_avoids_wsgi]},
     {lifecycle, [], [drain_at_stop, stop_timeout_kills, python_cannot_start]}].

%% erlang_python_ct:stop/0 puts the env back as it was (the mode included).
init_per_suite(Config) ->
    ok = erlang_python_ct:start(Config, #{env => maps:from_list([{mode, processes} | ?ENV])}),
    Config.

end_per_suite(_Config) ->
    erlang_python_ct:stop().

init_per_testcase(_TC, Config) ->
    Config.

%% Every test leaves the default configuration running, and no stray message.
end_per_testcase(_TC, _Config) ->
    [ok = application:set_env(erlang_python, K, V) || {K, V} <- ?ENV],
    restart(),
    ?assertEqual({messages, []}, process_info(self(), messages)),
    ok.

%% ---- faults ---------------------------------------------------------------------------

%% 400 ASGI requests from 40 callers while 5 calls segfault one after the other (each once
%% the previous crash's process is back): the VM survives, every request either succeeds
%% or fails with {worker_exit, 139} (it was in flight on the crashed process), every
%% segfault is reported as such, the processes come back, and everything then succeeds.
segfault_under_load(_Config) ->
    case string:find(os:getenv("LD_PRELOAD", ""), "libasan") of
        nomatch -> segfault_under_load();
        _ -> {skip, "make test-asan: the worker processes inherit the ASan runtime "
                    "(LD_PRELOAD), which turns their segfaults into aborts"}
    end.

segfault_under_load() ->
    Self = self(),
    Callers = [spawn_link(fun() -> Self ! {done, self(), [hello(I, J) || J <- lists:seq(1, 10)]} end)
               || I <- lists:seq(1, 40)],
    Crashes = [begin
                   #{restarts := R0} = py:info(),
                   Result = py:call(?H, segfault, []),
                   ep_test_lib:wait_until(fun() -> #{restarts := R} = py:info(), R > R0 end),
                   ep_test_lib:wait_until(fun() -> all_up() end),
                   Result
               end || _ <- lists:seq(1, 5)],
    Results = lists:append([receive {done, P, R} -> R end || P <- Callers]),
    ?assertEqual([{error, {worker_exit, 139}}], lists:usort(Crashes)),
    Ok = [R || {ok, _} = R <- Results],
    Lost = [R || R <- Results, R =/= {error, {worker_exit, 139}}, element(1, R) =/= ok],
    ?assertEqual([], Lost),
    ?assertEqual([], [R || {ok, {S, _, _}} = R <- Ok, S =/= 200]),
    ct:comment("400 requests during 5 segfaults: ~b ok, ~b failed with worker_exit "
               "(in flight on the crashed process)", [length(Ok), 400 - length(Ok)]),
    ?assertEqual(lists:duplicate(100, ok),
                 [element(1, hello(0, J)) || J <- lists:seq(1, 100)]),
    #{restarts := Restarts, workers := 2} = py:info(),
    ?assertEqual(5, Restarts).

hello(I, J) ->
    Path = iolist_to_binary(io_lib:format("/~b/~b", [I, J])),
    case py_asgi:run(?H, hello, #{type => <<"http">>, path => Path}, <<>>) of
        {ok, {200, _, Body}} = Ok ->
            ?assertEqual(<<"hello ", Path/binary>>, Body),
            Ok;
        Other -> Other
    end.

%% A synchronous call past its timeout: the caller gets timeout; the process kills
%% itself (its watchdog) and a new one serves; a call on the other worker is untouched.
hung_sync_call_killed(_Config) ->
    #{os_pids := Pids0} = py:info(),
    Self = self(),
    spawn_link(fun() -> Self ! {hung, py:call(?H, sleep_pid, [60], #{timeout => 300})} end),
    ep_test_lib:wait_until(fun() -> #{in_flight := N} = py:info(), N =:= 1 end),
    {ok, Other} = py:call(?H, sleep_async, [0.5]),
    ?assertEqual({error, timeout}, receive {hung, R} -> R end),
    ep_test_lib:wait_until(fun() -> #{restarts := R} = py:info(), R =:= 1 end),
    ep_test_lib:wait_until(fun() -> all_up() end),
    #{os_pids := Pids1} = py:info(),
    ?assertEqual(1, length(Pids0 -- Pids1)),
    ?assert(lists:member(Other, Pids1)),
    ?assertMatch({ok, _}, py:call(?H, pid, [])).

%% An async app that blocks its loop in synchronous code: the task cannot be cancelled;
%% kill_grace after the timeout the process is killed from Erlang and replaced.
blocked_loop_killed(_Config) ->
    ok = application:set_env(erlang_python, kill_grace, 200),
    ?assertEqual({error, timeout},
                 py_asgi:run(?H, blocks_loop, #{type => <<"http">>, path => <<"/">>}, <<>>,
                             #{timeout => 200})),
    ep_test_lib:wait_until(fun() -> #{restarts := R} = py:info(), R =:= 1 end),
    ep_test_lib:wait_until(fun() -> all_up() end),
    ?assertMatch({ok, {200, _, <<"hello /after">>}},
                 py_asgi:run(?H, hello, #{type => <<"http">>, path => <<"/after">>}, <<>>)).

%% kill -9 of the process serving a stream: its owner gets the error as the stream's
%% last event; a stream on the other worker goes on and ends normally.
kill9_mid_stream(_Config) ->
    {ok, S1} = py_asgi:start(?H, stream_forever, #{type => <<"http">>, path => <<"/1">>}, #{}),
    Pid1 = stream_pid(S1),
    {ok, S2} = py_asgi:start(?H, stream_forever, #{type => <<"http">>, path => <<"/2">>}, #{}),
    Pid2 = stream_pid(S2),
    ?assertNotEqual(Pid1, Pid2),
    _ = os:cmd("kill -9 " ++ integer_to_list(Pid1)),
    ?assertEqual({error, {worker_exit, 137}}, receive {asgi, S1, Ev} -> Ev after 10000 -> none end),
    ok = py_asgi:disconnect(S2),
    ?assertEqual(done, receive {asgi, S2, Ev2} -> Ev2 after 10000 -> none end),
    ep_test_lib:wait_until(fun() -> all_up() end),
    ?assertEqual(1, maps:get(restarts, py:info())).

%% The same for websockets: the one on the killed process ends with worker_exit (the
%% server closes it with 1011), the one on the other process echoes on and ends normally.
kill9_mid_websocket(_Config) ->
    Scope = #{type => <<"websocket">>, path => <<"/ws">>},
    {ok, W1} = py_asgi:start(?H, websocket_echo, Scope, #{}),
    Pid1 = websocket_pid(W1),
    {ok, W2} = py_asgi:start(?H, websocket_echo, Scope, #{}),
    Pid2 = websocket_pid(W2),
    ?assertNotEqual(Pid1, Pid2),
    _ = os:cmd("kill -9 " ++ integer_to_list(Pid1)),
    ?assertEqual({error, {worker_exit, 137}}, receive {asgi, W1, Ev} -> Ev after 10000 -> none end),
    ok = py_asgi:ws_receive(W2, {text, <<"still here">>}),
    ?assertEqual({send, text, <<"still here">>},
                 receive {asgi, W2, Ev2} -> Ev2 after 10000 -> none end),
    ok = py_asgi:ack(W2, 10),
    ok = py_asgi:ws_disconnect(W2, 1000, <<"bye">>),
    ?assertEqual(done, receive {asgi, W2, Ev3} -> Ev3 after 10000 -> none end),
    ?assertError(badarg, py_asgi:send_body(W2, <<"x">>, false)),
    ep_test_lib:wait_until(fun() -> all_up() end),
    ?assertEqual(1, maps:get(restarts, py:info())).

websocket_pid(W) ->
    receive
        {asgi, W, {accept, Pid, []}} -> binary_to_integer(Pid)
    after 10000 -> ct:fail(no_accept)
    end.

stream_pid(S) ->
    receive {asgi, S, {start, 200, []}} -> ok after 10000 -> ct:fail(no_start) end,
    receive
        {asgi, S, {body, <<"first ", Pid/binary>>, true}} ->
            ok = py_asgi:ack(S, 6 + byte_size(Pid)),
            binary_to_integer(Pid)
    after 10000 -> ct:fail(no_body)
    end.

%% A worker process writes bytes that are no frame on its port: Erlang kills it (the
%% caller gets worker_exit), starts another, and the node and the other worker serve.
bad_bytes_on_the_port(_Config) ->
    ?assertEqual({error, {worker_exit, 137}}, py:call(?H, bad_frame, [])),
    ep_test_lib:wait_until(fun() -> all_up() end),
    ?assertEqual(1, maps:get(restarts, py:info())),
    ?assertMatch({ok, _}, py:call(?H, pid, [])).

%% os._exit(N) in a worker: exactly its call fails with status N; SystemExit raised by
%% an app is an ordinary error result and ends nothing.
python_exit_status(_Config) ->
    ?assertEqual({error, {worker_exit, 3}}, py:call(os, '_exit', [3])),
    ?assertMatch({error, {python, <<"SystemExit">>, <<"4">>, _}}, py:call(sys, exit, [4])),
    ep_test_lib:wait_until(fun() -> all_up() end),
    ?assertEqual(1, maps:get(restarts, py:info())).

%% ---- recycling ------------------------------------------------------------------------

%% max_requests 20 (+ up to 5), 2 workers: 10 callers keep requests in flight while the
%% processes are replaced again and again (a process past its limit serves on until its
%% replacement is ready); none is lost.  Runs until 6 processes have served.
recycle_max_requests(_Config) ->
    ok = application:set_env(erlang_python, max_requests, 20),
    ok = application:set_env(erlang_python, max_requests_jitter, 5),
    restart(),
    Served = ets:new(served, [public, set]),
    Results = ep_test_lib:pmap(fun(I) -> until_served(I, 1, 6, Served, []) end,
                                    lists:seq(1, 10)),
    All = lists:append(Results),
    ?assertEqual([], [R || R <- All, element(1, R) =/= ok]),
    Pids = lists:usort([P || {ok, P} <- All, is_integer(P)]),
    #{recycles := Recycles, restarts := 0} = py:info(),
    ct:comment("~b requests, none lost, max_requests 20+0..5: ~b recycles, ~b processes served",
               [length(All), Recycles, length(Pids)]),
    ?assert(length(Pids) >= 6).

%% Requests (alternating py:call and ASGI) until Want processes have answered a py:call
%% (Served: the OS pids that did, shared by the callers), at most 3000 each.
until_served(I, J, Want, Served, Acc) ->
    case ets:info(Served, size) >= Want orelse J > 3000 of
        true ->
            Acc;
        false when J rem 2 =:= 0 ->
            R = py:call(?H, pid, []),
            _ = [ets:insert(Served, {P}) || {ok, P} <- [R]],
            until_served(I, J + 1, Want, Served, [R | Acc]);
        false ->
            until_served(I, J + 1, Want, Served, [hello(I, J) | Acc])
    end.

%% max_memory: a process that grows past it is replaced (calls keep succeeding meanwhile).
recycle_max_memory(_Config) ->
    ok = application:set_env(erlang_python, workers, 1),
    ok = application:set_env(erlang_python, max_memory, 150 bsl 20),
    restart(),
    {ok, Fat} = py:call(?H, grow, [200]),
    Seen = poll_pids(Fat, []),
    ?assertEqual([], [R || R <- Seen, element(1, R) =/= ok]),
    ?assert(maps:get(recycles, py:info()) >= 1),
    ?assertNotEqual([Fat], maps:get(os_pids, py:info())).

poll_pids(Fat, Acc) ->
    R = py:call(?H, pid, []),
    case R of
        {ok, Fat} when length(Acc) < 2000 -> timer:sleep(5), poll_pids(Fat, [R | Acc]);
        _ -> [R | Acc]
    end.

%% A lifespan runs on every process, and again on a process that replaces a crashed one:
%% requests there see the state its own startup filled in.
lifespan_replayed(_Config) ->
    {ok, L, State} = py_asgi:lifespan_startup(?H, lifespan_app, #{}),
    Scope = #{type => <<"http">>, path => <<"/">>, state => State},
    {ok, {200, _, Before}} = py_asgi:run(?H, lifespan_app, Scope, <<>>),
    [<<"connected">>, P, P] = binary:split(Before, <<" ">>, [global]),
    _ = os:cmd("kill -9 " ++ binary_to_list(P)),
    ep_test_lib:wait_until(fun() -> all_up() andalso maps:get(restarts, py:info()) =:= 1 end),
    Bodies = [B || _ <- lists:seq(1, 20),
                   {ok, {200, _, B}} <- [py_asgi:run(?H, lifespan_app, Scope, <<>>)]],
    ?assertEqual(20, length(Bodies)),
    ?assertEqual([], [B || B <- Bodies,
                           case binary:split(B, <<" ">>, [global]) of
                               [<<"connected">>, Q, Q] -> Q =:= P;
                               _ -> true
                           end]),
    ?assertEqual(ok, py_asgi:lifespan_shutdown(L)).

%% ---- balancing ------------------------------------------------------------------------

%% A WSGI app waiting for its request body keeps its process busy: calls go to the
%% other worker meanwhile.
least_in_flight_avoids_wsgi(_Config) ->
    Environ = #{<<"REQUEST_METHOD">> => <<"POST">>, <<"SCRIPT_NAME">> => <<>>,
                <<"PATH_INFO">> => <<"/">>, <<"SERVER_NAME">> => <<"h">>,
                <<"SERVER_PORT">> => <<"80">>, <<"SERVER_PROTOCOL">> => <<"HTTP/1.1">>,
                <<"wsgi.url_scheme">> => <<"http">>},
    {ok, S} = py_wsgi:start(?H, wsgi_waits_for_body, Environ, #{body => <<"ab">>, more_body => true}),
    receive {wsgi, S, need_body} -> ok after 10000 -> ct:fail(no_need_body) end,
    Pids = lists:usort([P || _ <- lists:seq(1, 20), {ok, P} <- [py:call(?H, pid, [])]]),
    ok = py_wsgi:send_body(S, <<"c">>, false),
    receive {wsgi, S, {start, <<"200 OK">>, _}} -> ok after 10000 -> ct:fail(no_start) end,
    Body = receive {wsgi, S, {body, B}} -> ok = py_wsgi:ack(S, byte_size(B)), B
           after 10000 -> ct:fail(no_body) end,
    receive {wsgi, S, done} -> ok after 10000 -> ct:fail(no_done) end,
    [WsgiPid, <<"3">>] = binary:split(Body, <<" ">>),
    ?assertMatch([_], Pids),
    ?assertNotEqual(Pids, [binary_to_integer(WsgiPid)]).

%% ---- lifecycle ------------------------------------------------------------------------

%% Stopping drains: requests in flight finish and get their replies.
drain_at_stop(_Config) ->
    Self = self(),
    spawn_link(fun() -> Self ! {sync, py:call(?H, sleep_pid, [0.5])} end),
    spawn_link(fun() -> Self ! {async, py:call(?H, sleep_async, [0.5])} end),
    ep_test_lib:wait_until(fun() -> #{in_flight := N} = py:info(), N =:= 2 end),
    ok = application:stop(erlang_python),
    ?assertMatch({ok, P} when is_integer(P), receive {sync, R1} -> R1 after 10000 -> none end),
    ?assertMatch({ok, P} when is_integer(P), receive {async, R2} -> R2 after 10000 -> none end),
    ?assertEqual({error, not_started}, py:call(?H, pid, [])),
    {ok, _} = application:ensure_all_started(erlang_python).

%% A request still running at stop_timeout: its process is killed, the caller told so.
stop_timeout_kills(_Config) ->
    ok = application:set_env(erlang_python, stop_timeout, 200),
    Self = self(),
    spawn_link(fun() -> Self ! {slow, py:call(?H, sleep_pid, [30], #{timeout => infinity})} end),
    ep_test_lib:wait_until(fun() -> #{in_flight := N} = py:info(), N =:= 1 end),
    ok = application:stop(erlang_python),
    ?assertEqual({error, {worker_exit, 137}}, receive {slow, R} -> R after 10000 -> none end),
    {ok, _} = application:ensure_all_started(erlang_python).

%% A worker process that cannot start (here: a venv whose .pth file exits at start-up)
%% fails the application's start with the reason.
python_cannot_start(Config) ->
    #{python_version := Version} = py:info(),
    [Major, Minor | _] = binary:split(Version, <<".">>, [global]),
    Venv = filename:join(?config(priv_dir, Config), "exiting_venv"),
    SitePackages = filename:join([Venv, "lib", <<"python", Major/binary, ".", Minor/binary>>,
                                  "site-packages"]),
    ok = filelib:ensure_dir(filename:join(SitePackages, "x")),
    ok = file:write_file(filename:join(SitePackages, "exit.pth"), "import os; os._exit(3)\n"),
    Old = application:get_env(erlang_python, venv),
    ok = application:stop(erlang_python),
    ok = application:set_env(erlang_python, venv, Venv),
    Start = application:start(erlang_python),
    case Old of
        {ok, V} -> ok = application:set_env(erlang_python, venv, V);
        undefined -> ok = application:unset_env(erlang_python, venv)
    end,
    ?assertMatch({error, _}, Start),
    ?assert(contains(Start, fun({python_start_failed, {exit_status, 3, _}}) -> true;
                               (_) -> false
                            end)),
    ok = application:start(erlang_python).

%% ---- helpers --------------------------------------------------------------------------

%% Whether Term or a part of it satisfies Pred.
contains(Term, Pred) ->
    Pred(Term) orelse case Term of
                          T when is_tuple(T) -> contains(tuple_to_list(T), Pred);
                          [H | T] -> contains(H, Pred) orelse contains(T, Pred);
                          _ -> false
                      end.

restart() ->
    _ = application:stop(erlang_python),
    {ok, _} = application:ensure_all_started(erlang_python),
    ok.

all_up() ->
    #{os_pids := Pids, workers := N} = py:info(),
    length([P || P <- Pids, is_integer(P)]) =:= N.
