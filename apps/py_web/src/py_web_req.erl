%% @doc A request (the `#req{}' of py_web.hrl) built from what a front end
%% other than py_web's own parser knows of it: the Cowboy and Elli handlers
%% use it so that their scope and environ are made by the same code as the
%% server's.
-module(py_web_req).

-include("py_web.hrl").

-export([new/1]).

%% @doc A request from a map with keys `method' (binary), `version'
%% (`{1,1}' or `{1,0}'), `raw_path' (the path as received, without the
%% query), `qs', `headers' (any case, arrival order), `peer' and `local'
%% (`{Ip, Port}' with Ip a tuple or text), `scheme' (`<<"http">>' |
%% `<<"https">>'), `keepalive' (whether the connection may stay open).
-spec new(map()) -> #req{}.
new(M) ->
    #req{method = maps:get(method, M),
         version = maps:get(version, M),
         raw_path = maps:get(raw_path, M),
         qs = maps:get(qs, M),
         headers = [{py_web_h1_field:lower(N), V} || {N, V} <- maps:get(headers, M)],
         keepalive = maps:get(keepalive, M, true),
         peer = addr(maps:get(peer, M)),
         local = addr(maps:get(local, M)),
         scheme = maps:get(scheme, M)}.

addr({Ip, Port}) when is_tuple(Ip) -> {list_to_binary(inet:ntoa(Ip)), Port};
addr({Host, Port}) when is_list(Host) -> {list_to_binary(Host), Port};
addr({Host, Port}) when is_binary(Host) -> {Host, Port}.
