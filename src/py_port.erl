%% @doc The processes mode behind `py', `py_wsgi' and `py_asgi': the same functions,
%% arguments, messages and error shapes as the NIF modes, served by Python OS processes
%% behind Erlang ports (py_port_sup).  The API modules call these when
%% `py_mode:backend()' is `port'; docs/processes.md describes the mode.
%%
%% Arguments are checked here, before anything is sent, by the NIF's own rules
%% (py_nif:check_scope/1, check_environ/2), so bad input never reaches Python.  A call
%% waits in the caller with its timeout; one that gives up cancels its request.  Beyond
%% the NIF modes' errors, a request whose worker process died gets
%% `{error, {worker_exit, Status}}' (`Status' the exit status the port reported, 128 + N
%% for signal N; `killed' at a stop that could not wait for it).
-module(py_port).

-export([call/5, call_each/5, wsgi_run/5, asgi_run/6, build_scope/1, asgi_start/6,
         wsgi_start/6, send_body/3, ack/2, disconnect/1, ws_receive/3, ws_disconnect/3,
         lifespan_startup/4, lifespan_shutdown/2, info/0]).

%% A stream: its worker, its id, and what it is (an ASGI HTTP stream, an ASGI websocket,
%% a WSGI stream), which decides the follow-ups it takes, as the NIF's stream resources do.
-type stream() :: {py_port_stream, pid(), py_port_wire:id(), asgi | websocket | wsgi}.
%% A scope checked and encoded once (build_scope/1), with its kind.
-type scope_ref() :: {py_port_scope, http | websocket, binary()}.
-export_type([stream/0, scope_ref/0]).

%% ---- py:call --------------------------------------------------------------------------

-spec call(term(), term(), term(), term(), timeout()) -> {ok, term()} | {error, term()}.
call(Module, Function, Args, Kwargs, Timeout) ->
    case check_call(Module, Function, Args, Kwargs) of
        ok ->
            request(call, Timeout,
                    fun(Id) -> py_port_wire:call(Id, Timeout, Module, Function, Args, Kwargs) end);
        {error, _} = Error ->
            Error
    end.

%% @doc The call once on every worker process (each has its own interpreter), at once:
%% `{ok, Replies}', one `{ok, Term} | {error, Reason}' per worker in worker order (what
%% py_nif:call_each/6 answers in the NIF modes), or `{error, Reason}' for bad arguments.
-spec call_each(term(), term(), term(), term(), timeout()) ->
          {ok, [{ok, term()} | {error, term()}]} | {error, term()}.
call_each(Module, Function, Args, Kwargs, Timeout) ->
    case check_call(Module, Function, Args, Kwargs) of
        ok ->
            {ok, on_every_worker(call, Timeout,
                                 fun(Id) ->
                                         py_port_wire:call(Id, Timeout, Module, Function, Args,
                                                           Kwargs)
                                 end)};
        {error, _} = Error ->
            Error
    end.

%% ---- WSGI -----------------------------------------------------------------------------

-spec wsgi_run(term(), term(), term(), term(), timeout()) -> {ok, term()} | {error, term()}.
wsgi_run(Module, Callable, Runner, Environ, Timeout) ->
    Names = {Module, Callable, Runner},
    case py_nif:check_names(Names, run_wsgi) of
        ok ->
            case py_nif:check_environ(Environ, true) of
                ok ->
                    Input = maps:get(<<"wsgi.input">>, Environ),
                    request(wsgi_run, Timeout,
                            fun(Id) -> py_port_wire:wsgi_run(Id, Timeout, Names, Environ, Input) end);
                {error, _} = Error -> Error
            end;
        {error, _} = Error -> Error
    end.

-spec wsgi_start(term(), term(), term(), term(), term(), term()) ->
          {ok, stream()} | {error, term()}.
wsgi_start(Module, Callable, Runner, Environ, Body, More) ->
    Names = {Module, Callable, Runner},
    Checks = [fun() -> check_stream(Names, Body, More) end,
              fun() -> py_nif:check_names(Names, stream_wsgi) end,
              fun() -> py_nif:check_environ(Environ, false) end],
    case lists:foldl(fun(Check, ok) -> Check(); (_, Error) -> Error end, ok, Checks) of
        ok -> stream(wsgi_stream, wsgi,
                     fun(Id) -> py_port_wire:wsgi_start(Id, Names, Environ, Body, More) end);
        {error, _} = Error -> Error
    end.

%% ---- ASGI -----------------------------------------------------------------------------

-spec asgi_run(term(), term(), term(), term(), term(), timeout()) ->
          {ok, term()} | {error, term()}.
asgi_run(Module, Callable, Runner, Scope, Body, Timeout) ->
    Names = {Module, Callable, Runner},
    case py_nif:check_names(Names, none) of
        ok when not is_binary(Body) -> {error, {badarg, {body, Body}}};
        ok ->
            case wire_scope(Scope) of
                {ok, http, Wire} ->
                    request(asgi_run, Timeout,
                            fun(Id) -> py_port_wire:asgi_run(Id, Timeout, Names, Wire, Body) end);
                {ok, websocket, _} -> {error, {bad_scope, type}};   %% a websocket needs a stream
                {error, _} = Error -> Error
            end;
        {error, _} = Error -> Error
    end.

%% @doc py_asgi:build_scope/1: the scope checked once and kept in its wire form.
-spec build_scope(term()) -> {ok, scope_ref()} | {error, {bad_scope, term()}}.
build_scope(Scope) ->
    case wire_scope(Scope) of
        {ok, Kind, Wire} -> {ok, {py_port_scope, Kind, Wire}};
        {error, _} = Error -> Error
    end.

-spec asgi_start(term(), term(), term(), term(), term(), term()) ->
          {ok, stream()} | {error, term()}.
asgi_start(Module, Callable, Runner, Scope, Body, More) ->
    Names = {Module, Callable, Runner},
    case check_stream(Names, Body, More) of
        ok ->
            case wire_scope(Scope) of
                {ok, Kind, Wire} ->
                    stream(asgi_stream, case Kind of http -> asgi; websocket -> websocket end,
                           fun(Id) -> py_port_wire:asgi_start(Id, Names, Wire, Body, More) end);
                {error, _} = Error -> Error
            end;
        {error, _} = Error -> Error
    end.

wire_scope({py_port_scope, Kind, Wire}) ->
    {ok, Kind, Wire};
wire_scope(Scope) ->
    Checked = case Scope of
                  #{state := State} when not is_map(State) ->
                      case py_port_pool:lifespan_id(State) of
                          none -> Scope;
                          _ -> Scope#{state := #{}}
                      end;
                  _ -> Scope
              end,
    case py_nif:check_scope(Checked) of
        {ok, Kind} -> {ok, Kind, py_port_wire:scope(Scope, fun py_port_pool:lifespan_id/1)};
        {error, _} = Error -> Error
    end.

%% ---- streams --------------------------------------------------------------------------

%% An HTTP stream's request body (not a websocket's: badarg, as the NIF answers).
-spec send_body(stream(), binary(), boolean()) -> ok.
send_body({py_port_stream, Worker, Id, Kind}, Chunk, More)
  when Kind =/= websocket, is_binary(Chunk), is_boolean(More) ->
    follow(Worker, Id, py_port_wire:feed(Id, Chunk, More));
send_body(_Stream, _Chunk, _More) ->
    erlang:error(badarg).

-spec ack(stream(), non_neg_integer()) -> ok.
ack({py_port_stream, Worker, Id, _}, Bytes) when is_integer(Bytes), Bytes >= 0, Bytes < 1 bsl 64 ->
    follow(Worker, Id, py_port_wire:ack(Id, Bytes));
ack(_Stream, _Bytes) ->
    erlang:error(badarg).

-spec disconnect(stream()) -> ok.
disconnect({py_port_stream, Worker, Id, _}) ->
    follow(Worker, Id, py_port_wire:disconnect(Id));
disconnect(_Stream) ->
    erlang:error(badarg).

%% @doc py_asgi:ws_receive/2: a message from the client of a websocket stream.
-spec ws_receive(stream(), text | binary, binary()) -> ok.
ws_receive({py_port_stream, Worker, Id, websocket}, Kind, Data)
  when (Kind =:= text orelse Kind =:= binary), is_binary(Data) ->
    follow(Worker, Id, py_port_wire:ws_receive(Id, Kind, Data));
ws_receive(_Stream, _Kind, _Data) ->
    erlang:error(badarg).

%% @doc py_asgi:ws_disconnect/3: the websocket has ended with Code and Reason.
-spec ws_disconnect(stream(), integer(), binary()) -> ok.
ws_disconnect({py_port_stream, Worker, Id, websocket}, Code, Reason)
  when is_integer(Code), Code >= -(1 bsl 31), Code < 1 bsl 31, is_binary(Reason) ->
    follow(Worker, Id, py_port_wire:ws_disconnect(Id, Code, Reason));
ws_disconnect(_Stream, _Code, _Reason) ->
    erlang:error(badarg).

follow(Worker, Id, Frame) when is_pid(Worker) ->
    Worker ! {py_follow, Id, Frame},
    ok;
follow(_Worker, _Id, _Frame) ->
    erlang:error(badarg).

stream(Kind, StreamKind, Frame) ->
    case py_port_pool:pick(Kind) of
        {ok, _I, Name} ->
            case whereis(Name) of
                undefined -> {error, not_started};
                Worker ->
                    Id = erlang:unique_integer([positive]),
                    Stream = {py_port_stream, Worker, Id, StreamKind},
                    Worker ! {py_req, Id, Kind, {self(), Stream}, infinity, Frame(Id)},
                    {ok, Stream}
            end;
        {error, _} = Error -> Error
    end.

%% ---- lifespan -------------------------------------------------------------------------

%% @doc Runs the lifespan startup on every worker process (each has its own state, as
%% with `uvicorn --workers N'); a process started later replays it.  The first failure
%% (in worker order) is the result, after the workers that started are shut down again.
-spec lifespan_startup(term(), term(), term(), timeout()) ->
          {ok, reference(), reference()} | {error, term()}.
