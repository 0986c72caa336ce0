%% Shared set-up for the erlang_python Common Test suites.
-module(ep_ct).

-export([start/1, start/2, stop/0, flush/0, mode/0, wait_until/1, pmap/2]).

%% Starts erlang_python with DataDir (the suite's data directory, which holds its Python
%% helper module) prepended to sys.path.  The mode is the configured one (the Makefile's
%% test targets set ERLANG_PYTHON_MODE).
-spec start(file:filename()) -> ok.
start(DataDir) ->
    start(DataDir, []).

%% Options: `one_interpreter' for suites whose Python helpers keep records in module
%% globals and read them back with py:call: in the processes mode each worker process
%% has its own interpreter, so these suites run with one worker there (as many threads
%% share one interpreter in the NIF modes).  What several processes do is tested by
%% py_port_SUITE.
-spec start(file:filename(), [one_interpreter]) -> ok.
start(DataDir, Options) ->
    demote_suite_dir(),
    case application:load(erlang_python) of
        ok -> ok;
        {error, {already_loaded, erlang_python}} -> ok
    end,
    ok = application:set_env(erlang_python, python_path, [DataDir]),
    case lists:member(one_interpreter, Options) andalso py_mode:configured() =:= processes of
        true -> ok = application:set_env(erlang_python, workers, 1);
        false -> ok
    end,
    {ok, _} = application:ensure_all_started(erlang_python),
    ok.

%% The mode serving the tests (py:info/0's `mode').
-spec mode() -> atom().
mode() ->
    maps:get(mode, py:info()).

-spec stop() -> ok.
stop() ->
    _ = application:stop(erlang_python),
    ok = application:set_env(erlang_python, python_path, []),
    ok = application:set_env(erlang_python, workers, 4),
    ok.

%% Messages in the caller's mailbox (and removes them).
-spec flush() -> [term()].
flush() ->
    receive M -> [M | flush()] after 0 -> [] end.

%% `rebar3 ct --dir ct/erlang_python' puts the directory of these suites, whose name is
%% `erlang_python', on the code path ahead of the application.  code:priv_dir(erlang_python)
%% (used to find py_nif.so and the python/ package) would then resolve to the suites'
%% directory.  Move it to the end of the path so that the application's own directory wins.
demote_suite_dir() ->
    Dir = filename:dirname(code:which(?MODULE)),
    case filename:basename(Dir) of
        "erlang_python" ->
            true = code:del_path(Dir),
            true = code:add_pathz(Dir),
            ok;
        _ ->
            ok
    end.

%% Polls F every 10 ms until it returns true (fails the test after 10 s).
-spec wait_until(fun(() -> boolean())) -> ok.
wait_until(F) ->
    wait_until(F, 1000).

wait_until(_F, 0) ->
    ct:fail(condition_never_true);
wait_until(F, N) ->
    case F() of
        true -> ok;
        false -> timer:sleep(10), wait_until(F, N - 1)
    end.

%% F on each element in a process of its own; the results in input order.
-spec pmap(fun((T) -> R), [T]) -> [R].
pmap(F, List) ->
    Parent = self(),
    Refs = [begin
                Ref = make_ref(),
                spawn_link(fun() -> Parent ! {Ref, F(X)} end),
                Ref
            end || X <- List],
    [receive {Ref, R} -> R after 60000 -> ct:fail({pmap_timeout, Ref}) end || Ref <- Refs].
