%% @doc One worker of the processes mode: a Python OS process behind an Erlang port, and
%% everything in flight on it.
%%
%% The gen_server outlives its OS processes.  When one exits (a crash, os._exit, the OOM
%% killer, the hang watchdog, a kill for a protocol error), exactly the requests it had
%% fail with `{error, {worker_exit, Status}}' (streams get that as their final event),
%% and a new process is started: at once after a first failure, then with a doubling
%% delay (100 ms to 5 s) while new processes keep failing within 10 s.  Requests that
%% arrive while no process serves wait here (they count in `queued' of py:info/0) and
%% keep their timeouts.
%%
%% A process is replaced without losing a request when it has served `max_requests'
%% (plus a random `max_requests_jitter') or its resident memory passes `max_memory'
%% bytes: the new process starts (and replays the running lifespans) while the old one
%% serves, then the old one is told to finish what it has and exit.
%%
%% Timeouts are the caller's (py_port); a caller that gives up sends `{py_cancel, Id}':
%% the request is cancelled in Python (a task gets CancelledError).  A synchronous call
%% past its timeout is killed by the process's own watchdog; a request that is still not
%% answered `kill_grace' ms after its cancel while no synchronous call on that process is
%% within its own timeout means the process is stuck (an async app blocking its loop): it
%% is killed here.
%%
%% Stopping (drain/2, from py_port_gate): requests still waiting fail with `not_started',
%% each process is told to finish its requests and exit, and whatever runs past the
%% application's `stop_timeout' is killed.
-module(py_port_worker).
-behaviour(gen_server).

-export([start_link/2, info/1]).
-export_type([setup/0]).