lifespan_startup(Module, Callable, Runner, Timeout) ->
    Names = {Module, Callable, Runner},
    case py_nif:check_names(Names, none) of
        ok ->
            Lid = erlang:unique_integer([positive]),
            Results = on_every_worker(lifespan, Timeout, fun(Id) ->
                                                       py_port_wire:lifespan_startup(Id, Timeout, Lid, Names)
                                               end),
            case [E || {error, _} = E <- Results] of
                [] ->
                    Ref = make_ref(),
                    ok = py_port_pool:lifespan_add(Ref, Lid, Names),
                    {ok, Ref, Ref};
                [Error | _] ->
                    _ = on_every_worker(lifespan, Timeout, fun(Id) -> py_port_wire:lifespan_shutdown(Id, Timeout, Lid) end),
                    Error
            end;
        {error, _} = Error -> Error
    end.

-spec lifespan_shutdown(term(), timeout()) -> ok | {error, term()}.
lifespan_shutdown(Lifespan, Timeout) ->
    case py_port_pool:lifespan_take(Lifespan) of
        none ->
            {error, {badarg, Lifespan}};
        Lid ->
            Results = on_every_worker(lifespan, Timeout, fun(Id) -> py_port_wire:lifespan_shutdown(Id, Timeout, Lid) end),
            case [E || {error, _} = E <- Results] of
                [] -> ok;
                [Error | _] -> Error
            end
    end.

