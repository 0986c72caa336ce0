%% The runtime's lifecycle: start, stop, restart, py:info(), application environment
%% (workers, python_path, venv, stop_timeout), extension modules, the VIRTUAL_ENV.
-module(py_runtime_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1, init_per_testcase/2,
         end_per_testcase/2]).
-export([info_running/1, stop_start/1, not_started_while_stopped/1,
         state_survives_restart/1, restart_many_times/1,
         workers_env/1, single_worker_serialises/1, event_loop_env/1,
         stop_replies_to_queued_calls/1, stop_timeout_leaves_busy_worker/1,
         stuck_workers_get_spares/1, blocked_loop_does_not_hold_the_queue/1,
         sys_path_defaults/1, vm_owns_the_process/1, extension_modules/1,
         venv_site_packages/1, venv_warning/1, python_log_passes_default_filters/1]).

-define(H, ep_runtime_helper).

all() ->
    [info_running, stop_start, not_started_while_stopped, state_survives_restart,
     restart_many_times, workers_env, single_worker_serialises, event_loop_env,
     stop_replies_to_queued_calls, stop_timeout_leaves_busy_worker, stuck_workers_get_spares,
     blocked_loop_does_not_hold_the_queue, sys_path_defaults, vm_owns_the_process, extension_modules,
     venv_site_packages, venv_warning, python_log_passes_default_filters].

init_per_suite(Config) ->
    ok = erlang_python_ct:start(Config),
    Config.

end_per_suite(_Config) ->
    erlang_python_ct:stop().

init_per_testcase(_TC, Config) ->
    Config.

