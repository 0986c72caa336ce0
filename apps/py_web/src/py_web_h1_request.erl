%% @doc Strict HTTP/1.1 request-head parser (RFC 9112), pure: bytes in, a
%% plain map or the status to answer out. The one owner of the request
%% line, the request-target forms, the Host rule and the message-framing
%% decision (Content-Length vs Transfer-Encoding); field lines are
%% py_web_h1_field's.
%%
%% Rules, in the order they are applied:
%%
%% <ul>
%% <li>Empty lines (CRLF) before the request line are skipped (§2.2).</li>
%% <li>Every line ends in CRLF; a bare CR or a bare LF anywhere in the head
%%     is 400 (§2.2: we do not take the MAY of a bare LF).</li>
%% <li>Request line (§3): `method SP request-target SP HTTP-version', single
%%     SPs. The method is a token (case kept). The request-target is one or
%%     more VCHAR (0x21-0x7E): no CTL, SP, DEL or non-ASCII byte, and it has
%%     one of the four forms of §3.2: origin-form (`/...', split at the
%%     first `?' into raw path and query), absolute-form (`scheme://'
%%     authority path-abempty [`?' query], no userinfo, an empty path is
%%     `/'), authority-form (`host:port', CONNECT only, §3.2.3), asterisk-form
%%     (`*', OPTIONS only, §3.2.4). The version is exactly `HTTP/1.1' or
%%     `HTTP/1.0'; another `HTTP/' DIGIT `.' DIGIT is 505; anything else
%%     (`HTTP/1.1.1', `HTTP/01.1', `http/1.1', trailing bytes) is 400.
%%     A request line longer than `max_request_line' (CRLF included) is
%%     414, as soon as that many bytes are buffered without a line end.</li>
%% <li>Field lines: see py_web_h1_field. The header section (CRLFs and the
%%     final empty line included) over `max_header_size' bytes, or more
%%     than `max_headers' fields, is 431.</li>
%% <li>Host (§3.2): HTTP/1.1 needs exactly one, HTTP/1.0 at most one; its
%%     value is `uri-host [":" port]' (RFC 3986: reg-name, IPv4 or
%%     IP-literal; empty allowed), else 400.</li>
%% <li>Framing (§6): Content-Length is 1*DIGIT (at most 18 digits); a
%%     second Content-Length line, even equal, or a list value is 400.
%%     Transfer-Encoding together with Content-Length, or in HTTP/1.0, is 400
%%     (§6.1, §6.3). Its codings (every Transfer-Encoding line, in order)
%%     must end in `chunked', which must appear once and without parameters,
%%     else 400 (§6.3: `identity', `chunked, identity', `gzip' are 400); a
%%     valid coding before the final `chunked' is one we do not implement:
%%     501 (§6.1).</li>
%% <li>Connection: `close' ends keep-alive; HTTP/1.0 keeps the connection
%%     only with `keep-alive' (§9.3). Expect: `100-continue' (HTTP/1.1; an
%%     HTTP/1.0 one is ignored, RFC 9110 §10.1.1), anything else 417.</li>
%% </ul>
%%
%% When a request has several faults, 400 comes before 501, 501 before 417.
-module(py_web_h1_request).

-export([parse/2, content_length/1]).

-export_type([head/0, limits/0, result/0, status/0]).

-type limits() :: #{max_request_line := pos_integer(),
                    max_header_size := pos_integer(),
                    max_headers := pos_integer()}.

%% `raw_path' is the path as received (not percent-decoded) before the
%% first `?', `qs' what follows it; for the authority form `raw_path' is the
%% target itself, for the asterisk form `*'. `authority' is the target's
%% authority for the absolute and authority forms (RFC 9112 §3.2.2: it
%% replaces Host), `<<>>' otherwise. `headers' have lower-cased names, in
%% arrival order, duplicates kept, Host and framing fields included.
-type head() :: #{method := binary(),
                  version := {1, 0} | {1, 1},
                  target := origin | absolute | authority | asterisk,
                  raw_path := binary(),
                  qs := binary(),
                  authority := binary(),
                  headers := [py_web_h1_field:field()],
                  clen := undefined | non_neg_integer(),
                  chunked := boolean(),
                  keepalive := boolean(),
                  expect := boolean()}.

