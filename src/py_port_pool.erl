%% @doc The worker pool of the processes mode: its shared state and the choice of a
%% worker for each request.
%%
%% Owns (a process, for the table and for clean-up at stop): the pool description in a
%% persistent term (worker count, names, counters), one `atomics' array of counters per
%% worker (requests in flight, WSGI apps running, whether its OS process is up), and the
%% table of running lifespans (replayed by a worker whose OS process is replaced).
%%
%% Least in flight: a request goes to the worker whose OS process is up with the fewest
%% requests in flight, preferring workers that are not running a WSGI app (a WSGI app
%% occupies its process); ties go to the lowest-numbered worker.  The caller counts the
%% request in; the worker counts it out when it ends.
-module(py_port_pool).
-behaviour(gen_server).

-export([start_link/1, pick/1, count/2, workers/0, set_up/2, done/3, reset/1,
         lifespan_add/3, lifespan_take/1, lifespan_id/1, lifespans/0, worker_name/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-define(POOL, {?MODULE, pool}).
-define(LIFESPANS, py_port_lifespans).
%% Counter slots of worker I (1-based): in flight, WSGI running, down (0 up, 1 down).
-define(IN_FLIGHT(I), (3 * (I) - 2)).
-define(WSGI(I), (3 * (I) - 1)).
-define(DOWN(I), (3 * (I))).

-type kind() :: call | wsgi_run | asgi_run | lifespan | wsgi_stream | asgi_stream.
-export_type([kind/0]).

-spec start_link(pos_integer()) -> {ok, pid()} | {error, term()}.
start_link(Workers) ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, Workers, []).

-spec worker_name(pos_integer()) -> atom().
worker_name(I) ->
    list_to_atom("py_port_worker_" ++ integer_to_list(I)).

%% @doc Chooses a worker for a request of `Kind' and counts the request in.
-spec pick(kind()) -> {ok, pos_integer(), atom()} | {error, not_started}.
pick(Kind) ->
    case persistent_term:get(?POOL, undefined) of
        undefined ->
            {error, not_started};
        #{n := N, counters := C, names := Names} ->
            I = best(C, N, 2, 1, score(C, 1)),
            atomics:add(C, ?IN_FLIGHT(I), 1),
            add_wsgi(C, I, Kind, 1),
            {ok, I, element(I, Names)}
    end.

%% @doc Counts in a request of `Kind' sent to worker I without pick/1.
-spec count(pos_integer(), kind()) -> ok.
count(I, Kind) ->
    counters_do(fun(C) -> atomics:add(C, ?IN_FLIGHT(I), 1), add_wsgi(C, I, Kind, 1) end).

score(C, I) ->
    (atomics:get(C, ?DOWN(I)) bsl 40) + (min(atomics:get(C, ?WSGI(I)), 1) bsl 32)
        + atomics:get(C, ?IN_FLIGHT(I)).

best(_C, N, I, Best, _BestScore) when I > N -> Best;
best(C, N, I, Best, BestScore) ->
    case score(C, I) of
        S when S < BestScore -> best(C, N, I + 1, I, S);
        _ -> best(C, N, I + 1, Best, BestScore)
    end.

add_wsgi(C, I, Kind, N) when Kind =:= wsgi_run; Kind =:= wsgi_stream ->
    atomics:add(C, ?WSGI(I), N);
add_wsgi(_C, _I, _Kind, _N) ->
    ok.

%% @doc The registered names of the workers, in order ([] when not running).
-spec workers() -> [atom()].
workers() ->
    case persistent_term:get(?POOL, undefined) of
        undefined -> [];
        #{names := Names} -> tuple_to_list(Names)
    end.

%% @doc Worker I's OS process is up (true) or not.
-spec set_up(pos_integer(), boolean()) -> ok.
set_up(I, Up) ->
    counters_do(fun(C) -> atomics:put(C, ?DOWN(I), case Up of true -> 0; false -> 1 end) end).

%% @doc A request of `Kind' on worker I ended (`Count' of them).
-spec done(pos_integer(), kind(), pos_integer()) -> ok.
done(I, Kind, Count) ->
    counters_do(fun(C) ->
                        atomics:sub(C, ?IN_FLIGHT(I), Count),
                        add_wsgi(C, I, Kind, -Count)
                end).

%% @doc Worker I starts afresh: nothing in flight, its OS process down.
-spec reset(pos_integer()) -> ok.
reset(I) ->
    counters_do(fun(C) ->
                        atomics:put(C, ?IN_FLIGHT(I), 0),
                        atomics:put(C, ?WSGI(I), 0),
                        atomics:put(C, ?DOWN(I), 1)
                end).

counters_do(F) ->
    case persistent_term:get(?POOL, undefined) of
        undefined -> ok;
        #{counters := C} -> _ = F(C), ok
    end.

%% ---- lifespans ----------------------------------------------------------------------

%% @doc Registers a started lifespan (its handle, its Id on the Python side, its app).
-spec lifespan_add(reference(), non_neg_integer(), py_port_wire:names()) -> ok.
lifespan_add(Ref, Id, Names) ->
    true = ets:insert(?LIFESPANS, {Ref, Id, Names}),
    ok.

%% @doc Removes a lifespan; its Id, or `none' if `Ref' is not a running lifespan.
-spec lifespan_take(term()) -> non_neg_integer() | none.
lifespan_take(Ref) ->
    case catch ets:take(?LIFESPANS, Ref) of
        [{Ref, Id, _}] -> Id;
        _ -> none
    end.

%% @doc The Python-side Id of a running lifespan, or `none'.
-spec lifespan_id(term()) -> non_neg_integer() | none.
lifespan_id(Ref) ->
    case catch ets:lookup(?LIFESPANS, Ref) of
        [{Ref, Id, _}] -> Id;
        _ -> none
    end.

%% @doc The running lifespans, in start order: a new worker process replays them.
-spec lifespans() -> [{non_neg_integer(), py_port_wire:names()}].
lifespans() ->
    case catch ets:tab2list(?LIFESPANS) of
        L when is_list(L) -> lists:sort([{Id, Names} || {_, Id, Names} <- L]);
        _ -> []
    end.

%% ---- gen_server ---------------------------------------------------------------------

-spec init(pos_integer()) -> {ok, #{}}.
init(N) ->
    process_flag(trap_exit, true),
    _ = ets:new(?LIFESPANS, [named_table, public, set, {read_concurrency, true}]),
    C = atomics:new(3 * N, [{signed, true}]),
    [atomics:put(C, ?DOWN(I), 1) || I <- lists:seq(1, N)],
    Names = list_to_tuple([worker_name(I) || I <- lists:seq(1, N)]),
    persistent_term:put(?POOL, #{n => N, counters => C, names => Names}),
    ok = py_opts:load_default_timeout(),
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
    _ = persistent_term:erase(?POOL),
    ok = py_opts:clear_default_timeout().
