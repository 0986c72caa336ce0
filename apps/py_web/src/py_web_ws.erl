%% @doc One WebSocket connection, server side, as a pure state machine (RFC 6455 §5.5, §7).
%%
%% The connection process owns the socket and the timer; this module owns every protocol
%% decision. It is fed what happens and answers with what to do:
%% <ul>
%% <li>`recv(Bytes, Now, Ws)' for data from the socket, `send(Msg, Now, Ws)' for the app's
%%     messages, `timeout(Now, Ws)' when the timer fires, `disconnected(Ws)' when the socket
%%     closes; `Now' is `erlang:monotonic_time(millisecond)';</li>
%% <li>each returns the events for the app (`{text, Bin}', `{binary, Bin}', and once, at the
%%     end, `{close, Code, Reason}', ASGI's websocket.disconnect) and the bytes to write;</li>
%% <li>`deadline(Ws)' is the monotonic time at which `timeout/2' must be called (or
%%     `infinity'); a timer that fires early is harmless: `timeout/2' acts only once the
%%     deadline is reached, so the process needs no timer restart per packet;</li>
%% <li>`status(Ws)': `open'; `closing' (this side sent a close frame and waits for the
%%     peer's); `closed': write the bytes returned, then close the socket.</li>
%% </ul>
%%
%% Rules owned here: a ping is answered with a pong carrying its payload (§5.5.2, §5.5.3);
%% an unsolicited pong is ignored. A close frame from the peer is answered with a close frame
%% echoing its code (none when it had none) and the server then closes the socket first
%% (§5.5.1, §7.1.1). A protocol violation (codes from py_web_ws_message) fails the connection
%% (§7.1.7): a close frame with that code, then the socket is closed; the app is told that
%% code. When the app closes, its close frame is sent and the peer's awaited for
%% `close_timeout' ms; data that arrives meanwhile is dropped and pings are not answered
%% (nothing but the close handshake is sent after a close frame, §5.5.1). Keepalive: after
%% `ping_interval' ms without any byte from the peer a ping is sent; if nothing arrives within
%% `ping_timeout' ms more the connection is closed with 1011 and the app is told 1006 (the
%% peer is gone, §7.1.5), as the websockets library does. A socket that closes without a
%% close frame is 1006 for the app.
-module(py_web_ws).

-export([accept/3, recv/3, send/3, timeout/2, disconnected/1,
         deadline/1, status/1]).
-export_type([ws/0, opts/0, event/0, app_msg/0]).

-type event() :: {text, binary()} | {binary, binary()} | {close, 1000..4999, binary()}.
-type app_msg() :: {text, iodata()} | {binary, iodata()}
                 | {close, 1000..4999, binary()}.
%% Defaults are uvicorn's: 16 MiB messages, ping every 20 s of silence, 20 s to answer;
%% frames up to the message size; 10 s for the peer's close frame (the websockets library's
%% close_timeout); permessage-deflate on (a py_web_ws_deflate:config(), or false).
-type opts() :: #{max_message_size => non_neg_integer() | infinity,
                  max_frame_size => non_neg_integer() | infinity,
                  ping_interval => pos_integer() | infinity,
                  ping_timeout => pos_integer() | infinity,
                  close_timeout => pos_integer() | infinity,
                  deflate => false | py_web_ws_deflate:config(),
                  fragment_size => pos_integer() | infinity}.

-record(ws, {
    status = open :: open | closing | closed,
    msg :: py_web_ws_message:state(),
    %% the sending half of the permessage-deflate state (the receiving half is in `msg':
    %% compress/3 only touches the deflate context, inflate/4 only the inflate one)
    deflate = none :: none | py_web_ws_deflate:state(),
    ping_interval :: pos_integer() | infinity,
    ping_timeout :: pos_integer() | infinity,
    close_timeout :: pos_integer() | infinity,
    fragment_size :: pos_integer() | infinity,
    last_recv :: integer(),                    %% when the peer last sent a byte
    ping_sent = undefined :: undefined | integer(),
    close_sent = undefined :: undefined | integer()
}).
-opaque ws() :: #ws{}.

-define(MAX_MESSAGE, 16777216).

%%====================================================================
%% Opening
%%====================================================================

