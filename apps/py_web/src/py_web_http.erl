%% @doc HTTP/1.1 wire format for py_web: request-head parsing on the VM's
%% own parser (erlang:decode_packet/3), chunked request-body decoding,
%% percent-decoding, status lines, the validation of an app's response
%% headers, and the bytes of a response head.
%%
%% Everything here is pure (no sockets, no processes).
-module(py_web_http).

-include("py_web.hrl").

-export([parse_request/2,
         chunked_init/0, decode_chunked/3,
         percent_decode/1, root_split/2,
         status_line/1, status_code/1,
         lower/1,
         response_head/1, head/4, head/5,
         chunk/1, last_chunk/0,
         error_response/1]).

-export_type([parse_result/0, chunk_state/0, resp_head/0]).

-type parse_result() :: {ok, #req{}, Rest :: binary()}
                      | {more, Buf :: binary()}
                      | {error, 400 | 414 | 417 | 431 | 501 | 505}.

-opaque chunk_state() :: {size, non_neg_integer()}
                       | {data, non_neg_integer()}
                       | crlf | trailers | done.

-type resp_head() :: #{headers := [{binary(), binary()}],
                       length := undefined | non_neg_integer(),
                       close := boolean(),
                       date := boolean(),
                       server := boolean()}.

%%====================================================================
%% Request head
%%====================================================================

