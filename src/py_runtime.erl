%% @doc Owns the Python runtime's lifecycle: resolves the execution mode (py_mode),
%% starts the NIF's worker threads with the application's configuration and stops them
%% when the application stops (the interpreters themselves live as long as the VM).  In
%% `auto' mode it replaces sub-interpreter workers by `gil' ones when a module refuses
%% sub-interpreters.  Also forwards Python-side log records (`wsgi.errors',
%% `_erlang.log') to the Erlang logger, and runs the Erlang timers behind
%% `erlang_asyncio.sleep' (`_erlang.schedule_timer').
-module(py_runtime).
-behaviour(gen_server).

-export([start_link/0, config/0, fallback/0]).
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

%% @doc After a call failed with an ImportError: `retry' when `auto' mode has replaced
%% (now, or before) its sub-interpreter workers by `gil' ones because a module refused
%% sub-interpreters, else `no'.  See py_mode:with_fallback/1.
-spec fallback() -> retry | no.
fallback() ->
    try gen_server:call(?MODULE, fallback, infinity)
    catch exit:_ -> no
    end.

-type state() :: #{configured := py_mode:configured(), mode := py_mode:mode(),
                   fallback := undefined | #{module := binary(), message := binary()},
                   refusal_logged := boolean()}.

-spec init([]) -> {ok, state()} | {stop, term()}.
init([]) ->
    process_flag(trap_exit, true),
    try py_mode:configured() of
        Configured ->
            case py_mode:resolve(Configured, py_nif:info()) of
                {ok, Mode, Why} -> start(Configured, Mode, Why);
                {error, Reason} -> {stop, Reason}
            end
    catch
        error:{badarg, _} = Bad -> {stop, Bad}
    end.

start(Configured, Mode, Why) ->
    case py_nif:start((config())#{mode => Mode}) of
        {ok, Warnings} ->
            ok = py_opts:load_default_timeout(),
            [logger:warning("erlang_python: ~ts", [W], #{erlang_python => runtime})
             || W <- Warnings],
            logger:notice("erlang_python: mode ~s (~ts), ~b workers",
                          [Mode, Why, maps:get(workers, py_nif:info())],
                          #{erlang_python => runtime}),
            State = #{configured => Configured, mode => Mode, fallback => undefined,
                      refusal_logged => false},
            publish(State),
            {ok, State};
        {error, Reason} ->
            {stop, Reason}
    end.

-spec handle_call(term(), gen_server:from(), state()) ->
          {reply, retry | no | {error, unknown_call}, state()} | {stop, term(), no, state()}.
handle_call(fallback, _From, #{fallback := #{}} = State) ->
    {reply, retry, State};
handle_call(fallback, _From, State) ->
    case maps:get(refused, py_nif:info()) of
        {Module, Message} ->
            case refused(Module, Message, State) of
                {ok, State1} -> {reply, retry, State1};
                {no, State1} -> {reply, no, State1};
                {stop, Reason, State1} -> {stop, Reason, no, State1}
            end;
        undefined ->
            {reply, no, State}
    end;
handle_call(_Request, _From, State) ->
    {reply, {error, unknown_call}, State}.

%% A module refused sub-interpreters: auto falls back to gil; an explicit subinterpreters
%% mode cannot run it, which is logged once (the call gets the ImportError).
refused(Module, Message, #{configured := auto, mode := subinterpreters} = State) ->
    Config = (config())#{mode => gil},
    case py_nif:switch_mode(Config, application:get_env(erlang_python, stop_timeout, 5000)) of
        ok ->
            logger:warning("erlang_python: auto mode: ~ts does not support sub-interpreters "
                           "(~ts); serving in gil mode", [Module, Message],
                           #{erlang_python => runtime}),
            State1 = State#{mode := gil, fallback := #{module => Module, message => Message}},
            publish(State1),
            {ok, State1};
        {error, Reason} ->
            {stop, {fallback_failed, Reason}, State}
    end;
refused(Module, Message, #{mode := subinterpreters, refusal_logged := false} = State) ->
    logger:error("erlang_python: ~ts does not support sub-interpreters (~ts): mode "
                 "subinterpreters cannot run it; use mode gil, or auto to fall back to gil",
                 [Module, Message], #{erlang_python => runtime}),
    {no, State#{refusal_logged := true}};
refused(_Module, _Message, State) ->
    {no, State}.

publish(#{configured := Configured, fallback := Fallback}) ->
    py_mode:publish(#{configured => Configured, fallback => Fallback}).

-spec handle_cast(term(), state()) -> {noreply, state()}.
handle_cast(_Msg, State) ->
    {noreply, State}.

-spec handle_info(term(), state()) -> {noreply, state()} | {stop, term(), state()}.
handle_info({py_refused, {Module, Message}}, State) ->
    case refused(Module, Message, State) of
        {stop, Reason, State1} -> {stop, Reason, State1};
        {_, State1} -> {noreply, State1}
    end;
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

-spec terminate(term(), state()) -> ok.
terminate(_Reason, _State) ->
    ok = py_opts:clear_default_timeout(),
    py_nif:stop(application:get_env(erlang_python, stop_timeout, 5000)).
