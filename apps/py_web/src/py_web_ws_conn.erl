%% @doc One WebSocket connection of the embedded server, from the app's websocket.accept to
%% the end: the connection process of py_web_conn carries on here once the app accepted
%% the opening handshake (py_web_conn answers the handshake's refusals, the app's denials
%% and its errors before accept, as HTTP).
%%
%% The protocol is py_web_ws's (framing, close handshake, keepalive, permessage-deflate);
%% this module carries it out between the socket (gen_tcp or ssl, py_web_transport) and the
%% app's stream (py_asgi's websocket events, see py_asgi:start/4):
%% <ul>
%% <li>messages from the client go to the app (`ws_receive'); the socket is read with
%%     `{active, ?ACTIVE_N}' (no re-arming per packet); when the app has 32 messages
%%     waiting it says `pause_reading', the socket is made passive (what it had delivered
%%     already still goes to the app) and not read until `resume_reading';</li>
%% <li>the app's messages are framed and written; each is acknowledged once written, in
%%     batches of up to ?ACK_BATCH bytes (the app's send() waits beyond 1 MiB);</li>
%% <li>the end for the app is one `ws_disconnect': the peer's close code, the code the
%%     connection failed with (1002, 1007, 1009), or 1006 (the socket closed without a close
%%     frame, the keepalive ping went unanswered);</li>
%% <li>the app returning closes with 1000 (if it did not close itself), the app raising
%%     with 1011 (its error logged, as for HTTP); a close code the app may not use is 1011
%%     and logged;</li>
%% <li>the server draining (graceful shutdown) or retiring (a reload: the client
%%     reconnects to the new server process) closes with 1001; when the shutdown time is
%%     up the connection is cut.</li>
%% </ul>
%% The process hibernates once the handshake is answered and whenever it has had nothing to
%% do for ?HIBERNATE_AFTER ms: its heap shrinks to what it holds, so an idle websocket
%% costs a few KiB of the VM's memory, not the heap the HTTP exchange grew.
%% Once the socket is closed the process waits up to ?LINGER ms for the app to return,
%% so that an error it raises afterwards is still logged.
-module(py_web_ws_conn).

-include("py_web.hrl").

-export([run/1, wake/1]).

%% Written bytes are acknowledged to the app once this many have gathered (it waits only
%% past 1 MiB unacknowledged, so a smaller remainder never holds it).
-define(ACK_BATCH, 65536).
-define(LINGER, 5000).
-define(HIBERNATE_AFTER, 1000).

-record(w, {
    sock :: py_web_transport:socket(),
    t :: py_web_transport:t(),
    ok :: tcp | ssl,
    closed :: tcp_closed | ssl_closed,
    error :: tcp_error | ssl_error,
    passive :: tcp_passive | ssl_passive,
    backend :: module(),
    stream :: term(),
    label :: {binary(), binary()},          %% method and path, for the log
    ws :: py_web_ws:ws(),
    paused = false :: boolean(),            %% the app asked to stop reading
    active = false :: boolean(),            %% in {active, ?ACTIVE_N} mode
    unacked = 0 :: non_neg_integer(),       %% written, not yet acknowledged to the app
    timer = undefined :: undefined | {reference(), integer()},
    app_done = false :: boolean()
}).

%% @doc Carry on with an accepted handshake: answer it (101, or 500 when the app's accept
%% is at fault; either head as the server writes any head, py_web_http:server_head/4, and
%% logged as any request, py_web_access), then run the connection to its end. `buf' holds
%% the bytes read after the request head.
-spec run(#{sock := py_web_transport:socket(), t := py_web_transport:t(),
            messages := {tcp | ssl, tcp_closed | ssl_closed, tcp_error | ssl_error},
            buf := binary(), cfg := #cfg{}, req := #req{},
            request := py_web_ws_handshake:request(), stream := term(),
            accept := {binary() | undefined, [{binary(), binary()}]},
            draining := boolean(), t0 := integer()}) -> no_return().
run(#{sock := Sock, t := T, messages := {Ok, Closed, Error}, cfg := Cfg, req := Req,
      request := Request, stream := Stream, accept := {Sub, Hs}} = C) ->
    #cfg{backend = B, ws = Opts} = Cfg,
    #req{method = M, raw_path = Path} = Req,
    Now = now_ms(),
    case py_web_ws:accept(Request, #{subprotocol => Sub, headers => Hs, now => Now}, Opts) of
        {ok, Head, Ws} ->
            %% py_web_conn's {active, N} is armed again here (its count adds up); a
            %% passive message it left is taken by the loop
            W = #w{sock = Sock, t = T, ok = Ok, closed = Closed, error = Error,
                   passive = py_web_transport:passive(T), backend = B,
                   stream = Stream, label = {M, Path}, ws = Ws},
            access_log(Req, 101, 0, maps:get(headers, Head), Cfg, C),
            W1 = write(py_web_http:server_head(Head, false, {1, 1}, Cfg), W),
            W2 = case maps:get(draining, C) of
                     true -> app_msg({close, 1001, <<>>}, Now, W1);
                     false -> W1
                 end,
            case maps:get(buf, C) of
                <<>> -> hibernate(W2);   %% drop the heap the HTTP exchange grew
                Buf -> loop(recv(Buf, W2))
            end;
        {error, Why} ->
            py_web_log:app_error(M, Path, {bad_websocket_accept, Why}),
            catch B:disconnect(Stream),
            {ErrHead, Body} = py_web_http:error_response(500),
            _ = py_web_transport:send(T, Sock, [py_web_http:server_head(ErrHead, true, {1, 1},
                                                                        Cfg), Body]),
            access_log(Req, 500, byte_size(Body), maps:get(headers, ErrHead), Cfg, C),
            py_web_transport:close(T, Sock),
            exit(normal)
    end.