%% @doc Parse one request head from the start of Buf. `{more, Buf2}' means
%% the head is incomplete (Buf2 is Buf without leading empty lines).
-spec parse_request(binary(), #cfg{}) -> parse_result().
parse_request(<<"\r\n", Rest/binary>>, Cfg) -> parse_request(Rest, Cfg);
parse_request(<<"\n", Rest/binary>>, Cfg) -> parse_request(Rest, Cfg);
parse_request(Buf, Cfg = #cfg{max_request_line = MaxLine}) ->
    case erlang:decode_packet(http_bin, Buf, []) of
        {ok, {http_request, Method, Target, Version}, Rest} ->
            case byte_size(Buf) - byte_size(Rest) > MaxLine of
                true -> {error, 414};
                false -> request_line(Method, Target, Version, Rest, Buf, Cfg)
            end;
        {more, _} when byte_size(Buf) > MaxLine ->
            {error, 414};
        {more, _} ->
            {more, Buf};
        {ok, _, _} ->
            {error, 400};
        {error, _} ->
            {error, 400}
    end.

request_line(_Method, _Target, Version, _Rest, _Buf, _Cfg)
  when Version =/= {1, 1}, Version =/= {1, 0} ->
    {error, 505};
request_line(Method, Target, Version, Rest, Buf, Cfg) ->
    case target(Target) of
        {RawPath, Qs} ->
            Req = #req{method = method(Method), version = Version,
                       raw_path = RawPath, qs = Qs,
                       keepalive = Version =:= {1, 1}},
            Max = Cfg#cfg.max_header_size,
            case headers(Rest, Req, [], 0, false, false, Cfg) of
                {more, _} when byte_size(Rest) > Max -> {error, 431};
                {more, _} -> {more, Buf};
                {ok, _, Rest2} when byte_size(Rest) - byte_size(Rest2) > Max ->
                    {error, 431};
                Other -> Other
            end;
        error ->
            {error, 400}
    end.

target({abs_path, P}) -> split_qs(P);
target({absoluteURI, _Scheme, _Host, _Port, P}) -> split_qs(P);
target('*') -> {<<"*">>, <<>>};
target(_) -> error.

split_qs(P) ->
    case binary:split(P, pattern(qmark)) of
        [Path, Qs] -> {Path, Qs};
        [Path] -> {Path, <<>>}
    end.

method('GET') -> <<"GET">>;
method('POST') -> <<"POST">>;
method('HEAD') -> <<"HEAD">>;
method('PUT') -> <<"PUT">>;
method('DELETE') -> <<"DELETE">>;
method('OPTIONS') -> <<"OPTIONS">>;
method('TRACE') -> <<"TRACE">>;
method(M) when is_binary(M) -> M.

%% Host is tracked only to enforce "exactly one Host in HTTP/1.1".
headers(Buf, Req, Acc, N, Host, TE, Cfg) ->
    case erlang:decode_packet(httph_bin, Buf, []) of
        {ok, {http_header, _, Field, Raw, Value0}, Rest} ->
            if
                N >= Cfg#cfg.max_headers -> {error, 431};
                true ->
                    Value = trim_ows(Value0),
                    case valid_value(Value) of
                        false ->
                            {error, 400};
                        true ->
                            header(Field, lname(Field, Raw), Value, Rest,
                                   Req, Acc, N + 1, Host, TE, Cfg)
                    end
            end;
        {ok, http_eoh, Rest} ->
            finish_head(Req#req{headers = lists:reverse(Acc)}, Rest, Host, TE);
        {more, _} ->
            {more, Buf};
        {ok, _, _} ->
            {error, 400};
        {error, _} ->
            {error, 400}
    end.

%% Dispatch on the lower-cased name: decode_packet only gives atoms for
%% some well-known fields (not Expect, for instance).
header(_, Name = <<"content-length">>, Value, Rest, Req, Acc, N, Host, TE, Cfg) ->
    case parse_clen(Value) of
        error ->
            {error, 400};
        Len when Req#req.clen =:= undefined; Req#req.clen =:= Len ->
            headers(Rest, Req#req{clen = Len}, [{Name, Value} | Acc], N,
                    Host, TE, Cfg);
        _ ->
            {error, 400}
    end;
header(_, Name = <<"transfer-encoding">>, Value, Rest, Req, Acc, N, Host, _TE, Cfg) ->
    headers(Rest, Req, [{Name, Value} | Acc], N, Host, true, Cfg);
header(_, Name = <<"connection">>, Value, Rest, Req, Acc, N, Host, TE, Cfg) ->
    Tokens = tokens(Value),
    KA = case {lists:member(<<"close">>, Tokens), Req#req.version} of
             {true, _} -> false;
             {false, {1, 0}} -> lists:member(<<"keep-alive">>, Tokens);
             {false, _} -> Req#req.keepalive
         end,
    headers(Rest, Req#req{keepalive = KA}, [{Name, Value} | Acc], N,
            Host, TE, Cfg);
header(_, Name = <<"expect">>, Value, Rest, Req, Acc, N, Host, TE, Cfg) ->
    case lower(Value) of
        <<"100-continue">> ->
            Req1 = Req#req{expect = Req#req.version =:= {1, 1}},
            headers(Rest, Req1, [{Name, Value} | Acc], N, Host, TE, Cfg);
        _ ->
            {error, 417}
    end;
header(_, <<"host">>, _Value, _Rest, _Req, _Acc, _N, true, _TE, _Cfg) ->
    {error, 400};
header(_, Name = <<"host">>, Value, Rest, Req, Acc, N, false, TE, Cfg) ->
    headers(Rest, Req, [{Name, Value} | Acc], N, true, TE, Cfg);
header(_, Name, Value, Rest, Req, Acc, N, Host, TE, Cfg) ->
    headers(Rest, Req, [{Name, Value} | Acc], N, Host, TE, Cfg).

finish_head(#req{version = {1, 1}}, _Rest, false, _TE) ->
    {error, 400};
finish_head(Req = #req{headers = Hs}, Rest, _Host, true) ->
    %% Transfer-Encoding: only a final "chunked" is supported; with a
    %% Content-Length (smuggling) or in HTTP/1.0 it is rejected.
    Codings = lists:append([tokens(V) || {<<"transfer-encoding">>, V} <- Hs]),
    if
        Req#req.clen =/= undefined -> {error, 400};
        Req#req.version =:= {1, 0} -> {error, 400};
        Codings =:= [<<"chunked">>] -> {ok, Req#req{chunked = true}, Rest};
        true -> {error, 501}
    end;
finish_head(Req, Rest, _Host, false) ->
    {ok, Req, Rest}.

parse_clen(<<>>) -> error;
parse_clen(V) when byte_size(V) > 18 -> error;
parse_clen(V) -> parse_clen(V, 0).

parse_clen(<<C, R/binary>>, Acc) when C >= $0, C =< $9 ->
    parse_clen(R, Acc * 10 + C - $0);
parse_clen(<<>>, Acc) -> Acc;
parse_clen(_, _) -> error.

tokens(V) ->
    [lower(trim(T)) || T <- binary:split(V, <<",">>, [global]), T =/= <<>>].

trim(B) -> trim_ows(trim_leading(B)).

trim_leading(<<C, R/binary>>) when C =:= $\s; C =:= $\t -> trim_leading(R);
trim_leading(B) -> B.

trim_ows(<<>>) -> <<>>;
trim_ows(B) ->
    case binary:last(B) of
        C when C =:= $\s; C =:= $\t ->
            trim_ows(binary:part(B, 0, byte_size(B) - 1));
        _ -> B
    end.

%% No CR, LF or NUL inside a value (obs-fold is rejected too).
valid_value(V) ->
    binary:match(V, pattern(ctl)) =:= nomatch.

%% Compiled binary patterns, made once per VM (binary:match/2 with an
%% uncompiled pattern compiles it on every call).
pattern(Name) ->
    case persistent_term:get({?MODULE, Name}, undefined) of
        undefined ->
            P = binary:compile_pattern(pattern_spec(Name)),
            persistent_term:put({?MODULE, Name}, P),
            P;
        P ->
            P
    end.

pattern_spec(ctl) -> [<<"\r">>, <<"\n">>, <<0>>];
pattern_spec(name) -> [<<":">>, <<" ">>, <<"\r">>, <<"\n">>];
pattern_spec(qmark) -> <<"?">>;
pattern_spec(percent) -> <<"%">>.

%% The lower-cased header name from decode_packet's field and raw name.
lname('Host', _) -> <<"host">>;
lname('User-Agent', _) -> <<"user-agent">>;
lname('Accept', _) -> <<"accept">>;
lname('Accept-Encoding', _) -> <<"accept-encoding">>;
lname('Accept-Language', _) -> <<"accept-language">>;
lname('Connection', _) -> <<"connection">>;
lname('Content-Length', _) -> <<"content-length">>;
lname('Content-Type', _) -> <<"content-type">>;
lname('Cookie', _) -> <<"cookie">>;
lname('Authorization', _) -> <<"authorization">>;
lname('Cache-Control', _) -> <<"cache-control">>;
lname('Transfer-Encoding', _) -> <<"transfer-encoding">>;
lname('Referer', _) -> <<"referer">>;
lname('If-None-Match', _) -> <<"if-none-match">>;
lname('If-Modified-Since', _) -> <<"if-modified-since">>;
lname('Upgrade', _) -> <<"upgrade">>;
lname('X-Forwarded-For', _) -> <<"x-forwarded-for">>;
lname('Expect', _) -> <<"expect">>;
lname(_, Raw) -> lower(Raw).

%% @doc ASCII lower-casing (header names, tokens).
-spec lower(binary()) -> binary().
lower(B) ->
    case is_lower(B) of
        true -> B;
        false -> << <<(lc(C))>> || <<C>> <= B >>
    end.

is_lower(<<C, _/binary>>) when C >= $A, C =< $Z -> false;
is_lower(<<_, R/binary>>) -> is_lower(R);
is_lower(<<>>) -> true.

lc(C) when C >= $A, C =< $Z -> C + 32;
lc(C) -> C.

%%====================================================================
%% Chunked request bodies
%%====================================================================

-spec chunked_init() -> chunk_state().
chunked_init() -> {size, 0}.

%% @doc Decode as much of a chunked body as Buf holds, producing at most
%% about Max bytes of data. Returns the data, the unconsumed input and the
%% new state (`done' after the last chunk and the trailers).
-spec decode_chunked(binary(), chunk_state(), pos_integer()) ->
          {ok, iodata(), binary(), chunk_state()} | {error, bad_chunk}.
