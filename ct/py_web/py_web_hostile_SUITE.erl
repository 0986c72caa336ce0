%% Apps that attack the server's VM from inside (issue 18): fork it, signal it, hang
%% its workers.  Each case runs bin/pyweb as its own OS process (if a guard fails, that
%% VM dies, not the test node) on hostile_wsgi.py from the data dir, and checks that
%% the VM lives, keeps serving, and stops cleanly on SIGTERM with its port free.
%% Behaviour only: no timing is asserted.
-module(py_web_hostile_SUITE).
-compile(nowarn_missing_spec).
-compile([export_all, nowarn_export_all]).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-define(TC, py_web_tc).
-define(REFUSED_FORK, "refused RuntimeError: os.fork() is refused inside the Erlang VM").
-define(REFUSED_SIGNAL,
        "refused PermissionError: [Errno 1] signals to the Erlang VM's own process are refused").

suite() -> [{timetrap, {minutes, 4}}].

all() ->
    [fork_and_process_pools, signals_cannot_end_the_vm, timed_out_requests_never_start].

init_per_suite(Config) ->
    case py_web_ct:python_exe() of
        false -> {skip, "VIRTUAL_ENV is not set: run through make test-ct"};
        _ -> Config
    end.

end_per_suite(_Config) ->
    ok.

%%--------------------------------------------------------------------
%% Item 4: os.fork is a Python exception; multiprocessing and ProcessPoolExecutor
%% work (spawn from the real interpreter); the fork start method is refused.  No copy
%% of the VM is left: after SIGTERM the idle keep-alive connection sees EOF and the
%% port can be listened on again.
fork_and_process_pools(Config) ->
    Srv = start(Config, []),
    Idle = ?TC:connect(port(Srv)),
    {ok, 200, _, <<"hello">>} = ?TC:get(Idle, "/"),
    ?assertMatch({ok, 200, _, <<?REFUSED_FORK, _/binary>>}, get(Srv, "/fork")),
    ?assertMatch({ok, 200, _, <<"refused RuntimeError: ", _/binary>>}, get(Srv, "/mp-fork")),
    {ok, 200, _, <<"1,4,9">>} = get(Srv, "/mp"),
    {ok, 200, _, <<"1,4,9">>} = get(Srv, "/executor"),
    {ok, 200, _, <<"hello">>} = get(Srv, "/"),
    {ok, 200, _, <<"hello">>} = ?TC:get(Idle, "/"),
    {0, _} = stop(Srv),
    true = ?TC:closed(Idle),
    port_free(port(Srv)).

%%--------------------------------------------------------------------
%% Item 5: alarm(1) and setitimer with requests in flight: the VM lives and those
%% requests complete; signals sent to the VM's own process are refused.
signals_cannot_end_the_vm(Config) ->
    Srv = start(Config, ["--workers", "6"]),
    Self = self(),
    InFlight = [spawn_link(fun() -> Self ! {done, self(), get(Srv, "/sleep?s=3")} end)
                || _ <- lists:seq(1, 4)],
    {ok, 200, _, <<"armed">>} = get(Srv, "/alarm"),
    {ok, 200, _, <<"armed">>} = get(Srv, "/itimer"),
    [{ok, 200, _, <<?REFUSED_SIGNAL, _/binary>>} = get(Srv, P) || P <- ["/kill", "/killpg", "/raise"]],
    [receive {done, P, R} -> {ok, 200, _, <<"slept">>} = R end || P <- InFlight],
    {ok, 200, _, <<"hello">>} = get(Srv, "/"),
    {0, _} = stop(Srv),
    port_free(port(Srv)).

