%% @doc Opens the processes mode to callers once every worker has started, and closes it
%% first at stop: the last child of py_port_sup, so it starts after the workers and
%% terminates before them.  Closing routes new calls back to the (stopped) NIF, which
%% answers `not_started', then drains every worker at once, within the application's
%% `stop_timeout'.
-module(py_port_gate).
-behaviour(gen_server).

-export([start_link/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

-spec init([]) -> {ok, #{}}.
init([]) ->
    process_flag(trap_exit, true),
    ok = py_mode:publish(#{configured => processes, fallback => undefined}),
    ok = py_mode:set_backend(port),
    {ok, #{}}.

-spec handle_call(term(), gen_server:from(), map()) -> {reply, {error, unknown_call}, map()}.
handle_call(_Request, _From, State) ->
    {reply, {error, unknown_call}, State}.

-spec handle_cast(term(), map()) -> {noreply, map()}.
handle_cast(_Msg, State) ->
    {noreply, State}.

-spec handle_info(term(), map()) -> {noreply, map()}.
handle_info(_Info, State) ->
    {noreply, State}.

-spec terminate(term(), map()) -> ok.
terminate(_Reason, _State) ->
    ok = py_mode:set_backend(nif),
    Timeout = application:get_env(erlang_python, stop_timeout, 5000),
    Drains = [{Name, gen_server:send_request(Name, {drain, Timeout})}
              || Name <- py_port_pool:workers(), whereis(Name) =/= undefined],
    Margin = case Timeout of
                 infinity -> infinity;
                 _ -> Timeout + 2000
             end,
    [_ = gen_server:wait_response(Req, Margin) || {_, Req} <- Drains],
    ok.
