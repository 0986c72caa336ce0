%% Shared set-up for the erlang_python Common Test suites.
-module(ep_ct).

-export([start/1, stop/0, flush/0]).

%% Starts erlang_python with DataDir (the suite's data directory, which holds its Python
%% helper module) prepended to sys.path.
-spec start(file:filename()) -> ok.
start(DataDir) ->
    demote_suite_dir(),
    case application:load(erlang_python) of
        ok -> ok;
        {error, {already_loaded, erlang_python}} -> ok
    end,
    ok = application:set_env(erlang_python, python_path, [DataDir]),
    {ok, _} = application:ensure_all_started(erlang_python),
    ok.

-spec stop() -> ok.
stop() ->
    _ = application:stop(erlang_python),
    ok = application:set_env(erlang_python, python_path, []),
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