%% Every test leaves the application running with the default configuration.
end_per_testcase(_TC, _Config) ->
    Defaults = [{workers, 4}, {venv, undefined}, {stop_timeout, 5000}, {call_timeout, 30000},
                {event_loop, asyncio}],
    Changed = [K || {K, V} <- Defaults, application:get_env(erlang_python, K) =/= {ok, V}],
    [ok = application:set_env(erlang_python, K, V) || {K, V} <- Defaults],
    case {Changed, whereis(erlang_python_sup)} of
        {[], Pid} when is_pid(Pid) -> ok;
        _ -> restart()
    end,
    ?assertMatch(#{running := true, workers := 4}, py:info()),
    ?assertEqual({messages, []}, process_info(self(), messages)),
    ok.

%% ---- lifecycle -----------------------------------------------------------------------

info_running(_Config) ->
    case ep_test_lib:mode() of
        processes -> info_running_processes();
        _ -> info_running_nif()
    end.

info_running_nif() ->
    {ok, Version} = py:call(platform, python_version, []),
    {ok, FreeThreaded} = py:call(sysconfig, get_config_var, [<<"Py_GIL_DISABLED">>]),
    {ok, Subinterpreters} = py:call(operator, ge, [Version, <<"3.12">>]),
    Configured = py_mode:configured(),
    Mode = case Configured of
               auto when Subinterpreters -> subinterpreters;
               auto -> gil;
               M -> M
           end,
    Info = py:info(),
    #{libpython := Lib, interpreters := Interpreters} = Info,
    ?assertEqual(#{python_version => Version, build_python_version => Version,
                   libpython => Lib, running => true, workers => 4, spares_running => 0, queued => 0,
                   mode => Mode, configured => Configured,
                   subinterpreters_supported => Subinterpreters,
                   free_threaded_build => FreeThreaded =:= 1,
                   interpreters => Interpreters,
                   loops => #{asyncio => 4, uvloop => 0}}, Info),
    ?assertEqual(true, filelib:is_regular(Lib)),
    ?assertMatch("libpython" ++ _, filename:basename(binary_to_list(Lib))),
    %% Where the four workers run: the main interpreter, or one sub-interpreter each.
    Running = [I || #{state := running} = I <- Interpreters],
    case Mode of
        subinterpreters ->
            ?assertMatch([_, _, _, _], Running),
            ?assertEqual([{false, 1}], lists:usort([{M, T} || #{main := M, threads := T} <- Running]));
        _ ->
            ?assertMatch([#{id := 0, main := true, threads := 4}], Running)
    end.

%% The processes mode's keys: the worker processes' Python and OS pids, and counts.
info_running_processes() ->
    {ok, Version} = py:call(platform, python_version, []),
    {ok, Executable} = py:call(sys, <<"executable.__str__">>, []),
    #{os_pids := Pids} = Info = py:info(),
    ?assertEqual(#{mode => processes, configured => processes, workers => 4, running => true,
                   python_version => Version, executable => Executable, os_pids => Pids,
                   queued => 0, in_flight => 0, restarts => 0, recycles => 0}, Info),
    ?assertEqual(4, length(lists:usort(Pids))),
    ?assertEqual([], [P || P <- Pids, P =:= list_to_integer(os:getpid())]).

stop_start(_Config) ->
    ?assertEqual({ok, 3}, py:call(operator, add, [1, 2])),
    ok = application:stop(erlang_python),
    ?assertEqual(undefined, whereis(py_runtime)),
    #{python_version := V} = Info = py:info(),
    ?assertEqual(#{running => false, workers => 0, queued => 0},
                 maps:with([running, workers, queued], Info)),
    ok = application:start(erlang_python),
    ?assertEqual({ok, 3}, py:call(operator, add, [1, 2])),
    ?assertMatch(#{running := true, workers := 4, python_version := V}, py:info()).

not_started_while_stopped(_Config) ->
    ok = application:stop(erlang_python),
    ?assertEqual({error, not_started}, py:call(operator, add, [1, 2])),
    ?assertEqual({error, not_started}, py:call(time, sleep, [1], #{timeout => 10})),
    %% Argument checks come first.
    ?assertEqual({error, {badarg, {module, 1}}}, py:call(1, f, [])),
    ?assertEqual({error, {badarg, {timeout, x}}}, py:call(m, f, [], #{timeout => x})),
    ok = application:start(erlang_python),
    ?assertEqual({ok, 3}, py:call(operator, add, [1, 2])).

%% The interpreters live as long as the VM: module globals survive a restart, in each.
%% (Not in the processes mode, whose restart starts new processes.)
state_survives_restart(_Config) ->
    case ep_test_lib:mode() of
        processes -> {skip, "the processes mode starts new interpreters at every start"};
        _ -> state_survives_restart()
    end.

state_survives_restart() ->
    Value = {make_ref(), [1, <<"two">>, #{three => 3.0}]},
    Puts = erlang_python_ct:each(?H, put, [<<"k">>, Value]),
    ?assert(lists:all(fun is_integer/1, Puts)),
    restart(),
    ?assertEqual([Value || _ <- Puts], erlang_python_ct:each(?H, get, [<<"k">>])),
    restart(),
    ?assertEqual([Value || _ <- Puts], erlang_python_ct:each(?H, get, [<<"k">>])),
    ?assertEqual({ok, none}, py:call(?H, get, [<<"missing">>])).

restart_many_times(_Config) ->
    [begin
         restart(),
         ?assertEqual({ok, I * I}, py:call(operator, mul, [I, I])),
         ?assertEqual({ok, I}, py:call(operator, add, [I, 0], #{timeout => 5000}))
     end || I <- lists:seq(1, 8)],
    ?assertMatch(#{running := true, workers := 4, queued := 0}, py:info()).

%% workers = 2: two threads serve, whatever the number of concurrent callers.
workers_env(_Config) ->
    ok = application:set_env(erlang_python, workers, 2),
    restart(),
    ?assertMatch(#{running := true, workers := 2}, py:info()),
    Idents = ep_test_lib:pmap(fun(_) -> py:call(?H, sleep_ident, [0.2]) end, lists:seq(1, 6)),
    ?assertEqual(6, length([I || {ok, I} <- Idents])),
    ?assertEqual(2, length(lists:usort(Idents))).

%% event_loop: the workers' loop (what asyncio.get_event_loop() gives a sync call on a
%% worker), counted in py:info(); uvloop (a test dependency) loads in the main
%% interpreter, not in a sub-interpreter with its own GIL: there `uvloop' and `auto' keep
%% asyncio's.  A bad value fails the start.
event_loop_env(_Config) ->
    case ep_test_lib:mode() of
        processes -> {skip, "processes mode: its workers run asyncio's loop"};
        Mode -> event_loop_in(Mode)
    end.

event_loop_in(Mode) ->
    ok = application:set_env(erlang_python, workers, 2),
    Loop = fun() -> py:call(?H, loop_module, []) end,
    restart(),
    ?assertEqual({ok, <<"asyncio.unix_events">>}, Loop()),
    ?assertMatch(#{loops := #{asyncio := 2, uvloop := 0}}, py:info()),
    ok = application:set_env(erlang_python, event_loop, auto),
    restart(),
    case Mode of
        subinterpreters ->
            ?assertEqual({ok, <<"asyncio.unix_events">>}, Loop()),
            ?assertMatch(#{loops := #{asyncio := 2, uvloop := 0}}, py:info());
        _ ->
            ?assertEqual({ok, <<"uvloop">>}, Loop()),
            ?assertMatch(#{loops := #{asyncio := 0, uvloop := 2}}, py:info()),
            %% an async call runs on the worker's loop, uvloop's
            ?assertEqual({ok, <<"uvloop">>}, py:call(?H, running_loop_module, []))
    end,
    ok = application:set_env(erlang_python, event_loop, uvloop),
    restart(),
    case Mode of
        subinterpreters ->
            ?assertEqual({ok, <<"asyncio.unix_events">>}, Loop()),
            ?assertMatch(#{loops := #{asyncio := 2, uvloop := 0}}, py:info());
        _ ->
            ?assertEqual({ok, <<"uvloop">>}, Loop())
    end,
    ok = application:set_env(erlang_python, event_loop, trio),
    _ = application:stop(erlang_python),
    {error, {{shutdown, {failed_to_start_child, py_runtime, {badarg, {event_loop, trio}}}}, _}} =
        application:start(erlang_python),
    ok.

single_worker_serialises(_Config) ->
    ok = application:set_env(erlang_python, workers, 1),
    restart(),
    ?assertMatch(#{running := true, workers := 1}, py:info()),
    Idents = ep_test_lib:pmap(fun(_) -> py:call(?H, sleep_ident, [0.05]) end, lists:seq(1, 4)),
    ?assertMatch([{ok, _}], lists:usort(Idents)).

%% Stopping lets the running call finish (within stop_timeout) and answers the queued
%% ones with not_started.  (The processes mode queues in the worker process and drains
%% it: py_port_SUITE tests its stop.)  The running call lasts 2 s: the queued one must be
%% seen queued meanwhile, which a 0.5 s call did not leave time for once on a loaded
%% machine.
stop_replies_to_queued_calls(Config) ->
    case ep_test_lib:mode() of
        processes -> {skip, "processes mode: see py_port_SUITE:drain_at_stop"};
        _ -> stop_replies_to_queued_calls_nif(Config)
    end.

stop_replies_to_queued_calls_nif(Config) ->
    ok = application:set_env(erlang_python, workers, 1),
    restart(),
    Self = self(),
    Marker = marker(Config),
    Running = spawn_link(fun() ->
                                 Self ! {running, py:call(?H, blocking_sleep, [2, Marker])}
                         end),
    ep_test_lib:wait_until(fun() -> filelib:is_regular(Marker) end),
    Queued = spawn_link(fun() -> Self ! {queued, py:call(operator, add, [1, 2])} end),
    ep_test_lib:wait_until(fun() -> maps:get(queued, py:info()) =:= 1 end),
    ok = application:stop(erlang_python),
    ?assertEqual({ok, <<"done">>}, receive {running, R1} -> R1 after 5000 -> none end),
    ?assertEqual({error, not_started}, receive {queued, R2} -> R2 after 5000 -> none end),
    _ = [Running, Queued],
    ok = application:start(erlang_python).

%% A call that outlives stop_timeout does not block the stop; its worker thread finishes
%% the call (the caller still gets its reply) and exits; a new start gets new workers.
%% (The processes mode kills the process instead: py_port_SUITE:stop_timeout_kills.)
stop_timeout_leaves_busy_worker(Config) ->
    case ep_test_lib:mode() of
        processes -> {skip, "processes mode: see py_port_SUITE:stop_timeout_kills"};
        _ -> stop_timeout_leaves_busy_worker_nif(Config)
    end.

stop_timeout_leaves_busy_worker_nif(Config) ->
    ok = application:set_env(erlang_python, stop_timeout, 100),
    restart(),
    Self = self(),
    Marker = marker(Config),
    _ = spawn_link(fun() -> Self ! {slow, py:call(?H, blocking_sleep, [2, Marker])} end),
    ep_test_lib:wait_until(fun() -> filelib:is_regular(Marker) end),
    ok = application:stop(erlang_python),
    %% stop returned after ~100 ms; the 2 s call is still running.
    ?assertEqual({messages, []}, process_info(self(), messages)),
    ok = application:start(erlang_python),
    ?assertEqual({ok, 3}, py:call(operator, add, [1, 2])),
    ?assertEqual({ok, <<"done">>}, receive {slow, R} -> R after 10000 -> none end).

%% Calls that outlive their timeout leave their workers stuck: later calls are served by
%% spare workers (at most spare_workers), each stuck worker's Python stack is logged, and
%% the spares retire once the stuck calls return.
stuck_workers_get_spares(Config) ->
    case ep_test_lib:mode() of
        processes -> {skip, "processes mode: a call past its timeout is killed with its "
                            "process (py_port_SUITE:hung_sync_call_killed)"};
        _ -> stuck_workers_get_spares_nif(Config)
    end.

stuck_workers_get_spares_nif(Config) ->
    ok = application:set_env(erlang_python, workers, 2),
    ok = application:set_env(erlang_python, spare_workers, 1),
    ok = logger:add_handler(ep_runtime_suite_h, ep_test_lib, #{config => #{pid => self()},
                                                          level => warning}),
    try
        restart(),
        Self = self(),
        Markers = [<<(marker(Config))/binary, (integer_to_binary(I))/binary>> || I <- [1, 2]],
        [spawn_link(fun() ->
                            Self ! {stuck, py:call(?H, blocking_sleep, [6, M], #{timeout => 1000})}
                    end) || M <- Markers],
        ep_test_lib:wait_until(fun() -> lists:all(fun filelib:is_regular/1, Markers) end),
        [{error, timeout} = receive {stuck, R} -> R after 5000 -> none end || _ <- Markers],
        %% Both workers sleep on: a spare serves, and only one (the bound).
        ?assertEqual({ok, 3}, py:call(operator, add, [1, 2])),
        ?assertMatch(#{workers := 2, spares_running := 1}, py:info()),
        ?assertEqual({ok, 7}, py:call(operator, add, [3, 4])),
        Logged = [receive {log, warning, T} -> T after 5000 -> none end || _ <- lists:seq(1, 3)],
        Stacks = [T || T <- Logged, string:find(T, "still runs a call given up") =/= nomatch],
        ?assertEqual(2, length(Stacks)),
        [?assertNotEqual(nomatch, string:find(T, "in blocking_sleep")) || T <- Stacks],
        ?assertEqual(1, length([T || T <- Logged, string:find(T, "started spare worker") =/= nomatch])),
        %% The sleeps end: the spare retires, the two workers serve again.
        wait_spares(0, 1000),
        ?assertEqual({ok, 3}, py:call(operator, add, [1, 2]))
    after
        logger:remove_handler(ep_runtime_suite_h),
        application:unset_env(erlang_python, spare_workers),
        flush_logs()
    end.

%% A worker whose event loop is blocked by the app (a task that sleeps without awaiting)
%% is woken for a queued call and cannot answer: after a moment another worker takes the
%% call, so it is answered while the blocking task still runs.  (The processes mode
%% queues per worker process: py_port_SUITE.)
blocked_loop_does_not_hold_the_queue(Config) ->
    case ep_test_lib:mode() of
        processes -> {skip, "processes mode: the shared queue is the NIF's"};
        _ -> blocked_loop_does_not_hold_the_queue_nif(Config)
    end.

blocked_loop_does_not_hold_the_queue_nif(Config) ->
    ok = application:set_env(erlang_python, workers, 2),
    restart(),
    Self = self(),
    Marker = marker(Config),
    _ = spawn_link(fun() -> Self ! {blocker, py:call(?H, loop_blocking_sleep, [4, Marker])} end),
    ep_test_lib:wait_until(fun() -> filelib:is_regular(Marker) end),
    [?assertEqual({ok, N + 1}, py:call(operator, add, [N, 1])) || N <- lists:seq(1, 5)],
    ?assertEqual({messages, []}, process_info(self(), messages)),
    ?assertEqual({ok, <<"done">>}, receive {blocker, R} -> R after 10000 -> none end).

flush_logs() ->
    receive {log, _, _} -> flush_logs() after 0 -> ok end.

wait_spares(N, 0) ->
    ct:fail({spares_running, maps:get(spares_running, py:info()), expected, N});
wait_spares(N, Tries) ->
    case py:info() of
        #{spares_running := N} -> ok;
        _ -> timer:sleep(20), wait_spares(N, Tries - 1)
    end.

%% ---- the interpreter's environment ---------------------------------------------------

%% sys.path starts with the python/ package, the current directory, then python_path.
sys_path_defaults(Config) ->
    PythonDir = filename:join(code:priv_dir(erlang_python), "python"),
    {ok, Cwd} = file:get_cwd(),
    DataDir = filename:absname(?config(data_dir, Config)),
    {ok, Path} = py:call(?H, sys_path, []),
    ?assertEqual([list_to_binary(D) || D <- [PythonDir, Cwd, DataDir]],
                 lists:sublist(Path, 3)),
    %% erlang_asyncio comes from the python/ package (the build copies it to priv/python).
    {ok, Real} = py:call(os, <<"path.realpath">>,
                         [list_to_binary(filename:join(PythonDir, "erlang_asyncio.py"))]),
    ?assertEqual({ok, Real}, py:call(?H, module_file, [erlang_asyncio])).

%% No Python signal handlers (SIGINT, SIGTERM, SIGCHLD stay the BEAM's: None means "not set
%% from Python"), argv set, same OS process.  Under `erl +B' or an escript (rebar3 ct)
%% SIGINT is SIG_DFL when Python's signal module first loads, which then installs
%% default_int_handler unless the runtime prevents it.
vm_owns_the_process(_Config) ->
    NotPython = [<<"None">>, <<"<Handlers.SIG_DFL: 0>">>, <<"<Handlers.SIG_IGN: 1>">>],
    {ok, Handlers} = py:call(?H, signal_handlers, []),
    ?assertEqual([], [{Sig, H} || {Sig, H} <- lists:zip([sigint, sigterm, sigchld], Handlers),
                                  not lists:member(H, NotPython)]),
    ?assertEqual({ok, [<<"erlang_python">>]}, py:call(?H, argv, [])),
    {ok, Pid} = py:call(os, getpid, []),
    case ep_test_lib:mode() of
        processes -> ?assert(lists:member(Pid, maps:get(os_pids, py:info())));
        _ -> ?assertEqual(list_to_integer(os:getpid()), Pid)
    end.

extension_modules(_Config) ->
    ?assertEqual({ok, #{<<"_json">> => <<"\"\\u00e9\"">>,
                        <<"_ssl">> => <<"OpenSSL">>,
                        <<"_decimal">> => <<"0.1428571428571428571428571429">>,
                        <<"sqlite3">> => 6}},
                 py:call(?H, extension_modules, [])),
    ?assertEqual({ok, <<"\"\\u00e9\"">>},
                 py:call('_json', encode_basestring_ascii, [<<"é"/utf8>>])),
    ?assertEqual({error, {unconvertible, <<"module">>}},
                 py:call(importlib, import_module, [<<"_ssl">>])),
    %% Python 3.12 runs single-phase modules' init before refusing them in a
    %% sub-interpreter, which corrupts memory for _decimal, _datetime and _ctypes: they are
    %% loaded in the main interpreter first, and refused (cleanly) in sub-interpreters.
    case {ep_test_lib:mode(), maps:get(python_version, py:info())} of
        {subinterpreters, <<"3.12.", _/binary>>} ->
            ?assertMatch({error, {python, <<"ImportError">>,
                                  <<"module _decimal does not support loading in "
                                    "subinterpreters">>, _}},
                         py:call(importlib, import_module, [<<"_decimal">>]));
        _ ->
            ok
    end.

%% The tests run with VIRTUAL_ENV set to the project venv (make test-ct), where Flask is
%% installed: it imports from the venv's site-packages.
venv_site_packages(_Config) ->
    case os:getenv("VIRTUAL_ENV") of
        Venv when is_list(Venv), Venv =/= "" ->
            [DistInfo] = filelib:wildcard(
                           filename:join(Venv, "lib/python*/site-packages/flask-*.dist-info")),
            "flask-" ++ VsnDist = filename:basename(DistInfo),
            Version = list_to_binary(filename:rootname(VsnDist, ".dist-info")),
            {ok, RealVenv} = py:call(os, <<"path.realpath">>, [list_to_binary(Venv)]),
            {ok, {Version, File}} = py:call(?H, flask_info, []),
            ?assertMatch(<<RealVenv:(byte_size(RealVenv))/binary, "/lib/", _/binary>>, File),
            ?assertEqual({error, {unconvertible, <<"module">>}},
                         py:call(importlib, import_module, [flask])),
            ?assertEqual({ok, Version}, py:call(<<"importlib.metadata">>, version, [flask]));
        _ ->
            {skip, "VIRTUAL_ENV is not set (make test-ct sets it to the project venv)"}
    end.

%% A venv without site-packages for this Python: a logged warning, not a failed start.
venv_warning(_Config) ->
    ok = logger:add_handler(ep_runtime_suite_h, ep_test_lib, #{config => #{pid => self()},
                                                          level => warning}),
    try
        ok = application:set_env(erlang_python, venv, "/nonexistent/venv"),
        restart(),
        ?assertEqual({ok, 3}, py:call(operator, add, [1, 2])),
        Msg = receive {log, warning, M} -> M after 5000 -> none end,
        ?assertMatch({match, _}, re:run(Msg, "^erlang_python: virtualenv /nonexistent/venv "
                                              "has no /nonexistent/venv/lib/python3\\.[0-9]+/"
                                              "site-packages: is it a Python 3\\.[0-9]+ venv\\?$"))
    after
        logger:remove_handler(ep_runtime_suite_h)
    end.

%% wsgi.errors and _erlang.log records reach a handler configured like OTP's default one
%% (whose filters drop events with a logger domain other than [otp]).
python_log_passes_default_filters(_Config) ->
    %% The filters of OTP's default handler (common_test installs handlers of its own).
    Filters = [{remote_gl, {fun logger_filters:remote_gl/2, stop}},
               {domain, {fun logger_filters:domain/2, {log, super, [otp, sasl]}}},
               {no_domain, {fun logger_filters:domain/2, {log, undefined, []}}}],
    ok = logger:add_handler(ep_runtime_suite_h, ep_test_lib,
                            #{config => #{pid => self()}, filters => Filters,
                              filter_default => stop}),
    try
        ?assertEqual({ok, none}, py:call(<<"_erlang">>, log, [<<"error">>, <<"from python\n">>])),
        ?assertEqual({log, error, "from python"}, receive M -> M after 5000 -> none end)
    after
        logger:remove_handler(ep_runtime_suite_h)
    end.

%% ---- helpers -------------------------------------------------------------------------

restart() ->
    _ = application:stop(erlang_python),
    ok = application:start(erlang_python).

%% A file that blocking_sleep creates when it starts: the job is running on a worker.
marker(Config) ->
    Path = filename:join(?config(priv_dir, Config), "started"),
    _ = file:delete(Path),
    list_to_binary(Path).