-type status() :: 400 | 414 | 417 | 431 | 501 | 505.

-type result() :: {ok, head(), Rest :: binary()}
                | {more, binary()}
                | {error, status()}.

%% A request-target byte: VCHAR.
-define(VCHAR(C), (C > 32 andalso C < 127)).
%% A request-target byte before the query: VCHAR but '?'.
-define(PCHAR(C), (C > 32 andalso C < 127 andalso C =/= $?)).

%% @doc Parse one request head from the start of `Buf'. `{ok, Head, Rest}':
%% Rest starts with the body or the next request. `{more, Buf2}': the head
%% is incomplete and nothing seen so far is invalid; Buf2 is Buf without
%% the leading empty lines (keep it, append, parse again). `{error, Status}':
%% answer Status and close the connection.
-spec parse(binary(), limits()) -> result().
parse(<<"\r\n", Rest/binary>>, Limits) ->
    parse(Rest, Limits);
parse(<<"\r">> = Buf, _Limits) ->
    {more, Buf};
parse(Buf, Limits = #{max_request_line := MaxLine}) ->
    Size = byte_size(Buf),
    %% The request line must end within the first MaxLine bytes.
    View = case Size > MaxLine of
               true -> binary:part(Buf, 0, MaxLine);
               false -> Buf
           end,
    case method(View, 0, View) of
        {ok, Line, End} -> headers(Buf, End, Line, Limits);
        more when Size >= MaxLine -> {error, 414};
        more -> {more, Buf};
        Error -> Error
    end.

%%====================================================================
%% Request line (§3), one pass over the bytes
%%====================================================================

method(<<C, R/binary>>, P, V) when C >= $A, C =< $Z ->
    method(R, P + 1, V);
method(<<$\s, R/binary>>, P, V) when P > 0 ->
    path(R, P + 1, P + 1, V);
method(<<C, R/binary>>, P, V) ->
    case py_web_h1_field:is_tchar(C) of
        true -> method(R, P + 1, V);
        false -> {error, 400}
    end;
method(<<>>, _P, _V) ->
    more.

%% The target from TS up to '?' or SP.
path(<<A, B, C, D, R/binary>>, P, TS, V)
  when ?PCHAR(A), ?PCHAR(B), ?PCHAR(C), ?PCHAR(D) ->
    path(R, P + 4, TS, V);
path(<<C, R/binary>>, P, TS, V) when ?PCHAR(C) ->
    path(R, P + 1, TS, V);
path(<<$?, R/binary>>, P, TS, V) ->
    query(R, P + 1, TS, P, V);
path(<<$\s, R/binary>>, P, TS, V) when P > TS ->
    version(R, P + 1, TS, P, P, V);
path(<<>>, _P, _TS, _V) ->
    more;
path(_, _P, _TS, _V) ->
    {error, 400}.

%% The query, after the '?' at Q.
query(<<A, B, C, D, R/binary>>, P, TS, Q, V)
  when ?VCHAR(A), ?VCHAR(B), ?VCHAR(C), ?VCHAR(D) ->
    query(R, P + 4, TS, Q, V);
query(<<C, R/binary>>, P, TS, Q, V) when ?VCHAR(C) ->
    query(R, P + 1, TS, Q, V);
query(<<$\s, R/binary>>, P, TS, Q, V) ->
    version(R, P + 1, TS, Q, P, V);
query(<<>>, _P, _TS, _Q, _V) ->
    more;
query(_, _P, _TS, _Q, _V) ->
    {error, 400}.

%% The version after the target [TS, TE) and its CRLF. Q is the position
%% of the first '?' in the target, TE when there is none.
version(<<"HTTP/1.1\r\n", _/binary>>, P, TS, Q, TE, V) ->
    line(V, TS, Q, TE, {1, 1}, P + 10);
version(<<"HTTP/1.0\r\n", _/binary>>, P, TS, Q, TE, V) ->
    line(V, TS, Q, TE, {1, 0}, P + 10);
version(<<"HTTP/", A, $., B, "\r\n", _/binary>>, P, TS, Q, TE, V)
  when A >= $0, A =< $9, B >= $0, B =< $9 ->
    case line(V, TS, Q, TE, other, P + 10) of
        {ok, _, _} -> {error, 505};
        Error -> Error
    end;
version(R, _P, _TS, _Q, _TE, _V) ->
    case byte_size(R) < 10 andalso version_prefix(R, <<"HTTP/0.0\r">>) of
        true -> more;
        false -> {error, 400}
    end.

%% R can still become "HTTP/" DIGIT "." DIGIT CRLF.
version_prefix(<<C, R/binary>>, <<$0, T/binary>>) when C >= $0, C =< $9 ->
    version_prefix(R, T);
version_prefix(<<C, R/binary>>, <<C, T/binary>>) ->
    version_prefix(R, T);
version_prefix(<<>>, _) ->
    true;
version_prefix(_, _) ->
    false.

line(V, TS, Q, TE, Version, End) ->
    <<Method:(TS - 1)/binary, _/binary>> = V,
    case binary:at(V, TS) of
        $/ when Method =/= <<"CONNECT">> ->
            Path = binary:part(V, TS, Q - TS),
            Qs = case Q < TE of
                     true -> binary:part(V, Q + 1, TE - Q - 1);
                     false -> <<>>
                 end,
            {ok, {Method, Version, origin, Path, Qs, <<>>}, End};
        _ ->
            case target(binary:part(V, TS, TE - TS), Method) of
                {Form, Path, Qs, Auth} ->
                    {ok, {Method, Version, Form, Path, Qs, Auth}, End};
                error ->
                    {error, 400}
            end
    end.

%% The other forms of §3.2, as {Form, RawPath, Qs, Authority}; every byte
%% of the target is already known to be a VCHAR.
target(<<"*">>, <<"OPTIONS">>) ->
    {asterisk, <<"*">>, <<>>, <<>>};
target(T = <<C, _/binary>>, <<"CONNECT">>) when C =/= $: ->
    case authority(T, required) of
        true -> {authority, T, <<>>, T};
        false -> error
    end;
target(_T, <<"CONNECT">>) ->
    error;
target(T, _Method) ->
    absolute(T).

%% absolute-form: scheme "://" authority path-abempty [ "?" query ].
absolute(T) ->
    case scheme(T, 0) of
        {ok, SLen} ->
            <<_:SLen/binary, "://", R/binary>> = T,
            ALen = authority_end(R, 0),
            <<Auth:ALen/binary, PathQs/binary>> = R,
            case has_host(Auth) andalso authority(Auth, optional) of
                true ->
                    {Path, Qs} = case binary:split(PathQs, <<"?">>) of
                                     [P, Q] -> {P, Q};
                                     [P] -> {P, <<>>}
                                 end,
                    {absolute, case Path of <<>> -> <<"/">>; _ -> Path end, Qs, Auth};
                false ->
                    error
            end;
        error ->
            error
    end.

scheme(<<C, R/binary>>, 0) when C >= $a, C =< $z; C >= $A, C =< $Z ->
    scheme(R, 1);
scheme(<<"://", _/binary>>, N) when N > 0 ->
    {ok, N};
scheme(<<C, R/binary>>, N) when N > 0, (C >= $a andalso C =< $z) orelse
                                       (C >= $A andalso C =< $Z) orelse
                                       (C >= $0 andalso C =< $9) orelse
                                       C =:= $+ orelse C =:= $- orelse C =:= $. ->
    scheme(R, N + 1);
scheme(_, _) ->
    error.

authority_end(<<C, _/binary>>, N) when C =:= $/; C =:= $? -> N;
authority_end(<<_, R/binary>>, N) -> authority_end(R, N + 1);
authority_end(<<>>, N) -> N.

%%====================================================================
%% Authority: uri-host [ ":" port ] (RFC 3986 §3.2.2-3.2.3)
%%====================================================================

%% An http(s) URI needs a non-empty host (RFC 9110 §4.2.1); so does CONNECT.
has_host(<<C, _/binary>>) -> C =/= $:;
has_host(<<>>) -> false.

%% Port `required' (CONNECT: 1*DIGIT) or `optional' ([":" *DIGIT]).
%% No userinfo: '@' is not a host character.
authority(<<$[, R/binary>>, Port) ->
    ip_literal(R, 0, Port);
authority(B, Port) ->
    reg_name(B, Port).

%% reg-name / IPv4address: unreserved / pct-encoded / sub-delims.
reg_name(<<C, R/binary>>, Port)
  when C >= $a, C =< $z; C >= $0, C =< $9; C =:= $.; C =:= $-; C >= $A, C =< $Z ->
    reg_name(R, Port);
reg_name(<<$:, R/binary>>, Port) ->
    port(R, Port);
reg_name(<<$%, H, L, R/binary>>, Port) ->
    hex(H) andalso hex(L) andalso reg_name(R, Port);
reg_name(<<C, R/binary>>, Port) ->
    (C =:= $_ orelse C =:= $~ orelse sub_delim(C)) andalso reg_name(R, Port);
reg_name(<<>>, Port) ->
    Port =:= optional.

%% IP-literal: "[" IPv6address / IPvFuture "]", checked for its alphabet.
ip_literal(<<$], R/binary>>, N, Port) when N > 0 ->
    case R of
        <<>> -> Port =:= optional;
        <<$:, Digits/binary>> -> port(Digits, Port);
        _ -> false
    end;
ip_literal(<<C, R/binary>>, N, Port)
  when C >= $a, C =< $z; C >= $A, C =< $Z; C >= $0, C =< $9; C =:= $:; C =:= $. ->
    ip_literal(R, N + 1, Port);
ip_literal(<<C, R/binary>>, N, Port) ->
    (C =:= $- orelse C =:= $_ orelse C =:= $~ orelse sub_delim(C))
        andalso ip_literal(R, N + 1, Port);
ip_literal(<<>>, _N, _Port) ->
    false.

%% The digits after ':'.
port(<<>>, required) -> false;
port(Digits, _) -> digits(Digits, 0) =/= error.

sub_delim(C) ->
    C =:= $! orelse C =:= $$ orelse C =:= $& orelse C =:= $' orelse C =:= $( orelse
        C =:= $) orelse C =:= $* orelse C =:= $+ orelse C =:= $, orelse C =:= $; orelse
        C =:= $=.