%%====================================================================
%% The loop
%%====================================================================

loop(W0 = #w{sock = Sock, stream = S, ok = Ok, closed = Closed, error = Error,
             passive = Passive}) ->
    W = arm(W0),
    receive
        {Ok, Sock, Data} ->
            loop(recv(Data, W));
        {Passive, Sock} ->
            loop(W#w{active = false});
        {asgi, S, Event} ->
            loop(app_event(Event, W));
        {timeout, Ref, py_web_ws} ->
            Timer = case W#w.timer of
                        {Ref, _} -> undefined;
                        Other -> Other
                    end,
            {Events, Out, Ws} = py_web_ws:timeout(now_ms(), W#w.ws),
            loop(after_step(Events, Out, W#w{ws = Ws, timer = Timer}));
        {Closed, Sock} ->
            gone(W);
        {Error, Sock, _} ->
            gone(W);
        {py_web, Stop} when Stop =:= drain; Stop =:= retire ->
            %% a shutdown, or a reload: the client reconnects to the new server
            loop(app_msg({close, 1001, <<>>}, now_ms(), W));
        {py_web, cut} ->
            %% the shutdown time is up
            catch (W#w.backend):disconnect(S),
            py_web_transport:close(W#w.t, Sock),
            exit(normal)
    after ?HIBERNATE_AFTER ->
        hibernate(W)
    end.

%% Sleep with the smallest heap until a message comes (the socket armed first, so that its
%% data is one); proc_lib's, so that a crash is still reported.
-spec hibernate(#w{}) -> no_return().
hibernate(W) ->
    proc_lib:hibernate(?MODULE, wake, [arm(W)]).

%% @private Back from hibernation.
-spec wake(#w{}) -> no_return().
wake(W) ->
    loop(W).

recv(Data, W) ->
    {Events, Out, Ws} = py_web_ws:recv(Data, now_ms(), W#w.ws),
    after_step(Events, Out, W#w{ws = Ws}).

%% The socket closed under us: 1006 for the app (unless it was told already).
-spec gone(#w{}) -> no_return().
gone(W) ->
    {Events, Ws} = py_web_ws:disconnected(W#w.ws),
    finish(to_app(Events, W#w{ws = Ws})).

app_event({send, Kind, Data}, W = #w{ws = Ws0}) ->
    case py_web_ws:send({Kind, Data}, now_ms(), Ws0) of
        {error, closed} -> ack(byte_size(Data), W);   %% after a close: dropped
        {Out, Ws} -> ack(byte_size(Data), write(Out, W#w{ws = Ws}))
    end;
app_event({close, Code, Reason}, W) ->
    app_msg({close, Code, Reason}, now_ms(), W);
app_event(pause_reading, W) ->
    passive(W#w{paused = true});
app_event(resume_reading, W) ->
    W#w{paused = false};
app_event(done, W) ->
    app_msg({close, 1000, <<>>}, now_ms(), W#w{app_done = true});
app_event({error, Reason}, W = #w{label = {M, P}}) ->
    py_web_log:app_error(M, P, Reason),
    app_msg({close, 1011, <<>>}, now_ms(), W#w{app_done = true});
app_event(Other, W = #w{label = {M, P}}) ->
    %% start/body (a denial) after accept: the runner never emits them
    py_web_log:app_error(M, P, {unexpected_websocket_event, Other}),
    app_msg({close, 1011, <<>>}, now_ms(), W).

%% A close from the app (or on its behalf): nothing once the connection is closing.
app_msg({close, Code, _} = Msg, Now, W = #w{ws = Ws0, label = {M, P}}) ->
    case py_web_ws:send(Msg, Now, Ws0) of
        {error, closed} ->
            W;
        {error, {bad_close_code, _}} ->
            py_web_log:app_error(M, P, {bad_websocket_close_code, Code}),
            app_msg({close, 1011, <<>>}, Now, W);
        {Out, Ws} ->
            after_step([], Out, W#w{ws = Ws})
    end.

%% After each step of py_web_ws: write, tell the app, close the socket when the
%% connection is closed, keep the timer.
after_step(Events, Out, W0) ->
    W = to_app(Events, write(Out, W0)),
    case py_web_ws:status(W#w.ws) of
        closed -> finish(W);
        _ -> timer(W)
    end.

to_app(Events, W = #w{backend = B, stream = S}) ->
    lists:foreach(fun({close, Code, Reason}) -> B:ws_disconnect(S, Code, Reason);
                     (Msg) -> B:ws_receive(S, Msg)
                  end, Events),
    W.

write([], W) ->
    W;
write(Out, W = #w{t = T, sock = Sock}) ->
    case py_web_transport:send(T, Sock, Out) of
        ok -> W;
        {error, _} -> gone(W)
    end.

ack(N, W = #w{unacked = U}) when U + N < ?ACK_BATCH ->
    W#w{unacked = U + N};
ack(N, W = #w{backend = B, stream = S, unacked = U}) ->
    B:ack(S, U + N),
    W#w{unacked = 0}.

timer(W = #w{ws = Ws, timer = Timer}) ->
    case {py_web_ws:deadline(Ws), Timer} of
        {infinity, _} -> W;
        {D, {_, At}} when At =< D -> W;
        {D, _} ->
            Ref = erlang:start_timer(D, self(), py_web_ws, [{abs, true}]),
            W#w{timer = {Ref, D}}
    end.

arm(W = #w{active = true}) -> W;
arm(W = #w{paused = true}) -> W;
arm(W = #w{t = T, sock = Sock}) ->
    case py_web_transport:active(T, Sock, ?ACTIVE_N) of
        ok -> W#w{active = true};
        {error, _} -> gone(W)
    end.

%% Stop reading (pause_reading): the socket's messages already delivered stay in the
%% mailbox and are handled as they come.
passive(W = #w{active = false}) -> W;
passive(W = #w{t = T, sock = Sock}) ->
    case py_web_transport:active(T, Sock, false) of
        ok -> W#w{active = false};
        {error, _} -> gone(W)
    end.

%%====================================================================
%% The end
%%====================================================================

%% The connection is closed (the app has been told): close the socket, then wait a while
%% for the app to return so that its errors are logged.
-spec finish(#w{}) -> no_return().
finish(W = #w{t = T, sock = Sock}) ->
    py_web_transport:close(T, Sock),
    linger(W).

-spec linger(#w{}) -> no_return().
linger(#w{app_done = true}) ->
    exit(normal);
linger(W = #w{stream = S, label = {M, P}}) ->
    receive
        {asgi, S, done} -> exit(normal);
        {asgi, S, {error, Reason}} -> py_web_log:app_error(M, P, Reason), exit(normal);
        {asgi, S, {send, _, Data}} -> linger(ack(byte_size(Data), W));
        {asgi, S, _} -> linger(W);
        {py_web, _} -> exit(normal)
    after ?LINGER ->
        exit(normal)
    end.

access_log(Req = #req{peer = Peer}, Status, Sent, Headers, #cfg{access_log = Format},
           #{t0 := T0}) ->
    py_web_access:log(Format, #{req => Req, peer => Peer, status => Status, sent => Sent,
                                t0 => T0, headers => Headers}).

now_ms() -> erlang:monotonic_time(millisecond).
