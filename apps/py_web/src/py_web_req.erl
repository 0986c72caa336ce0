%% @doc One HTTP request as py_web sees it (the `#req{}' record of
%% py_web.hrl), with a small API so that adapters (Cowboy, Elli) can build
%% one from their own request and reuse py_web_asgi:scope/2 and
%% py_web_wsgi:environ/2.
-module(py_web_req).

-include("py_web.hrl").

-export([new/1, method/1, version/1, path/1, raw_path/1, qs/1, headers/1,
         header/2, peer/1, local/1, scheme/1, keepalive/1]).

-type t() :: #req{}.
-export_type([t/0]).

%% @doc Build a request from a map with keys `method', `version'
%% (`{1,1}' or `{1,0}'), `raw_path', `qs', `headers' (lower-cased names,
%% arrival order), `peer' and `local' (`{HostBin, Port}' or
%% `{IpTuple, Port}'), `scheme' (`<<"http">>' | `<<"https">>').
-spec new(map()) -> t().
new(M) ->
    #req{method = maps:get(method, M, <<"GET">>),
         version = maps:get(version, M, {1, 1}),
         raw_path = maps:get(raw_path, M, <<"/">>),
         qs = maps:get(qs, M, <<>>),
         headers = [{py_web_http:lower(N), V} || {N, V} <- maps:get(headers, M, [])],
         peer = addr(maps:get(peer, M, {<<"127.0.0.1">>, 0})),
         local = addr(maps:get(local, M, {<<"127.0.0.1">>, 0})),
         scheme = maps:get(scheme, M, <<"http">>)}.

addr({Ip, Port}) when is_tuple(Ip) -> {list_to_binary(inet:ntoa(Ip)), Port};
addr({Host, Port}) when is_list(Host) -> {list_to_binary(Host), Port};
addr({Host, Port}) when is_binary(Host) -> {Host, Port}.

-spec method(t()) -> binary().
method(#req{method = M}) -> M.

-spec version(t()) -> {1, 0} | {1, 1}.
version(#req{version = V}) -> V.

%% @doc Percent-decoded path.
-spec path(t()) -> binary().
path(#req{raw_path = P}) -> py_web_http:percent_decode(P).

-spec raw_path(t()) -> binary().
raw_path(#req{raw_path = P}) -> P.

-spec qs(t()) -> binary().
qs(#req{qs = Q}) -> Q.

-spec headers(t()) -> [{binary(), binary()}].
headers(#req{headers = H}) -> H.

%% @doc First value of a header (lower-case name), or `undefined'.
-spec header(binary(), t()) -> binary() | undefined.
header(Name, #req{headers = H}) ->
    case lists:keyfind(Name, 1, H) of
        {_, V} -> V;
        false -> undefined
    end.

-spec peer(t()) -> {binary(), inet:port_number()}.
peer(#req{peer = P}) -> P.

-spec local(t()) -> {binary(), inet:port_number()}.
local(#req{local = L}) -> L.

-spec scheme(t()) -> binary().
scheme(#req{scheme = S}) -> S.

-spec keepalive(t()) -> boolean().
keepalive(#req{keepalive = K}) -> K.
