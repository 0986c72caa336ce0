%% @doc Owns the Python runtime's lifecycle: starts the NIF's worker threads with the
%% application's configuration and stops them when the application stops (the interpreter
%% itself lives as long as the VM).  Also forwards Python-side log records
%% (`wsgi.errors', `_erlang.log') to the Erlang logger, and runs the Erlang timers behind
%% `erlang_asyncio.sleep' (`_erlang.schedule_timer').
-module(py_runtime).
-behaviour(gen_server).

-export([start_link/0, config/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc The configuration handed to the NIF, from the application environment, with every
%% path made absolute when the application starts:
%% `workers'; `paths', which `sys.path' gets in front, in order: the `python/' package
%% (`priv/python'), the current directory, then the `python_path' entries; `venv' (see
%% {@link py_python:venv/0}).
%%
%% A `python_path' entry is a directory: an absolute path; a relative path, taken from the
%% current directory at the application's start (in a release made by relx: the release's
%% root; note that Common Test changes the current directory, see `erlang_python_ct'); or
%% `{priv, App}' / `{priv, App, SubDir}', the priv directory of application `App' (the
%% form that works wherever the code is installed).
-spec config() -> #{workers := pos_integer(), paths := [binary()], venv := binary() | undefined}.
config() ->
    Workers = application:get_env(erlang_python, workers, 4),
    Extra = [python_path_entry(E) || E <- application:get_env(erlang_python, python_path, [])],
    {ok, Cwd} = file:get_cwd(),
    Paths = [py_python:package_dir(), Cwd | Extra],
    #{workers => Workers,
      paths => [unicode:characters_to_binary(P) || P <- Paths],
      venv => case py_python:venv() of
                  undefined -> undefined;
                  Dir -> unicode:characters_to_binary(Dir)
              end}.

%% An entry that is none of the documented forms, or names an unknown application,
%% raises `{badarg, {python_path, Entry}}' (the application's start fails with it).
python_path_entry(Entry) ->
    try resolve_entry(Entry)
    catch error:_ -> error({badarg, {python_path, Entry}})
    end.

resolve_entry({priv, App}) ->
    {ok, Dir} = priv_dir(App),
    Dir;
resolve_entry({priv, App, Sub}) ->
    {ok, Dir} = priv_dir(App),
    filename:join(Dir, Sub);
resolve_entry(Dir) when is_list(Dir); is_binary(Dir) ->
    filename:absname(Dir).

priv_dir(App) when is_atom(App) ->
    case code:priv_dir(App) of
        {error, bad_name} -> error;
        Dir -> {ok, Dir}
    end.

-spec init([]) -> {ok, #{}} | {stop, term()}.
init([]) ->
    process_flag(trap_exit, true),
    try config() of
        Config -> start(Config)
    catch
        error:{badarg, _} = Bad -> {stop, Bad}
    end.

start(Config) ->
    case py_nif:start(Config) of
        {ok, Warnings} ->
            ok = py_opts:load_default_timeout(),
            [logger:warning("erlang_python: ~ts", [W], #{erlang_python => runtime})
             || W <- Warnings],
            {ok, #{}};
        {error, Reason} ->
            {stop, Reason}
    end.

-spec handle_call(term(), gen_server:from(), map()) -> {reply, {error, unknown_call}, map()}.
handle_call(_Request, _From, State) ->
    {reply, {error, unknown_call}, State}.

-spec handle_cast(term(), map()) -> {noreply, map()}.
handle_cast(_Msg, State) ->
    {noreply, State}.

-spec handle_info(term(), map()) -> {noreply, map()}.
handle_info({py_timer, Worker, Id, DelayMs}, State) ->
    erlang:send_after(DelayMs, self(), {py_timer_fire, Worker, Id}),
    {noreply, State};
handle_info({py_timer_fire, Worker, Id}, State) ->
    py_nif:timer_fire(Worker, Id),
    {noreply, State};
handle_info({py_log, Level, Message}, State) ->
    %% No logger domain: OTP's default handler drops events whose domain is not [otp].
    logger:log(Level, "~ts", [string:trim(Message, trailing)], #{erlang_python => python}),
    {noreply, State};
handle_info(_Info, State) ->
    {noreply, State}.

-spec terminate(term(), map()) -> ok.
terminate(_Reason, _State) ->
    ok = py_opts:clear_default_timeout(),
    py_nif:stop(application:get_env(erlang_python, stop_timeout, 5000)).