hex(C) -> (C >= $0 andalso C =< $9) orelse (C >= $a andalso C =< $f)
              orelse (C >= $A andalso C =< $F).

%%====================================================================
%% Header section (§5) and framing (§6)
%%====================================================================

headers(Buf, Start, Line, #{max_header_size := MaxH, max_headers := MaxN}) ->
    case py_web_h1_field:section(Buf, Start, MaxH, MaxN) of
        {ok, Fields, End} ->
            <<_:End/binary, Rest/binary>> = Buf,
            finish(Line, Fields, Rest);
        more ->
            {more, Buf};
        Error ->
            Error
    end.

%% What the framing fields say, gathered in one pass.
-record(fr, {clen = undefined :: undefined | non_neg_integer(),
             te = [] :: [binary()],          %% Transfer-Encoding values, reversed
             hosts = 0 :: non_neg_integer(),
             close = false :: boolean(),
             ka = false :: boolean(),        %% a keep-alive token
             expect = none :: none | continue | other,
             bad = false :: boolean()}).     %% a 400 already found

finish({Method, V, Form, Path, Qs, Auth}, Fields, Rest) ->
    Fr = scan(Fields, #fr{}),
    case decide(Fr, V) of
        {ok, Chunked} ->
            {ok, #{method => Method, version => V, target => Form,
                   raw_path => Path, qs => Qs, authority => Auth,
                   headers => Fields,
                   clen => Fr#fr.clen,
                   chunked => Chunked,
                   keepalive => keepalive(Fr, V),
                   expect => Fr#fr.expect =:= continue andalso V =:= {1, 1}},
             Rest};
        Error ->
            Error
    end.

scan([{<<"content-length">>, V} | T], Fr = #fr{clen = undefined}) ->
    case content_length(V) of
        error -> Fr#fr{bad = true};
        N -> scan(T, Fr#fr{clen = N})
    end;
scan([{<<"content-length">>, _} | _], Fr) ->
    Fr#fr{bad = true};
scan([{<<"transfer-encoding">>, V} | T], Fr = #fr{te = TE}) ->
    scan(T, Fr#fr{te = [V | TE]});
scan([{<<"host">>, V} | T], Fr = #fr{hosts = H}) ->
    case authority(V, optional) of
        true -> scan(T, Fr#fr{hosts = H + 1});
        false -> Fr#fr{bad = true}
    end;
scan([{<<"connection">>, V} | T], Fr) ->
    Tokens = py_web_h1_field:list_tokens(V),
    scan(T, Fr#fr{close = Fr#fr.close orelse lists:member(<<"close">>, Tokens),
                  ka = Fr#fr.ka orelse lists:member(<<"keep-alive">>, Tokens)});
scan([{<<"expect">>, V} | T], Fr) ->
    case {py_web_h1_field:list_tokens(V), Fr#fr.expect} of
        {[<<"100-continue">>], E} when E =/= other -> scan(T, Fr#fr{expect = continue});
        _ -> scan(T, Fr#fr{expect = other})
    end;
scan([_ | T], Fr) ->
    scan(T, Fr);
scan([], Fr) ->
    Fr.

decide(#fr{bad = true}, _V) -> {error, 400};
decide(#fr{hosts = H}, _V) when H > 1 -> {error, 400};
decide(#fr{hosts = 0}, {1, 1}) -> {error, 400};
decide(#fr{te = [], expect = other}, _V) -> {error, 417};
decide(#fr{te = []}, _V) -> {ok, false};
decide(#fr{clen = N}, _V) when N =/= undefined -> {error, 400};
decide(#fr{}, {1, 0}) -> {error, 400};
decide(#fr{te = TE, expect = E}, _V) ->
    Codings = lists:append([py_web_h1_field:list_tokens(V) || V <- lists:reverse(TE)]),
    case {codings(Codings), E} of
        {ok, other} -> {error, 417};
        {ok, _} -> {ok, true};
        {Error, _} -> Error
    end.

%% The codings must end in a bare "chunked" that appears once (§6.3,
%% §6.1); a valid coding before it is one we do not implement (501).
codings([]) ->
    {error, 400};
codings(Cs) ->
    case lists:last(Cs) of
        <<"chunked">> ->
            Before = [coding_name(C) || C <- lists:droplast(Cs)],
            case lists:any(fun(N) -> N =:= error orelse N =:= <<"chunked">> end, Before) of
                true -> {error, 400};
                false when Before =:= [] -> ok;
                false -> {error, 501}
            end;
        _ ->
            {error, 400}
    end.

%% transfer-coding = token *( OWS ";" OWS transfer-parameter ): its name
%% (`error' when not a token; parameters are not looked at since such a
%% coding is refused anyway; "chunked" takes none). The element comes
%% trimmed and lower-cased from list_tokens/1.
coding_name(C) -> coding_name(C, 0, C).

coding_name(<<$;, _/binary>>, N, C) when N > 0 ->
    case binary:part(C, 0, N) of
        <<"chunked">> -> error;
        Name -> Name
    end;
coding_name(<<Ws, R/binary>>, N, C) when N > 0, Ws =:= $\s; N > 0, Ws =:= $\t ->
    case skip_ows(R) of
        <<$;, _/binary>> -> coding_name(<<$;>>, N, C);
        _ -> error
    end;
coding_name(<<Ch, R/binary>>, N, C) ->
    case py_web_h1_field:is_tchar(Ch) of
        true -> coding_name(R, N + 1, C);
        false -> error
    end;
coding_name(<<>>, N, C) when N > 0 ->
    C;
coding_name(<<>>, _N, _C) ->
    error.

skip_ows(<<C, R/binary>>) when C =:= $\s; C =:= $\t -> skip_ows(R);
skip_ows(B) -> B.

%% @doc A Content-Length value (§6.2): 1*DIGIT, at most 18 digits (below
%% 2^60: no bignum arithmetic); also the rule for an app's response.
-spec content_length(binary()) -> non_neg_integer() | error.
content_length(<<>>) -> error;
content_length(V) when byte_size(V) > 18 -> error;
content_length(V) -> digits(V, 0).

digits(<<C, R/binary>>, Acc) when C >= $0, C =< $9 -> digits(R, Acc * 10 + C - $0);
digits(<<>>, Acc) -> Acc;
digits(_, _) -> error.

keepalive(#fr{close = true}, _) -> false;
keepalive(#fr{ka = KA}, {1, 0}) -> KA;
keepalive(_, {1, 1}) -> true.
