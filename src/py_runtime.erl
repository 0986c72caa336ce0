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

%% @doc The configuration handed to the NIF, from the application environment:
%% `workers', `python_path', `venv' (default: $VIRTUAL_ENV).  sys.path gets the python/
%% package first, then the current directory, then `python_path'.
-spec config() -> #{workers := pos_integer(), paths := [binary()], venv := binary() | undefined}.
config() ->
    Workers = application:get_env(erlang_python, workers, 4),
    Extra = application:get_env(erlang_python, python_path, []),
    {ok, Cwd} = file:get_cwd(),
    Paths = [python_dir(), Cwd | Extra],
    #{workers => Workers,
      paths => [unicode:characters_to_binary(P) || P <- Paths],
      venv => venv()}.

python_dir() ->
    filename:absname(filename:join(py_nif:priv_dir(), "python")).

venv() ->
    case application:get_env(erlang_python, venv, undefined) of
        undefined ->
            case os:getenv("VIRTUAL_ENV") of
                false -> undefined;
                "" -> undefined;
                Dir -> unicode:characters_to_binary(Dir)
            end;
        Dir -> unicode:characters_to_binary(Dir)
    end.

-spec init([]) -> {ok, #{}} | {stop, term()}.
init([]) ->
    process_flag(trap_exit, true),
    case py_nif:start(config()) of
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
