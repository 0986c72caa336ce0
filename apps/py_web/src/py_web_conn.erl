%% @doc One HTTP/1.1 connection of the embedded server: one process,
%% requests handled in order (keep-alive and pipelining), no extra process
%% per request.
%%
%% The socket is read with `{active, N}' (?ACTIVE_N packets per setopts, then a
%% passive message) so that the process waits on the socket, the app's stream
%% events (`{asgi | wsgi, Stream, Event}') and the listener's drain message at
%% once; the read buffer is bounded by going passive while it is full. Request
%% heads are parsed by py_web_h1_request, chunked bodies decoded by
%% py_web_h1_chunked (strict RFC 9112: anything else is answered 4xx/5xx and the
%% connection closed, before the app sees the request). An ASGI app gets the
%% body as it arrives, as far as it asked for it (`need_body', then a window of
%% ?BODY_WINDOW bytes), except a body of at most ?BODY_WINDOW bytes with a
%% Content-Length and no `Expect: 100-continue': that one is read before the app
%% starts (the window would have sent it ahead anyway) and given whole, so that
%% the app gets one message and erlang_python runs it on its C exchange instead
%% of a feed per packet. A WSGI app gets the whole body at once: it is read
%% here before the app takes a worker thread (a slow client must not hold
%% one), in memory up to `spool_threshold' bytes, beyond that in a file
%% (py_web_spool) whose path the app reads. What to send is
%% py_web_exchange's decision, carried out here on the socket, each body
%% chunk acknowledged once written (backpressure).
%%
%% A WebSocket opening handshake (py_web_ws_handshake; ASGI apps, unless `ws => none')
%% starts the app with a websocket scope; its refusals (400, 426), the app's denials (a
%% close before accept is 403, as uvicorn answers; or its own response) and its errors
%% before accept are answered here as HTTP; once the app accepts, py_web_ws_conn runs the
%% connection.
-module(py_web_conn).

-include("py_web.hrl").

%% Each need_body from the app lets this many more request body bytes go to it as they
%% arrive, without waiting for the next need_body: an upload streams at socket speed
%% (no round trip per read) while the app still bounds what is buffered ahead for it.
-define(BODY_WINDOW, 1048576).

%% After a response, up to this much of a request body the app left unread is read and
%% dropped so that the connection can be kept.
-define(DISCARD_LIMIT, 1048576).

-define(CONTINUE, <<"HTTP/1.1 100 Continue\r\n\r\n">>).


-export([start/2, init/2]).

-record(st, {
    sock :: py_web_transport:socket(),
    cfg :: #cfg{},
    t :: py_web_transport:t(),
    ok :: tcp | ssl,
    closed :: tcp_closed | ssl_closed,
    error :: tcp_error | ssl_error,
    passive :: tcp_passive | ssl_passive,
    limits :: py_web_h1_request:limits(),
    buf = <<>> :: binary(),
    armed = false :: boolean(),                %% packets arrive as messages (arm/1)
    spool :: py_web_spool:t() | undefined,     %% the WSGI request body's file
    peer :: {binary(), inet:port_number()} | undefined,
    local :: {binary(), inet:port_number()} | undefined,
    trusted = false :: boolean(),              %% proxy fields applied (py_web_proxy)
    draining = false :: boolean(),
    linger = false :: boolean()              %% retiring: idle keep-alive waits for a request
}).

%% The request being answered.
-record(x, {
    ex :: py_web_exchange:t(),
    stream :: term(),
    backend :: module(),
    req :: #req{},
    body :: body(),
    total = 0 :: non_neg_integer(),        %% request body bytes read
    continue = false :: boolean(),         %% 100 Continue still owed
    want = false :: boolean(),             %% app waits for body
    credit = 0 :: non_neg_integer(),       %% body bytes that may be sent ahead
    chunked = false :: boolean(),          %% the response body is chunked
    close = false :: boolean(),            %% close the connection after the response
    t0 :: integer(),                       %% monotonic microseconds at the request's start
    ws :: py_web_ws_handshake:request() | undefined  %% a WebSocket handshake
}).

%% What is left to read of a request body.
-type body() :: done | {cl, pos_integer()} | {chunked, py_web_h1_chunked:state()}.