%%--------------------------------------------------------------------
%% Item 3 (first half): 40 requests answered 504 while both workers were busy never
%% run the app afterwards.  The request after them is queued behind them, so once it
%% is answered every one of them has been taken off the queue.
timed_out_requests_never_start(Config) ->
    Srv = start(Config, ["--workers", "2", "--timeout-request", "1"]),
    Self = self(),
    Busy = [spawn_link(fun() -> Self ! {done, self(), get(Srv, "/sleep?s=4")} end)
            || _ <- lists:seq(1, 2)],
    wait_logged(Srv, <<"/sleep">>, 2),
    Late = [spawn_link(fun() -> Self ! {done, self(), get(Srv, "/late?n=" ++ integer_to_list(N))} end)
            || N <- lists:seq(1, 40)],
    [receive {done, P, R} -> {ok, 504, _, _} = R end || P <- Late],
    %% The sleeping ones got their 504 too (no response within the timeout); their
    %% sleep still ends and frees the workers.
    [receive {done, P, R} -> {ok, 504, _, _} = R end || P <- Busy],
    {ok, 200, _, <<"hello">>} = get_retry(Srv, "/after"),
    Log = logged(Srv),
    ?assertEqual([], [L || L <- Log, binary:match(L, <<"/late">>) =/= nomatch]),
    ?assertEqual(2, length([L || L <- Log, binary:match(L, <<"/sleep">>) =/= nomatch])),
    {0, _} = stop(Srv).

%%--------------------------------------------------------------------
%% Helpers

%% The requests the app started, in order (HOSTILE_LOG's lines).
logged(#{log := Log}) ->
    case file:read_file(Log) of
        {ok, B} -> binary:split(B, <<"\n">>, [global, trim_all]);
        {error, enoent} -> []
    end.

wait_logged(Srv, Prefix, N) ->
    case length([L || L <- logged(Srv), binary:match(L, Prefix) =/= nomatch]) >= N of
        true -> ok;
        false -> timer:sleep(50), wait_logged(Srv, Prefix, N)
    end.

%% GET until the answer is not a 504 (the workers are still busy until the sleeps end).
get_retry(Srv, Path) ->
    case get(Srv, Path) of
        {ok, 504, _, _} -> get_retry(Srv, Path);
        R -> R
    end.

%% bin/pyweb serving hostile_wsgi:app on a free port, with HOSTILE_LOG in priv_dir.
start(Config, Args) ->
    Port = py_web_os_proc:free_port(),
    Log = filename:join(?config(priv_dir, Config), "hostile.log"),
    _ = file:delete(Log),
    P = open_port({spawn_executable, py_web_os_proc:pyweb()},
                  [{args, ["hostile_wsgi:app", "--port", integer_to_list(Port),
                           "--app-dir", ?config(data_dir, Config) | Args]},
                   {env, [{"HOSTILE_LOG", Log}]},
                   exit_status, stderr_to_stdout, binary]),
    Srv = #{port => Port, os => P, log => Log},
    wait_up(Srv, 300),
    Srv.

port(#{port := Port}) -> Port.

get(#{port := Port}, Path) ->
    S = ?TC:connect(Port),
    try ?TC:get(S, Path) after gen_tcp:close(S) end.

stop(#{os := P}) ->
    {os_pid, OsPid} = erlang:port_info(P, os_pid),
    _ = os:cmd("kill -TERM " ++ integer_to_list(OsPid)),
    py_web_os_proc:collect(P).

%% Nothing listens on the port any more: it can be listened on again (reuseaddr:
%% connections in TIME_WAIT do not count, a listening socket would).
port_free(Port) ->
    {ok, L} = gen_tcp:listen(Port, [{ip, {127, 0, 0, 1}}, {reuseaddr, true}]),
    ok = gen_tcp:close(L).

wait_up(#{os := P}, 0) ->
    ct:fail({not_up, py_web_os_proc:collect_now(P)});
wait_up(Srv = #{port := Port}, N) ->
    case gen_tcp:connect({127, 0, 0, 1}, Port, [], 1000) of
        {ok, S} -> gen_tcp:close(S);
        {error, _} -> timer:sleep(100), wait_up(Srv, N - 1)
    end.