decode_chunked(Buf, State, Max) ->
    decode_chunked(Buf, State, Max, []).

decode_chunked(Buf, done, _Max, Acc) ->
    {ok, lists:reverse(Acc), Buf, done};
decode_chunked(Buf, _State, Max, Acc) when Max =< 0 ->
    {ok, lists:reverse(Acc), Buf, _State};
decode_chunked(Buf, {size, _}, Max, Acc) ->
    case binary:match(Buf, <<"\r\n">>) of
        nomatch when byte_size(Buf) > 1024 ->
            {error, bad_chunk};
        nomatch ->
            {ok, lists:reverse(Acc), Buf, {size, 0}};
        {Pos, 2} ->
            <<Line:Pos/binary, _:2/binary, Rest/binary>> = Buf,
            case chunk_size(Line) of
                error -> {error, bad_chunk};
                0 -> decode_chunked(Rest, trailers, Max, Acc);
                Size -> decode_chunked(Rest, {data, Size}, Max, Acc)
            end
    end;
decode_chunked(<<>>, State = {data, _}, _Max, Acc) ->
    {ok, lists:reverse(Acc), <<>>, State};
decode_chunked(Buf, {data, Left}, Max, Acc) ->
    Take = lists:min([Left, byte_size(Buf), Max]),
    <<Data:Take/binary, Rest/binary>> = Buf,
    case Left - Take of
        0 -> decode_chunked(Rest, crlf, Max - Take, [Data | Acc]);
        L -> decode_chunked(Rest, {data, L}, Max - Take, [Data | Acc])
    end;
