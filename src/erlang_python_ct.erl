%% @doc Common Test helpers for suites that run Python through erlang_python: start the
%% application with a virtualenv and the suite's Python code on `sys.path', stop it, and
%% resolve paths against the suite rather than the current directory (Common Test runs
%% every suite with the current directory set to its log directory, so a relative path
%% that worked in a shell does not work there).
%%
%% ```
%% init_per_suite(Config) ->
%%     ok = erlang_python_ct:start(Config, #{app_dir => "pyapp"}),   % DATA_DIR/pyapp
%%     Config.
%%
%% end_per_suite(_Config) ->
%%     erlang_python_ct:stop().
%%
%% a_test(_Config) ->
%%     {ok, 3} = py:call(operator, add, [1, 2]).
%% '''
%%
%% Relative paths given to {@link start/2} are resolved against a base directory: the
%% suite's data directory (`?config(data_dir, Config)', that is `SUITE_data/' beside the
%% suite) unless the `base' option names another.  To serve a Python web app over HTTP from
%% a suite, see `py_web_ct' (in the py_web application).
%%
%% This module only uses Common Test's `Config' list; it does not call Common Test, so it
%% can also set up a shell or an EUnit fixture (give `base').
-module(erlang_python_ct).

-export([start/1, start/2, stop/0, path/2, each/3, flush/0]).

-export_type([opts/0]).

-type opts() :: #{base => file:filename(),
                  app_dir => file:filename(),
                  python_path => [file:filename() | {priv, atom()} | {priv, atom(), file:filename()}],
                  venv => file:filename() | false,
                  env => #{atom() => term()}}.
%% <ul>
%% <li>`base': the directory relative paths are resolved against (default: the suite's
%%     `data_dir'; itself relative to the current directory if relative).</li>
%% <li>`app_dir': the directory of the app's Python code, put first on `sys.path' (like
%%     `bin/pyweb --app-dir').  Default: the base directory itself.</li>
%% <li>`python_path': more directories for `sys.path', after `app_dir' (default `[]');
%%     `{priv, App}' and `{priv, App, Sub}' entries are kept as they are (see
%%     `py_runtime:config/0').</li>
%% <li>`venv': the virtualenv to import packages from; without it (or with `false', what
%%     `os:getenv/1' gives for an unset variable) the `venv' application env applies, else
%%     `$VIRTUAL_ENV'.</li>
%% <li>`env': other application env of erlang_python to set for the run, such as
%%     `#{workers => 2}'.</li>
%% </ul>

-define(SAVED, {?MODULE, saved}).

%% @equiv start(Config, #{})
-spec start(list()) -> ok.
start(Config) ->
    start(Config, #{}).

%% @doc (Re)starts erlang_python with the suite's Python code on `sys.path' (the
%% application reads its environment when it starts, so a running one is stopped first).
%% The application env it changes is put back by {@link stop/0}.  Crashes (`badmatch') if
%% the application cannot start, which fails the calling `init_per_suite' with the reason.
-spec start(list(), opts()) -> ok.
start(Config, Opts) ->
    demote_shadowing_dirs(),
    ok = load(),
    Base = base(Config, Opts),
    AppDir = resolve(Base, maps:get(app_dir, Opts, ".")),
    Extra = [resolve(Base, P) || P <- maps:get(python_path, Opts, [])],
    Env0 = maps:get(env, Opts, #{}),
    Env1 = Env0#{python_path => [AppDir | Extra]},
    Env = case Opts of
              #{venv := Venv} when Venv =/= false -> Env1#{venv => resolve(Base, Venv)};
              #{} -> Env1
          end,
    _ = application:stop(erlang_python),
    save(maps:keys(Env)),
    [ok = application:set_env(erlang_python, K, V) || {K, V} <- maps:to_list(Env)],
    {ok, _} = application:ensure_all_started(erlang_python),
    ok.

%% @doc Stops erlang_python and puts back the application env that {@link start/2}
%% changed.  The interpreter itself stays loaded until the VM ends (CPython cannot be
%% finalised and started again in one process): modules imported in one suite are still
%% imported in the next one that runs in the same VM.
-spec stop() -> ok.
stop() ->
    _ = application:stop(erlang_python),
    Saved = persistent_term:get(?SAVED, #{}),
    [case V of
         undefined -> application:unset_env(erlang_python, K);
         {ok, Value} -> application:set_env(erlang_python, K, Value)
     end || {K, V} <- maps:to_list(Saved)],
    _ = persistent_term:erase(?SAVED),
    ok.

%% @doc `Path' resolved against the suite's data directory (absolute paths are returned as
%% they are).
-spec path(list(), file:filename()) -> file:filename().
path(Config, Path) ->
    resolve(base(Config, #{}), Path).

%% @doc `Module:Function(Args...)' run once in each interpreter the workers use, in
%% worker order: the results.  Module globals are per interpreter in the
%% `subinterpreters' mode (one interpreter per worker; in the other modes there is one),
%% so a test that reads back what its app recorded in a global asks every interpreter
%% and combines the answers.  Raises `error({each_failed, Module, Function, Reason})'
%% when a call fails (`Reason' is the error shape of `py:call/3', or `timeout' after
%% 30 s).
-spec each(py:name(), py:name(), list()) -> [term()].
each(Module, Function, Args) ->
    Tag = make_ref(),
    case py_nif:call_each(Tag, 30000, Module, Function, Args, #{}) of
        {ok, _} ->
            receive
                {Tag, {ok, Replies}} ->
                    [case R of
                         {ok, V} -> V;
                         {error, Reason} -> error({each_failed, Module, Function, Reason})
                     end || R <- Replies];
                {Tag, {error, Reason}} ->
                    error({each_failed, Module, Function, Reason})
            end;
        {error, Reason} ->
            error({each_failed, Module, Function, Reason})
    end.

%% @doc The messages in the caller's mailbox, removed from it (for asserting that no stray
%% or late reply arrived).
-spec flush() -> [term()].
flush() ->
    receive M -> [M | flush()] after 0 -> [] end.

%% ---- internals -----------------------------------------------------------------------

load() ->
    case application:load(erlang_python) of
        ok -> ok;
        {error, {already_loaded, erlang_python}} -> ok
    end.

base(_Config, #{base := Base}) ->
    resolve(element(2, file:get_cwd()), Base);
base(Config, #{}) ->
    case proplists:get_value(data_dir, Config) of
        undefined -> error({badarg, {no_data_dir, "give the base option outside Common Test"}});
        Dir -> filename:absname(Dir)
    end.

resolve(_Base, {priv, _} = Entry) -> Entry;
resolve(_Base, {priv, _, _} = Entry) -> Entry;
resolve(Base, Path) ->
    %% absname/2 keeps "." components ("DATA_DIR/."): drop them.
    filename:join([C || C <- filename:split(filename:absname(Path, Base)), C =/= "."]).

%% Remembers the value each key had before the first start/2 since the last stop/0.
save(Keys) ->
    Saved = persistent_term:get(?SAVED, #{}),
    New = maps:from_list([{K, application:get_env(erlang_python, K)}
                          || K <- Keys, not maps:is_key(K, Saved)]),
    persistent_term:put(?SAVED, maps:merge(New, Saved)).

%% A directory named erlang_python on the code path that is not this application's
%% (`rebar3 ct --dir ct/erlang_python' adds the suites' directory, for one) makes
%% code:priv_dir(erlang_python) point into it.  Such directories go to the end of the path.
%% (The application's own entry ends in ebin.)
demote_shadowing_dirs() ->
    [begin
         true = code:del_path(D),
         true = code:add_pathz(D)
     end || D <- code:get_path(), filename:basename(D) =:= "erlang_python"],
    ok.
