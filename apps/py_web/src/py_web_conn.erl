%% @doc One HTTP/1.1 connection: one process, requests handled in order
%% (keep-alive and pipelining), no extra process per request.
%%
%% The socket is in raw passive mode and read with `{active, once}' so
%% that the process can wait on the socket, the app's stream events
%% (`{asgi | wsgi, Stream, Event}') and the listener's drain message at
%% the same time. Request heads are parsed with erlang:decode_packet/3
%% (py_web_http); the body is handed to the app incrementally
%% (`need_body' / send_body) and the response is written as the app
%% produces it, acknowledging each chunk after it is written
%% (backpressure).
-module(py_web_conn).

-include("py_web.hrl").

%% Each need_body from the app lets this many more request body bytes go to it as they
%% arrive, without waiting for the next need_body: an upload streams at socket speed
%% (no round trip per read) while the app still bounds what is buffered ahead for it.
-define(BODY_WINDOW, 1048576).

-export([start/2, init/2]).

-record(st, {
    sock :: inet:socket() | ssl:sslsocket(),
    cfg :: #cfg{},
    ok :: tcp | ssl,
    closed :: tcp_closed | ssl_closed,
    error :: tcp_error | ssl_error,
    buf = <<>> :: binary(),
    armed = false :: boolean(),
    peer :: {binary(), inet:port_number()},
    local :: {binary(), inet:port_number()},
    draining = false :: boolean()
}).

%% One request/response exchange with the app.
-record(x, {
    stream :: term(),
    backend :: module(),
    req :: #req{},
    body :: done | {cl, pos_integer()} | {chunked, py_web_http:chunk_state()},
    total = 0 :: non_neg_integer(),        %% request body bytes read
    continue = false :: boolean(),         %% 100 Continue still owed
    want = false :: boolean(),             %% app waits for body
    credit = 0 :: non_neg_integer(),       %% body bytes that may be sent ahead
    resp = none :: none
                 | {pending, binary(), py_web_http:resp_info()}
                 | {held, binary(), py_web_http:resp_info(), binary()}
                 | sending | complete,
    framing = none :: none | cl | chunked | close,
    code = 0 :: integer(),
    head = false :: boolean(),             %% HEAD request: no body sent
    close = false :: boolean(),
    sent = 0 :: non_neg_integer(),         %% response body bytes
    clen :: undefined | non_neg_integer(), %% app's Content-Length
    t0 :: integer() | undefined
}).

%%====================================================================
%% Start
%%====================================================================

%% @doc Spawn a connection process for an accepted socket. The caller
%% must then hand the socket over (controlling_process) and send
%% `{py_web_go, Socket}'.
-spec start(#cfg{}, term()) -> {ok, pid()}.
start(Cfg, Sock) ->
    {ok, proc_lib:spawn(?MODULE, init, [Cfg, Sock])}.

%% @private
-spec init(#cfg{}, term()) -> no_return().
init(Cfg = #cfg{listener = L}, Sock0) ->
    case L of
        undefined -> ok;
        _ -> L ! {py_web_conn, self()}, link(L)
    end,
    receive
        {py_web_go, Sock0} -> ok
    after 10000 ->
        exit(normal)
    end,
    Sock = handshake(Cfg, Sock0),
    case addresses(Cfg#cfg.transport, Sock) of
        {ok, Peer, Local} ->
            {Ok, Closed, Error} = tags(Cfg#cfg.transport),
            St = #st{sock = Sock, cfg = Cfg, ok = Ok, closed = Closed,
                     error = Error, peer = Peer, local = Local},
            request(St, undefined);
        error ->
            close(Cfg#cfg.transport, Sock),
            exit(normal)
    end.

handshake(#cfg{transport = gen_tcp}, Sock) -> Sock;
handshake(#cfg{transport = ssl, handshake_timeout = T}, Sock) ->
    case ssl:handshake(Sock, T) of
        {ok, S} -> S;
        {error, _} -> exit(normal)
    end.

tags(gen_tcp) -> {tcp, tcp_closed, tcp_error};
tags(ssl) -> {ssl, ssl_closed, ssl_error}.

addresses(gen_tcp, S) -> addrs(inet:peername(S), inet:sockname(S));
addresses(ssl, S) -> addrs(ssl:peername(S), ssl:sockname(S)).

addrs({ok, {PIp, PPort}}, {ok, {LIp, LPort}}) ->
    {ok, {ip(PIp), PPort}, {ip(LIp), LPort}};
addrs(_, _) ->
    error.

ip({127, 0, 0, 1}) -> <<"127.0.0.1">>;
ip(Ip) -> list_to_binary(inet:ntoa(Ip)).

%%====================================================================
%% Reading request heads
%%====================================================================

request(St = #st{draining = true, buf = <<>>}, _) ->
    stop(St);
request(St = #st{buf = <<>>}, Deadline) ->
    wait_head(St, Deadline);
request(St = #st{buf = Buf, cfg = Cfg}, Deadline) ->
    case py_web_http:parse_request(Buf, Cfg) of
        {ok, Req, Rest} ->
            exchange(Req, St#st{buf = Rest});
        {more, Buf2} ->
            wait_head(St#st{buf = Buf2}, Deadline);
        {error, Code} ->
            reply_error(Code, St)
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
    #st{ok = Ok, closed = Closed, error = Error} = St,
    receive
        {Ok, Sock, Data} ->
            NewBuf = <<Buf/binary, Data/binary>>,
            St1 = St#st{buf = NewBuf, armed = false},
            %% Re-parse only when a line may have been completed, so a
            %% client sending a byte at a time costs O(n), not O(n^2).
            case Buf =/= <<>>
                 andalso byte_size(NewBuf) =< Cfg#cfg.max_request_line
                 andalso binary:match(Data, <<"\n">>) =:= nomatch of
                true -> wait_head(St1, D);
                false -> request(St1, D)
            end;
        {Closed, Sock} ->
            exit(normal);
        {Error, Sock, _} ->
            exit(normal);
        {py_web, drain} when Buf =:= <<>> ->
            stop(St);
        {py_web, drain} ->
            wait_head(St#st{draining = true}, D)
    after Timeout ->
        case Buf of
            <<>> -> stop(St);               %% idle keep-alive timeout
            _ -> reply_error(408, St)       %% header read timeout
        end
    end.

now_ms() -> erlang:monotonic_time(millisecond).

%%====================================================================
%% One exchange
%%====================================================================

exchange(Req0, St = #st{cfg = Cfg, peer = Peer, local = Local, buf = Buf}) ->
    Req = Req0#req{peer = Peer, local = Local, scheme = Cfg#cfg.scheme},
    T0 = case Cfg#cfg.access_log of
             true -> now_ms();
             false -> undefined
         end,
    case body_init(Req, Buf, Cfg) of
        {error, Code} ->
            reply_error(Code, St);
        {ok, Initial, Body, Total, Rest} ->
            More = Body =/= done,
            X0 = #x{req = Req, body = Body, total = Total,
                    continue = Req#req.expect andalso More,
                    head = Req#req.method =:= <<"HEAD">>, t0 = T0},
            case start_app(Req, Cfg, Initial, More) of
                {ok, Backend, Stream} ->
                    run(X0#x{stream = Stream, backend = Backend},
                        St#st{buf = Rest});
                {error, Reason} ->
                    log_app_error(Req, Reason),
                    reply_error(500, St#st{buf = Rest})
            end
    end.

start_app(Req, Cfg = #cfg{interface = I, backend = B}, Body, More) ->
    try
        case I of
            asgi -> wrap(B, py_web_asgi:start(Req, Cfg, Body, More));
            wsgi -> wrap(B, py_web_wsgi:start(Req, Cfg, Body, More))
        end
    catch
        C:R:Stack -> {error, {C, R, Stack}}
    end.

wrap(B, {ok, Stream}) -> {ok, B, Stream};
wrap(_, {error, _} = E) -> E;
wrap(_, Other) -> {error, {bad_return, Other}}.

body_init(#req{chunked = true}, Buf, Cfg) ->
    chunked_body(Buf, py_web_http:chunked_init(), 0, Cfg);
body_init(#req{clen = undefined}, Buf, _Cfg) ->
    {ok, <<>>, done, 0, Buf};
body_init(#req{clen = 0}, Buf, _Cfg) ->
    {ok, <<>>, done, 0, Buf};
body_init(#req{clen = N}, _Buf, #cfg{max_body = Max})
  when is_integer(Max), N > Max ->
    {error, 413};
body_init(#req{clen = N}, Buf, _Cfg) when byte_size(Buf) >= N ->
    <<Body:N/binary, Rest/binary>> = Buf,
    {ok, Body, done, N, Rest};
body_init(#req{clen = N}, Buf, _Cfg) ->
    {ok, Buf, {cl, N - byte_size(Buf)}, byte_size(Buf), <<>>}.

%% Decode what Buf holds of a chunked body; Total counts bytes so far.
chunked_body(Buf, CS, Total, #cfg{max_body = Max}) ->
    Limit = case Max of
                infinity -> 1 bsl 40;
                _ -> Max - Total + 1
            end,
    case py_web_http:decode_chunked(Buf, CS, Limit) of
        {ok, Data, Rest, CS2} ->
            Bin = iolist_to_binary(Data),
            Total2 = Total + byte_size(Bin),
            if
                is_integer(Max), Total2 > Max -> {error, 413};
                CS2 =:= done -> {ok, Bin, done, Total2, Rest};
                true -> {ok, Bin, {chunked, CS2}, Total2, Rest}
            end;
        {error, bad_chunk} ->
            {error, 400}
    end.

%%====================================================================
%% The exchange loop
%%====================================================================

run(X = #x{stream = S}, St0 = #st{sock = Sock, cfg = Cfg}) ->
    St = case byte_size(St0#st.buf) < Cfg#cfg.read_buffer of
             true -> arm(St0);
             false -> St0
         end,
    #st{ok = Ok, closed = Closed, error = Error} = St,
    receive
        {asgi, S, Ev} -> event(Ev, X, St);
        {wsgi, S, Ev} -> event(Ev, X, St);
        {Ok, Sock, Data} ->
            St1 = St#st{buf = <<(St#st.buf)/binary, Data/binary>>,
                        armed = false},
            case X#x.want orelse X#x.credit > 0 of
                true -> deliver_body(X, St1);
                false -> run(X, St1)
            end;
        {Closed, Sock} -> client_gone(X, St);
        {Error, Sock, _} -> client_gone(X, St);
        {py_web, drain} -> run(X, St#st{draining = true})
    after timeout(X, Cfg) ->
        timed_out(X, St)
    end.

timeout(#x{resp = {held, _, _, _}}, Cfg) -> Cfg#cfg.wsgi_hold;
timeout(#x{want = true}, Cfg) -> Cfg#cfg.body_timeout;
timeout(#x{resp = none}, Cfg) -> Cfg#cfg.request_timeout;
timeout(#x{resp = {pending, _, _}}, Cfg) -> Cfg#cfg.request_timeout;
timeout(#x{resp = complete}, Cfg) -> Cfg#cfg.request_timeout;
timeout(_, _) -> infinity.

timed_out(X = #x{resp = {held, Line, Info, Chunk}}, St) ->
    %% A WSGI body chunk with no Content-Length and nothing after it yet:
    %% stream it (chunked) rather than wait.
    X1 = start_stream(Line, Info, X, St),
    run(send_chunk(Chunk, X1, St), St);
timed_out(X = #x{want = true, resp = none}, St) ->
    abandon(X),
    reply_error(408, St);
timed_out(X = #x{resp = complete}, St) ->
    %% The response is on the wire but the app has not returned.
    finish(X, St);
timed_out(X = #x{resp = R, req = Req}, St) when R =:= none; element(1, R) =:= pending ->
    logger:warning("py_web: ~s ~s: no response within the request timeout",
                   [Req#req.method, Req#req.raw_path],
                   #{py_web => server}),
    abandon(X),
    reply_error(504, St);
timed_out(X, St) ->
    abandon(X),
    stop(St).

abandon(#x{backend = B, stream = S}) ->
    catch B:disconnect(S),
    ok.

client_gone(X, St) ->
    abandon(X),
    close(St),
    exit(normal).

%% Stream events ------------------------------------------------------

event({start, Status, Headers}, X = #x{resp = none}, St) ->
    case {py_web_http:status_line(Status), py_web_http:response_info(Headers)} of
        {error, _} ->
            app_error({bad_response, {status, Status}}, X, St);
        {_, error} ->
            app_error({bad_response, {headers, Headers}}, X, St);
        {Line, Info} ->
            run(X#x{resp = {pending, Line, Info},
                    code = py_web_http:status_code(Status),
                    clen = maps:get(clen, Info)}, St)
    end;
event({start, _, _}, X, St) ->
    app_error({bad_response, start_twice}, X, St);
%% ASGI body
event({body, Chunk, More}, X = #x{resp = {pending, Line, Info}}, St)
  when is_binary(Chunk) ->
    X1 = case More of
             false -> send_full(Line, Info, Chunk, X, St);
             true -> send_chunk(Chunk, start_stream(Line, Info, X, St), St)
         end,
    ack_more(X1, Chunk, More),
    run(X1, St);
event({body, Chunk, More}, X = #x{resp = sending}, St) when is_binary(Chunk) ->
    X1 = send_chunk(Chunk, X, St),
    X2 = case More of
             true -> X1;
             false -> end_body(X1, St)
         end,
    ack_more(X2, Chunk, More),
    run(X2, St);
%% WSGI body (the end is `done')
event({body, Chunk}, X = #x{resp = {pending, Line, Info}}, St)
  when is_binary(Chunk) ->
    case maps:get(clen, Info) of
        undefined when X#x.code >= 200, X#x.code =/= 204, X#x.code =/= 304 ->
            %% Hold the first chunk: if `done' follows, the response gets
            %% a Content-Length instead of chunked framing.
            ack(X, Chunk),
            run(X#x{resp = {held, Line, Info, Chunk}}, St);
        _ ->
            X1 = send_chunk(Chunk, start_stream(Line, Info, X, St), St),
            ack(X1, Chunk),
            run(X1, St)
    end;
event({body, Chunk}, X = #x{resp = {held, Line, Info, Held}}, St)
  when is_binary(Chunk) ->
    X1 = start_stream(Line, Info, X, St),
    X2 = send_chunk(Chunk, send_chunk(Held, X1, St), St),
    ack(X2, Chunk),
    run(X2, St);
event({body, Chunk}, X = #x{resp = sending}, St) when is_binary(Chunk) ->
    X1 = send_chunk(Chunk, X, St),
    ack(X1, Chunk),
    run(X1, St);
event({body, _, _}, X, St) ->
    app_error({bad_response, body}, X, St);
event({body, _}, X, St) ->
    app_error({bad_response, body}, X, St);
event(need_body, X, St) ->
    need_body(X, St);
event({trailers, _, _}, X, St) ->
    %% Trailers are not advertised in the scope's extensions; ignored.
    run(X, St);
event(done, X, St) ->
    done(X, St);
event({error, Reason}, X, St) ->
    app_error(Reason, X, St);
event(Other, X, St) ->
    app_error({bad_response, Other}, X, St).

ack(#x{backend = B, stream = S}, Chunk) ->
    B:ack(S, byte_size(Chunk)).

%% An ASGI app's send() only ever waits for acks before its last body message: after that
%% one there is nothing to acknowledge (and one round trip per request less).
ack_more(X, Chunk, true) -> ack(X, Chunk);
ack_more(_X, _Chunk, false) -> ok.

done(#x{resp = none, req = Req}, St) ->
    log_app_error(Req, no_response),
    reply_error(500, St);
done(X = #x{resp = {pending, Line, Info}}, St) ->
    finish(send_full(Line, Info, <<>>, X, St), St);
done(X = #x{resp = {held, Line, Info, Chunk}}, St) ->
    finish(send_full(Line, Info, Chunk, X, St), St);
done(X = #x{resp = sending}, St) ->
    finish(end_body(X, St), St);
done(X = #x{resp = complete}, St) ->
    finish(X, St).

app_error(Reason, X = #x{req = Req, resp = Resp}, St) ->
    log_app_error(Req, Reason),
    abandon_if_bad(Reason, X),
    case Resp of
        sending -> stop(St);
        complete -> stop(St);
        _ -> reply_error(error_status(Reason), St)
    end.

%% The app's worker process died (processes mode): 502, as a proxy answers for a
%% backend that went away; any other failure of the app is a 500.
error_status({worker_exit, _}) -> 502;
error_status(_) -> 500.

%% A protocol violation by the app: the stream may still be running.
abandon_if_bad({bad_response, _}, X) -> abandon(X);
abandon_if_bad(_, _) -> ok.

%% Request body --------------------------------------------------------

need_body(X = #x{body = done}, St) ->
    %% The last piece went with more_body false already (bodies are sent ahead
    %% within the window, so the app may have asked again before it arrived).
    run(X, St);
need_body(X = #x{continue = true, resp = none}, St) ->
    send(<<"HTTP/1.1 100 Continue\r\n\r\n">>, X, St),
    deliver_body(X#x{continue = false, want = true, credit = ?BODY_WINDOW}, St);
need_body(X, St) ->
    deliver_body(X#x{want = true, credit = ?BODY_WINDOW}, St).

deliver_body(X, St) ->
    case take_body(X, St) of
        {data, Data, X1, St1} -> give_body(Data, X1, St1);
        {more, X1, St1} -> run(X1, St1);
        {error, Code} -> body_error(Code, X, St)
    end.

%% Take what the buffer holds of the request body.
take_body(X = #x{body = {cl, Left}}, St = #st{buf = Buf}) when Buf =/= <<>> ->
    {Data, Rest, Body} =
        case byte_size(Buf) >= Left of
            true ->
                <<D:Left/binary, R/binary>> = Buf,
                {D, R, done};
            false ->
                {Buf, <<>>, {cl, Left - byte_size(Buf)}}
        end,
    {data, Data, X#x{body = Body, total = X#x.total + byte_size(Data)},
     St#st{buf = Rest}};
take_body(X = #x{body = {chunked, CS}, total = Total}, St = #st{buf = Buf, cfg = Cfg})
  when Buf =/= <<>> ->
    case chunked_body(Buf, CS, Total, Cfg) of
        {ok, <<>>, Body = {chunked, _}, _, Rest} ->
            {more, X#x{body = Body}, St#st{buf = Rest}};
        {ok, Data, Body, Total2, Rest} ->
            {data, Data, X#x{body = Body, total = Total2}, St#st{buf = Rest}};
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
    run(X#x{want = false, credit = Left}, St).

body_error(Code, X = #x{resp = Resp}, St) ->
    abandon(X),
    case Resp of
        none -> reply_error(Code, St);
        {pending, _, _} -> reply_error(Code, St);
        _ -> stop(St)
    end.

%% Response -----------------------------------------------------------

no_body(Code) -> Code < 200 orelse Code =:= 204 orelse Code =:= 304.

%% The whole response body is known: one write, with Content-Length.
send_full(Line, Info, Body, X = #x{code = Code, head = Head}, St) ->
    NoBody = no_body(Code),
    {Extra, Framing} =
        case {NoBody, maps:get(clen, Info)} of
            {true, _} -> {[], none};
            {false, undefined} ->
                {[<<"content-length: ">>, integer_to_binary(byte_size(Body)),
                  <<"\r\n">>], cl};
            {false, _} -> {[], cl}
        end,
    %% An app Content-Length that does not match the body: close after.
    Mismatch = Framing =:= cl andalso not Head andalso
        maps:get(clen, Info) =/= undefined andalso
        maps:get(clen, Info) =/= byte_size(Body),
    X1 = X#x{framing = Framing, close = close(X, Info, Framing, St) orelse Mismatch},
    HeadIo = head(Line, Info, Extra, X1, St),
    case Head orelse NoBody of
        true -> send(HeadIo, X1, St);
        false -> send([HeadIo, Body], X1, St)
    end,
    X1#x{resp = complete, sent = byte_size(Body)}.

%% Send the head of a streamed response.
start_stream(Line, Info, X = #x{code = Code, req = Req}, St) ->
    {Extra, Framing} =
        case {no_body(Code), maps:get(clen, Info), Req#req.version} of
            {true, _, _} -> {[], none};
            {false, undefined, {1, 1}} ->
                {<<"transfer-encoding: chunked\r\n">>, chunked};
            {false, undefined, {1, 0}} -> {[], close};
            {false, _, _} -> {[], cl}
        end,
    X1 = X#x{framing = Framing, close = close(X, Info, Framing, St)},
    send(head(Line, Info, Extra, X1, St), X1, St),
    X1#x{resp = sending}.

send_chunk(Chunk, X = #x{head = true}, _St) ->
    X#x{sent = X#x.sent + byte_size(Chunk)};
send_chunk(Chunk, X = #x{framing = chunked}, St) ->
    send(py_web_http:chunk(Chunk), X, St),
    X#x{sent = X#x.sent + byte_size(Chunk)};
send_chunk(_Chunk, X = #x{framing = none}, _St) ->
    X;
send_chunk(Chunk, X, St) ->
    send(Chunk, X, St),
    X#x{sent = X#x.sent + byte_size(Chunk)}.

end_body(X = #x{framing = chunked, head = false}, St) ->
    send(py_web_http:last_chunk(), X, St),
    X#x{resp = complete};
end_body(X = #x{framing = cl, head = false, clen = CL, sent = Sent}, _St)
  when CL =/= Sent ->
    X#x{resp = complete, close = true};
end_body(X, _St) ->
    X#x{resp = complete}.

%% (A request body the app left unread is discarded after the response,
%% see after_response/2; but if 100 Continue is still owed the client will
%% not send it, so the connection must close.)
close(#x{req = Req, body = Body, continue = Cont}, Info, Framing, #st{draining = D}) ->
    not Req#req.keepalive orelse D orelse maps:get(close, Info)
        orelse Framing =:= close orelse (Body =/= done andalso Cont).

head(Line, Info, Extra, #x{close = Close, req = Req},
     #st{cfg = #cfg{server_line = ServerLine}}) ->
    Conn = case {Close, Req#req.version} of
               {true, _} -> <<"connection: close\r\n">>;
               {false, {1, 0}} -> <<"connection: keep-alive\r\n">>;
               {false, _} -> <<>>
           end,
    Date = case maps:get(date, Info) of
               true -> <<>>;
               false -> py_web_date:header()
           end,
    Server = case maps:get(server, Info) of
                 true -> <<>>;
                 false -> ServerLine
             end,
    [<<"HTTP/1.1 ">>, Line, <<"\r\n">>, maps:get(headers, Info), Extra, Conn,
     Date, Server, <<"\r\n">>].

send(Data, X, St = #st{sock = Sock, cfg = #cfg{transport = T}}) ->
    case T:send(Sock, Data) of
        ok -> ok;
        {error, _} -> client_gone(X, St)
    end.

%% After the response ---------------------------------------------------

finish(X, St) ->
    access_log(X, St),
    after_response(X, St, 1024 * 1024).

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
            #st{ok = Ok, closed = Closed, error = Error} = St2,
            receive
                {Ok, Sock, Data} ->
                    after_response(X1, St2#st{buf = <<(St2#st.buf)/binary, Data/binary>>,
                                              armed = false}, Budget);
                {Closed, Sock} -> exit(normal);
                {Error, Sock, _} -> exit(normal);
                {py_web, drain} -> stop(St2)
            after Cfg#cfg.body_timeout ->
                stop(St2)
            end;
        {error, _} ->
            stop(St)
    end.

access_log(#x{t0 = undefined}, _St) ->
    ok;
access_log(#x{t0 = T0, req = Req, code = Code, sent = Sent}, #st{peer = {H, P}}) ->
    #req{method = M, raw_path = Path, qs = Qs, version = {Maj, Min}} = Req,
    Target = case Qs of
                 <<>> -> Path;
                 _ -> [Path, $?, Qs]
             end,
    logger:info("~s:~B - \"~s ~s HTTP/~B.~B\" ~B ~B ~Bms",
                [H, P, M, Target, Maj, Min, Code, Sent, now_ms() - T0],
                #{py_web => access}).

%% Server-generated error response, then close.
reply_error(Code, St = #st{cfg = Cfg, sock = Sock}) ->
    _ = (Cfg#cfg.transport):send(Sock, py_web_http:error_response(Code, Cfg)),
    stop(St).

stop(St) ->
    close(St),
    exit(normal).

close(#st{cfg = #cfg{transport = T}, sock = Sock}) ->
    close(T, Sock).

close(gen_tcp, Sock) -> gen_tcp:close(Sock);
close(ssl, Sock) -> ssl:close(Sock).

arm(St = #st{armed = true}) -> St;
arm(St = #st{sock = Sock, cfg = #cfg{transport = gen_tcp}}) ->
    case inet:setopts(Sock, [{active, once}]) of
        ok -> St#st{armed = true};
        {error, _} -> exit(normal)
    end;
arm(St = #st{sock = Sock, cfg = #cfg{transport = ssl}}) ->
    case ssl:setopts(Sock, [{active, once}]) of
        ok -> St#st{armed = true};
        {error, _} -> exit(normal)
    end.

log_app_error(#req{method = M, raw_path = P}, {python, Type, Msg, Tb}) ->
    logger:error("py_web: ~s ~s: ~ts: ~ts~n~ts",
                 [M, P, Type, Msg, [[L, $\n] || L <- tb(Tb)]],
                 #{py_web => server});
log_app_error(#req{method = M, raw_path = P}, Reason) ->
    logger:error("py_web: ~s ~s: app error: ~0p", [M, P, Reason],
                 #{py_web => server}).

tb(Tb) when is_list(Tb) -> [L || L <- Tb, is_binary(L) orelse is_list(L)];
tb(Tb) when is_binary(Tb) -> [Tb];
tb(_) -> [].