decode_chunked(<<"\r\n", Rest/binary>>, crlf, Max, Acc) ->
    decode_chunked(Rest, {size, 0}, Max, Acc);
decode_chunked(Buf, crlf, _Max, Acc) when byte_size(Buf) < 2 ->
    {ok, lists:reverse(Acc), Buf, crlf};
decode_chunked(_, crlf, _Max, _Acc) ->
    {error, bad_chunk};
decode_chunked(<<"\r\n", Rest/binary>>, trailers, _Max, Acc) ->
    {ok, lists:reverse(Acc), Rest, done};
decode_chunked(Buf, trailers, Max, Acc) ->
    %% Trailer fields are read and dropped (ASGI has no request trailers).
    case binary:match(Buf, <<"\r\n">>) of
        nomatch when byte_size(Buf) > 8192 -> {error, bad_chunk};
        nomatch -> {ok, lists:reverse(Acc), Buf, trailers};
        {Pos, 2} ->
            <<_:Pos/binary, _:2/binary, Rest/binary>> = Buf,
            decode_chunked(Rest, trailers, Max, Acc)
    end.

chunk_size(Line) ->
    Hex = case binary:split(Line, <<";">>) of
              [H | _] -> trim(H)
          end,
    case Hex of
        <<>> -> error;
        _ when byte_size(Hex) > 15 -> error;
        _ -> hex(Hex, 0)
    end.

hex(<<C, R/binary>>, A) when C >= $0, C =< $9 -> hex(R, A * 16 + C - $0);
hex(<<C, R/binary>>, A) when C >= $a, C =< $f -> hex(R, A * 16 + C - $a + 10);
hex(<<C, R/binary>>, A) when C >= $A, C =< $F -> hex(R, A * 16 + C - $A + 10);
hex(<<>>, A) -> A;
hex(_, _) -> error.

%%====================================================================
%% Percent-decoding (path)
%%====================================================================

%% @doc Percent-decode a path. Invalid escapes are kept as they are, like
%% Python's urllib.parse.unquote. The result is raw bytes.
-spec percent_decode(binary()) -> binary().
percent_decode(B) ->
    case binary:match(B, pattern(percent)) of
        nomatch -> B;
        _ -> pd(B, <<>>)
    end.

pd(<<$%, H, L, R/binary>>, Acc) ->
    case {unhex(H), unhex(L)} of
        {Hi, Lo} when is_integer(Hi), is_integer(Lo) ->
            pd(R, <<Acc/binary, (Hi * 16 + Lo)>>);
        _ ->
            pd(<<H, L, R/binary>>, <<Acc/binary, $%>>)
    end;
pd(<<C, R/binary>>, Acc) -> pd(R, <<Acc/binary, C>>);
pd(<<>>, Acc) -> Acc.

unhex(C) when C >= $0, C =< $9 -> C - $0;
unhex(C) when C >= $a, C =< $f -> C - $a + 10;
unhex(C) when C >= $A, C =< $F -> C - $A + 10;
unhex(_) -> error.

%%====================================================================
%% Responses
%%====================================================================

%% @doc "200 OK" style status text for an integer status (ASGI) or a
%% validated WSGI status binary.
-spec status_line(integer() | binary()) -> binary() | error.
status_line(S) when is_binary(S) ->
    case status_code(S) of
        error -> error;
        _ -> S
    end;
status_line(200) -> <<"200 OK">>;
status_line(S) when is_integer(S), S >= 100, S =< 999 ->
    <<(integer_to_binary(S))/binary, " ", (reason(S))/binary>>;
status_line(_) -> error.

