%% @doc Requests that came through a reverse proxy: which peers are trusted,
%% and what a trusted peer may tell about the client (pure functions).
%%
%% A trust list is what `--forwarded-allow-ips' takes (uvicorn's and
%% gunicorn's syntax): a comma-separated list of IP addresses, CIDR networks
%% and other literals, or `*' for every peer. Peers are compared as
%% addresses (`::ffff:10.0.0.1' is 10.0.0.1), so there are many ways to
%% write one address. A connection over a Unix domain socket is trusted
%% whatever the list says (as gunicorn does): the socket file's permissions
%% decide who may connect.
%%
%% From a trusted peer, request/2 applies, in this order of authority:
%% <ul>
%% <li>`X-Forwarded-Proto' (the last one, exactly `http', `https', `ws' or
%%     `wss', as uvicorn): the scheme, normalised to `http' or `https' (a
%%     WebSocket scope derives `ws'/`wss' from it);</li>
%% <li>`X-Forwarded-For' (all of them, joined): the client is the right-most
%%     address that is not a trusted proxy, or the left-most when every one
%%     is (uvicorn's rule; `host:port' and `[v6]:port' give the port, else
%%     0); an entry that is not an IP address (`unknown', junk) leaves the
%%     connection's address (uvicorn would pass it on as the client);</li>
%% <li>`Forwarded' (RFC 7239), only when the request has neither
%%     X-Forwarded-For nor X-Forwarded-Proto: the same walk over its `for'
%%     nodes, and that element's `proto'. Not mixed with the X-Forwarded-*
%%     fields: a proxy that speaks those passes a client's own `Forwarded'
%%     through untouched, so it cannot be believed next to them.</li>
%% </ul>
%% Host (`X-Forwarded-Host', `Forwarded: host=') is never applied: nginx and
%% most proxies pass a client's own X-Forwarded-Host through unless told to
%% overwrite it, so a trusted proxy does not make it true, and a wrong Host
%% poisons every absolute URL an app builds (password-reset links).
%% Frameworks that want it opt in themselves (Django's
%% `USE_X_FORWARDED_HOST', Werkzeug's `ProxyFix(x_host=1)').
-module(py_web_proxy).

-include("py_web.hrl").

-export([trust/1, trusted/2, request/2, request/3, peer_trusted/2, forwarded/1]).
-export_type([trust/0]).

-type ip() :: inet:ip_address().
-opaque trust() :: all | {[ip()], [{ip(), 0..128}], [binary()]}.

%% @doc A trust list from its text (`"127.0.0.1,::1"', `"10.0.0.0/8"',
%% `"*"') or a list of entries. An entry that is neither an address nor a
%% network is a literal, matched as text (as uvicorn does).
-spec trust(string() | binary() | [string() | binary()]) -> {ok, trust()} | error.
trust(Spec) when is_binary(Spec) ->
    trust(binary_to_list(Spec));
trust([C | _] = Spec) when is_integer(C) ->
    trust(string:split(Spec, ",", all));
trust(Entries) when is_list(Entries) ->
    try [entry(E) || E <- Entries] of
        Parsed ->
            case lists:member(all, Parsed) of
                true -> {ok, all};
                false ->
                    {ok, {[Ip || {ip, Ip} <- Parsed], [N || {net, N} <- Parsed],
                          [L || {literal, L} <- Parsed]}}
            end
    catch
        error:_ -> error
    end;
trust(_) ->
    error.

entry(E) when is_binary(E) -> entry(binary_to_list(E));
entry(E0) when is_list(E0) ->
    case string:trim(E0) of
        "*" -> all;
        "" -> {literal, <<>>};
        E ->
            case string:split(E, "/") of
                [A, Bits] ->
                    case {inet:parse_strict_address(A), string:to_integer(Bits)} of
                        {{ok, Ip}, {B, ""}} when B >= 0 ->
                            case B =< bits(Ip) of
                                true -> {net, {Ip, B}};
                                false -> {literal, list_to_binary(E)}
                            end;
                        _ -> {literal, list_to_binary(E)}
                    end;
                [A] ->
                    case inet:parse_strict_address(A) of
                        {ok, Ip} -> {ip, normal(Ip)};
                        {error, _} -> {literal, list_to_binary(E)}
                    end
            end
    end.

%% @doc Whether a peer (its address as text, as py_web_transport gives it,
%% or `undefined' for a Unix domain socket) is trusted.
-spec trusted(binary() | undefined, trust()) -> boolean().
trusted(_, all) -> true;
trusted(undefined, _) -> true;
trusted(Host, {Ips, Nets, Literals}) ->
    case inet:parse_strict_address(binary_to_list(Host)) of
        {ok, Ip0} ->
            Ip = normal(Ip0),
            lists:member(Ip, Ips) orelse lists:any(fun(N) -> in_net(Ip, N) end, Nets);
        {error, _} ->
            lists:member(Host, Literals)
    end.

%% IPv4-mapped IPv6 addresses (a dual-stack socket's IPv4 peers) as IPv4.
normal({0, 0, 0, 0, 0, 16#ffff, A, B}) -> {A bsr 8, A band 255, B bsr 8, B band 255};
normal(Ip) -> Ip.

bits(Ip) when tuple_size(Ip) =:= 4 -> 32;
bits(_) -> 128.

in_net(Ip, {Net, Bits}) when tuple_size(Ip) =:= tuple_size(Net) ->
    Shift = bits(Ip) - Bits,
    (int(Ip) bsr Shift) =:= (int(Net) bsr Shift);
in_net(_, _) ->
    false.

int({A, B, C, D}) -> (A bsl 24) bor (B bsl 16) bor (C bsl 8) bor D;
int(T) -> lists:foldl(fun(X, Acc) -> (Acc bsl 16) bor X end, 0, tuple_to_list(T)).

%% @doc The request as the app should see it: client address and scheme
%% from the proxy's fields when the peer is trusted and `proxy_headers' is
%% on (the configuration's `proxy'), else unchanged.
-spec request(#req{}, #cfg{}) -> #req{}.
request(Req = #req{peer = Peer}, Cfg) ->
    request(Req, Cfg, peer_trusted(Peer, Cfg)).

%% @doc request/2 with the peer's trust already known (peer_trusted/2): a connection's
%% peer is the same for all its requests.
-spec request(#req{}, #cfg{}, boolean()) -> #req{}.
request(Req, _Cfg, false) ->
    Req;
request(Req = #req{headers = Hs}, #cfg{proxy = Trust}, true) ->
    apply_fields(fields(Hs, undefined, [], []), Req, Trust).

%% @doc Whether the proxy fields of requests from Peer are applied: `proxy_headers' on
%% and Peer in `forwarded_allow_ips'.
-spec peer_trusted({binary(), inet:port_number()} | undefined, #cfg{}) -> boolean().
peer_trusted(_Peer, #cfg{proxy = undefined}) ->
    false;
peer_trusted(Peer, #cfg{proxy = Trust}) ->
    trusted(host(Peer), Trust).

host(undefined) -> undefined;
host({H, _}) -> H.

fields([{<<"x-forwarded-proto">>, V} | T], _, For, Fwd) -> fields(T, V, For, Fwd);
fields([{<<"x-forwarded-for">>, V} | T], Proto, For, Fwd) -> fields(T, Proto, [V | For], Fwd);
fields([{<<"forwarded">>, V} | T], Proto, For, Fwd) -> fields(T, Proto, For, [V | Fwd]);
fields([_ | T], Proto, For, Fwd) -> fields(T, Proto, For, Fwd);
fields([], Proto, For, Fwd) -> {Proto, lists:reverse(For), lists:reverse(Fwd)}.

apply_fields({undefined, [], []}, Req, _) ->
    Req;
apply_fields({undefined, [], Fwd}, Req, Trust) ->
    Elements = forwarded(iolist_to_binary(lists:join(<<",">>, Fwd))),
    Nodes = [{maps:get(for, E, <<>>), E} || E <- Elements],
    case pick(Nodes, Trust) of
        none -> Req;
        {{Host, Port}, E} ->
            Req1 = case maps:find(proto, E) of
                       {ok, P} -> scheme(py_web_h1_field:lower(P), Req);
                       error -> Req
                   end,
            case is_ip(Host) of
                true -> Req1#req{peer = {Host, Port}};
                false -> Req1
            end
    end;
apply_fields({Proto, For, _}, Req, Trust) ->
    Req1 = case Proto of
               undefined -> Req;
               _ -> scheme(ows(Proto), Req)
           end,
    case For of
        [] -> Req1;
        _ ->
            Hosts = [ows(H) || H <- binary:split(iolist_to_binary(lists:join(<<", ">>, For)),
                                                        <<",">>, [global])],
            case pick([{H, H} || H <- Hosts], Trust) of
                {{Host, _} = Client, _} ->
                    case is_ip(Host) of
                        true -> Req1#req{peer = Client};
                        false -> Req1
                    end;
                none -> Req1
            end
    end.

scheme(P, Req) when P =:= <<"https">>; P =:= <<"wss">> -> Req#req{scheme = <<"https">>};
scheme(P, Req) when P =:= <<"http">>; P =:= <<"ws">> -> Req#req{scheme = <<"http">>};
scheme(_, Req) -> Req.

%% The client among the nodes a chain of proxies recorded (left-most first):
%% the right-most one that is not trusted, else the left-most.
pick([], _) -> none;
pick(Nodes = [{First, FirstE} | _], Trust) ->
    case Trust of
        all -> {host_port(First), FirstE};
        _ ->
            case [{HP, E} || {N, E} <- lists:reverse(Nodes),
                             HP <- [host_port(N)], not trusted_node(HP, Trust)] of
                [Found | _] -> Found;
                [] -> {host_port(First), FirstE}
            end
    end.

trusted_node({<<>>, _}, _) -> false;
trusted_node({H, _}, Trust) -> trusted(H, Trust).

%% "1.2.3.4", "1.2.3.4:80", "[::1]:80", "::1" (uvicorn's _parse_host_port).
host_port(<<"[", Rest/binary>> = V) ->
    case binary:split(Rest, <<"]">>) of
        [H, <<>>] -> {H, 0};
        [H, <<":", P/binary>>] -> {H, port(P)};
        _ -> {V, 0}
    end;
host_port(V) ->
    case binary:split(V, <<":">>, [global]) of
        [H, P] ->
            case port_or_error(P) of
                error -> {V, 0};
                N -> {H, N}
            end;
        _ -> {V, 0}
    end.

port(P) ->
    case port_or_error(P) of
        error -> 0;
        N -> N
    end.

port_or_error(P) ->
    try binary_to_integer(P) of
        N when N >= 0, N =< 65535 -> N;
        _ -> error
    catch
        error:badarg -> error
    end.

is_ip(H) ->
    case inet:parse_strict_address(binary_to_list(H)) of
        {ok, _} -> true;
        {error, _} -> false
    end.

%% @doc The elements of a Forwarded field value (RFC 7239 §4), each a map
%% of its lower-cased parameter names to values (quotes removed; `for' and
%% `by' nodes as written, `[v6]:port' included). Malformed pairs are
%% skipped.
-spec forwarded(binary()) -> [#{atom() | binary() => binary()}].
forwarded(Value) ->
    [element_map(E) || E <- split_quoted(Value, $,), E =/= <<>>].

element_map(E) ->
    lists:foldl(fun(Pair, M) ->
                        case binary:split(Pair, <<"=">>) of
                            [K, V] when K =/= <<>> ->
                                M#{key(py_web_h1_field:lower(ows(K))) => unquote(ows(V))};
                            _ -> M
                        end
                end, #{}, split_quoted(E, $;)).

key(<<"for">>) -> for;
key(<<"proto">>) -> proto;
key(<<"by">>) -> by;
key(<<"host">>) -> host;
key(K) -> K.

unquote(<<"\"", Rest/binary>>) ->
    case binary:last(Rest) of
        $" when byte_size(Rest) > 0 ->
            unescape(binary:part(Rest, 0, byte_size(Rest) - 1));
        _ -> Rest
    end;
unquote(V) -> V.

%% quoted-pair (RFC 9110 §5.6.4): a backslash stands for the character after it.
unescape(<<$\\, C, T/binary>>) -> <<C, (unescape(T))/binary>>;
unescape(<<C, T/binary>>) -> <<C, (unescape(T))/binary>>;
unescape(<<>>) -> <<>>.

ows(B) -> py_web_h1_field:trim(B).

%% Split on Sep outside double quotes, trimming each part.
split_quoted(B, Sep) -> split_quoted(B, Sep, false, <<>>, []).

split_quoted(<<>>, _, _, Cur, Acc) ->
    lists:reverse([ows(Cur) | Acc]);
split_quoted(<<$\\, C, T/binary>>, Sep, true, Cur, Acc) ->
    split_quoted(T, Sep, true, <<Cur/binary, $\\, C>>, Acc);
split_quoted(<<$", T/binary>>, Sep, Q, Cur, Acc) ->
    split_quoted(T, Sep, not Q, <<Cur/binary, $">>, Acc);
split_quoted(<<C, T/binary>>, Sep, false, Cur, Acc) when C =:= Sep ->
    split_quoted(T, Sep, false, <<>>, [ows(Cur) | Acc]);
split_quoted(<<C, T/binary>>, Sep, Q, Cur, Acc) ->
    split_quoted(T, Sep, Q, <<Cur/binary, C>>, Acc).
