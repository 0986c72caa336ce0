%% @doc Cowboy 2 handler serving a Python ASGI or WSGI app, answering as the
%% embedded server does: py_web_exchange decides everything, this module
%% carries its commands out with Cowboy.
%%
%% ```
%% Dispatch = cowboy_router:compile([{'_', [{"/[...]", py_web_cowboy,
%%     #{app => {<<"myapp">>, <<"app">>}, interface => asgi}}]}]),
%% '''
%% The handler state is py_web's options (see py_web and py_web_opts):
%% `app' (required), `interface', `root_path', `request_timeout',
%% `body_timeout', `max_body', `read_buffer', `server_header', `wsgi_hold',
%% `runner', `timeout', `asgi_backend'/`wsgi_backend', `factory',
%% `proxy_headers' and `forwarded_allow_ips' (py_web_proxy: the client and
%% scheme a trusted proxy reports), and `state' (the lifespan state to put in
%% each scope).
%%
%% How the commands map onto Cowboy 2.12 (read in its source):
%% <ul>
%% <li>The response goes out as Cowboy's own stream commands, cast with
%%     cowboy_req:cast/2: `{response, ...}' for a whole response,
%%     `{headers, ...}' then `{data, ...}' for a streamed one. Not
%%     cowboy_req:reply/4, which replaces the app's Content-Length with the
%%     body's size (0 for HEAD), and not set_resp_cookie/4, which refuses
%%     some values the app may send (a quoted value with a space) and drops
%%     attributes (Expires): the protocol layer takes a list of
%%     pre-formatted Set-Cookie values under `<<"set-cookie">>', which
%%     reach the client as the app wrote them, in its order. Other
%%     headers are a map (names lower-cased, repeated ones joined with
%%     ", "). Cowboy adds no Date or Server to these commands: they are
%%     added as the embedded server does.</li>
%% <li>Body data is sent as cowboy_req:stream_body/3 sends it, waiting for
%%     Cowboy's acknowledgement before acknowledging to the app
%%     (backpressure).</li>
%% <li>Ending a response without completing it (an app error after the
%%     head): HTTP/1.1's stream termination would send the last chunk
%%     whatever the reason, so the connection is taken over (the
%%     `switch_protocol' command, as a Websocket upgrade does) by
%%     takeover/7, which closes it. Over HTTP/2 the stream is reset (the
%%     handler exits with reason `{shutdown, _}': no crash report).</li>
%% <li>The request body is read as the app asks for it: what Cowboy has
%%     buffered at once (this also sends the 100 Continue a client may wait
%%     for), then in auto mode, as it arrives, up to `body_timeout'.</li>
%% </ul>
%%
%% Compiles without Cowboy (remote calls only, no Cowboy header). Cowboy
%% does not keep request header order or duplicates (its headers are a map):
%% the scope gets them as Cowboy has them.
-module(py_web_cowboy).

-include("py_web.hrl").

%% Cowboy is optional (not a dependency): its calls are unresolved here.
-ignore_xref([cowboy_req]).

-export([init/2, takeover/7]).
%% cowboy_websocket calls the route's handler module: py_web_cowboy_ws does the work.
-export([websocket_init/1, websocket_handle/2, websocket_info/2, terminate/3]).

-record(c, {
    req :: map(),                 %% Cowboy's request
    r :: #req{},
    cfg :: #cfg{},
    ex :: py_web_exchange:t(),
    stream :: term(),
    body_done :: boolean(),       %% the whole request body was read
    total = 0 :: non_neg_integer()
}).

%% @private
-spec init(map(), map()) -> {ok, map(), map()} | {cowboy_websocket, map(), term(), map()}.
init(Req, Opts) ->
    case py_web_opts:handler(Opts) of
        {ok, Cfg} ->
            try serve(Req, Cfg) of
                {websocket, Req1, State, WsOpts} -> {cowboy_websocket, Req1, State, WsOpts};
                _ -> {ok, Req, Opts}
            catch throw:{?MODULE, stop} -> {ok, Req, Opts}
            end;
        {error, Reason} ->
            logger:error("py_web_cowboy: ~0p", [Reason], #{py_web => server}),
            {Head, Body} = py_web_http:error_response(500),
            cowboy_req:cast({response, maps:get(line, Head),
                             headers(Head, py_web_opts:default(server_header)), Body}, Req),
            {ok, Req, Opts}
    end.

serve(Req, Cfg) ->
    R = py_web_proxy:request(request(Req), Cfg),
    C = #c{req = Req, r = R, cfg = Cfg, body_done = not cowboy_req:has_body(Req),
           ex = py_web_exchange:new(R, Cfg, py_web_exchange:caps(cowboy))},
    case websocket(R, C) of
        http -> serve_http(C);
        {ok, WsReq} -> serve_websocket(WsReq, C);
        {error, {Status, Why, Headers}} ->
            logger:info("py_web_cowboy: WebSocket handshake refused (~B): ~p", [Status, Why],
                        #{py_web => server}),
            {Head = #{headers := Hs}, Body} = py_web_http:error_response(Status),
            respond(Head#{headers := Hs ++ Headers}, Body, C)
    end.

websocket(_R, #c{cfg = #cfg{ws = false}}) ->
    http;
websocket(#req{method = M, version = V, headers = Hs}, #c{body_done = true}) ->
    py_web_ws_handshake:parse(M, V, Hs);
websocket(#req{method = M, version = V, headers = Hs}, _C) ->
    case py_web_ws_handshake:parse(M, V, Hs) of
        {ok, _} -> {error, {400, handshake_with_body, []}};
        Other -> Other
    end.

%% The app answers the handshake: accept is the upgrade (py_web_cowboy_ws runs the
%% connection), a close before it is 403, the rest (a denial response, an error) is the
%% HTTP exchange's.
serve_websocket(WsReq, C = #c{r = R, cfg = Cfg}) ->
    Offered = maps:get(subprotocols, WsReq),
    case py_web_cowboy_ws:start(R, Cfg, Offered) of
        {ok, Stream, Relay} -> ws_wait(Offered, Relay, C#c{stream = Stream});
        {error, _} = E -> event(E, C)
    end.

ws_wait(Offered, Relay, C = #c{stream = S, ex = Ex, req = Req, r = R, cfg = Cfg}) ->
    #cfg{backend = B, ws = Opts} = Cfg,
    receive
        {asgi, S, {accept, Sub, Hs}} ->
            case Sub =:= undefined orelse lists:member(Sub, Offered) of
                true ->
                    Req1 = lists:foldl(fun({N, V}, Q) -> cowboy_req:set_resp_header(N, V, Q) end,
                                       Req, [{<<"sec-websocket-protocol">>, Sub} || Sub =/= undefined]
                                       ++ [{py_web_h1_field:lower(N), V} || {N, V} <- Hs]),
                    Label = {R#req.method, R#req.raw_path},
                    {websocket, Req1, py_web_cowboy_ws:init_state(B, S, Relay, Label, Opts),
                     py_web_cowboy_ws:options(Opts)};
                false ->
                    catch B:disconnect(S),
                    event({error, {bad_websocket_accept, {subprotocol_not_offered, Sub}}}, C)
            end;
        {asgi, S, {close, _, _}} ->
            {Cmds1, Ex1} = py_web_exchange:event({start, 403, []}, Ex),
            {Cmds2, Ex2} = py_web_exchange:event({body, <<>>, false}, Ex1),
            perform(Cmds1 ++ Cmds2, C#c{ex = Ex2});
        {asgi, S, Ev} ->
            event(Ev, C)
    after py_web_exchange:timeout(Ex) ->
        {Cmds, Ex1} = py_web_exchange:timed_out(Ex),
        perform(Cmds, C#c{ex = Ex1})
    end.

serve_http(C = #c{req = Req, r = R, cfg = Cfg}) ->
    case too_large(cowboy_req:body_length(Req), Cfg) of
        true ->
            reply_error(413, C);
        false ->
            {Body, C1} = initial_body(C),
            case py_web_backend:start(R, Cfg, Body, not C1#c.body_done) of
                {ok, Stream} -> loop(C1#c{stream = Stream});
                {error, _} = E -> event(E, C1)
            end
    end.

request(Req) ->
    Version = case cowboy_req:version(Req) of
                  'HTTP/1.0' -> {1, 0};
                  _ -> {1, 1}
              end,
    py_web_req:new(#{method => cowboy_req:method(Req),
                     version => Version,
                     raw_path => cowboy_req:path(Req),
                     qs => cowboy_req:qs(Req),
                     headers => maps:to_list(cowboy_req:headers(Req)),
                     peer => cowboy_req:peer(Req),
                     local => cowboy_req:sock(Req),
                     scheme => cowboy_req:scheme(Req)}).

too_large(Len, #cfg{max_body = Max}) ->
    is_integer(Len) andalso is_integer(Max) andalso Len > Max.

%% What Cowboy has of the body when the app starts, without waiting (and
%% without answering an Expect: 100-continue before the app asks).
initial_body(C = #c{body_done = true}) ->
    {<<>>, C};
initial_body(C = #c{req = Req}) ->
    case cowboy_req:header(<<"expect">>, Req) of
        undefined ->
            case read(C, now) of
                {ok, Data, C1} -> {Data, C1};
                {error, Code} -> body_error(Code, C)
            end;
        _ ->
            {<<>>, C}
    end.

loop(C = #c{stream = S, ex = Ex}) ->
    receive
        {asgi, S, Ev} -> event(Ev, C);
        {wsgi, S, Ev} -> event(Ev, C)
    after py_web_exchange:timeout(Ex) ->
        {Cmds, Ex1} = py_web_exchange:timed_out(Ex),
        perform(Cmds, C#c{ex = Ex1})
    end.

event(Ev, C = #c{ex = Ex}) ->
    {Cmds, Ex1} = py_web_exchange:event(Ev, Ex),
    perform(Cmds, C#c{ex = Ex1}).

%% Carry out the exchange's commands -----------------------------------

perform([], C) ->
    loop(C);
perform([{respond, Head, Body} | T], C) ->
    respond(Head, Body, C),
    perform(T, C);
perform([{stream, Head = #{line := Line}} | T], C = #c{req = Req, cfg = Cfg}) ->
    cowboy_req:cast({headers, Line, headers(Head, Cfg#cfg.server_header)}, Req),
    perform(T, C);
perform([{data, D} | T], C) ->
    data(nofin, D, C),
    perform(T, C);
perform([finish | T], C) ->
    data(fin, <<>>, C),
    perform(T, C);
perform([{ack, N} | T], C = #c{cfg = #cfg{backend = B}, stream = S}) ->
    B:ack(S, N),
    perform(T, C);
perform([need_body | T], C) ->
    perform(T, need_body(C));
perform([disconnect | T], C = #c{cfg = #cfg{backend = B}, stream = S}) ->
    catch B:disconnect(S),
    perform(T, C);
perform([{log, Reason} | T], C = #c{r = #req{method = M, raw_path = P}}) ->
    py_web_log:app_error(M, P, Reason),
    perform(T, C);
perform([abort | _], #c{req = Req}) ->
    abort(Req);
perform([done | _], _C) ->
    ok.

respond(Head = #{line := Line}, Body, #c{req = Req, cfg = #cfg{server_header = S}}) ->
    cowboy_req:cast({response, Line, headers(Head, S), Body}, Req).

%% As cowboy_req:stream_body/3 does: the connection acknowledges each piece.
data(IsFin, Data, #c{req = Req}) ->
    cowboy_req:cast({data, self(), IsFin, Data}, Req),
    receive {data_ack, _} -> ok end.

%% Cowboy's headers map: the app's headers (Set-Cookie values as a list, in
%% order), then framing, connection, Date and Server.
headers(#{headers := Hs, framing := F, length := Len, close := Close, date := D, server := S},
        Server) ->
    M0 = lists:foldl(fun({N, V}, M) -> add(py_web_h1_field:lower(N), V, M) end, #{}, Hs),
    M1 = case F of
             length -> M0#{<<"content-length">> => integer_to_binary(Len)};
             _ -> M0
         end,
    M2 = case Close of
             true -> M1#{<<"connection">> => <<"close">>};
             false -> M1
         end,
    M3 = case D of
             true -> M2;
             false -> M2#{<<"date">> => py_web_date:value()}
         end,
    case {S, Server} of
        {false, Name} when is_binary(Name) -> M3#{<<"server">> => Name};
        _ -> M3
    end.

add(<<"set-cookie">> = N, V, M) ->
    case M of
        #{N := Vs} -> M#{N := Vs ++ [V]};
        _ -> M#{N => [V]}
    end;
add(N, V, M) ->
    case M of
        #{N := Old} -> M#{N := <<Old/binary, ", ", V/binary>>};
        _ -> M#{N => V}
    end.

%% End the connection without completing the response.
abort(Req) ->
    case cowboy_req:version(Req) of
        'HTTP/2' -> exit({shutdown, {py_web, aborted}});
        _ -> cowboy_req:cast({switch_protocol, #{}, ?MODULE, aborted}, Req)
    end.

%% @private
-spec websocket_init(term()) -> {list(), term()}.
websocket_init(S) -> py_web_cowboy_ws:websocket_init(S).

%% @private
-spec websocket_handle(term(), term()) -> {list(), term()}.
websocket_handle(Frame, S) -> py_web_cowboy_ws:websocket_handle(Frame, S).

%% @private
-spec websocket_info(term(), term()) -> {list(), term()}.
websocket_info(Info, S) -> py_web_cowboy_ws:websocket_info(Info, S).

%% @private Cowboy calls it for every request; only a websocket's state has work to do.
-spec terminate(term(), map(), term()) -> ok.
terminate(Reason, Req, S) -> py_web_cowboy_ws:terminate(Reason, Req, S).

%% @private The connection process after an abort (switch_protocol):
%% close the connection, the response left incomplete.
-spec takeover(pid(), term(), term(), module(), term(), binary(), aborted) -> no_return().
takeover(_Parent, _Ref, Socket, Transport, _Opts, _Buffer, aborted) ->
    _ = Transport:close(Socket),
    exit(normal).

reply_error(Code, C) ->
    {Head, Body} = py_web_http:error_response(Code),
    respond(Head, Body, C).

%% Request body --------------------------------------------------------

need_body(C = #c{body_done = true}) ->
    C;
need_body(C) ->
    Read = case read(C, now) of
               {ok, <<>>, C1 = #c{body_done = false}} -> read(C1, arriving);
               Other -> Other
           end,
    case Read of
        {ok, Data, C2 = #c{cfg = #cfg{backend = B}, stream = S}} ->
            B:send_body(S, Data, not C2#c.body_done),
            C2;
        {error, Code} ->
            body_error(Code, C)
    end.

%% Read the body: what Cowboy has `now' (period 0: at once), or what is
%% `arriving' (auto mode: as soon as some is there), up to body_timeout.
read(C = #c{req = Req, total = Total, cfg = Cfg = #cfg{max_body = Max}}, How) ->
    Opts = case How of
               now -> #{length => Cfg#cfg.read_buffer, period => 0};
               arriving -> #{length => auto, period => infinity}
           end,
    try cowboy_req:read_body(Req, Opts#{timeout => Cfg#cfg.body_timeout}) of
        {Fin, Data, Req1} ->
            Total1 = Total + byte_size(Data),
            case is_integer(Max) andalso Total1 > Max of
                true -> {error, 413};
                false -> {ok, Data, C#c{req = Req1, total = Total1, body_done = Fin =:= ok}}
            end
    catch
        exit:timeout -> {error, 408}
    end.

%% The request body failed (too large, too slow): the server's answer, and
%% the end of the exchange.
-spec body_error(408 | 413, #c{}) -> no_return().
body_error(Code, C = #c{cfg = #cfg{backend = B}, stream = S, ex = Ex, req = Req}) ->
    case S of
        undefined -> ok;
        _ -> catch B:disconnect(S)
    end,
    case py_web_exchange:started(Ex) of
        false -> reply_error(Code, C);
        true -> abort(Req)
    end,
    throw({?MODULE, stop}).
