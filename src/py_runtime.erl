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
-export_type([event_loop/0]).

-type event_loop() :: asyncio | uvloop | auto.
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc The configuration handed to the NIF, from the application environment, with every
%% path made absolute when the application starts:
%% `workers'; `spare_workers' (default 4: how many extra workers may stand in for workers
%% stuck in calls their callers gave up, see docs/architecture.md; lowered so that
%% `workers' + `spare_workers' is at most 256); `paths', which `sys.path' gets in front, in order: the `python/' package
%% (`priv/python'), the current directory, then the `python_path' entries; `venv' (see
%% {@link py_python:venv/0}); `loop', the workers' event loop, from `event_loop':
%% `asyncio' (the default), `uvloop' (the start fails where the main interpreter cannot
%% import it; a sub-interpreter with its own GIL refuses it, and its worker runs
%% asyncio's, with a warning) or `auto' (uvloop's where it loads, asyncio's elsewhere);
%% the processes mode's workers always run asyncio's.
%%
%% A `python_path' entry is a directory: an absolute path; a relative path, taken from the
%% current directory at the application's start (in a release made by relx: the release's
%% root; note that Common Test changes the current directory, see `erlang_python_ct'); or
%% `{priv, App}' / `{priv, App, SubDir}', the priv directory of application `App' (the
%% form that works wherever the code is installed).
-spec config() -> #{workers := pos_integer(), spare_workers := non_neg_integer(),
                    paths := [binary()], venv := binary() | undefined,
                    loop := event_loop()}.
config() ->
    Workers = application:get_env(erlang_python, workers, 4),
    %% The NIF runs at most 256 workers and spares together.
    Spares = min(application:get_env(erlang_python, spare_workers, 4), max(0, 256 - Workers)),
    Extra = [python_path_entry(E) || E <- application:get_env(erlang_python, python_path, [])],
    {ok, Cwd} = file:get_cwd(),
    Paths = [py_python:package_dir(), Cwd | Extra],
    #{workers => Workers,
      spare_workers => Spares,
      paths => [unicode:characters_to_binary(P) || P <- Paths],
      venv => case py_python:venv() of
                  undefined -> undefined;
                  Dir -> unicode:characters_to_binary(Dir)
              end,
      loop => event_loop()}.

%% A value that is not one of the three raises `{badarg, {event_loop, Value}}' (the
%% application's start fails with it).
event_loop() ->
    case application:get_env(erlang_python, event_loop, asyncio) of
        Loop when Loop =:= asyncio; Loop =:= uvloop; Loop =:= auto -> Loop;
        Other -> error({badarg, {event_loop, Other}})
    end.

%% ", event loop uvloop" (or asyncio) for the notice, or the count of each when the
%% workers differ (`auto' with uvloop refused by some interpreters).
loops_text(#{loops := #{asyncio := 0, uvloop := U}}) when U > 0 -> ", event loop uvloop";
loops_text(#{loops := #{asyncio := A, uvloop := 0}}) when A > 0 -> ", event loop asyncio";
loops_text(#{loops := #{asyncio := A, uvloop := U}}) ->
    io_lib:format(", event loops: ~b uvloop, ~b asyncio", [U, A]).

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

%% @doc After a call failed with an ImportError: `retry' when `auto' mode has replaced
%% (now, or before) its sub-interpreter workers by `gil' ones because a module refused
%% sub-interpreters, else `no'.  See py_mode:with_fallback/1.
-spec fallback() -> retry | no.
fallback() ->
    try gen_server:call(?MODULE, fallback, infinity)
    catch exit:_ -> no
    end.

-type state() :: #{configured := py_mode:configured(), mode := py_mode:mode(),
                   config := py_nif:config(),
                   fallback := undefined | #{module := binary(), message := binary()},
                   refusal_logged := boolean()}.

-spec init([]) -> {ok, state()} | {stop, term()}.
init([]) ->
    process_flag(trap_exit, true),
    try {py_mode:configured(), config()} of
        {Configured, Config} ->
            case py_mode:resolve(Configured, py_nif:info()) of
                {ok, Mode, Why} -> start(Configured, Config#{mode => Mode}, Why);
                {error, Reason} -> {stop, Reason}
            end
    catch
        error:{badarg, _} = Bad -> {stop, Bad}
    end.

start(Configured, #{mode := Mode} = Config, Why) ->
    case py_nif:start(Config) of
        {ok, Warnings} ->
            ok = py_opts:load_default_timeout(),
            [logger:warning("erlang_python: ~ts", [W], #{erlang_python => runtime})
             || W <- Warnings],
            Info = py_nif:info(),
            case {maps:get(loop, Config), maps:get(loops, Info)} of
                {uvloop, #{asyncio := N}} when N > 0 ->
                    logger:warning("erlang_python: event_loop uvloop: ~b workers run "
                                   "asyncio's loop (uvloop does not load in a "
                                   "sub-interpreter with its own GIL; mode gil runs it)",
                                   [N], #{erlang_python => runtime});
                _ -> ok
            end,
            logger:notice("erlang_python: mode ~s (~ts), ~b workers~ts",
                          [Mode, Why, maps:get(workers, Info), loops_text(Info)],
                          #{erlang_python => runtime}),
            State = #{configured => Configured, mode => Mode, config => Config,
                      fallback => undefined, refusal_logged => false},
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
refused(Module, Message, #{configured := auto, mode := subinterpreters,
                           config := Config0} = State) ->
    Config = Config0#{mode := gil},
    case py_nif:switch_mode(Config, application:get_env(erlang_python, stop_timeout, 5000)) of
        ok ->
            logger:warning("erlang_python: auto mode: ~ts does not support sub-interpreters "
                           "(~ts); serving in gil mode", [Module, Message],
                           #{erlang_python => runtime}),
            State1 = State#{mode := gil, config := Config,
                            fallback := #{module => Module, message => Message}},
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
