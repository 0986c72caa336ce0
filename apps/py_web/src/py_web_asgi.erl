%% @doc The ASGI HTTP scope of a request, as py_asgi takes it (atom keys).
-module(py_web_asgi).

-include("py_web.hrl").

-export([scope/2]).

%% @doc The scope of Req. `path' is the path as received: py_asgi decodes
%% it (percent-decoding, then UTF-8) where it builds the app's scope, the
%% one place it is decoded; `raw_path', `query_string' and the headers are
%% the bytes received, headers in arrival order with duplicates.
-spec scope(#req{}, #cfg{}) -> map().
scope(#req{method = M, version = V, raw_path = Raw, qs = Qs, headers = Hs,
           peer = Peer, local = Local, scheme = Scheme},
      #cfg{root_path = Root, state = State}) ->
    S = #{type => <<"http">>,
          http_version => case V of {1, 1} -> <<"1.1">>; {1, 0} -> <<"1.0">> end,
          method => M,
          scheme => Scheme,
          path => Raw,
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