%% What every process of the pool starts with (py_port_sup): the interpreter, and the
%% `sys.path' entries and venv of py_runtime:config/0 (the first path is the python/
%% package, priv/python).
-type setup() :: #{python := file:filename(), paths := [binary()], venv := binary() | undefined}.
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-define(STABLE_MS, 10000).
-define(BACKOFF_MIN_MS, 100).
-define(BACKOFF_MAX_MS, 5000).
-define(START_TIMEOUT_MS, 60000).
-define(MEMORY_CHECK_MS, 1000).
-define(PAGE_SIZE, 4096).
%% Run with -B: nothing is written into priv/python (a release copies it as it is) while
%% hornbeam_port loads; its configure() then keeps priv/python source-only and lets the
%% app's own modules be cached as usual.
-define(CODE, "import sys; sys.path.insert(0, sys.argv[1]); import hornbeam_port; hornbeam_port.main()").

-record(req, {
    kind :: py_port_pool:kind() | replay,
    reply :: reference() | {pid(), term()} | {replay, non_neg_integer()},
    port :: port() | undefined,          %% undefined: waiting for a process
    deadline = infinity :: integer() | infinity,
    mon :: reference() | undefined       %% a stream's owner
}).

-record(proc, {
    os_pid :: non_neg_integer() | undefined,
    started :: integer(),
    replays = 0 :: non_neg_integer(),    %% lifespans being replayed before it serves
    %% Its exit status as far as known before the port reports it (a port that closes
    %% with a write error, the process gone, reports none): what the process said it is
    %% dying of (EXITING), or 137 once killed from here.
    exiting :: non_neg_integer() | undefined
}).

-record(st, {
    index :: pos_integer(),
    python :: file:filename(),
    package :: binary(),                 %% priv/python: hornbeam_port and the runners
    init :: iodata(),                    %% the INIT frame
    current :: port() | undefined,       %% the process that serves
    next :: port() | undefined,          %% a process starting (first, restart, recycle)
    procs = #{} :: #{port() => #proc{}},
    reqs = #{} :: #{py_port_wire:id() => #req{}},
    waiting = [] :: [{py_port_wire:id(), iodata()}],   %% newest first
    owners = #{} :: #{reference() => py_port_wire:id()},
    served = 0 :: non_neg_integer(),
    limit = infinity :: pos_integer() | infinity,
    crashes = 0 :: non_neg_integer(),
    restarts = 0 :: non_neg_integer(),
    recycles = 0 :: non_neg_integer(),
    restart_timer :: reference() | undefined,
    draining = false :: false | {draining, gen_server:from()} | drained,
    ready = #{} :: map()                 %% what the last process reported
}).

-spec start_link(pos_integer(), setup()) -> {ok, pid()} | {error, term()}.
start_link(Index, Setup) ->
    gen_server:start_link({local, py_port_pool:worker_name(Index)}, ?MODULE, {Index, Setup}, []).

%% @doc What py:info/0 reports about this worker.
-spec info(atom()) -> map().
info(Name) ->
    gen_server:call(Name, info).

%% ---- start ----------------------------------------------------------------------------

-spec init({pos_integer(), setup()}) -> {ok, #st{}} | {stop, term()}.
init({Index, #{python := Python, paths := Paths, venv := Venv}}) ->
    process_flag(trap_exit, true),
    ok = py_port_pool:reset(Index),
    Init = py_port_wire:init(#{paths => Paths, venv => Venv,
                               node => atom_to_binary(node(), utf8)}),
    first_start(#st{index = Index, python = Python, package = hd(Paths), init = Init}).

%% The first process starts synchronously, so that a Python that cannot start fails the
%% application's start with the reason.
first_start(St0) ->
    case spawn_process(St0) of
        {ok, St} -> await_ready(St#st.next, St);
        {error, Reason} -> {stop, Reason}
    end.

await_ready(Port, St) ->
    receive
        {Port, {data, Frame}} ->
            case catch py_port_wire:decode(Frame) of
                {ready, _, Head, _} ->
                    St1 = ready(Port, binary_to_term(Head), St),
                    schedule_memory_check(),
                    {ok, St1};
                {log, _, Head, _} ->
                    log_record(Head),
                    await_ready(Port, St);
                _ ->
                    _ = kill(Port, St),
                    {stop, {python_start_failed, {bad_frame, Frame}}}
            end;
        {Port, {exit_status, Status}} ->
            {stop, {python_start_failed, {exit_status, Status, St#st.python}}}
    after ?START_TIMEOUT_MS ->
        _ = kill(Port, St),
        {stop, {python_start_failed, timeout}}
    end.

spawn_process(St = #st{python = Python, package = Package, init = Init}) ->
    Opts = [{args, ["-P", "-B", "-c", ?CODE, Package]}, {packet, 4}, binary, exit_status,
            nouse_stdio, {busy_limits_port, disabled}],
    try open_port({spawn_executable, Python}, Opts) of
        Port ->
            OsPid = case erlang:port_info(Port, os_pid) of
                        {os_pid, P} -> P;
                        undefined -> undefined
                    end,
            true = erlang:port_command(Port, Init),
            erlang:send_after(?START_TIMEOUT_MS, self(), {start_timeout, Port}),
            Proc = #proc{os_pid = OsPid, started = now_ms()},
            {ok, St#st{next = Port, procs = maps:put(Port, Proc, St#st.procs)}}
    catch
        error:Reason -> {error, {python_start_failed, {Reason, Python}}}
    end.

%% The new process answered INIT: replay the running lifespans, then serve.
ready(Port, Info, St = #st{index = I}) ->
    case {I, St#st.ready, maps:get(warning, Info, <<>>)} of
        {1, Old, Warning} when map_size(Old) =:= 0, Warning =/= <<>> ->
            logger:warning("erlang_python: ~ts", [Warning], #{erlang_python => runtime});
        _ -> ok
    end,
    Replays = [{unique_id(), Lid, Names} || {Lid, Names} <- py_port_pool:lifespans()],
    [send(Port, py_port_wire:lifespan_startup(Id, infinity, Lid, Names), St)
     || {Id, Lid, Names} <- Replays],
    Reqs = maps:from_list([{Id, #req{kind = replay, reply = {replay, Lid}, port = Port}}
                           || {Id, Lid, _} <- Replays]),
    Proc = maps:get(Port, St#st.procs),
    St1 = St#st{ready = Info, reqs = maps:merge(St#st.reqs, Reqs),
                procs = maps:put(Port, Proc#proc{replays = length(Replays)}, St#st.procs)},
    maybe_promote(Port, St1).

%% A started process whose replays are done becomes the one that serves; the one it
%% replaces (a recycled process) finishes its requests and exits.
maybe_promote(Port, St = #st{next = Port, procs = Procs, current = Old, index = I}) ->
    case maps:get(Port, Procs) of
        #proc{replays = 0} ->
            _ = Old =/= undefined andalso send(Old, py_port_wire:drain(), St) =:= ok,
            ok = py_port_pool:set_up(I, true),
            St1 = St#st{current = Port, next = undefined, served = 0, limit = limit()},
            flush_waiting(St1);
        _ ->
            St
    end;
maybe_promote(_Port, St) ->
    St.

limit() ->
    case env(max_requests, infinity) of
        infinity -> infinity;
        N when is_integer(N), N > 0 -> N + rand:uniform(env(max_requests_jitter, 0) + 1) - 1
    end.

flush_waiting(St = #st{waiting = []}) ->
    St;
flush_waiting(St = #st{waiting = Waiting, current = Port, reqs = Reqs0}) ->
    Reqs = lists:foldl(fun({Id, _}, Acc) ->
                               case Acc of
                                   #{Id := R = #req{port = undefined}} -> Acc#{Id := R#req{port = Port}};
                                   _ -> Acc
                               end
                       end, Reqs0, Waiting),
    _ = [send(Port, Frame, St) || {_, Frame} <- lists:reverse(Waiting)],
    St#st{waiting = [], reqs = Reqs}.

%% ---- requests -------------------------------------------------------------------------

-spec handle_info(term(), #st{}) -> {noreply, #st{}}.
handle_info({py_req, Id, Kind, Reply, Timeout, Frame}, St) ->
    {noreply, request(Id, Kind, Reply, Timeout, Frame, St)};
handle_info({py_cancel, Id}, St) ->
    {noreply, cancel(Id, St)};
handle_info({py_follow, Id, Frame}, St = #st{reqs = Reqs}) ->
    case Reqs of
        #{Id := Req} -> {noreply, to_request(Id, Req, Frame, St)};
        _ -> {noreply, St}
    end;
handle_info({Port, {data, Frame}}, St) when is_port(Port) ->
    {noreply, frame(Port, Frame, St)};
handle_info({Port, {exit_status, Status}}, St) when is_port(Port) ->
    {noreply, process_exit(Port, Status, St)};
handle_info({'EXIT', Port, Reason}, St = #st{procs = Procs}) when is_port(Port) ->
    %% The port closed without reporting an exit status (a write failed: the process is
    %% gone): what we know of its status, else the port's reason.
    case Procs of
        #{Port := #proc{exiting = undefined}} -> {noreply, process_exit(Port, Reason, St)};
        #{Port := #proc{exiting = Status}} -> {noreply, process_exit(Port, Status, St)};
        _ -> {noreply, St}
    end;
handle_info({'DOWN', Mon, process, _, _}, St = #st{owners = Owners, reqs = Reqs}) ->
    %% A stream's owner died: its client is gone.
    case Owners of
        #{Mon := Id} ->
            St1 = St#st{owners = maps:remove(Mon, Owners)},
            case Reqs of
                #{Id := Req} -> {noreply, to_request(Id, Req, py_port_wire:disconnect(Id), St1)};
                _ -> {noreply, St1}
            end;
        _ -> {noreply, St}
    end;
handle_info({hang_check, Id, Port}, St) ->
    {noreply, hang_check(Id, Port, St)};
handle_info({start_timeout, Port}, St = #st{next = Port}) ->
    logger:error("erlang_python: worker ~b: Python did not start within ~b ms; killed",
                 [St#st.index, ?START_TIMEOUT_MS], #{erlang_python => runtime}),
    {noreply, kill(Port, St)};
handle_info(restart, St) ->
    {noreply, restart(St#st{restart_timer = undefined})};
handle_info(memory_check, St) ->
    schedule_memory_check(),
    {noreply, memory_check(St)};
handle_info(drain_timeout, St = #st{procs = Procs}) ->
    {noreply, lists:foldl(
                fun({Port, P}, Acc) ->
                        logger:warning("erlang_python: worker ~b: requests still running at "
                                       "stop_timeout; OS process ~p killed",
                                       [St#st.index, P#proc.os_pid], #{erlang_python => runtime}),
                        kill(Port, Acc)
                end, St, maps:to_list(Procs))};
handle_info(_Info, St) ->
    {noreply, St}.

request(Id, Kind, Reply, _Timeout, _Frame, St = #st{draining = D, index = I}) when D =/= false ->
    ok = py_port_pool:done(I, Kind, 1),
    deliver_final(Kind, Reply, Id, {error, not_started}),
    St;
request(Id, Kind, Reply, Timeout, Frame, St = #st{current = Port, reqs = Reqs, owners = Owners}) ->
    {Mon, Owners1} = case Reply of
                         {Owner, _Stream} when is_pid(Owner) ->
                             M = erlang:monitor(process, Owner),
                             {M, Owners#{M => Id}};
                         _ -> {undefined, Owners}
                     end,
    Req = #req{kind = Kind, reply = Reply, port = Port, deadline = deadline(Timeout), mon = Mon},
    St1 = St#st{reqs = Reqs#{Id => Req}, owners = Owners1},
    case Port of
        undefined -> St1#st{waiting = [{Id, Frame} | St1#st.waiting]};
        _ -> send(Port, Frame, St1), St1
    end.

%% A follow-up (body chunk, ack, disconnect, cancel) goes where its request went.
to_request(Id, #req{port = undefined}, Frame, St) ->
    St#st{waiting = [{Id, Frame} | St#st.waiting]};
to_request(_Id, #req{port = Port}, Frame, St) ->
    send(Port, Frame, St),
    St.

cancel(Id, St = #st{reqs = Reqs, index = I}) ->
    case Reqs of
        #{Id := #req{port = undefined, kind = Kind}} ->
            ok = py_port_pool:done(I, Kind, 1),
            St#st{reqs = maps:remove(Id, Reqs),
                  waiting = [W || W = {WId, _} <- St#st.waiting, WId =/= Id]};
        #{Id := #req{port = Port}} ->
            send(Port, py_port_wire:cancel(Id), St),
            erlang:send_after(env(kill_grace, 1000), self(), {hang_check, Id, Port}),
            St;
        _ ->
            St
    end.

%% A cancelled request still unanswered: its process is stuck unless a synchronous call
%% on it may still legitimately run (within its own timeout: the process's watchdog
%% handles it past that).
hang_check(Id, Port, St = #st{reqs = Reqs}) ->
    case Reqs of
        #{Id := #req{port = Port}} ->
            Now = now_ms(),
            Busy = [D || #req{port = P, kind = K, deadline = D} <- maps:values(Reqs),
                         P =:= Port, K =:= call orelse K =:= wsgi_run,
                         is_integer(D), D > Now],
            case Busy of
                [] ->
                    logger:error("erlang_python: worker ~b: a request did not end ~b ms after "
                                 "its timeout (a loop blocked by synchronous code?); killing "
                                 "OS process ~p", [St#st.index, env(kill_grace, 1000),
                                                   os_pid(Port, St)],
                                 #{erlang_python => runtime}),
                    kill(Port, St);
                _ ->
                    erlang:send_after(lists:max(Busy) - Now + env(kill_grace, 1000), self(),
                                      {hang_check, Id, Port}),
                    St
            end;
        _ ->
            St
    end.

%% ---- frames from Python ---------------------------------------------------------------

frame(Port, Frame, St) ->
    try py_port_wire:decode(Frame) of
        {Event, Id, Head, Payload} -> event(Event, Id, Head, Payload, Port, St)
    catch
        Class:Reason ->
            logger:error("erlang_python: worker ~b: bad frame from OS process ~p (~p:~p): "
                         "~P; killing it", [St#st.index, os_pid(Port, St), Class, Reason, Frame, 20],
                         #{erlang_python => runtime}),
            kill(Port, St)
    end.

event(ready, _Id, Head, _Payload, Port, St = #st{next = Port}) ->
    ready(Port, binary_to_term(Head), St);
event(log, _Id, Head, _Payload, _Port, St) ->
    log_record(Head),
    St;
event(exiting, _Id, <<Status:32>>, _Payload, Port, St) ->
    exiting(Port, Status, St);
event(Event, Id, Head, Payload, _Port, St = #st{reqs = Reqs}) ->
    case Reqs of
        #{Id := Req} -> request_event(Event, Id, Req, Head, Payload, St);
        _ -> St
    end.

request_event(Event, Id, Req = #req{kind = replay, reply = {replay, Lid}, port = Port}, Head, _, St)
  when Event =:= reply; Event =:= cancelled ->
    case Event =:= reply andalso binary_to_term(Head) of
        ok -> ok;
        Error ->
            logger:error("erlang_python: worker ~b: replaying lifespan ~b on a new process "
                         "failed: ~0p", [St#st.index, Lid, Error], #{erlang_python => runtime})
    end,
    St1 = forget(Id, Req, St),
    Proc = #proc{replays = N} = maps:get(Port, St1#st.procs),
    maybe_promote(Port, St1#st{procs = maps:put(Port, Proc#proc{replays = N - 1}, St1#st.procs)});
request_event(Event, Id, Req = #req{reply = {Owner, Stream}, kind = Kind}, Head, Payload, St) ->
    Tag = case Kind of asgi_stream -> asgi; wsgi_stream -> wsgi end,
    case stream_event(Event, Tag, Head, Payload) of
        {final, Ev} ->
            _ = Ev =/= none andalso (Owner ! {Tag, Stream, Ev}) =/= ok,
            finished(Id, Req, St);
        Ev ->
            Owner ! {Tag, Stream, Ev},
            St
    end;
request_event(Event, Id, Req = #req{reply = Alias}, Head, Payload, St) ->
    case Event of
        reply -> Alias ! {Alias, binary_to_term(Head)};
        response ->
            {Status, Headers} = binary_to_term(Head),
            Alias ! {Alias, {ok, {Status, Headers, Payload}}};
        cancelled -> ok
    end,
    finished(Id, Req, St).

stream_event(start, _Tag, Head, _) ->
    {Status, Headers} = binary_to_term(Head),
    {start, Status, Headers};
stream_event(body, asgi, <<More>>, Payload) -> {body, Payload, More =:= 1};
stream_event(body, wsgi, _, Payload) -> {body, Payload};
stream_event(trailers, _Tag, Head, _) ->
    {Headers, More} = binary_to_term(Head),
    {trailers, Headers, More};
stream_event(need_body, _Tag, _, _) -> need_body;
stream_event(ws_event, asgi, Head, _) -> binary_to_term(Head);
stream_event(ws_send, asgi, <<0>>, Payload) -> {send, text, Payload};
stream_event(ws_send, asgi, <<1>>, Payload) -> {send, binary, Payload};
stream_event(done, _Tag, _, _) -> {final, done};
stream_event(reply, _Tag, Head, _) ->
    {error, _} = Error = binary_to_term(Head),
    {final, Error};
stream_event(cancelled, _Tag, _, _) -> {final, none}.

log_record(Head) ->
    {Level, Message} = binary_to_term(Head),
    %% No logger domain: OTP's default handler drops events whose domain is not [otp].
    logger:log(Level, "~ts", [string:trim(Message, trailing)], #{erlang_python => python}).

%% A request ended (its last frame came).
finished(Id, Req = #req{kind = Kind, port = Port}, St = #st{index = I}) ->
    ok = py_port_pool:done(I, Kind, 1),
    St1 = forget(Id, Req, St),
    case Port =:= St1#st.current of
        true -> maybe_recycle(St1#st{served = St1#st.served + 1});
        false -> check_drained(St1)
    end.

forget(Id, #req{mon = Mon}, St = #st{reqs = Reqs, owners = Owners}) ->
    Owners1 = case Mon of
                  undefined -> Owners;
                  _ -> erlang:demonitor(Mon, [flush]), maps:remove(Mon, Owners)
              end,
    St#st{reqs = maps:remove(Id, Reqs), owners = Owners1}.

deliver_final(Kind, {Owner, Stream}, _Id, Error) when Kind =:= asgi_stream; Kind =:= wsgi_stream ->
    Owner ! {case Kind of asgi_stream -> asgi; wsgi_stream -> wsgi end, Stream, Error};
deliver_final(_Kind, {replay, _}, _Id, _Error) ->
    ok;
deliver_final(_Kind, Alias, _Id, Error) ->
    Alias ! {Alias, Error}.

%% ---- processes ending, starting again -------------------------------------------------

process_exit(Port, Status, St = #st{procs = Procs, reqs = Reqs, index = I}) ->
    Proc = maps:get(Port, Procs),
    Lost = [{Id, R} || {Id, R = #req{port = P}} <- maps:to_list(Reqs), P =:= Port],
    St1 = lists:foldl(fun({Id, R = #req{kind = Kind, reply = Reply}}, Acc) ->
                              count_out(I, Kind),
                              deliver_final(Kind, Reply, Id, {error, {worker_exit, Status}}),
                              forget(Id, R, Acc)
                      end, St#st{procs = maps:remove(Port, Procs)}, Lost),
    Expected = St#st.draining =/= false orelse (Port =/= St#st.current andalso Port =/= St#st.next),
    case Expected andalso Status =:= 0 of
        true -> ok;
        false ->
            logger:warning("erlang_python: worker ~b: OS process ~p exited (status ~p), "
                           "~b request(s) failed", [I, Proc#proc.os_pid, Status, length(Lost)],
                           #{erlang_python => runtime})
    end,
    St2 = case Port of
              _ when Port =:= St1#st.current ->
                  ok = py_port_pool:set_up(I, false),
                  crashed(Proc, St1#st{current = undefined});
              _ when Port =:= St1#st.next ->
                  crashed(Proc, St1#st{next = undefined});
              _ ->
                  St1
          end,
    check_drained(St2).

crashed(_Proc, St = #st{draining = D}) when D =/= false ->
    St;
crashed(#proc{started = Started}, St = #st{crashes = C}) ->
    Crashes = case now_ms() - Started >= ?STABLE_MS of
                  true -> 1;
                  false -> C + 1
              end,
    Delay = case Crashes of
                1 -> 0;
                _ -> min(?BACKOFF_MAX_MS, ?BACKOFF_MIN_MS bsl (Crashes - 2))
            end,
    Timer = case St#st.restart_timer of
                undefined -> erlang:send_after(Delay, self(), restart);
                T -> T
            end,
    St#st{crashes = Crashes, restart_timer = Timer}.

restart(St = #st{next = undefined, draining = false}) ->
    case spawn_process(St) of
        {ok, St1} ->
            St1#st{restarts = St1#st.restarts + 1};
        {error, Reason} ->
            logger:error("erlang_python: worker ~b: cannot start Python: ~0p",
                         [St#st.index, Reason], #{erlang_python => runtime}),
            crashed(#proc{started = now_ms()}, St)
    end;
restart(St) ->
    St.

maybe_recycle(St = #st{served = Served, limit = Limit, next = undefined})
  when is_integer(Limit), Served >= Limit ->
    recycle(St, "served ~b requests", [Served]);
maybe_recycle(St) ->
    St.

recycle(St = #st{draining = false}, Format, Args) ->
    logger:info("erlang_python: worker ~b: replacing OS process ~p (" ++ Format ++ ")",
                [St#st.index, os_pid(St#st.current, St) | Args], #{erlang_python => runtime}),
    case spawn_process(St) of
        {ok, St1} -> St1#st{recycles = St1#st.recycles + 1, limit = infinity};
        {error, _} -> St
    end;
recycle(St, _Format, _Args) ->
    St.

schedule_memory_check() ->
    case env(max_memory, infinity) of
        infinity -> ok;
        _ -> erlang:send_after(?MEMORY_CHECK_MS, self(), memory_check)
    end.

memory_check(St = #st{current = Port, next = undefined}) when Port =/= undefined ->
    Max = env(max_memory, infinity),
    case rss(os_pid(Port, St)) of
        Rss when is_integer(Rss), is_integer(Max), Rss > Max ->
            recycle(St, "resident memory ~b bytes over max_memory ~b", [Rss, Max]);
        _ -> St
    end;
memory_check(St) ->
    St.

rss(OsPid) when is_integer(OsPid) ->
    case file:read_file("/proc/" ++ integer_to_list(OsPid) ++ "/statm") of
        {ok, Statm} ->
            [_Size, Resident | _] = binary:split(Statm, <<" ">>, [global]),
            binary_to_integer(Resident) * ?PAGE_SIZE;
        {error, _} -> undefined
    end;
rss(_) ->
    undefined.

%% ---- stopping -------------------------------------------------------------------------

-spec handle_call(term(), gen_server:from(), #st{}) ->
          {reply, term(), #st{}} | {noreply, #st{}}.
handle_call(info, _From, St) ->
    {reply, #{os_pid => os_pid(St#st.current, St),
              in_flight => map_size(St#st.reqs),
              queued => length(St#st.waiting),
              restarts => St#st.restarts,
              recycles => St#st.recycles,
              served => St#st.served,
              python_version => maps:get(python_version, St#st.ready, undefined),
              executable => maps:get(executable, St#st.ready, undefined)}, St};
handle_call({drain, Timeout}, From, St) ->
    {noreply, drain(From, Timeout, St)};
handle_call(_Request, _From, St) ->
    {reply, {error, unknown_call}, St}.

drain(From, Timeout, St0 = #st{index = I, waiting = Waiting}) ->
    St = St0#st{draining = {draining, From}, waiting = []},
    _ = case St#st.restart_timer of
            undefined -> ok;
            T -> erlang:cancel_timer(T)
        end,
    St1 = lists:foldl(fun({Id, _}, Acc = #st{reqs = Reqs}) ->
                              case Reqs of
                                  #{Id := R = #req{kind = Kind, reply = Reply}} ->
                                      ok = py_port_pool:done(I, Kind, 1),
                                      deliver_final(Kind, Reply, Id, {error, not_started}),
                                      forget(Id, R, Acc);
                                  _ -> Acc
                              end
                      end, St, lists:reverse(Waiting)),
    _ = [send(Port, py_port_wire:drain(), St1) || Port <- maps:keys(St1#st.procs)],
    _ = case Timeout of
            infinity -> ok;
            _ -> erlang:send_after(Timeout, self(), drain_timeout)
        end,
    check_drained(St1).

check_drained(St = #st{draining = {draining, From}, procs = Procs}) when map_size(Procs) =:= 0 ->
    gen_server:reply(From, ok),
    St#st{draining = drained};
check_drained(St) ->
    St.

-spec handle_cast(term(), #st{}) -> {noreply, #st{}}.
handle_cast(_Msg, St) ->
    {noreply, St}.

-spec terminate(term(), #st{}) -> ok.
terminate(Reason, St = #st{procs = Procs, reqs = Reqs, index = I}) ->
    [begin
         _ = kill(Port, St),
         catch erlang:port_close(Port)
     end || Port <- maps:keys(Procs)],
    Status = case Reason of
                 shutdown -> killed;
                 {shutdown, _} -> killed;
                 _ -> {crashed, Reason}
             end,
    [begin
         count_out(I, Kind),
         deliver_final(Kind, Reply, Id, {error, {worker_exit, Status}})
     end || {Id, #req{kind = Kind, reply = Reply}} <- maps:to_list(Reqs)],
    ok = py_port_pool:set_up(I, false).

%% ---- helpers --------------------------------------------------------------------------

%% A request leaves worker I (replays, the worker's own, were never counted in).
count_out(_I, replay) -> ok;
count_out(I, Kind) -> ok = py_port_pool:done(I, Kind, 1).

send(Port, Frame, _St) ->
    try erlang:port_command(Port, Frame) of
        true -> ok
    catch
        error:badarg -> ok   %% the port is closing: its exit_status follows
    end.

%% SIGKILL to a worker process; its exit (status 137) follows from the port.
kill(Port, St) ->
    case os_pid(Port, St) of
        OsPid when is_integer(OsPid) ->
            _ = os:cmd("kill -KILL " ++ integer_to_list(OsPid)),
            exiting(Port, 128 + 9, St);
        _ ->
            catch erlang:port_close(Port),
            St
    end.

exiting(Port, Status, St = #st{procs = Procs}) ->
    case Procs of
        #{Port := P = #proc{exiting = undefined}} -> St#st{procs = Procs#{Port := P#proc{exiting = Status}}};
        _ -> St
    end.

os_pid(Port, #st{procs = Procs}) ->
    case Procs of
        #{Port := #proc{os_pid = P}} -> P;
        _ -> undefined
    end.

deadline(infinity) -> infinity;
deadline(T) -> now_ms() + T.

now_ms() ->
    erlang:monotonic_time(millisecond).

unique_id() ->
    erlang:unique_integer([positive]).

env(Key, Default) ->
    application:get_env(erlang_python, Key, Default).