%% The same request to every worker at once; the replies in worker order.
on_every_worker(Kind, Timeout, Frame) ->
    Pending = [begin
                   ok = py_port_pool:count(I, Kind),
                   send_request(py_port_pool:worker_name(I), Kind, Timeout, Frame)
               end || I <- lists:seq(1, length(py_port_pool:workers()))],
    Deadline = case Timeout of
                   infinity -> infinity;
                   _ -> erlang:monotonic_time(millisecond) + Timeout
               end,
    [await(P, remaining(Deadline)) || P <- Pending].

remaining(infinity) -> infinity;
remaining(Deadline) -> max(0, Deadline - erlang:monotonic_time(millisecond)).

%% ---- requests -------------------------------------------------------------------------

%% One request to the least busy worker; the reply, {error, timeout} after Timeout ms
%% (the request is then cancelled), or the worker's failure.
request(Kind, Timeout, Frame) ->
    case py_port_pool:pick(Kind) of
        {ok, _I, Name} -> await(send_request(Name, Kind, Timeout, Frame), Timeout);
        {error, _} = Error -> Error
    end.

send_request(Name, Kind, Timeout, Frame) ->
    case whereis(Name) of
        undefined ->
            {error, not_started};
        Worker ->
            Id = erlang:unique_integer([positive]),
            Alias = erlang:monitor(process, Worker, [{alias, reply_demonitor}]),
            Worker ! {py_req, Id, Kind, Alias, Timeout, Frame(Id)},
            {Worker, Id, Alias}
    end.