%% A request body being read before the app starts: in memory (Acc,
%% reversed), or in the connection's spool file once it has one (WSGI only).
-record(pre, {
    body :: body(),
    total :: non_neg_integer(),
    acc = [] :: [binary()],
    spool :: boolean(),                      %% may go to a file (WSGI)
    ctx :: {#req{}, integer()}               %% the request and its start
}).

%%====================================================================
%% Start
%%====================================================================

%% @doc Spawn a connection process for an accepted socket. The caller
%% must then hand the socket over (controlling_process) and send
%% `{py_web_go, Socket}'.
-spec start(#cfg{}, py_web_transport:socket()) -> {ok, pid()}.
start(Cfg, Sock) ->
    {ok, proc_lib:spawn(?MODULE, init, [Cfg, Sock])}.

%% @private
-spec init(#cfg{}, py_web_transport:socket()) -> no_return().
init(Cfg = #cfg{listener = L, transport = T}, Sock0) ->
    case L of
        undefined -> ok;
        _ ->
            %% counted before any request of it can be (limit_concurrency);
            %% the listener uncounts it when it exits
            py_web_limits:opened(Cfg#cfg.limits),
            L ! {py_web_conn, self()},
            link(L)
    end,
    receive
        {py_web_go, Sock0} -> ok
    after 10000 ->
        exit(normal)
    end,
    case connection(Cfg, Sock0) of
        {ok, Sock, Peer, Local, Initial} ->
            {Ok, Closed, Error} = py_web_transport:messages(T),
            Limits = #{max_request_line => Cfg#cfg.max_request_line,
                       max_header_size => Cfg#cfg.max_header_size,
                       max_headers => Cfg#cfg.max_headers},
            request(#st{sock = Sock, cfg = Cfg, t = T, ok = Ok, closed = Closed,
                        error = Error, passive = py_web_transport:passive(T), peer = Peer,
                        local = Local, trusted = py_web_proxy:peer_trusted(Peer, Cfg),
                        limits = Limits,
                        buf = Initial}, undefined);
        error ->
            gen_tcp:close(Sock0),
            exit(normal)
    end.

%% The accepted TCP socket made ready: the PROXY header of a trusted proxy
%% read (its addresses replace the connection's), then the TLS handshake.
connection(Cfg = #cfg{transport = T, handshake_timeout = Timeout}, Sock0) ->
    case py_web_transport:names(gen_tcp, Sock0) of
        {ok, Peer0, Local0} ->
            case proxy_header(Cfg, Sock0, Peer0) of
                {ok, Info, Initial} ->
                    {Peer, Local} = case Info of
                                        #{peer := P, local := L} -> {P, L};
                                        _ -> {Peer0, Local0}
                                    end,
                    case py_web_transport:handshake(T, Sock0, Cfg#cfg.tls, Timeout) of
                        {ok, Sock} -> {ok, Sock, Peer, Local, Initial};
                        {error, _} -> error
                    end;
                {error, Reason} ->
                    logger:warning("py_web: connection from ~ts closed: ~ts",
                                   [py_web_log:address(Peer0), py_web_log:reason(Reason)],
                                   #{py_web => server}),
                    error
            end;
        error ->
            error
    end.

proxy_header(#cfg{proxy_protocol = off}, _, _) ->
    {ok, none, <<>>};
proxy_header(#cfg{proxy_protocol = Mode, proxy_allow = Allow, transport = T,
                  handshake_timeout = Timeout}, Sock, Peer) ->
    Host = case Peer of undefined -> undefined; {H, _} -> H end,
    case py_web_proxy:trusted(Host, Allow) of
        true -> py_web_proxy_protocol:read(Sock, Mode, T =:= ssl, Timeout);
        false -> {ok, none, <<>>}
    end.

%%====================================================================
%% Reading request heads
%%====================================================================

request(St = #st{draining = true, linger = false, buf = <<>>}, _) ->
    stop(St);
request(St = #st{buf = <<>>}, Deadline) ->
    wait_head(St, Deadline);
request(St = #st{buf = Buf, limits = Limits}, Deadline) ->
    case py_web_h1_request:parse(Buf, Limits) of
        {ok, Head, Rest} ->
            exchange(req(Head), St#st{buf = Rest});
        {more, Buf2} ->
            wait_head(St#st{buf = Buf2}, Deadline);
        {error, Code} ->
            reply_error(Code, undefined, St)
    end.

wait_head(St0 = #st{buf = Buf, cfg = Cfg, sock = Sock}, Deadline) ->
    St = arm(St0),
    %% Idle (keep-alive) timeout while nothing of the next request has
    %% arrived; once some bytes are in, a deadline for the whole head.
    {Timeout, D} = case {Buf, Deadline} of
                       {<<>>, _} -> {Cfg#cfg.idle_timeout, undefined};
                       {_, undefined} when Cfg#cfg.header_timeout =:= infinity ->
                           {infinity, undefined};
                       {_, undefined} ->
                           {Cfg#cfg.header_timeout, now_ms() + Cfg#cfg.header_timeout};
                       _ ->
                           {max(0, Deadline - now_ms()), Deadline}
                   end,
    #st{ok = Ok, closed = Closed, error = Error, passive = Passive} = St,
    receive
        {Ok, Sock, Data} ->
            NewBuf = <<Buf/binary, Data/binary>>,
            St1 = St#st{buf = NewBuf},
            %% Re-parse only when a line may have been completed, so a
            %% client sending a byte at a time costs O(n), not O(n^2).
            case Buf =/= <<>>
                 andalso byte_size(NewBuf) =< Cfg#cfg.max_request_line
                 andalso binary:match(Data, <<"\n">>) =:= nomatch of
                true -> wait_head(St1, D);
                false -> request(St1, D)
            end;
        {Passive, Sock} ->
            wait_head(St#st{armed = false}, D);
        {Closed, Sock} ->
            exit(normal);
        {Error, Sock, _} ->
            exit(normal);
        {py_web, drain} when Buf =:= <<>> ->
            stop(St);
        {py_web, drain} ->
            wait_head(St#st{draining = true}, D);
        {py_web, retire} ->
            wait_head(St#st{draining = true, linger = true}, D);
        {py_web, cut} ->
            stop(St)
    after Timeout ->
        case Buf of
            <<>> -> stop(St);                          %% idle keep-alive timeout
            _ -> reply_error(408, undefined, St)       %% header read timeout
        end
    end.

now_ms() -> erlang:monotonic_time(millisecond).

%% The request of a parsed head (target and authority are not used: for an
%% absolute-form target the scope has its path, as for the origin form).
req(#{method := M, version := V, raw_path := Path, qs := Qs, headers := Hs, clen := CL,
      chunked := Chunked, keepalive := KA, expect := Expect}) ->
    #req{method = M, version = V, raw_path = Path, qs = Qs, headers = Hs, clen = CL,
         chunked = Chunked, keepalive = KA, expect = Expect}.

%%====================================================================
%% One exchange
%%====================================================================

exchange(Req0, St = #st{cfg = Cfg, peer = Peer, local = Local, trusted = Trusted}) ->
    T0 = erlang:monotonic_time(microsecond),
    Req = py_web_proxy:request(Req0#req{peer = Peer, local = Local, scheme = Cfg#cfg.scheme},
                               Cfg, Trusted),
    case py_web_limits:request(Cfg#cfg.limits) of
        over_capacity ->
            reply_error(503, {Req, T0}, St);
        ok ->
            case websocket(Req, Cfg) of
                http -> http_exchange(Req, T0, St);
                {ok, WsReq} -> websocket(Req#req{keepalive = false}, WsReq, T0, St);
                {error, {Status, Why, Headers}} -> ws_refused(Status, Why, Headers, {Req, T0}, St)
            end
    end.

http_exchange(Req, T0, St = #st{cfg = Cfg}) ->
    case body_init(Req, St) of
        {error, Code} ->
            reply_error(Code, {Req, T0}, St);
        {ok, Initial, done, Total, St1}
          when Cfg#cfg.interface =:= wsgi, Total > Cfg#cfg.spool_threshold ->
            %% whole already, but over spool_threshold: to a file all the same
            preread(Req#req{expect = false}, Initial, done, Total, T0, St1);
        {ok, Initial, done, Total, St1} ->
            start(Req, Initial, done, Total, T0, St1);
        {ok, Initial, Body, Total, St1} when Cfg#cfg.interface =:= wsgi ->
            preread(Req, Initial, Body, Total, T0, St1);
        {ok, Initial, Body = {cl, Left}, Total, St1}
          when Total + Left =< ?BODY_WINDOW, not Req#req.expect ->
            pre_loop(#pre{body = Body, total = Total, acc = [Initial], spool = false,
                          ctx = {Req, T0}}, St1);
        {ok, Initial, Body, Total, St1} ->
            start(Req, Initial, Body, Total, T0, St1)
    end.

%% Is the request a WebSocket opening handshake (one without a body)?
websocket(_Req, #cfg{ws = false}) ->
    http;
websocket(#req{method = M, version = V, headers = Hs, clen = CL, chunked = Chunked}, _Cfg) ->
    case py_web_ws_handshake:parse(M, V, Hs) of
        {ok, _} when Chunked; CL =/= undefined, CL > 0 ->
            {error, {400, handshake_with_body, []}};
        Result ->
            Result
    end.

%% Start the app on a websocket scope; it answers with accept (py_web_ws_conn takes the
%% connection over, event/3), or a denial or an error, which are HTTP responses.
websocket(Req, WsReq, T0, St = #st{cfg = Cfg}) ->
    X = #x{ex = py_web_exchange:new(Req, Cfg, py_web_exchange:caps(server)),
           backend = Cfg#cfg.backend, req = Req, body = done, t0 = T0, ws = WsReq},
    case py_web_backend:start_websocket(Req, Cfg, maps:get(subprotocols, WsReq)) of
        {ok, Stream} -> run(X#x{stream = Stream}, St);
        {error, _} = E -> event(E, X, St)
    end.

-spec ws_refused(400 | 426, atom(), [{binary(), binary()}], {#req{}, integer()}, #st{}) ->
          no_return().
ws_refused(Status, Why, Headers, {Req, T0}, St = #st{sock = Sock, t = T, peer = Peer}) ->
    logger:info("py_web: ~ts: WebSocket handshake refused (~B): ~p",
                [py_web_log:address(Peer), Status, Why], #{py_web => server}),
    {Head = #{headers := Hs}, Body} = py_web_http:error_response(Status),
    _ = py_web_transport:send(T, Sock, [head_bytes(Head#{headers := Hs ++ Headers}, true,
                                                   {1, 1}, St), Body]),
    access_log(Req, T0, Status, byte_size(Body), [], St),
    stop(St).

%% Start the app with the body read so far (a binary, or the file of a
%% spooled one); Body is what is left to read (the app asks for it).
start(Req0, Initial, Body, Total, T0, St = #st{cfg = Cfg}) ->
    Req = known_length(Req0, Body, Total, Cfg),
    More = Body =/= done,
    X = #x{ex = py_web_exchange:new(Req, Cfg, py_web_exchange:caps(server)),
           backend = Cfg#cfg.backend, req = Req, body = Body, total = Total,
           continue = Req#req.expect andalso More, t0 = T0},
    case py_web_backend:start(Req, Cfg, Initial, More) of
        {ok, Stream} -> run(X#x{stream = Stream}, St);
        {error, _} = E -> event(E, X, St)
    end.

%% A WSGI app gets a chunked body whole and decoded: its headers say so
%% as a proxy that buffers the body does (nginx): Transfer-Encoding, which
%% described the framing, is replaced by the body's Content-Length
%% (CONTENT_LENGTH, besides wsgi.input_terminated: frameworks that ignore the
%% latter, Django for one, would read nothing without it).
known_length(Req = #req{chunked = true, headers = Hs}, done, Total, #cfg{interface = wsgi}) ->
    Req#req{headers = [H || H = {N, _} <- Hs, N =/= <<"transfer-encoding">>]
                ++ [{<<"content-length">>, integer_to_binary(Total)}]};
known_length(Req, _Body, _Total, _Cfg) ->
    Req.

%% The body's first bytes (what came with the head), and what is left to
%% read. A Content-Length over max_body is refused at once.
body_init(#req{chunked = true}, St = #st{buf = Buf, limits = Limits}) ->
    body_take({chunked, py_web_h1_chunked:init(Limits)}, 0, Buf, St);
body_init(#req{clen = undefined}, St) ->
    {ok, <<>>, done, 0, St};
body_init(#req{clen = 0}, St) ->
    {ok, <<>>, done, 0, St};
body_init(#req{clen = N}, #st{cfg = #cfg{max_body = Max}})
  when is_integer(Max), N > Max ->
    {error, 413};
body_init(#req{clen = N}, St = #st{buf = Buf}) ->
    body_take({cl, N}, 0, Buf, St).

%% Take what Buf holds of the body: the data, what is left to read after
%% it, the total read so far, and the state with the rest of Buf. Errors:
%% 413 over max_body, 400/431 from the chunked decoder.
body_take({cl, Left}, Total, Buf, St) when byte_size(Buf) >= Left ->
    <<Data:Left/binary, Rest/binary>> = Buf,
    {ok, Data, done, Total + Left, St#st{buf = Rest}};
body_take({cl, Left}, Total, Buf, St) ->
    {ok, Buf, {cl, Left - byte_size(Buf)}, Total + byte_size(Buf), St#st{buf = <<>>}};
body_take({chunked, CS}, Total, Buf, St = #st{cfg = #cfg{max_body = Max}}) ->
    Limit = case Max of
                infinity -> 1 bsl 40;
                _ -> Max - Total + 1
            end,
    case py_web_h1_chunked:decode(Buf, CS, Limit) of
        {ok, Data, Rest, CS2} ->
            Bin = iolist_to_binary(Data),
            Total2 = Total + byte_size(Bin),
            Body = case CS2 of
                       done -> done;
                       _ -> {chunked, CS2}
                   end,
            if
                is_integer(Max), Total2 > Max -> {error, 413};
                true -> {ok, Bin, Body, Total2, St#st{buf = Rest}}
            end;
        {error, _} = E ->
            E
    end.

%%====================================================================
%% The whole request body before the app (WSGI; small ASGI bodies)
%%====================================================================

%% Read the rest of a WSGI request body, then start the app with it: a
%% worker thread is only taken by a request that is ready to run. The
%% client has body_timeout for each read (408 when it stops sending).
preread(Req, Initial, Body, Total, T0, St0 = #st{cfg = Cfg}) ->
    St = case Req#req.expect of
             true -> send_st(?CONTINUE, St0);
             false -> St0
         end,
    Expected = case Body of
                   {cl, Left} -> Total + Left;
                   _ -> Total
               end,
    P = #pre{body = Body, total = Total, spool = true,
             ctx = {Req#req{expect = false}, T0}},
    St1 = case Expected > Cfg#cfg.spool_threshold of
              true -> spool(P, St);
              false -> St
          end,
    pre_loop(pre_store(Initial, P, St1), St1).

pre_loop(P = #pre{body = done}, St) ->
    pre_done(P, St);
pre_loop(P, St0 = #st{sock = Sock, cfg = Cfg}) ->
    St = arm(St0),
    #st{ok = Ok, closed = Closed, error = Error, passive = Passive} = St,
    receive
        {Ok, Sock, Data} ->
            Buf = <<(St#st.buf)/binary, Data/binary>>,
            case body_take(P#pre.body, P#pre.total, Buf, St) of
                {ok, Bin, Body, Total, St1} ->
                    P1 = P#pre{body = Body, total = Total},
                    case P#pre.spool andalso St1#st.spool =:= undefined andalso
                        Total > Cfg#cfg.spool_threshold of
                        true ->
                            %% what memory held so far goes first
                            St2 = spool(P1, St1),
                            P2 = pre_store(lists:reverse(P#pre.acc), P1#pre{acc = []}, St2),
                            pre_loop(pre_store(Bin, P2, St2), St2);
                        false ->
                            pre_loop(pre_store(Bin, P1, St1), St1)
                    end;
                {error, Code} ->
                    reply_error(Code, P#pre.ctx, St)
            end;
        {Passive, Sock} -> pre_loop(P, St#st{armed = false});
        {Closed, Sock} -> client_left(P, St);
        {Error, Sock, _} -> client_left(P, St);
        {py_web, drain} -> pre_loop(P, St#st{draining = true});
        {py_web, retire} -> pre_loop(P, St#st{draining = true, linger = true});
        {py_web, cut} -> reply_error(503, P#pre.ctx, St)
    after Cfg#cfg.body_timeout ->
        reply_error(408, P#pre.ctx, St)
    end.

%% The client went away before its body was read: 499 in the access line.
-spec client_left(#pre{}, #st{}) -> no_return().
client_left(#pre{ctx = {Req, T0}}, St) ->
    access_log(Req, T0, 499, 0, [], St),
    stop(St).

%% Keep Data: in the spool file if there is one, else in memory.
pre_store(Data, P = #pre{acc = Acc}, #st{spool = undefined}) ->
    P#pre{acc = [Data | Acc]};
pre_store(Data, P, St = #st{spool = Spool}) ->
    case py_web_spool:write(Spool, Data) of
        ok -> P;
        {error, Reason} -> spool_error(write, Reason, P, St)
    end.

%% The spool file is the connection's from here (unspool/1 deletes it).
spool(P, St = #st{cfg = #cfg{spool_dir = Dir}}) ->
    case py_web_spool:open(Dir) of
        {ok, Spool} -> St#st{spool = Spool};
        {error, Reason} -> spool_error(open, Reason, P, St)
    end.

-spec spool_error(open | write | close, term(), #pre{}, #st{}) -> no_return().
spool_error(What, Reason, P, St = #st{cfg = #cfg{spool_dir = Dir}}) ->
    logger:error("py_web: cannot ~s a request body file in ~ts: ~ts", [What, Dir,
                                                                       py_web_log:reason(Reason)],
                 #{py_web => server}),
    reply_error(500, P#pre.ctx, St).

pre_done(#pre{acc = Acc, total = Total, ctx = {Req, T0}}, St = #st{spool = undefined}) ->
    start(Req, iolist_to_binary(lists:reverse(Acc)), done, Total, T0, St);
pre_done(P = #pre{total = Total, ctx = {Req, T0}}, St = #st{spool = Spool0}) ->
    case py_web_spool:close(Spool0) of
        {ok, Spool} ->
            start(Req, {file, py_web_spool:path(Spool)}, done, Total, T0,
                  St#st{spool = Spool});
        {error, Reason} ->
            spool_error(close, Reason, P, St)
    end.

%% Before an app runs: a failed write ends the connection.
send_st(Data, St = #st{sock = Sock, t = T}) ->
    case py_web_transport:send(T, Sock, Data) of
        ok -> St;
        {error, _} -> stop(St)
    end.

%%====================================================================
%% The exchange loop
%%====================================================================

run(X = #x{stream = S}, St0 = #st{sock = Sock, cfg = Cfg}) ->
    St = case byte_size(St0#st.buf) < Cfg#cfg.read_buffer of
             true -> arm(St0);
             false -> disarm(St0)
         end,
    #st{ok = Ok, closed = Closed, error = Error, passive = Passive} = St,
    receive
        {asgi, S, Ev} -> event(Ev, X, St);
        {wsgi, S, Ev} -> event(Ev, X, St);
        {Ok, Sock, Data} ->
            St1 = St#st{buf = <<(St#st.buf)/binary, Data/binary>>},
            case X#x.want orelse X#x.credit > 0 of
                true ->
                    {X1, St2} = deliver_body(X, St1),
                    run(X1, St2);
                false ->
                    run(X, St1)
            end;
        {Passive, Sock} -> run(X, St#st{armed = false});
        {Closed, Sock} -> client_gone(X, St);
        {Error, Sock, _} -> client_gone(X, St);
        {py_web, drain} -> run(X, St#st{draining = true});
        {py_web, retire} -> run(X, St#st{draining = true, linger = true});
        {py_web, cut} -> cut(X, St)
    after wait_time(X, Cfg) ->
        timed_out(X, St)
    end.

event({accept, Subprotocol, Headers}, X = #x{ws = WsReq}, St) when WsReq =/= undefined ->
    %% (py_web_ws_conn re-arms the socket itself and takes a passive message left over)
    #st{sock = Sock, t = T, ok = Ok, closed = Closed, error = Error} = St,
    py_web_ws_conn:run(#{sock => Sock, t => T, messages => {Ok, Closed, Error},
                         buf => St#st.buf, cfg => St#st.cfg,
                         req => X#x.req, request => WsReq, stream => X#x.stream,
                         accept => {Subprotocol, Headers}, draining => St#st.draining,
                         t0 => X#x.t0});
event({close, _Code, _Reason}, X = #x{ws = WsReq, ex = Ex}, St) when WsReq =/= undefined ->
    %% websocket.close before accept: the handshake is denied with 403
    {Cmds1, Ex1} = py_web_exchange:event({start, 403, []}, Ex),
    {Cmds2, Ex2} = py_web_exchange:event({body, <<>>, false}, Ex1),
    perform(Cmds1 ++ Cmds2, X#x{ex = Ex2}, St);
event(Ev, X = #x{ex = Ex}, St) ->
    {Cmds, Ex1} = py_web_exchange:event(Ev, Ex),
    perform(Cmds, X#x{ex = Ex1}, St).

%% The app waiting for request body is the client's to answer (body_timeout),
%% unless a WSGI chunk is being held (the exchange's short hold).
body_wait(#x{want = W, ex = Ex}) ->
    W andalso not py_web_exchange:holding(Ex).

wait_time(X, Cfg) ->
    case body_wait(X) of
        true -> Cfg#cfg.body_timeout;
        false -> py_web_exchange:timeout(X#x.ex)
    end.

timed_out(X = #x{ex = Ex}, St) ->
    case body_wait(X) of
        true ->
            abandon(X),
            case py_web_exchange:started(Ex) of
                false -> reply_error(408, X, St);
                true -> access_log(X, St), stop(St)
            end;
        false ->
            {Cmds, Ex1} = py_web_exchange:timed_out(Ex),
            perform(Cmds, X#x{ex = Ex1}, St)
    end.

abandon(#x{backend = B, stream = S}) ->
    catch B:disconnect(S),
    ok.

-spec client_gone(#x{}, #st{}) -> no_return().
client_gone(X, St) ->
    abandon(X),
    access_log(X, St),
    close(St),
    exit(normal).

%% The server's shutdown time is up with this request in flight: the app is
%% told to stop; the client gets a 503 if nothing was sent yet, else the
%% connection ends without completing the response.
-spec cut(#x{}, #st{}) -> no_return().
cut(X = #x{ex = Ex}, St) ->
    abandon(X),
    case py_web_exchange:started(Ex) of
        false -> reply_error(503, X, St);
        true -> access_log(X, St), stop(St)
    end.

%% Carry out the exchange's commands -----------------------------------

perform([], X, St) ->
    run(X, St);
perform([{respond, Head, Body} | T], X, St) ->
    X1 = X#x{close = close(Head, X, St)},
    send([head(Head, X1, St), Body], X1, St),
    perform(T, X1, St);
perform([{stream, Head = #{framing := F, body := B}} | T], X, St) ->
    X1 = X#x{close = close(Head, X, St), chunked = B andalso F =:= chunked},
    send(head(Head, X1, St), X1, St),
    perform(T, X1, St);
perform([{data, D} | T], X = #x{chunked = true}, St) ->
    send(py_web_http:chunk(D), X, St),
    perform(T, X, St);
perform([{data, D} | T], X, St) ->
    send(D, X, St),
    perform(T, X, St);
perform([finish | T], X = #x{chunked = true}, St) ->
    send(py_web_http:last_chunk(), X, St),
    perform(T, X, St);
perform([finish | T], X, St) ->
    perform(T, X, St);
perform([{ack, N} | T], X = #x{backend = B, stream = S}, St) ->
    B:ack(S, N),
    perform(T, X, St);
perform([need_body | T], X, St) ->
    {X1, St1} = need_body(X, St),
    perform(T, X1, St1);
perform([disconnect | T], X, St) ->
    abandon(X),
    perform(T, X, St);
perform([{log, Reason} | T], X = #x{req = #req{method = M, raw_path = P}}, St) ->
    py_web_log:app_error(M, P, Reason),
    perform(T, X, St);
perform([abort | _], X, St) ->
    access_log(X, St),
    stop(St);
perform([done | _], X, St) ->
    access_log(X, St),
    after_response(X, unspool(St), ?DISCARD_LIMIT).

%% The connection closes after the response when the exchange says so, when
%% the server drains, or when a 100 Continue is still owed (the client will
%% not send the body the app left unread).
close(#{close := C}, #x{body = Body, continue = Cont}, #st{draining = D}) ->
    C orelse D orelse (Body =/= done andalso Cont).

head(Head, #x{close = Close, req = #req{version = V}}, St) ->
    head_bytes(Head, Close, V, St).

%% The bytes of a response head, with the server's Server, Date (unless
%% date_header is off: then as if the app had sent one) and --header fields.
head_bytes(Head, Close, V, #st{cfg = Cfg}) ->
    py_web_http:server_head(Head, Close, V, Cfg).

send(Data, X, St = #st{sock = Sock, t = T}) ->
    case py_web_transport:send(T, Sock, Data) of
        ok -> ok;
        {error, _} -> client_gone(X, St)
    end.

%% Request body --------------------------------------------------------

need_body(X = #x{body = done}, St) ->
    %% The last piece went with more_body false already (bodies are sent ahead
    %% within the window, so the app may have asked again before it arrived).
    {X, St};
need_body(X = #x{continue = true, ex = Ex}, St) ->
    %% (A 100 Continue cannot follow the final response's head: then the
    %% client may still send the body, or not; the connection closes after.)
    case py_web_exchange:started(Ex) of
        false ->
            send(?CONTINUE, X, St),
            deliver_body(X#x{continue = false, want = true, credit = ?BODY_WINDOW}, St);
        true ->
            deliver_body(X#x{want = true, credit = ?BODY_WINDOW}, St)
    end;
need_body(X, St) ->
    deliver_body(X#x{want = true, credit = ?BODY_WINDOW}, St).

deliver_body(X, St) ->
    case take_body(X, St) of
        {data, Data, X1, St1} -> give_body(Data, X1, St1);
        {more, X1, St1} -> {X1, St1};
        {error, Code} -> body_error(Code, X, St)
    end.

%% Take what the buffer holds of the request body.
take_body(X = #x{body = Body, total = Total}, St = #st{buf = Buf})
  when Buf =/= <<>>, Body =/= done ->
    case body_take(Body, Total, Buf, St) of
        {ok, <<>>, Body2 = {chunked, _}, _, St1} ->
            {more, X#x{body = Body2}, St1};
        {ok, Data, Body2, Total2, St1} ->
            {data, Data, X#x{body = Body2, total = Total2}, St1};
        {error, _} = E ->
            E
    end;
take_body(X, St) ->
    {more, X, St}.

give_body(Data, X = #x{backend = B, stream = S, body = Body, credit = Credit}, St) ->
    B:send_body(S, Data, Body =/= done),
    Left = case Body of
               done -> 0;
               _ -> max(0, Credit - byte_size(Data))
           end,
    {X#x{want = false, credit = Left}, St}.

-spec body_error(400 | 413 | 431, #x{}, #st{}) -> no_return().
body_error(Code, X = #x{ex = Ex}, St) ->
    abandon(X),
    case py_web_exchange:started(Ex) of
        false -> reply_error(Code, X, St);
        true -> access_log(X, St), stop(St)
    end.

%% After the response ---------------------------------------------------

after_response(#x{close = true}, St, _) ->
    stop(St);
after_response(#x{body = done}, St, _) ->
    request(St, undefined);
after_response(#x{continue = true}, St, _) ->
    stop(St);
after_response(_X, St, Budget) when Budget < 0 ->
    stop(St);
after_response(X, St = #st{sock = Sock, cfg = Cfg}, Budget) ->
    %% Read and drop the rest of an unread request body (bounded) so the
    %% connection can be kept.
    case take_body(X, St) of
        {data, Data, X1, St1} ->
            after_response(X1, St1, Budget - byte_size(Data));
        {more, X1, St1} ->
            St2 = arm(St1),
            #st{ok = Ok, closed = Closed, error = Error, passive = Passive} = St2,
            receive
                {Ok, Sock, Data} ->
                    after_response(X1, St2#st{buf = <<(St2#st.buf)/binary, Data/binary>>},
                                   Budget);
                {Passive, Sock} ->
                    after_response(X1, St2#st{armed = false}, Budget);
                {Closed, Sock} -> exit(normal);
                {Error, Sock, _} -> exit(normal);
                {py_web, drain} -> stop(St2);
                {py_web, retire} ->
                    after_response(X1, St2#st{draining = true, linger = true}, Budget);
                {py_web, cut} -> stop(St2)
            after Cfg#cfg.body_timeout ->
                stop(St2)
            end;
        {error, _} ->
            stop(St)
    end.

%% The access line of a request (py_web_access), for every way a request
%% ends: the app's response, the server's own error responses, a timeout, a
%% client that left (499 when no response had started), a shutdown cut.
access_log(X = #x{ex = Ex}, St) ->
    Status = case py_web_exchange:status(Ex) of
                 0 -> 499;
                 S -> S
             end,
    access_log(X#x.req, X#x.t0, Status, py_web_exchange:sent(Ex),
               py_web_exchange:headers(Ex), St).

access_log(Req, T0, Status, Sent, Headers, #st{cfg = #cfg{access_log = Format}, peer = Peer}) ->
    Client = case Req of
                 #req{peer = P} -> P;
                 undefined -> Peer
             end,
    py_web_access:log(Format, #{req => Req, peer => Client, status => Status, sent => Sent,
                                t0 => T0, headers => Headers}).

%% A response of the server's own (4xx/5xx), then close. Ctx is what is
%% known of the request: nothing (it could not be parsed), the request and
%% its start, or its exchange.
-spec reply_error(400..599, undefined | {#req{}, integer()} | #x{}, #st{}) -> no_return().
reply_error(Code, Ctx, St = #st{sock = Sock, t = T}) ->
    {Head, Body} = py_web_http:error_response(Code),
    _ = py_web_transport:send(T, Sock, [head_bytes(Head, true, {1, 1}, St), Body]),
    Size = byte_size(Body),
    case Ctx of
        undefined -> access_log(undefined, erlang:monotonic_time(microsecond), Code, Size, [], St);
        {Req, T0} -> access_log(Req, T0, Code, Size, [], St);
        #x{req = Req, t0 = T0} -> access_log(Req, T0, Code, Size, [], St)
    end,
    stop(St).

-spec stop(#st{}) -> no_return().
stop(St) ->
    close(St),
    exit(normal).

close(St = #st{t = T, sock = Sock}) ->
    _ = unspool(St),
    py_web_transport:close(T, Sock).

%% The request is over: its body file goes.
unspool(St = #st{spool = undefined}) ->
    St;
unspool(St = #st{spool = Spool}) ->
    py_web_spool:delete(Spool),
    St#st{spool = undefined}.

arm(St = #st{armed = true}) -> St;
arm(St = #st{sock = Sock, t = T}) ->
    case py_web_transport:active(T, Sock, ?ACTIVE_N) of
        ok -> St#st{armed = true};
        {error, _} -> stop(St)
    end.

%% No more packets as messages (the read buffer is full); those already sent stay
%% in the mailbox.
disarm(St = #st{armed = false}) -> St;
disarm(St = #st{sock = Sock, t = T}) ->
    case py_web_transport:active(T, Sock, false) of
        ok -> St#st{armed = false};
        {error, _} -> stop(St)
    end.