%% @doc The app accepted the request parsed by py_web_ws_handshake:parse/3: negotiate
%% permessage-deflate (from `Opts'), give the 101 head (py_web_ws_handshake:response/2: the
%% server adds its own Date, Server and default headers when it writes it) and the
%% connection's state. `Accept' is what the app sent with websocket.accept (subprotocol,
%% headers); `now' is the monotonic time in ms.
%% Errors are the app's (a subprotocol the client did not offer, a bad header): the
%% connection answers 500 and logs them.
-spec accept(py_web_ws_handshake:request(),
             #{subprotocol => binary() | undefined, headers => [{binary(), binary()}],
               now := integer()},
             opts()) ->
          {ok, py_web_exchange:head(), ws()} | {error, term()}.
accept(#{extensions := Offers} = Request, Accept, Opts) ->
    Negotiated = case maps:get(deflate, Opts, #{}) of
                     false -> none;
                     Config -> py_web_ws_deflate:negotiate(Offers, Config)
                 end,
    ExtHeader = case Negotiated of
                    {ok, Value, _} -> Value;
                    none -> none
                end,
    AppAccept = maps:with([subprotocol, headers], Accept),
    case py_web_ws_handshake:response(Request, AppAccept#{extensions => ExtHeader}) of
        {ok, Head} ->
            Deflate = case Negotiated of
                          {ok, _, Params} ->
                              py_web_ws_deflate:new(Params, maps:get(deflate, Opts, #{}));
                          none -> none
                      end,
            {ok, Head, new(Opts, Deflate, maps:get(now, Accept))};
        {error, _} = Error ->
            Error
    end.

%% The state of an accepted connection (accept/3's). `Deflate': the result of
%% py_web_ws_deflate:new/2 or none; `Now': the monotonic time in ms.
-spec new(opts(), none | py_web_ws_deflate:state(), integer()) -> ws().
new(Opts, Deflate, Now) ->
    MaxMessage = maps:get(max_message_size, Opts, ?MAX_MESSAGE),
    #ws{msg = py_web_ws_message:new(#{deflate => Deflate,
                                      max_message_size => MaxMessage,
                                      max_frame_size =>
                                          maps:get(max_frame_size, Opts, MaxMessage)}),
        deflate = Deflate,
        ping_interval = maps:get(ping_interval, Opts, 20000),
        ping_timeout = maps:get(ping_timeout, Opts, 20000),
        close_timeout = maps:get(close_timeout, Opts, 10000),
        fragment_size = maps:get(fragment_size, Opts, infinity),
        last_recv = Now}.

%%====================================================================
%% Events
%%====================================================================

%% @doc Bytes from the socket.
-spec recv(binary(), integer(), ws()) -> {[event()], iodata(), ws()}.
recv(_Data, _Now, #ws{status = closed} = Ws) ->
    {[], [], Ws};
recv(Data, Now, #ws{msg = M} = Ws0) ->
    Ws = Ws0#ws{last_recv = Now, ping_sent = undefined},
    case py_web_ws_message:recv(Data, M) of
        {ok, Outputs, M1} -> outputs(Outputs, Ws#ws{msg = M1}, [], []);
        {error, Code, _Why} -> fail(Code, <<>>, Code, Ws, [], [])
    end.

outputs([], Ws, Events, Out) ->
    {lists:reverse(Events), lists:reverse(Out), Ws};
outputs([{close, Code, Reason} | _], #ws{status = open} = Ws, Events, Out) ->
    Reply = case Code of
                1005 -> py_web_ws_frame:close_frame();
                _ -> py_web_ws_frame:close(Code, <<>>)
            end,
    closed({close, Code, Reason}, Ws, Events, [Reply | Out]);
outputs([{close, Code, Reason} | _], Ws, Events, Out) ->
    closed({close, Code, Reason}, Ws, Events, Out);
outputs([{ping, Payload} | Rest], #ws{status = open} = Ws, Events, Out) ->
    outputs(Rest, Ws, Events, [py_web_ws_frame:pong(Payload) | Out]);
outputs([{Data, _} = Msg | Rest], #ws{status = open} = Ws, Events, Out)
  when Data =:= text; Data =:= binary ->
    outputs(Rest, Ws, [Msg | Events], Out);
outputs([_Dropped | Rest], Ws, Events, Out) ->
    %% A pong; or, while closing, a message or a ping.
    outputs(Rest, Ws, Events, Out).

%% Fail the connection: send a close frame with Code (unless one was sent already), tell the
%% app AppCode, close the socket.
fail(Code, Reason, AppCode, #ws{status = open} = Ws, Events, Out) ->
    closed({close, AppCode, <<>>}, Ws, Events, [py_web_ws_frame:close(Code, Reason) | Out]);
fail(_Code, _Reason, AppCode, Ws, Events, Out) ->
    closed({close, AppCode, <<>>}, Ws, Events, Out).

closed(Event, Ws, Events, Out) ->
    {lists:reverse(Events, [Event]), lists:reverse(Out), Ws#ws{status = closed}}.

%% @doc A message from the app. Text must be UTF-8 (ASGI's str, encoded by the runner: not
%% checked again here). A close code must be one a close frame may carry (1000-1003,
%% 1007-1014, 3000-4999); the reason is cut to 123 bytes. After a close, sending is
%% `{error, closed}'.
-spec send(app_msg(), integer(), ws()) ->
          {iodata(), ws()} | {error, closed | {bad_close_code, term()}}.
