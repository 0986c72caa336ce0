%% @doc The ASGI scopes of a request, as py_asgi takes them (atom keys): HTTP, and
%% websocket for an opening handshake.
-module(py_web_asgi).

-include("py_web.hrl").

-export([scope/2, websocket_scope/3]).

%% @doc The scope of Req. `path' is the path as received: py_asgi decodes
%% it (percent-decoding, then UTF-8) where it builds the app's scope, the
%% one place it is decoded; `raw_path', `query_string' and the headers are
%% the bytes received, headers in arrival order with duplicates.
%%
%% With a `root_path' the app's `path' and `raw_path' include it, as
%% uvicorn 0.26 and later give them (the ASGI spec since 2.4 has `path'
%% include `root_path'): a proxy that strips the prefix sends `/x' and the
%% app sees `/api/x'. A path that already starts with the root path (a proxy
%% that keeps the prefix, as gunicorn's SCRIPT_NAME expects) is not
%% prefixed again; py_web_wsgi splits the same way, so that ASGI's `path' is
%% always WSGI's `SCRIPT_NAME' + `PATH_INFO' (py_web_http:root_split/2).
%% `client' and `server' are None over a Unix domain socket.
-spec scope(#req{}, #cfg{}) -> map().
scope(#req{method = M, scheme = Scheme} = Req, Cfg) ->
    (common(Req, Cfg))#{type => <<"http">>, method => M, scheme => Scheme}.

%% @doc The websocket scope of an opening handshake (ASGI websocket spec 2.4): no method,
%% scheme ws or wss, the subprotocols the client offered, and the
%% `websocket.http.response' extension (the app may deny with a response of its own).
-spec websocket_scope(#req{}, #cfg{}, [binary()]) -> map().
websocket_scope(#req{scheme = Scheme} = Req, Cfg, Subprotocols) ->
    (common(Req, Cfg))#{type => <<"websocket">>,
                        scheme => case Scheme of
                                      <<"https">> -> <<"wss">>;
                                      _ -> <<"ws">>
                                  end,
                        subprotocols => Subprotocols,
                        extensions => #{<<"websocket.http.response">> => #{}}}.

common(#req{version = V, raw_path = Raw, qs = Qs, headers = Hs, peer = Peer, local = Local},
       #cfg{root_path = Root, state = State}) ->
    Path = case Root of
               <<>> -> Raw;
               _ ->
                   {EncRoot, Rest} = py_web_http:root_split(Raw, Root),
                   <<EncRoot/binary, Rest/binary>>
           end,
    S = #{http_version => case V of {1, 1} -> <<"1.1">>; {1, 0} -> <<"1.0">> end,
          path => Path,
          raw_path => Path,
          query_string => Qs,
          root_path => Root,
          headers => Hs,
          server => Local,
          client => Peer},
    case State of
        undefined -> S;
        _ -> S#{state => State}
    end.
