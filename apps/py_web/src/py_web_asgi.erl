%% @doc ASGI side of py_web: the HTTP scope of a request, and starting the
%% app through the streaming API of py_asgi (or the configured backend).
-module(py_web_asgi).

-include("py_web.hrl").

-export([scope/2, start/4]).

%% @doc The ASGI HTTP scope (atom keys, as py_asgi expects). `path' is the
%% percent-decoded path; raw_path, query_string and headers are bytes as
%% received; headers keep arrival order and duplicates.
-spec scope(#req{}, #cfg{}) -> map().
scope(#req{method = M, version = V, raw_path = Raw, qs = Qs, headers = Hs,
           peer = Peer, local = Local, scheme = Scheme},
      #cfg{root_path = Root, state = State}) ->
    S = #{type => <<"http">>,
          http_version => case V of {1, 1} -> <<"1.1">>; {1, 0} -> <<"1.0">> end,
          method => M,
          scheme => Scheme,
          path => py_web_http:percent_decode(Raw),
          raw_path => Raw,
          query_string => Qs,
          root_path => Root,
          headers => Hs,
          server => Local,
          client => Peer},
    case State of
        undefined -> S;
        _ -> S#{state => State}
    end.

%% @doc Start the app on a request. Body is the part of the request body
%% already read; More says whether more will follow (need_body events).
-spec start(#req{}, #cfg{}, binary(), boolean()) -> {ok, term()} | {error, term()}.
start(Req, Cfg = #cfg{backend = B, module = M, callable = C, call_opts = O}, Body, More) ->
    B:start(M, C, scope(Req, Cfg), O#{body => Body, more_body => More}).
