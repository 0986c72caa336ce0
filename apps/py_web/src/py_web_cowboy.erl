%% @doc Cowboy 2 handler serving a Python ASGI or WSGI app through the
%% streaming API of py_asgi/py_wsgi.
%%
%% ```
%% Dispatch = cowboy_router:compile([{'_', [{"/[...]", py_web_cowboy,
%%     #{app => {<<"myapp">>, <<"app">>}, interface => asgi}}]}]),
%% '''
%% State keys: `app' (required), `interface' (`asgi' default | `wsgi'),
%% `backend' (default py_asgi/py_wsgi), `root_path', `state' (lifespan
%% state to put in the scope), `runner', `timeout', `request_timeout'
%% (ms, default 60000), `read_length' (body chunk size, default 65536).
%%
%% Compiles without Cowboy (remote calls only, no Cowboy header). Cowboy
%% refuses `set-cookie' in reply headers, so each Set-Cookie header is
%% passed through cowboy_req:set_resp_cookie/4 (name, value and
%% attributes parsed); other headers keep their order, duplicates joined
%% with ", " (Cowboy's headers are a map). Cowboy does not keep request
%% header order or duplicates either: the scope gets them as Cowboy has
%% them.
-module(py_web_cowboy).

-include("py_web.hrl").

%% Cowboy is optional (not a dependency): its calls are unresolved here.
-ignore_xref([cowboy_req]).


-export([init/2, cookie_opts/1]).

-spec init(map(), map()) -> {ok, map(), map()}.
init(Req0, State) ->
    Cfg = cfg(State, cowboy_req:scheme(Req0)),
    Req = request(Req0, Cfg),
    {Body, More, Req1} = read(Req0, State),
    Start = case Cfg#cfg.interface of
                asgi -> py_web_asgi:start(Req, Cfg, Body, More);
                wsgi -> py_web_wsgi:start(Req, Cfg, Body, More)
            end,
    case Start of
        {ok, Stream} ->
            {ok, loop(Stream, Cfg, Req1, State, none), State};
        {error, Reason} ->
            error_logger_report(Req, Reason),
            {ok, cowboy_req:reply(500, #{}, <<"Internal Server Error">>, Req1), State}
    end.

cfg(State, Scheme) ->
    {M, C} = maps:get(app, State),
    I = maps:get(interface, State, asgi),
    #cfg{interface = I,
         module = bin(M), callable = bin(C),
         backend = maps:get(backend, State, case I of asgi -> py_asgi; wsgi -> py_wsgi end),
         call_opts = maps:with([runner, timeout], State),
         state = maps:get(state, State, undefined),
         root_path = maps:get(root_path, State, <<>>),
         scheme = Scheme,
         request_timeout = maps:get(request_timeout, State, 60000)}.

bin(B) when is_binary(B) -> B;
bin(A) when is_atom(A) -> atom_to_binary(A, utf8);
bin(L) when is_list(L) -> list_to_binary(L).

request(R, Cfg) ->
    Version = case cowboy_req:version(R) of
                  'HTTP/1.0' -> {1, 0};
                  _ -> {1, 1}
              end,
    py_web_req:new(#{method => cowboy_req:method(R),
                     version => Version,
                     raw_path => cowboy_req:path(R),
                     qs => cowboy_req:qs(R),
                     headers => maps:to_list(cowboy_req:headers(R)),
                     peer => cowboy_req:peer(R),
                     local => cowboy_req:sock(R),
                     scheme => Cfg#cfg.scheme}).

read(Req, State) ->
    case cowboy_req:has_body(Req) of
        false -> {<<>>, false, Req};
        true ->
            case cowboy_req:read_body(Req, #{length => maps:get(read_length, State, 65536)}) of
                {ok, D, R} -> {D, false, R};
                {more, D, R} -> {D, true, R}
            end
    end.

%% Resp: none | {Status, Headers} (start seen, nothing sent) | streaming
loop(Stream, Cfg = #cfg{backend = B}, Req, State, Resp) ->
    Timeout = case Resp of streaming -> infinity; _ -> Cfg#cfg.request_timeout end,
    receive
        {_, Stream, {start, Status, Headers}} ->
            loop(Stream, Cfg, Req, State, {code(Status), Headers});
        {asgi, Stream, {body, Chunk, More}} ->
            Req1 = body(Chunk, More, Req, Resp),
            B:ack(Stream, byte_size(Chunk)),
            loop(Stream, Cfg, Req1, State, streaming);
        {wsgi, Stream, {body, Chunk}} ->
            Req1 = body(Chunk, true, Req, Resp),
            B:ack(Stream, byte_size(Chunk)),
            loop(Stream, Cfg, Req1, State, streaming);
        {_, Stream, need_body} ->
            {Data, More, Req1} = read(Req, State),
            B:send_body(Stream, Data, More),
            loop(Stream, Cfg, Req1, State, Resp);
        {_, Stream, {trailers, _, _}} ->
            loop(Stream, Cfg, Req, State, Resp);
        {_, Stream, done} ->
            case Resp of
                streaming -> cowboy_req:stream_body(<<>>, fin, Req), Req;
                {Status, Headers} -> reply(Status, Headers, <<>>, Req);
                none -> cowboy_req:reply(500, #{}, <<"Internal Server Error">>, Req)
            end;
        {_, Stream, {error, Reason}} ->
            error_logger_report(Req, Reason),
            case Resp of
                streaming -> exit(normal);   %% Cowboy closes the stream
                _ -> cowboy_req:reply(500, #{}, <<"Internal Server Error">>, Req)
            end
    after Timeout ->
        catch B:disconnect(Stream),
        cowboy_req:reply(504, #{}, <<"Gateway Timeout">>, Req)
    end.

code(S) when is_integer(S) -> S;
code(S) -> py_web_http:status_code(S).

%% First body of an ASGI response that is also the last: one reply.
body(Chunk, false, Req, {Status, Headers}) ->
    reply(Status, Headers, Chunk, Req);
body(Chunk, More, Req, {Status, Headers}) ->
    {Map, Req1} = headers(Headers, Req),
    Req2 = cowboy_req:stream_reply(Status, Map, Req1),
    body(Chunk, More, Req2, streaming);
body(Chunk, More, Req, streaming) ->
    Fin = case More of true -> nofin; false -> fin end,
    case {Chunk, Fin} of
        {<<>>, nofin} -> ok;
        _ -> cowboy_req:stream_body(Chunk, Fin, Req)
    end,
    Req.

reply(Status, Headers, Body, Req) ->
    {Map, Req1} = headers(Headers, Req),
    cowboy_req:reply(Status, Map, Body, Req1).

%% Set-Cookie through set_resp_cookie; the rest into Cowboy's map.
headers(Headers, Req) ->
    lists:foldl(
      fun({N, V}, {Map, R}) ->
              case py_web_http:lower(N) of
                  <<"set-cookie">> ->
                      {Name, Value, Opts} = cookie_opts(V),
                      {Map, cowboy_req:set_resp_cookie(Name, Value, R, Opts)};
                  <<"content-length">> ->
                      {Map, R};   %% Cowboy computes it
                  L ->
                      case Map of
                          #{L := Old} -> {Map#{L := <<Old/binary, ", ", V/binary>>}, R};
                          _ -> {Map#{L => V}, R}
                      end
              end
      end, {#{}, Req}, Headers).

%% @doc Split a Set-Cookie value into name, value and Cowboy cookie
%% options (path, domain, max_age, secure, http_only, same_site).
%% Attributes Cowboy cannot express (Expires, unknown ones) are dropped.
-spec cookie_opts(binary()) -> {binary(), binary(), map()}.
cookie_opts(SetCookie) ->
    [NV | Attrs] = [string:trim(P) || P <- binary:split(SetCookie, <<";">>, [global])],
    {Name, Value} = case binary:split(NV, <<"=">>) of
                        [N, V] -> {N, V};
                        [N] -> {N, <<>>}
                    end,
    Opts = lists:foldl(fun attr/2, #{}, Attrs),
    {Name, Value, Opts}.

attr(A, Opts) ->
    {K, V} = case binary:split(A, <<"=">>) of
                 [K0, V0] -> {py_web_http:lower(string:trim(K0)), string:trim(V0)};
                 [K0] -> {py_web_http:lower(string:trim(K0)), <<>>}
             end,
    case K of
        <<"path">> -> Opts#{path => V};
        <<"domain">> -> Opts#{domain => V};
        <<"max-age">> ->
            try Opts#{max_age => binary_to_integer(V)} catch _:_ -> Opts end;
        <<"secure">> -> Opts#{secure => true};
        <<"httponly">> -> Opts#{http_only => true};
        <<"samesite">> ->
            case py_web_http:lower(V) of
                <<"lax">> -> Opts#{same_site => lax};
                <<"strict">> -> Opts#{same_site => strict};
                <<"none">> -> Opts#{same_site => none};
                _ -> Opts
            end;
        _ -> Opts
    end.

error_logger_report(Req, Reason) when is_map(Req) ->
    logger:error("py_web_cowboy: ~s ~s: ~0p",
                 [cowboy_req:method(Req), cowboy_req:path(Req), Reason],
                 #{py_web => server});
error_logger_report(#req{method = M, raw_path = P}, Reason) ->
    logger:error("py_web_cowboy: ~s ~s: ~0p", [M, P, Reason], #{py_web => server}).