%% @doc A request path (as received) against a root path (`--root-path',
%% decoded text): the root as a path would carry it (percent-encoded where
%% a path needs it) and the rest of the path. The rest is what follows the
%% root when the path starts with it (at a segment boundary), else the whole
%% path: the proxy in front either strips the prefix (uvicorn's model) or
%% keeps it (gunicorn's SCRIPT_NAME), and both are served.
-spec root_split(binary(), binary()) -> {binary(), binary()}.
root_split(Raw, Root) ->
    Enc = percent_encode_path(Root),
    N = byte_size(Enc),
    case Raw of
        Enc -> {Enc, <<>>};
        <<Enc:N/binary, "/", _/binary>> -> {Enc, binary:part(Raw, N, byte_size(Raw) - N)};
        _ -> {Enc, Raw}
    end.

percent_encode_path(B) ->
    << <<(case C of
              _ when C >= $a, C =< $z; C >= $A, C =< $Z; C >= $0, C =< $9 -> <<C>>;
              _ -> case lists:member(C, "-._~!$&'()*+,;=:@/") of
                       true -> <<C>>;
                       false -> <<$%, (hex(C bsr 4)), (hex(C band 15))>>
                   end
          end)/binary>> || <<C>> <= B >>.

hex(N) when N < 10 -> $0 + N;
hex(N) -> $A + N - 10.

%% @doc The integer code of a status (integer or WSGI "NNN Reason").
-spec status_code(integer() | binary()) -> integer() | error.
status_code(S) when is_integer(S), S >= 100, S =< 999 -> S;
status_code(<<A, B, C>>) -> status_code(<<A, B, C, " ">>);
status_code(<<A, B, C, " ", Reason/binary>>)
  when A >= $1, A =< $9, B >= $0, B =< $9, C >= $0, C =< $9 ->
    case valid_value(Reason) of
        true -> (A - $0) * 100 + (B - $0) * 10 + (C - $0);
        false -> error
    end;
status_code(_) -> error.

reason(100) -> <<"Continue">>;
reason(101) -> <<"Switching Protocols">>;
reason(200) -> <<"OK">>;
reason(201) -> <<"Created">>;
reason(202) -> <<"Accepted">>;
reason(203) -> <<"Non-Authoritative Information">>;
reason(204) -> <<"No Content">>;
reason(205) -> <<"Reset Content">>;
reason(206) -> <<"Partial Content">>;
reason(300) -> <<"Multiple Choices">>;
reason(301) -> <<"Moved Permanently">>;
reason(302) -> <<"Found">>;
reason(303) -> <<"See Other">>;
reason(304) -> <<"Not Modified">>;
reason(307) -> <<"Temporary Redirect">>;
reason(308) -> <<"Permanent Redirect">>;
reason(400) -> <<"Bad Request">>;
reason(401) -> <<"Unauthorized">>;
reason(403) -> <<"Forbidden">>;
reason(404) -> <<"Not Found">>;
reason(405) -> <<"Method Not Allowed">>;
reason(406) -> <<"Not Acceptable">>;
reason(408) -> <<"Request Timeout">>;
reason(409) -> <<"Conflict">>;
reason(410) -> <<"Gone">>;
reason(411) -> <<"Length Required">>;
reason(412) -> <<"Precondition Failed">>;
reason(413) -> <<"Content Too Large">>;
reason(414) -> <<"URI Too Long">>;
reason(415) -> <<"Unsupported Media Type">>;
reason(416) -> <<"Range Not Satisfiable">>;
reason(417) -> <<"Expectation Failed">>;
reason(418) -> <<"I'm a teapot">>;
reason(422) -> <<"Unprocessable Content">>;
reason(426) -> <<"Upgrade Required">>;
reason(428) -> <<"Precondition Required">>;
reason(429) -> <<"Too Many Requests">>;
reason(431) -> <<"Request Header Fields Too Large">>;
reason(500) -> <<"Internal Server Error">>;
reason(501) -> <<"Not Implemented">>;
reason(502) -> <<"Bad Gateway">>;
reason(503) -> <<"Service Unavailable">>;
reason(504) -> <<"Gateway Timeout">>;
reason(505) -> <<"HTTP Version Not Supported">>;
reason(_) -> <<"Unknown">>.

%% @doc Validate and classify an app's response headers in one pass: the
%% headers to send (order, case and duplicates kept; Transfer-Encoding,
%% Connection and Content-Length left out: the framing and the connection
%% are py_web_exchange's to decide), the app's Content-Length, whether it
%% asked to close the connection, and whether it set Date or Server.
%% `error' on a name or value that is not a binary, an invalid name, CR, LF
%% or NUL in a value, or a Content-Length that is not a number.
-spec response_head([{binary(), binary()}]) -> resp_head() | error.
response_head(Headers) ->
    rhead(Headers, [], undefined, false, false, false).

rhead([{N, V} = H | T], Acc, CL, Close, Date, Server)
  when is_binary(N), is_binary(V) ->
    case valid_value(V) andalso valid_name(N) of
        false -> error;
        true ->
            case byte_size(N) of
                14 ->
                    case lower(N) of
                        <<"content-length">> ->
                            case parse_clen(V) of
                                error -> error;
                                L when CL =:= undefined; CL =:= L ->
                                    rhead(T, Acc, L, Close, Date, Server);
                                _ -> error
                            end;
                        _ -> rhead(T, [H | Acc], CL, Close, Date, Server)
                    end;
                17 ->
                    case lower(N) of
                        <<"transfer-encoding">> -> rhead(T, Acc, CL, Close, Date, Server);
                        _ -> rhead(T, [H | Acc], CL, Close, Date, Server)
                    end;
                10 ->
                    case lower(N) of
                        <<"connection">> ->
                            C = Close orelse lists:member(<<"close">>, tokens(V)),
                            rhead(T, Acc, CL, C, Date, Server);
                        _ -> rhead(T, [H | Acc], CL, Close, Date, Server)
                    end;
                4 ->
                    D = Date orelse lower(N) =:= <<"date">>,
                    rhead(T, [H | Acc], CL, Close, D, Server);
                6 ->
                    S = Server orelse lower(N) =:= <<"server">>,
                    rhead(T, [H | Acc], CL, Close, Date, S);
                _ ->
                    rhead(T, [H | Acc], CL, Close, Date, Server)
            end
    end;
rhead([], Acc, CL, Close, Date, Server) ->
    #{headers => lists:reverse(Acc), length => CL, close => Close,
      date => Date, server => Server};
