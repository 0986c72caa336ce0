%% Shared set-up of the py_web suites that run real Python apps.
-module(py_web_ct).

-export([start_python/1, python_exe/0, venv/0, quiet/0, quiet_filter/2]).
-export([pyweb/0, free_port/0, wait_up/3, collect/2]).

%% (Re)starts erlang_python with Dirs prepended to sys.path (python_path
%% is read when the workers start, so a running application is stopped
%% first). The test venv ($VIRTUAL_ENV) provides Flask, Django, ...
%% The suites read what the apps record (and open gates) with py:call: in
%% the processes mode that needs one interpreter, so one worker process
%% (py_web_processes_SUITE serves with several).
-spec start_python([file:filename()]) -> ok.
start_python(Dirs) ->
    demote_suite_dirs(),
    case application:load(erlang_python) of
        ok -> ok;
        {error, {already_loaded, erlang_python}} -> ok
    end,
    _ = application:stop(erlang_python),
    ok = application:set_env(erlang_python, python_path, Dirs),
    case py_mode:configured() of
        processes -> ok = application:set_env(erlang_python, workers, 1);
        _ -> ok
    end,
    {ok, _} = application:ensure_all_started(erlang_python),
    _ = application:ensure_all_started(py_web),
    ok.

%% The venv's python (for httpx as a client), or false.
-spec python_exe() -> string() | false.
python_exe() ->
    case venv() of
        false -> false;
        V ->
            P = filename:join([V, "bin", "python"]),
            case filelib:is_regular(P) of
                true -> P;
                false -> false
            end
    end.

-spec venv() -> string() | false.
venv() ->
    case os:getenv("VIRTUAL_ENV") of
        false -> false;
        "" -> false;
        V -> V
    end.

%% `rebar3 ct --dir ct/erlang_python,...' puts a directory named
%% erlang_python on the code path ahead of the application, and
%% code:priv_dir(erlang_python) (the NIF, the python/ package) would then
%% resolve to it. Move such directories to the end of the path.
demote_suite_dirs() ->
    [begin
         true = code:del_path(D),
         true = code:add_pathz(D)
     end || D <- code:get_path(), filename:basename(D) =:= "erlang_python"],
    ok.

%% No "py_web: serving ..." notice for each of the many servers a suite
%% starts (warnings and errors, app tracebacks included, still show).
-spec quiet() -> ok.
quiet() ->
    _ = logger:add_primary_filter(py_web_quiet, {fun ?MODULE:quiet_filter/2, []}),
    ok.

-spec quiet_filter(logger:log_event(), term()) -> logger:filter_return().
quiet_filter(#{level := notice, meta := #{py_web := server}}, _) -> stop;
quiet_filter(_, _) -> ignore.

%% ---- bin/pyweb ---------------------------------------------------------

%% The repository's bin/pyweb (from .../_build/test/lib/py_web/ebin).
-spec pyweb() -> file:filename().
pyweb() ->
    Beam = code:which(py_web_cli),
    Root = lists:foldl(fun(_, D) -> filename:dirname(D) end, Beam, lists:seq(1, 6)),
    filename:join([Root, "bin", "pyweb"]).

%% A TCP port free a moment ago (for a bin/pyweb, which cannot report its own).
-spec free_port() -> inet:port_number().
free_port() ->
    {ok, L} = gen_tcp:listen(0, [{ip, {127, 0, 0, 1}}, {reuseaddr, true}]),
    {ok, Port} = inet:port(L),
    gen_tcp:close(L),
    Port.

%% Waits (up to N x 100 ms) until Url answers; fails with what the port P printed.
-spec wait_up(string(), port(), non_neg_integer()) -> ok.
wait_up(_Url, P, 0) ->
    ct:fail({not_up, collect_now(P)});
wait_up(Url, P, N) ->
    case httpc:request(get, {Url, []}, [], [{body_format, binary}]) of
        {ok, _} -> ok;
        {error, _} -> timer:sleep(100), wait_up(Url, P, N - 1)
    end.

collect_now(P) ->
    receive {P, {data, D}} -> [D | collect_now(P)] after 0 -> [] end.

%% The port's output until it exits: {ExitStatus, Output}.
-spec collect(port(), iodata()) -> {integer(), binary()}.
collect(P, Acc) ->
    receive
        {P, {data, D}} -> collect(P, [Acc, D]);
        {P, {exit_status, S}} -> {S, iolist_to_binary(Acc)}
    after 120000 ->
        ct:fail({no_exit, iolist_to_binary(Acc)})
    end.
