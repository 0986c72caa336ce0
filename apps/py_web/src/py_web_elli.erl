%% @doc Elli handler serving a Python ASGI or WSGI app: py_web_exchange
%% decides everything, this module carries its commands out with Elli.
%%
%% ```
%% elli:start_link([{callback, py_web_elli},
%%                  {callback_args, #{app => {<<"myapp">>, <<"app">>},
%%                                    interface => wsgi}},
%%                  {port, 8080}]).
%% '''
%% The callback args are py_web's options (see py_web_cowboy).
%%
%% What Elli 3.3's handler contract allows (read in its source), and so how
%% this handler answers:
%% <ul>
%% <li>Elli reads the whole request body before calling the handler (its
%%     own `max_body_size' applies): the app gets it at once. Elli reads a
%%     body by its Content-Length only: a request with a Transfer-Encoding
%%     gets a 411 and the connection closes (Elli would otherwise give the
%%     app an empty body and read the chunks as the next request).</li>
%% <li>A response in one piece is the handler's return value. Elli adds a
%%     Content-Length unless one spelled `Content-Length' is there: the
%%     exchange's length is given that way, so there is exactly one (also
%%     for HEAD). On 204 and 304 Elli adds `Content-Length: 0' itself.</li>
%% <li>A streamed response uses Elli's chunk API (elli_request:chunk_ref/1,
%%     send_chunk/2, close_chunk/1): only to HTTP/1.1, only as a 200, and
%%     Elli closes the connection after it. Any other streamed response (not
%%     a 200, HTTP/1.0, HEAD) is collected by the exchange and sent whole
%%     with its length (caps(elli)).</li>
%% <li>Chunks are sent from a worker process that owns the app's stream
%%     (the handler process must return `{chunk, Headers}' before Elli sends
%%     them). It sends each chunk synchronously and acknowledges it to the
%%     app once Elli wrote it. A client that leaves is seen when a chunk
%%     cannot be sent, or when Elli's connection process ends (it watches
%%     the socket while streaming): the app is told. To end a stream
%%     without the last chunk (an app error), the worker closes the socket,
%%     then asks Elli to close the chunked response, which fails and so
%%     writes nothing more.</li>
%% <li>The peer and local addresses and the HTTP version come from the
%%     request's socket and version (elli_request:to_proplist/1); request
%%     headers are put back in arrival order.</li>
%% </ul>
%% Compiles without Elli (remote calls only).
-module(py_web_elli).

-include("py_web.hrl").

%% Elli is optional (not a dependency): its calls are unresolved here.
-ignore_xref([elli_request]).

-export([handle/2, handle_event/3]).

%% The worker that owns the app's stream.
-record(w, {
    handler :: pid(),           %% Elli's connection process (also the chunk ref)
    cfg :: #cfg{},
    r :: #req{},
    sock :: {py_web_transport:t(), py_web_transport:socket()},
    ex :: py_web_exchange:t(),
    stream :: term(),
    mode = none :: none | respond | chunk
}).

-type response() :: {binary(), [{binary(), binary()}], iodata()}
                  | {chunk, [{binary(), binary()}]}.

%% @private
-spec handle(term(), map()) -> response().
handle(Req, Args) ->
    case py_web_opts:handler(Args) of
        {ok, Cfg} ->
            serve(Req, Cfg);
        {error, Reason} ->
            logger:error("py_web_elli: ~0p", [Reason], #{py_web => server}),
            {Head, Body} = py_web_http:error_response(500),
            response(Head, Body, py_web_opts:default(server_header))
    end.

%% @private Elli's events: a crash of handle/2 (Elli answers 500 itself) is
%% a bug here, logged as such; the rest is Elli's business.
-spec handle_event(atom(), list(), term()) -> ok.
handle_event(Event, Data, _Args)
  when Event =:= request_error; Event =:= request_exit; Event =:= request_throw;
       Event =:= invalid_return ->
    logger:error("py_web_elli: ~p: ~0p", [Event, Data], #{py_web => server});
handle_event(_Event, _Data, _Args) ->
    ok.

serve(Req, Cfg) ->
    Props = elli_request:to_proplist(Req),
    {T, Sock} = py_web_transport:of_elli(proplists:get_value(socket, Props)),
    {Peer, Local} = case py_web_transport:names(T, Sock) of
                        {ok, P, L} -> {P, L};
                        error -> {{<<>>, 0}, {<<>>, 0}}   %% the client is gone
                    end,
    RawPath = elli_request:raw_path(Req),
    [Path | _] = binary:split(RawPath, <<"?">>),
    R0 = py_web_req:new(#{method => method(elli_request:method(Req)),
                         version => proplists:get_value(version, Props),
                         raw_path => Path,
                         qs => elli_request:query_str(Req),
                         headers => lists:reverse(elli_request:headers(Req)),
                         peer => Peer,
                         local => Local,
                         scheme => case T of ssl -> <<"https">>; gen_tcp -> <<"http">> end}),
    R = py_web_proxy:request(R0, Cfg),
    case lists:keymember(<<"transfer-encoding">>, 1, R#req.headers) of
        true ->
            {Head, EBody} = py_web_http:error_response(411),
            response(Head, EBody, Cfg#cfg.server_header);
        false ->
            run(R, elli_request:body(Req), {T, Sock}, Cfg)
    end.

%% The app runs in a worker (see the module doc); the first thing it has to
%% send decides what handle/2 returns.
run(R, Body, Sock, Cfg) ->
    Handler = self(),
    {W, Mon} = spawn_monitor(fun() -> worker(Handler, Cfg, R, Body, Sock) end),
    receive
        {W, Response} ->
            erlang:demonitor(Mon, [flush]),
            Response;
        {'DOWN', Mon, process, W, Reason} ->
            logger:error("py_web_elli: worker died: ~0p", [Reason], #{py_web => server}),
            {Head, EBody} = py_web_http:error_response(500),
            response(Head, EBody, Cfg#cfg.server_header)
    end.

method(M) when is_atom(M) -> atom_to_binary(M, utf8);
method(M) when is_binary(M) -> M.

%% Elli's response for a head: the exchange's length spelled
%% `Content-Length' (so that Elli adds none), `Connection: close' when the
%% connection must close, Date and Server as the embedded server adds them.
response(Head = #{line := Line}, Body, Server) ->
    {Line, headers(Head, Server), Body}.

headers(#{headers := Hs, framing := F, length := Len, close := Close, date := D, server := S},
        Server) ->
    Hs ++ [{<<"Content-Length">>, integer_to_binary(Len)} || F =:= length]
       ++ [{<<"Connection">>, <<"close">>} || Close]
       ++ [{<<"date">>, py_web_date:value()} || not D]
       ++ [{<<"server">>, Server} || not S, is_binary(Server)].

%% The worker ------------------------------------------------------------

worker(Handler, Cfg, R, Body, Sock) ->
    _ = erlang:monitor(process, Handler),
    W = #w{handler = Handler, cfg = Cfg, r = R, sock = Sock,
           ex = py_web_exchange:new(R, Cfg, py_web_exchange:caps(elli))},
    case py_web_backend:start(R, Cfg, Body, false) of
        {ok, Stream} -> loop(W#w{stream = Stream});
        {error, _} = E -> event(E, W)
    end.

loop(W = #w{stream = S, ex = Ex, handler = H}) ->
    receive
        {asgi, S, Ev} -> event(Ev, W);
        {wsgi, S, Ev} -> event(Ev, W);
        {'DOWN', _, process, H, _} -> gone(W)
    after py_web_exchange:timeout(Ex) ->
        {Cmds, Ex1} = py_web_exchange:timed_out(Ex),
        perform(Cmds, W#w{ex = Ex1})
    end.

event(Ev, W = #w{ex = Ex}) ->
    {Cmds, Ex1} = py_web_exchange:event(Ev, Ex),
    perform(Cmds, W#w{ex = Ex1}).

perform([], W) ->
    loop(W);
perform([{respond, Head, Body} | T], W = #w{handler = H, cfg = Cfg}) ->
    H ! {self(), response(Head, Body, Cfg#cfg.server_header)},
    perform(T, W#w{mode = respond});
perform([{stream, Head} | T], W = #w{handler = H, cfg = Cfg}) ->
    H ! {self(), {chunk, headers(Head, Cfg#cfg.server_header)}},
    perform(T, W#w{mode = chunk});
perform([{data, D} | T], W = #w{handler = H}) ->
    case elli_request:send_chunk(H, D) of
        ok -> perform(T, W);
        {error, closed} -> gone(W);
        {error, _} -> gone(abort(W))
    end;
perform([finish | T], W = #w{handler = H}) ->
    _ = elli_request:close_chunk(H),
    perform(T, W);
perform([{ack, N} | T], W = #w{cfg = #cfg{backend = B}, stream = S}) ->
    B:ack(S, N),
    perform(T, W);
perform([need_body | T], W) ->
    %% The app had the whole body already (more_body false).
    perform(T, W);
perform([disconnect | T], W) ->
    perform(T, disconnect(W));
perform([{log, Reason} | T], W = #w{r = #req{method = M, raw_path = P}}) ->
    py_web_log:app_error(M, P, Reason),
    perform(T, W);
perform([abort | _], W) ->
    _ = abort(W),
    ok;
perform([done | _], _W) ->
    ok.

%% End a chunked response without its last chunk: with the socket closed,
%% Elli's close_chunk fails to write and ends the chunk loop. (After a
%% response in one piece there is nothing to cut: Elli sent it whole.)
abort(W = #w{mode = chunk, handler = H, sock = {T, Sock}}) ->
    py_web_transport:close(T, Sock),
    _ = elli_request:close_chunk(H),
    W;
abort(W) ->
    W.

%% The client left (or Elli's connection ended): tell the app.
gone(W) ->
    _ = disconnect(W),
    ok.

disconnect(W = #w{stream = undefined}) -> W;
disconnect(W = #w{cfg = #cfg{backend = B}, stream = S}) ->
    catch B:disconnect(S),
    W.