rhead(_, _, _, _, _, _) ->
    error.

valid_name(<<>>) -> false;
valid_name(N) -> binary:match(N, pattern(name)) =:= nomatch.

%% @doc The bytes of a response head as the embedded server sends it: the
%% status line, the app's headers, the framing header (Content-Length or
%% Transfer-Encoding), Connection (close, or keep-alive to HTTP/1.0), and
%% Date and Server unless the app set them (Server is left out when the
%% server_header option is `false').
-spec head(py_web_exchange:head(), boolean(), {1, 0} | {1, 1}, binary() | false) -> iodata().
head(Head, Close, Version, Server) ->
    head(Head, Close, Version, Server, []).

%% @doc head/4 with default headers of the server's (`--header'), sent
%% before the app's, as uvicorn does (an app's header of the same name is
%% sent too).
-spec head(py_web_exchange:head(), boolean(), {1, 0} | {1, 1}, binary() | false,
           [{binary(), binary()}]) -> iodata().
head(#{line := Line, headers := Hs, framing := F, length := Len, date := D, server := S},
     Close, Version, Server, Defaults) ->
    [<<"HTTP/1.1 ">>, Line, <<"\r\n">>,
     [[N, <<": ">>, V, <<"\r\n">>] || {N, V} <- Defaults],
     [[N, <<": ">>, V, <<"\r\n">>] || {N, V} <- Hs],
     case F of
         length -> [<<"content-length: ">>, integer_to_binary(Len), <<"\r\n">>];
         chunked -> <<"transfer-encoding: chunked\r\n">>;
         _ -> <<>>
     end,
     case {Close, Version} of
         {true, _} -> <<"connection: close\r\n">>;
         {false, {1, 0}} -> <<"connection: keep-alive\r\n">>;
         {false, _} -> <<>>
     end,
     case D of
         true -> <<>>;
         false -> py_web_date:header()
     end,
     case {S, Server} of
         {false, Name} when is_binary(Name) -> [<<"server: ">>, Name, <<"\r\n">>];
         _ -> <<>>
     end,
     <<"\r\n">>].

%% @doc One chunk of a chunked response (empty data gives nothing: an
%% empty chunk would end the body).
-spec chunk(iodata()) -> iodata().
chunk(Data) ->
    case iolist_size(Data) of
        0 -> [];
        N -> [integer_to_binary(N, 16), <<"\r\n">>, Data, <<"\r\n">>]
    end.

-spec last_chunk() -> binary().
last_chunk() -> <<"0\r\n\r\n">>.

%% @doc A response made by py_web itself (4xx and 5xx): its head (the
%% connection is to be closed) and its body, the reason phrase as text.
-spec error_response(100..999) -> {py_web_exchange:head(), binary()}.
error_response(Status) ->
    Body = reason(Status),
    {#{status => Status, line => status_line(Status),
       headers => [{<<"content-type">>, <<"text/plain; charset=utf-8">>}],
       framing => length, length => byte_size(Body), body => true, close => true,
       date => false, server => false},
     Body}.