send(_Msg, _Now, #ws{status = Status}) when Status =/= open ->
    {error, closed};
send({close, Code, Reason}, Now, Ws) ->
    case is_integer(Code) andalso py_web_ws_frame:valid_close_code(Code) of
        true -> {py_web_ws_frame:close(Code, Reason), Ws#ws{status = closing, close_sent = Now}};
        false -> {error, {bad_close_code, Code}}
    end;
send({Op, Data}, _Now, #ws{deflate = D, fragment_size = Size} = Ws)
  when Op =:= text; Op =:= binary ->
    {Rsv1, Payload, Ws1} = case D of
                               none ->
                                   {false, iolist_to_binary(Data), Ws};
                               _ ->
                                   {R, Compressed, D1} = py_web_ws_deflate:compress(Data, D),
                                   {R, Compressed, Ws#ws{deflate = D1}}
                           end,
    Frames = case Size of
                 infinity -> py_web_ws_frame:frame(Op, true, Rsv1, Payload);
                 _ -> py_web_ws_frame:fragments(Op, {Rsv1, Payload}, Size)
             end,
    {Frames, Ws1}.

%% @doc The timer fired (or `Now' is past deadline/1 for another reason).
-spec timeout(integer(), ws()) -> {[event()], iodata(), ws()}.
timeout(Now, Ws) ->
    case deadline(Ws) of
        D when D =:= infinity; Now < D -> {[], [], Ws};
        _ -> expired(Now, Ws)
    end.

expired(_Now, #ws{status = closing} = Ws) ->
    closed({close, 1006, <<>>}, Ws, [], []);
expired(Now, #ws{status = open, ping_sent = undefined} = Ws) ->
    {[], py_web_ws_frame:ping(<<>>), Ws#ws{ping_sent = Now}};
expired(_Now, #ws{status = open} = Ws) ->
    fail(1011, <<"keepalive ping timeout">>, 1006, Ws, [], []).

%% @doc The socket closed (or failed) under us.
-spec disconnected(ws()) -> {[event()], ws()}.
disconnected(#ws{status = closed} = Ws) ->
    {[], Ws};
disconnected(Ws) ->
    {[{close, 1006, <<>>}], Ws#ws{status = closed}}.

%% @doc When timeout/2 must be called next (monotonic ms), or `infinity'.
-spec deadline(ws()) -> integer() | infinity.
deadline(#ws{status = closing, close_sent = Sent, close_timeout = T}) -> add(Sent, T);
deadline(#ws{status = open, ping_sent = undefined, last_recv = Last, ping_interval = I}) ->
    add(Last, I);
deadline(#ws{status = open, ping_sent = Sent, ping_timeout = T}) -> add(Sent, T);
deadline(#ws{status = closed}) -> infinity.

add(_, infinity) -> infinity;
add(T, Ms) -> T + Ms.

%% @doc `closed': write what the last call returned, then close the socket.
-spec status(ws()) -> open | closing | closed.
status(#ws{status = S}) -> S.
