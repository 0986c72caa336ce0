%% @doc One request/response exchange with the app, as pure data: each event
%% of the app's stream (py_web_backend:event()) and each timeout becomes a
%% list of commands (command()) that the front end carries out with its own
%% library: the embedded server (py_web_conn) on its socket, py_web_cowboy
%% with cowboy_req, py_web_elli with elli_request. Every framing decision
%% is made here, so all three answer alike:
%%
%% <ul>
%% <li>A response whose body is known when its head is due goes out in one
%%     piece with a Content-Length: the app's, or the body's size. An ASGI
%%     body with `more_body' false is such a body; so is a WSGI body of one
%%     chunk followed by the app's return, which is why the first WSGI chunk
%%     of a response without Content-Length is held for up to `wsgi_hold' ms
%%     before streaming starts; and a WSGI chunk as long as the app's
%%     Content-Length.</li>
%% <li>Otherwise the body is streamed: under the app's Content-Length,
%%     chunked to HTTP/1.1, until the connection closes for HTTP/1.0. A front
%%     end that cannot stream a response that way (caps()) gets it whole,
%%     collected here.</li>
%% <li>HEAD: the head the GET would have, no body; 1xx, 204 and 304: no body
%%     and no framing header (but a 304 keeps the app's Content-Length).</li>
%% <li>A body longer or shorter than the app's Content-Length is an app
%%     error: a 500 if nothing was sent yet, else the connection is ended
%%     without completing the response. So is any app error once the head
%%     went out: the client must not take a cut response for a whole one.
%%     Before the head, an app whose worker process died
%%     (`{worker_exit, Status}', erlang_python's processes mode) gets a 502,
%%     any other app error a 500.</li>
%% <li>No response within `request_timeout' (from the request, or from the
%%     app's last sign of life before its head) is a 504; the app is told to
%%     stop.</li>
%% </ul>
%%
%% The exchange does not read the request body (the app asks with
%% `need_body'; each front end has its own way to read) and does not decide
%% what only the connection knows (a server draining, a 100 Continue still
%% owed): those add to the head's `close'.
-module(py_web_exchange).

-include("py_web.hrl").

-export([new/3, event/2, timeout/1, timed_out/1, holding/1, started/1, status/1, sent/1,
         headers/1]).
-export([caps/1]).
-export_type([t/0, command/0, head/0, framing/0, caps/0]).

%% How a response body is delimited on the wire: by the Content-Length
%% `length', chunked, by closing the connection (HTTP/1.0), or not at all
%% (no body: 1xx, 204, 304, and HEAD when no length is known).
-type framing() :: length | chunked | close | none.

%% A response head. `headers' are the app's, minus the framing and
%% connection fields (Content-Length, Transfer-Encoding, Connection): the
%% front end adds them from `framing', `length' and `close'. `body' is false
%% when no body bytes go out (HEAD, 1xx, 204, 304). `date' and `server' say
%% whether the app set those headers itself.
-type head() :: #{status := 100..999,
                  line := binary(),
                  headers := [{binary(), binary()}],
                  framing := framing(),
                  length := non_neg_integer() | undefined,
                  body := boolean(),
                  close := boolean(),
                  date := boolean(),
                  server := boolean()}.

%% What the front end must do, in order:
%% <ul>
%% <li>`{respond, Head, Body}': the whole response (Body is empty when
%%     `body' is false);</li>
%% <li>`{stream, Head}': the head of a response whose body follows as
%%     `{data, Bytes}' (never empty; each framed as the head says) and ends
%%     with `finish' (the last chunk when chunked);</li>
%% <li>`{ack, Bytes}': call the backend's ack/2 (after the bytes before it
%%     were written);</li>
%% <li>`need_body': the app waits for request body (backend send_body/3);</li>
%% <li>`disconnect': call the backend's disconnect/1 (the app may still be
%%     running and must stop);</li>
%% <li>`{log, Reason}': the app failed (py_web_log:app_error/3);</li>
%% <li>`abort': end the connection now, the response incomplete (no last
%%     chunk); nothing follows;</li>
%% <li>`done': the exchange is over (the app returned or was told to
%%     stop); nothing follows.</li>
%% </ul>
-type command() :: {respond, head(), iodata()}
                 | {stream, head()}
                 | {data, binary()}
                 | finish
                 | {ack, non_neg_integer()}
                 | need_body
                 | disconnect
                 | {log, term()}
                 | abort
                 | done.

%% What a front end can send besides a response in one piece: a body under
%% the app's Content-Length (`length'); chunked bodies for any status
%% (`all') or only for 200 (`only_200'); a body ended by closing the
%% connection (`close', HTTP/1.0); a streamed head for HEAD (`head').
-type caps() :: #{length := boolean(), chunked := all | only_200, close := boolean(),
                  head := boolean()}.

%% A head as the app gave it, before the framing is decided.
-type app_head() :: #{status := 100..999, line := binary(),
                      headers := [{binary(), binary()}],
                      length := non_neg_integer() | undefined,
                      close := boolean(), date := boolean(), server := boolean()}.

-record(ex, {
    head_req :: boolean(),                 %% a HEAD request
    http10 :: boolean(),
    keepalive :: boolean(),
    caps :: caps(),
    hold :: non_neg_integer(),
    request_timeout :: timeout(),
    state = none :: none
                  | {pending, app_head()}             %% start seen, no body yet
                  | {held, app_head(), binary()}      %% WSGI: first chunk held
                  | {buffer, app_head(), iodata(), non_neg_integer()}
                  | streaming | complete | over,
    framing = none :: framing(),           %% of the streamed response
    body = true :: boolean(),              %% body bytes go out
    left :: undefined | non_neg_integer(), %% bytes still due under Content-Length
    status = 0 :: integer(),
    sent = 0 :: non_neg_integer(),
    headers = [] :: [{binary(), binary()}]  %% of the response head sent
}).

-opaque t() :: #ex{}.

%% @doc The exchange of one request.
-spec new(#req{}, #cfg{}, caps()) -> t().
new(#req{method = M, version = V, keepalive = K}, #cfg{wsgi_hold = Hold, request_timeout = T},
    Caps) ->
    #ex{head_req = M =:= <<"HEAD">>, http10 = V =:= {1, 0}, keepalive = K, caps = Caps,
        hold = Hold, request_timeout = T}.

%% @doc The caps of a front end: the embedded server and Cowboy stream
%% every way HTTP/1.1 allows; Elli's handler contract only streams a 200,
%% chunked, to HTTP/1.1 (elli_request:chunk_ref/1).
-spec caps(server | cowboy | elli) -> caps().
caps(elli) -> #{length => false, chunked => only_200, close => false, head => false};
caps(_) -> #{length => true, chunked => all, close => true, head => true}.

%% @doc The commands for one event of the app's stream.
-spec event(py_web_backend:event(), t()) -> {[command()], t()}.
event(_, Ex = #ex{state = over}) ->
    {[], Ex};
event({start, Status, Headers, Next}, Ex) ->
    %% a start coalesced with the event after it (py_web_backend asks for that)
    {Cmds1, Ex1} = event({start, Status, Headers}, Ex),
    {Cmds2, Ex2} = event(Next, Ex1),
    {Cmds1 ++ Cmds2, Ex2};
event({then, Last, Next}, Ex) ->
    %% a response's last event coalesced with what came next, its end as a rule
    {Cmds1, Ex1} = event(Last, Ex),
    {Cmds2, Ex2} = event(Next, Ex1),
    {Cmds1 ++ Cmds2, Ex2};
event({start, Status, Headers}, Ex = #ex{state = none}) ->
    case {py_web_http:status_line(Status), py_web_http:response_head(Headers)} of
        {error, _} ->
            bad({status, Status}, Ex);
        {_, error} ->
            bad({headers, Headers}, Ex);
        {Line, H} ->
            %% (a valid status line has a valid code)
            Code = py_web_http:status_code(Status),
            true = is_integer(Code),
            {[], Ex#ex{state = {pending, H#{status => Code, line => Line}}, status = Code}}
    end;
event({start, _, _}, Ex) ->
    bad(start_twice, Ex);
%% ASGI body (each but the last is acknowledged)
event({body, Chunk, false}, Ex = #ex{state = {pending, H}}) when is_binary(Chunk) ->
    respond(H, Chunk, Ex, []);
event({body, Chunk, More}, Ex = #ex{state = {pending, H}}) when is_binary(Chunk) ->
    start_stream(H, [Chunk], ack(Chunk, More), Ex);
event({body, Chunk, More}, Ex = #ex{state = streaming}) when is_binary(Chunk) ->
    stream_body(Chunk, More, ack(Chunk, More), Ex);
event({body, Chunk, More}, Ex = #ex{state = {buffer, H, Acc, N}}) when is_binary(Chunk) ->
    buffer(H, [Acc, Chunk], N + byte_size(Chunk), More, ack(Chunk, More), Ex);
%% WSGI body (every chunk acknowledged; `done' ends it)
event({body, Chunk}, Ex = #ex{state = {pending, H = #{length := undefined, status := Code}},
                              hold = Hold})
  when is_binary(Chunk), Hold > 0, Code >= 200, Code =/= 204, Code =/= 304 ->
    {ack(Chunk, true), Ex#ex{state = {held, H, Chunk}}};
event({body, Chunk}, Ex = #ex{state = {pending, H = #{length := Len}}})
  when is_binary(Chunk), byte_size(Chunk) =:= Len ->
    respond(H, Chunk, Ex, ack(Chunk, true));
event({body, Chunk}, Ex = #ex{state = {pending, H}}) when is_binary(Chunk) ->
    start_stream(H, [Chunk], ack(Chunk, true), Ex);
event({body, Chunk}, Ex = #ex{state = {held, H, Held}}) when is_binary(Chunk) ->
    start_stream(H, [Held, Chunk], ack(Chunk, true), Ex);
event({body, Chunk}, Ex = #ex{state = streaming}) when is_binary(Chunk) ->
    stream_body(Chunk, true, ack(Chunk, true), Ex);
event({body, Chunk}, Ex = #ex{state = {buffer, H, Acc, N}}) when is_binary(Chunk) ->
    buffer(H, [Acc, Chunk], N + byte_size(Chunk), true, ack(Chunk, true), Ex);
event({body, Chunk}, Ex = #ex{state = complete}) when is_binary(Chunk) ->
    %% a WSGI body that went whole with its Content-Length, and then more
    bad({content_length, too_long}, Ex);
event(need_body, Ex) ->
    {[need_body], Ex};
event({trailers, _, _}, Ex) ->
    %% Trailers are not offered in the scope's extensions; ignored.
    {[], Ex};
event(done, Ex = #ex{state = none}) ->
    fail({log, no_response}, 500, [], Ex);
event(done, Ex = #ex{state = {pending, H}}) ->
    respond(H, <<>>, Ex, [done]);
event(done, Ex = #ex{state = {held, H, Held}}) ->
    respond(H, Held, Ex, [done]);
event(done, Ex = #ex{state = {buffer, H, Acc, _}}) ->
    respond(H, Acc, Ex, [done]);
event(done, Ex = #ex{state = streaming}) ->
    finish([done], Ex);
event(done, Ex = #ex{state = complete}) ->
    {[done], Ex#ex{state = over}};
event({error, Reason}, Ex = #ex{state = S}) when S =:= streaming; S =:= complete ->
    {[{log, Reason}, abort], Ex#ex{state = over}};
event({error, Reason}, Ex) ->
    fail({log, Reason}, error_status(Reason), [], Ex);
event(Other, Ex) ->
    bad(Other, Ex).

%% @doc How long to wait for the next event before calling timed_out/1.
-spec timeout(t()) -> timeout().
timeout(#ex{state = {held, _, _}, hold = Hold}) -> Hold;
timeout(#ex{state = streaming}) -> infinity;
timeout(#ex{state = {buffer, _, _, _}}) -> infinity;
timeout(#ex{state = over}) -> infinity;
timeout(#ex{request_timeout = T}) -> T.

%% @doc The commands when timeout/1 passed without an event: a held WSGI
%% chunk starts the stream; no response yet is a 504; a complete response
%% whose app has not returned ends the exchange.
-spec timed_out(t()) -> {[command()], t()}.
timed_out(Ex = #ex{state = {held, H, Held}}) ->
    start_stream(H, [Held], [], Ex);
timed_out(Ex = #ex{state = complete}) ->
    {[disconnect, done], Ex#ex{state = over}};
timed_out(Ex = #ex{state = none}) ->
    fail({log, request_timeout}, 504, [disconnect], Ex);
timed_out(Ex = #ex{state = {pending, _}}) ->
    fail({log, request_timeout}, 504, [disconnect], Ex);
timed_out(Ex) ->
    {[], Ex}.

%% @doc Whether a WSGI chunk is held (timeout/1 is then the short hold).
-spec holding(t()) -> boolean().
holding(#ex{state = {held, _, _}}) -> true;
holding(_) -> false.

%% @doc Whether the response head went out (after which only abort can
%% signal a failure).
-spec started(t()) -> boolean().
started(#ex{state = S}) -> S =:= streaming orelse S =:= complete orelse S =:= over.

%% @doc The status sent (0 before the head).
-spec status(t()) -> integer().
status(#ex{status = S}) -> S.

%% @doc Body bytes the app produced for the response.
-spec sent(t()) -> non_neg_integer().
sent(#ex{sent = N}) -> N.

%% @doc The headers of the response head sent (the app's, without the
%% framing fields; `[]' before the head).
-spec headers(t()) -> [{binary(), binary()}].
headers(#ex{headers = Hs}) -> Hs.

%%--------------------------------------------------------------------

ack(_Chunk, false) -> [];
ack(Chunk, true) -> [{ack, byte_size(Chunk)}].

%% The whole body is known: one response with its length.
respond(H = #{status := Code, length := AppLen}, Body, Ex = #ex{head_req = HeadReq}, After) ->
    Size = iolist_size(Body),
    NoBody = no_body(Code),
    {Framing, Len} = if
                         Code =:= 304, AppLen =/= undefined -> {length, AppLen};
                         NoBody -> {none, undefined};
                         AppLen =/= undefined -> {length, AppLen};
                         HeadReq, Size =:= 0 -> {none, undefined};
                         true -> {length, Size}
                     end,
    case not NoBody andalso not HeadReq andalso Len =/= Size of
        true ->
            bad({content_length, AppLen, Size}, Ex);
        false ->
            Send = not (NoBody orelse HeadReq),
            Head = H#{framing => Framing, length => Len, body => Send,
                      close => close(H, Framing, Ex)},
            {[{respond, Head, case Send of true -> Body; false -> <<>> end} | After],
             Ex#ex{state = case After of [done] -> over; _ -> complete end, sent = Size,
                   headers = maps:get(headers, H)}}
    end.

%% The body goes out as it comes, or is collected when this front end cannot
%% stream this response (buffer).
start_stream(H = #{status := Code, length := AppLen}, Chunks, Acks, Ex) ->
    case framing(Code, AppLen, Ex) of
        buffer ->
            {Acks, Ex#ex{state = {buffer, H, Chunks, iolist_size(Chunks)}}};
        Framing ->
            Send = not (no_body(Code) orelse Ex#ex.head_req),
            Len = case Framing of length -> AppLen; _ -> undefined end,
            Head = H#{framing => Framing, length => Len, body => Send,
                      close => close(H, Framing, Ex)},
            %% the app's length is checked whatever the framing
            Ex1 = Ex#ex{state = streaming, framing = Framing, body = Send, left = AppLen,
                        headers = maps:get(headers, H)},
            data(Chunks, [{stream, Head}], Acks, Ex1)
    end.

framing(Code, AppLen, #ex{caps = Caps, http10 = H10, head_req = HeadReq}) ->
    #{length := L, chunked := Ch, close := Cl, head := Hd} = Caps,
    if
        HeadReq, not Hd -> buffer;
        Code < 200; Code =:= 204; Code =:= 304 -> none;
        AppLen =/= undefined, L -> length;
        not H10, Ch =:= all -> chunked;
        not H10, Ch =:= only_200, Code =:= 200 -> chunked;
        H10, Cl -> close;
        true -> buffer
    end.

stream_body(Chunk, true, Acks, Ex) ->
    data([Chunk], [], Acks, Ex);
stream_body(Chunk, false, [], Ex) ->
    {Cmds, Ex1} = data([Chunk], [], [], Ex),
    case Ex1#ex.state of
        over -> {Cmds, Ex1};
        _ ->
            {Fin, Ex2} = finish([], Ex1),
            {Cmds ++ Fin, Ex2}
    end.

%% Body bytes of a streamed response, checked against the app's length.
data([], Acc, Acks, Ex) ->
    {lists:reverse(Acc, Acks), Ex};
data([<<>> | T], Acc, Acks, Ex) ->
    data(T, Acc, Acks, Ex);
data([C | T], Acc, Acks, Ex = #ex{body = false, sent = Sent}) ->
    data(T, Acc, Acks, Ex#ex{sent = Sent + byte_size(C)});
data([C | _], Acc, _Acks, Ex = #ex{left = Left}) when is_integer(Left), byte_size(C) > Left ->
    {lists:reverse(Acc, [{log, {bad_response, {content_length, too_long}}}, disconnect, abort]),
     Ex#ex{state = over}};
data([C | T], Acc, Acks, Ex = #ex{left = Left, sent = Sent}) ->
    Left1 = case Left of undefined -> undefined; _ -> Left - byte_size(C) end,
    data(T, [{data, C} | Acc], Acks, Ex#ex{left = Left1, sent = Sent + byte_size(C)}).

%% The end of a streamed body.
finish(_After, Ex = #ex{body = true, left = Left}) when is_integer(Left), Left > 0 ->
    {[{log, {bad_response, {content_length, too_short}}}, disconnect, abort],
     Ex#ex{state = over}};
finish(After, Ex) ->
    {[finish | After], Ex#ex{state = case After of [done] -> over; _ -> complete end}}.

buffer(H, Acc, N, true, Acks, Ex) ->
    {Acks, Ex#ex{state = {buffer, H, Acc, N}}};
buffer(H, Acc, _N, false, [], Ex) ->
    respond(H, Acc, Ex, []).

%% An app error before anything was sent: an error response of our own.
fail(Log, Status, Before, Ex) ->
    {Head = #{headers := Hs}, Body} = py_web_http:error_response(Status),
    {Before ++ [Log, {respond, Head, Body}, done],
     Ex#ex{state = over, status = Status, sent = byte_size(Body), headers = Hs}}.

%% The status of an app error before the head: 502 when the OS process that
%% ran the app died (erlang_python's processes mode), as a proxy answers for
%% a backend that went away; 500 for any other failure.
error_status({worker_exit, _}) -> 502;
error_status(_) -> 500.

%% The app broke the protocol: it may still be running.
bad(What, Ex) ->
    Reason = {bad_response, What},
    case started(Ex) of
        false -> fail({log, Reason}, 500, [disconnect], Ex);
        true -> {[{log, Reason}, disconnect, abort], Ex#ex{state = over}}
    end.

close(#{close := AppClose}, Framing, #ex{keepalive = K}) ->
    AppClose orelse not K orelse Framing =:= close.

no_body(Code) -> Code < 200 orelse Code =:= 204 orelse Code =:= 304.