await({error, _} = Error, _Timeout) ->
    Error;
await({Worker, Id, Alias}, Timeout) ->
    receive
        {Alias, Reply} -> Reply;
        {'DOWN', Alias, process, _, Reason} -> {error, down(Reason)}
    after Timeout ->
        erlang:demonitor(Alias, [flush]),
        Worker ! {py_cancel, Id},
        %% A reply that arrived meanwhile wins; a later one is dropped with the alias.
        receive {Alias, Reply} -> Reply
        after 0 -> {error, timeout}
        end
    end.

down(noproc) -> not_started;
down(shutdown) -> not_started;
down({shutdown, _}) -> not_started;
down(Reason) -> {worker_exit, {crashed, Reason}}.

%% ---- checks ---------------------------------------------------------------------------

check_call(Module, _Function, _Args, _Kwargs) when not is_atom(Module), not is_binary(Module) ->
    {error, {badarg, {module, Module}}};
check_call(_Module, Function, _Args, _Kwargs) when not is_atom(Function), not is_binary(Function) ->
    {error, {badarg, {function, Function}}};
check_call(_Module, _Function, Args, _Kwargs) when not is_list(Args) ->
    {error, {badarg, {args, Args}}};
check_call(_Module, _Function, _Args, Kwargs) when not is_map(Kwargs) ->
    {error, {badarg, {kwargs, Kwargs}}};
check_call(_Module, _Function, _Args, _Kwargs) ->
    ok.

check_stream(Names, Body, More) ->
    case py_nif:check_names(Names, none) of
        ok when not is_binary(Body) -> {error, {badarg, {body, Body}}};
        ok when not is_boolean(More) -> {error, {badarg, {more_body, More}}};
        Result -> Result
    end.

%% ---- info -----------------------------------------------------------------------------

%% @doc py:info/0 in the processes mode.
-spec info() -> #{atom() => term()}.
info() ->
    Workers = [{Name, catch py_port_worker:info(Name)} || Name <- py_port_pool:workers()],
    Infos = [I || {_, I} <- Workers, is_map(I)],
    Sum = fun(K) -> lists:sum([maps:get(K, I) || I <- Infos]) end,
    First = case Infos of
                [I1 | _] -> I1;
                [] -> #{}
            end,
    #{mode => processes,
      workers => length(Workers),
      running => Infos =/= [],
      python_version => maps:get(python_version, First, undefined),
      executable => maps:get(executable, First, undefined),
      os_pids => [maps:get(os_pid, I) || I <- Infos],
      queued => Sum(queued),
      in_flight => Sum(in_flight),
      restarts => Sum(restarts),
      recycles => Sum(recycles)}.
