%% @doc The PROXY protocol (HAProxy's, versions 1 and 2): the header a TCP
%% proxy sends before the connection's own bytes, saying whose connection it
%% relays. Read only from peers in `proxy_allow_ips', before the TLS
%% handshake; from other peers nothing is read (a `PROXY' line is then just
%% a bad request).
%%
%% Over plain TCP the header is optional, as gunicorn has it: bytes that are
%% no header are the first request's. Over TLS it is required from a
%% trusted peer (the bytes read to find out would be the TLS handshake's).
%% A v1 line or v2 header that is malformed is an error (the connection is
%% closed). `UNKNOWN' (v1) and `LOCAL' or an unspecified family (v2) keep the
%% connection's own addresses.
-module(py_web_proxy_protocol).

-export([read/4, parse/2]).
-export_type([info/0]).

-define(V2_SIG, <<"\r\n\r\n\0\r\nQUIT\n">>).
-define(V1_MAX, 107).

-type addr() :: {binary(), inet:port_number()}.
%% The client's and the proxy's side of the relayed connection, or `local'.
-type info() :: #{peer := addr(), local := addr()} | local.

%% @doc Read the header from an accepted TCP socket (passive). Returns the
%% header's information (`none' without a header) and the bytes read after
%% it.
-spec read(inet:socket(), v1 | v2 | auto, TLS :: boolean(), timeout()) ->
          {ok, info() | none, binary()} | {error, term()}.
read(S, Mode, false, Timeout) ->
    read_plain(S, Mode, <<>>, deadline(Timeout));
read(S, Mode, true, Timeout) ->
    D = deadline(Timeout),
    case recv(S, 6, D) of
        {ok, <<"PROXY ">> = P} when Mode =/= v2 ->
            ok = inet:setopts(S, [{packet, line}, {packet_size, ?V1_MAX}]),
            R = recv(S, 0, D),
            ok = inet:setopts(S, [{packet, raw}]),
            case R of
                {ok, Line} -> done(parse(v1, <<P/binary, Line/binary>>));
                {error, _} = E -> E
            end;
        {ok, <<"\r\n\r\n\0\r">> = P} when Mode =/= v1 ->
            case recv(S, 10, D) of
                {ok, <<"\nQUIT\n", _:16, Len:16>> = H} ->
                    case recv_body(S, Len, D) of
                        {ok, Body} -> done(parse(v2, <<P/binary, H/binary, Body/binary>>));
                        {error, _} = E -> E
                    end;
                {ok, _} -> {error, bad_proxy_header};
                {error, _} = E -> E
            end;
        {ok, _} -> {error, no_proxy_header};
        {error, _} = E -> E
    end.

done({ok, Info, <<>>}) -> {ok, Info, <<>>};
done({error, _} = E) -> E.

recv_body(_, 0, _) -> {ok, <<>>};
recv_body(S, Len, D) -> recv(S, Len, D).

read_plain(S, Mode, Buf, D) ->
    case parse(Mode, Buf) of
        more ->
            case recv(S, 0, D) of
                {ok, Data} -> read_plain(S, Mode, <<Buf/binary, Data/binary>>, D);
                {error, _} = E -> E
            end;
        Other ->
            Other
    end.

deadline(infinity) -> infinity;
deadline(T) -> erlang:monotonic_time(millisecond) + T.

recv(S, N, infinity) -> gen_tcp:recv(S, N);
recv(S, N, D) -> gen_tcp:recv(S, N, max(0, D - erlang:monotonic_time(millisecond))).

%% @doc Parse a header at the start of Buf: `{ok, Info, Rest}' with the
%% bytes after it; `{ok, none, Buf}' when Buf starts with no header this
%% mode accepts; `more' when Buf is too short to tell; `{error,
%% bad_proxy_header}'.
-spec parse(v1 | v2 | auto, binary()) ->
          {ok, info() | none, binary()} | more | {error, bad_proxy_header}.
parse(Mode, Buf) ->
    case {prefix(<<"PROXY ">>, Buf), prefix(?V2_SIG, Buf)} of
        {full, _} when Mode =/= v2 -> v1(Buf);
        {_, full} when Mode =/= v1 -> v2(Buf);
        {partial, _} when Mode =/= v2 -> more;
        {_, partial} when Mode =/= v1 -> more;
        _ -> {ok, none, Buf}
    end.

prefix(P, Buf) when byte_size(Buf) >= byte_size(P) ->
    case binary:part(Buf, 0, byte_size(P)) of
        P -> full;
        _ -> no
    end;
prefix(P, Buf) ->
    case binary:part(P, 0, byte_size(Buf)) of
        Buf -> partial;
        _ -> no
    end.

v1(Buf) ->
    case binary:split(Buf, <<"\r\n">>) of
        [Line, Rest] when byte_size(Line) + 2 =< ?V1_MAX ->
            case v1_line(binary:split(Line, <<" ">>, [global])) of
                error -> {error, bad_proxy_header};
                Info -> {ok, Info, Rest}
            end;
        [_, _] -> {error, bad_proxy_header};
        [_] when byte_size(Buf) >= ?V1_MAX -> {error, bad_proxy_header};
        [_] -> more
    end.

v1_line([<<"PROXY">>, <<"UNKNOWN">> | _]) ->
    local;
v1_line([<<"PROXY">>, Proto, Src, Dst, SPort, DPort])
  when Proto =:= <<"TCP4">>; Proto =:= <<"TCP6">> ->
    Family = case Proto of <<"TCP4">> -> inet; <<"TCP6">> -> inet6 end,
    case {addr(Src, Family), addr(Dst, Family), port(SPort), port(DPort)} of
        {{ok, S}, {ok, D}, {ok, SP}, {ok, DP}} -> #{peer => {S, SP}, local => {D, DP}};
        _ -> error
    end;
v1_line(_) ->
    error.

addr(Text, Family) ->
    Parse = case Family of
                inet -> fun inet:parse_ipv4strict_address/1;
                inet6 -> fun inet:parse_ipv6strict_address/1
            end,
    case Parse(binary_to_list(Text)) of
        {ok, Ip} -> {ok, list_to_binary(inet:ntoa(Ip))};
        {error, _} -> error
    end.

port(Text) ->
    try binary_to_integer(Text) of
        P when P >= 0, P =< 65535 -> {ok, P};
        _ -> error
    catch
        error:badarg -> error
    end.

v2(<<_:12/binary, Ver:4, Cmd:4, Fam:4, Proto:4, Len:16, Rest/binary>>) ->
    case Rest of
        <<Body:Len/binary, After/binary>> ->
            case v2_body(Ver, Cmd, Fam, Proto, Body) of
                error -> {error, bad_proxy_header};
                Info -> {ok, Info, After}
            end;
        _ when Ver =:= 2 -> more;
        _ -> {error, bad_proxy_header}
    end;
v2(_) ->
    more.

%% Version 2; command LOCAL (0) or PROXY (1); family UNSPEC (0), INET (1),
%% INET6 (2) over STREAM (1). Unix-socket families are relayed as `local'.
v2_body(2, 0, _, _, _) -> local;
v2_body(2, 1, 0, _, _) -> local;
v2_body(2, 1, 1, 1, <<S1, S2, S3, S4, D1, D2, D3, D4, SP:16, DP:16, _/binary>>) ->
    #{peer => {ntoa({S1, S2, S3, S4}), SP}, local => {ntoa({D1, D2, D3, D4}), DP}};
v2_body(2, 1, 2, 1, <<S:16/binary, D:16/binary, SP:16, DP:16, _/binary>>) ->
    #{peer => {ntoa(ip6(S)), SP}, local => {ntoa(ip6(D)), DP}};
v2_body(2, 1, 3, _, _) -> local;
v2_body(_, _, _, _, _) -> error.

ip6(B) -> list_to_tuple([X || <<X:16>> <= B]).

ntoa(Ip) -> list_to_binary(inet:ntoa(Ip)).
