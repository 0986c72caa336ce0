%% EUnit tests of the strict HTTP/1.1 request parser: py_web_h1_request (request line,
%% target forms, limits, Host and framing), py_web_h1_field (field lines) and
%% py_web_h1_chunked (chunk lines, extensions, trailers). One test per rule of RFC 9112,
%% with every case issue 18 names. The property suite is py_web_h1_prop_tests.
-module(py_web_h1_tests).

-include_lib("eunit/include/eunit.hrl").

-define(LIMITS, #{max_request_line => 8192, max_header_size => 32768, max_headers => 100}).

parse(Bytes) -> parse(Bytes, ?LIMITS).
parse(Bytes, Limits) -> py_web_h1_request:parse(iolist_to_binary(Bytes), Limits).

head(Bytes) ->
    {ok, Head, <<>>} = parse(Bytes),
    Head.

status(Bytes) -> status(Bytes, ?LIMITS).
status(Bytes, Limits) ->
    case parse(Bytes, Limits) of
        {error, S} -> S;
        Other -> Other
    end.

%% A GET with Host and the given extra field lines.
req(Fields) -> ["GET / HTTP/1.1\r\nHost: x\r\n", Fields, "\r\n"].

%%====================================================================
%% Request line (RFC 9112 §3)
%%====================================================================

minimal_test() ->
    ?assertEqual({ok, #{method => <<"GET">>, version => {1, 1}, target => origin,
                        raw_path => <<"/">>, qs => <<>>, authority => <<>>,
                        headers => [{<<"host">>, <<"x">>}], clen => undefined,
                        chunked => false, keepalive => true, expect => false},
                  <<>>},
                 parse("GET / HTTP/1.1\r\nHost: x\r\n\r\n")).

methods_are_tokens_with_case_kept_test() ->
    [?assertMatch(#{method := M}, head([M, " / HTTP/1.1\r\nHost: x\r\n\r\n"]))
     || M <- [<<"GET">>, <<"M-SEARCH">>, <<"PROPFIND">>, <<"get">>, <<"X!#$%&'*+.^_`|~9">>]],
    [?assertEqual(400, status([M, " / HTTP/1.1\r\nHost: x\r\n\r\n"]))
     || M <- ["GE(T", "GE\"T", "G,ET", "GET:", "G\x{1}T", "G\x7fT", "GÉT", "GE/T"]],
    ?assertEqual(400, status(" / HTTP/1.1\r\nHost: x\r\n\r\n")).

leading_empty_lines_test() ->
    ?assertMatch(#{method := <<"GET">>}, head("\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")),
    %% {more, Buf2}: the empty lines are gone from what to keep
    ?assertEqual({more, <<"GE">>}, parse("\r\n\r\nGE")),
    ?assertEqual({more, <<"\r">>}, parse("\r\n\r")),
    %% a bare LF is not an empty line
    ?assertEqual(400, status("\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")),
    ?assertEqual(400, status("\r\n\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")).

separators_are_single_sp_test() ->
    [?assertEqual(400, status([L, "\r\nHost: x\r\n\r\n"]))
     || L <- ["GET\t/\tHTTP/1.1", "GET\t/ HTTP/1.1", "GET /\tHTTP/1.1", "GET  / HTTP/1.1",
              "GET /  HTTP/1.1", "GET / HTTP/1.1 ", " GET / HTTP/1.1", "GET /",
              "GET / ", "GET HTTP/1.1", "GET  HTTP/1.1"]].

target_bytes_test() ->
    %% CTL, SP, NUL, ESC, DEL and non-ASCII bytes, in the path and in the query
    Bad = [<<0>>, <<1>>, <<"\t">>, <<27>>, <<31>>, <<127>>, <<128>>, <<"é"/utf8>>, <<255>>],
    [?assertEqual(400, status(["GET ", T, " HTTP/1.1\r\nHost: x\r\n\r\n"]))
     || B <- Bad, T <- [<<"/a", B/binary, "b">>, <<"/a?q=", B/binary>>, <<"/", B/binary>>]],
    ?assertEqual(400, status("GET /a b HTTP/1.1\r\nHost: x\r\n\r\n")).

target_vchar_kept_test() ->
    %% every VCHAR passes (clients send []{}|^ unescaped in queries)
    Q = <<"a[]=1&b={x}|^`\"<>\\#~!$&'()*+,;=:@/?%zz">>,
    ?assertMatch(#{raw_path := <<"/p">>, qs := Q},
                 head(["GET /p?", Q, " HTTP/1.1\r\nHost: x\r\n\r\n"])),
    ?assertMatch(#{raw_path := <<"/a/b%20c">>, qs := <<"x=1?y">>},
                 head("GET /a/b%20c?x=1?y HTTP/1.1\r\nHost: x\r\n\r\n")),
    ?assertMatch(#{raw_path := <<"/">>, qs := <<>>}, head("GET /? HTTP/1.1\r\nHost: x\r\n\r\n")).

versions_test() ->
    ?assertMatch(#{version := {1, 0}, keepalive := false}, head("GET / HTTP/1.0\r\n\r\n")),
    [?assertEqual(505, status(["GET / ", V, "\r\nHost: x\r\n\r\n"]))
     || V <- ["HTTP/2.0", "HTTP/0.9", "HTTP/1.2", "HTTP/3.0", "HTTP/9.9"]],
    [?assertEqual(400, status(["GET / ", V, "\r\nHost: x\r\n\r\n"]))
     || V <- ["HTTP/1.1.1", "HTTP/01.1", "HTTP/4294967297.1", "HTTP/1", "HTTP/1.", "HTTP/11",
              "HTTP/1.1x", "http/1.1", "HTTP/1.1 x", "HTTPS/1.1", "HTTP/a.b", "HTTP /1.1",
              "HTTP/1.10", "HTTP/2"]],
    %% a 505 needs a well-formed line: a bad target stays 400
    ?assertEqual(400, status("GET /\x{1} HTTP/2.0\r\nHost: x\r\n\r\n")).

line_ends_test() ->
    %% request line ending in a bare CR, in a bare LF
    ?assertEqual(400, status("GET / HTTP/1.1\rHost: x\r\n\r\n")),
    ?assertEqual(400, status("GET / HTTP/1.1\nHost: x\r\n\r\n")),
    ?assertEqual(400, status("GET / HTTP/1.1\r\r\nHost: x\r\n\r\n")),
    ?assertEqual(400, status("GET / HTTP/1.1\r\nHost: x\n\r\n")),
    ?assertEqual(400, status("GET / HTTP/1.1\r\nHost: x\r\n\n")),
    ?assertEqual(400, status("GET / HTTP/1.1\r\nHost: x\r\r\n\r\n")).

%% The three smuggling cases of issue 18: each time the app must not see a request.
smuggling_request_line_test() ->
    Smuggled = "GET /SMUGGLED HTTP/1.1\r\nHost: x\r\n\r\n",
    Cases = [%% POST / HTTP/1.1\r + bare CR + Transfer-Encoding: chunked on the line
             ["POST / HTTP/1.1\r\rTransfer-Encoding: chunked\r\nHost: x\r\n\r\n",
              "0\r\n\r\n", Smuggled],
             ["POST / HTTP/1.1\rTransfer-Encoding: chunked\r\nHost: x\r\n\r\n",
              "0\r\n\r\n", Smuggled],
             %% Transfer-Encoding after the version on the request line
             ["POST / HTTP/1.1 Transfer-Encoding: chunked\r\nHost: x\r\n\r\n",
              "0\r\n\r\n", Smuggled],
             ["POST / HTTP/1.1Transfer-Encoding: chunked\r\nHost: x\r\n\r\n",
              "0\r\n\r\n", Smuggled],
             %% Content-Length after a bare CR, on the request line and in a field
             ["GET / HTTP/1.1\rContent-Length: 36\r\nHost: x\r\n\r\n", Smuggled],
             ["GET / HTTP/1.1\r\nHost: x\r\nX: y\rContent-Length: 36\r\n\r\n", Smuggled],
             ["GET / HTTP/1.1\r\nHost: x\rContent-Length: 36\r\n\r\n", Smuggled]],
    [?assertEqual(400, status(C)) || C <- Cases].

request_line_limit_test() ->
    Limits = ?LIMITS#{max_request_line => 32},
    %% "GET /" + 17 + " HTTP/1.1\r\n" is 32 bytes: at the limit
    Path = ["/", lists:duplicate(16, $a)],
    ?assertMatch({ok, _, _}, parse(["GET ", Path, " HTTP/1.1\r\nHost: x\r\n\r\n"], Limits)),
    ?assertEqual(414, status(["GET ", Path, "b HTTP/1.1\r\nHost: x\r\n\r\n"], Limits)),
    %% no line end yet, but already longer than the limit
    ?assertEqual(414, status(["GET /", lists:duplicate(40, $a)], Limits)),
    ?assertMatch({more, _}, parse(["GET /", lists:duplicate(20, $a)], Limits)),
    %% the limit counts after the leading empty lines
    ?assertMatch({ok, _, _},
                 parse(["\r\n\r\n\r\nGET ", Path, " HTTP/1.1\r\nHost: x\r\n\r\n"], Limits)).

%%====================================================================
%% Request-target forms (RFC 9112 §3.2)
%%====================================================================

absolute_form_test() ->
    ?assertMatch(#{target := absolute, raw_path := <<"/a/b">>, qs := <<"c=d">>,
                   authority := <<"example.com:8080">>},
                 head("GET http://example.com:8080/a/b?c=d HTTP/1.1\r\nHost: x\r\n\r\n")),
    ?assertMatch(#{target := absolute, raw_path := <<"/">>, qs := <<>>,
                   authority := <<"example.com">>},
                 head("GET https://example.com HTTP/1.1\r\nHost: x\r\n\r\n")),
    ?assertMatch(#{raw_path := <<"/">>, qs := <<"q">>, authority := <<"[::1]:80">>},
                 head("GET http://[::1]:80?q HTTP/1.1\r\nHost: x\r\n\r\n")),
    [?assertEqual(400, status(["GET ", T, " HTTP/1.1\r\nHost: x\r\n\r\n"]))
     || T <- ["http://user@example.com/", "http:///path", "http://", "1http://x/",
              "http:/x/", "http:x", "http://a b/", "http://x:8o/", "x", "example.com:80",
              "http://[::1/", "http://ex%zzample/"]],
    %% "//x/y" is an origin-form (empty first segment), not an authority
    ?assertMatch(#{target := origin, raw_path := <<"//x/y">>},
                 head("GET //x/y HTTP/1.1\r\nHost: x\r\n\r\n")).

authority_form_test() ->
    ?assertMatch(#{target := authority, method := <<"CONNECT">>,
                   raw_path := <<"example.com:443">>, authority := <<"example.com:443">>},
                 head("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")),
    ?assertMatch(#{authority := <<"[2001:db8::1]:8443">>},
                 head("CONNECT [2001:db8::1]:8443 HTTP/1.1\r\nHost: x\r\n\r\n")),
    %% CONNECT takes only the authority form, with a port
    [?assertEqual(400, status(["CONNECT ", T, " HTTP/1.1\r\nHost: x\r\n\r\n"]))
     || T <- ["example.com", "example.com:", "/", "/x", "http://example.com:443/", "*",
              "a@example.com:443"]].

asterisk_form_test() ->
    ?assertMatch(#{target := asterisk, raw_path := <<"*">>, qs := <<>>},
                 head("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n")),
    ?assertEqual(400, status("GET * HTTP/1.1\r\nHost: x\r\n\r\n")),
    ?assertEqual(400, status("OPTIONS ** HTTP/1.1\r\nHost: x\r\n\r\n")),
    ?assertEqual(400, status("OPTIONS *?x HTTP/1.1\r\nHost: x\r\n\r\n")).

%%====================================================================
%% Field lines (RFC 9112 §5, RFC 9110 §5.5)
%%====================================================================

fields_order_case_duplicates_test() ->
    ?assertMatch(#{headers := [{<<"host">>, <<"x">>}, {<<"x-a">>, <<"1">>},
                               {<<"accept">>, <<"*/*">>}, {<<"x-a">>, <<"2">>},
                               {<<"x-custom-header">>, <<"v">>},
                               {<<"set-cookie">>, <<"a=b">>}]},
                 head(req(["X-A: 1\r\nAccept: */*\r\nx-a: 2\r\nX-Custom-HEADER: v\r\n",
                           "SET-COOKIE: a=b\r\n"]))).

values_test() ->
    %% OWS (SP, HTAB) trimmed at both ends, kept inside; obs-text kept; empty values
    ?assertMatch(#{headers := [_, {<<"a">>, <<"b \t c">>}, {<<"e">>, <<>>}, {<<"f">>, <<>>},
                               {<<"g">>, <<"caf", 16#e9, "!">>}, {<<"h">>, <<"x">>}]},
                 head(req(["A: \t b \t c \t \r\nE:\r\nF:  \t \r\nG: caf", 16#e9, "!\r\n",
                           "H:x\r\n"]))).

field_value_bytes_test() ->
    %% NUL, other CTLs, ESC, DEL, a bare CR, a bare LF inside a value
    [?assertEqual(400, status(req(["X: a", [C], "b\r\n"])))
     || C <- [0, 1, 8, 10, 11, 12, 13, 27, 31, 127]].

field_names_test() ->
    [?assertEqual(400, status(req([L, "\r\n"])))
     || L <- [": v",                    %% empty name
              "X\x7f: v", "\x7fX: v",   %% DEL in a name
              "X : v", "X\t: v",        %% whitespace before the colon (§5.1)
              " X: v", "\tX: v",        %% obs-fold / whitespace at the line start
              "X(a): v", "X@: v", "X/Y: v", "X\"Y: v", "X{Y}: v", "X;Y: v", "X=Y: v",
              [<<"X">>, 16#e9, <<": v">>], "X\x{0}: v",
              "no colon at all", "X"]],
    ?assertMatch(#{headers := [_, {<<"x!#$%&'*+-.^_`|~1z">>, <<"v">>}]},
                 head(req("X!#$%&'*+-.^_`|~1Z: v\r\n"))).

obs_fold_test() ->
    ?assertEqual(400, status(req("X: a\r\n folded\r\n"))),
    ?assertEqual(400, status(req("X: a\r\n\tfolded\r\n"))),
    %% whitespace between the start-line and the first field (§2.2)
    ?assertEqual(400, status("GET / HTTP/1.1\r\n Host: x\r\n\r\n")).

header_section_limit_test() ->
    %% the section counts the field lines, their CRLFs and the final CRLF
    Section = ["Host: x\r\n", "X-Big: ", lists:duplicate(20, $b), "\r\n", "\r\n"],
    Size = iolist_size(Section),
    Req = ["GET / HTTP/1.1\r\n", Section],
    ?assertMatch({ok, _, _}, parse(Req, ?LIMITS#{max_header_size => Size})),
    ?assertEqual(431, status(Req, ?LIMITS#{max_header_size => Size - 1})),
    %% incomplete but already too long
    ?assertEqual(431, status(["GET / HTTP/1.1\r\nHost: x\r\nX-Big: ", lists:duplicate(60, $b)],
                             ?LIMITS#{max_header_size => 50})).

header_count_limit_test() ->
    Fields = fun(N) -> [["X-H", integer_to_list(I), ": v\r\n"] || I <- lists:seq(1, N)] end,
    ?assertMatch({ok, _, _}, parse(req(Fields(9)), ?LIMITS#{max_headers => 10})),
    ?assertEqual(431, status(req(Fields(10)), ?LIMITS#{max_headers => 10})).

incomplete_heads_test() ->
    Req = <<"POST /p?q HTTP/1.1\r\nHost: example.com\r\nContent-Length: 3\r\n"
            "X-A:  v \r\n\r\nabc">>,
    HeadLen = byte_size(Req) - 3,
    [?assertEqual({more, binary:part(Req, 0, N)}, parse(binary:part(Req, 0, N)))
     || N <- lists:seq(1, HeadLen - 1)],
    ?assertMatch({ok, #{clen := 3}, <<"abc">>}, parse(Req)),
    %% an invalid byte is answered at once, before the head is complete
    ?assertEqual(400, status("GET / HTTP/1.1\r\nHost: x\r\nX: a\x{0}")),
    ?assertEqual(400, status("GET /\x{1}")),
    ?assertEqual(400, status("GET / HTTP/1.1\r\nHost: x\r\nX: a\rb")),
    ?assertEqual(400, status("GET / HTTP/1.1\r\nHost: x\r\nX: a\n")),
    ?assertEqual(400, status("GET / HTTP/1.1\r\nHost: x\r\nBad Name")),
    ?assertEqual(400, status("GET / HTTP/1.2.")),
    ?assertEqual(505, status("GET / HTTP/2.0\r\n")).

rest_is_left_test() ->
    Two = <<"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n">>,
    {ok, #{raw_path := <<"/a">>}, Rest} = parse(Two),
    ?assertMatch({ok, #{raw_path := <<"/b">>}, <<>>}, parse(Rest)).

%%====================================================================
%% Host (RFC 9112 §3.2)
%%====================================================================

host_count_test() ->
    ?assertEqual(400, status("GET / HTTP/1.1\r\n\r\n")),
    ?assertEqual(400, status("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")),
    ?assertEqual(400, status("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n")),
    ?assertEqual(400, status("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n")),
    ?assertMatch(#{headers := []}, head("GET / HTTP/1.0\r\n\r\n")).

host_values_test() ->
    [?assertMatch(#{headers := [{<<"host">>, H}]},
                  head(["GET / HTTP/1.1\r\nHost: ", H, "\r\n\r\n"]))
     || H <- [<<>>, <<"example.com">>, <<"example.com:8080">>, <<"127.0.0.1:80">>,
              <<"[::1]">>, <<"[::1]:8000">>, <<"xn--bcher-kva.example">>, <<"a_b.c~d">>,
              <<"ex%41mple">>, <<"example.com:">>, <<"a!$&'()*+,;=b">>]],
    [?assertEqual(400, status(["GET / HTTP/1.1\r\nHost: ", H, "\r\n\r\n"]))
     || H <- ["a b", "a/b", "user@a", "a:b", "a:80:90", "[::1", "[]", "[::1]x", "a?b",
              "a#b", "ex%4", "ex%zz", "caf\x{e9}", "a\"b", "a\\b", "a<b>"]].

%%====================================================================
%% Framing (RFC 9112 §6)
%%====================================================================

content_length_test() ->
    ?assertMatch(#{clen := 0}, head(req("Content-Length: 0\r\n"))),
    ?assertMatch(#{clen := 42}, head(req("Content-Length:  42 \r\n"))),
    ?assertMatch(#{clen := 7}, head(req("Content-Length: 007\r\n"))),
    ?assertMatch(#{clen := 999999999999999999},
                 head(req("Content-Length: 999999999999999999\r\n"))),
    [?assertEqual(400, status(req(["Content-Length: ", V, "\r\n"])))
     || V <- ["", "abc", "-1", "+1", "1 2", "0x10", "1.0", "5, 5", "5,", "1000000000000000000",
              <<"١"/utf8>>]],
    %% a second Content-Length, equal or not
    ?assertEqual(400, status(req("Content-Length: 5\r\nContent-Length: 5\r\n"))),
    ?assertEqual(400, status(req("Content-Length: 3\r\nContent-Length: 4\r\n"))).

transfer_encoding_test() ->
    [?assertMatch(#{chunked := true, clen := undefined},
                  head(["POST / HTTP/1.1\r\nHost: x\r\n", F, "\r\n"]))
     || F <- ["Transfer-Encoding: chunked\r\n", "Transfer-Encoding: Chunked \r\n",
              "Transfer-Encoding: CHUNKED\r\n", "Transfer-Encoding: , chunked,\r\n"]],
    Post = fun(F) -> status(["POST / HTTP/1.1\r\nHost: x\r\n", F, "\r\n"]) end,
    %% chunked must be the final coding, once, without parameters: 400 (§6.3, issue 18
    %% item 7: `chunked, identity' and `identity' are 400, not 501)
    [?assertEqual(400, Post(["Transfer-Encoding: ", V, "\r\n"]))
     || V <- ["identity", "chunked, identity", "gzip", "chunked, gzip", "chunked, chunked",
              "chunked;q=1", "gzip, chunked;x=y", "", " , ", "chunked chunked",
              "bad@coding, chunked", "chunked\t, x"]],
    ?assertEqual(400, Post("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n")),
    ?assertEqual(400, Post("Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n")),
    %% a coding we understand the grammar of but do not implement, before chunked: 501
    [?assertEqual(501, Post(["Transfer-Encoding: ", V, "\r\n"]))
     || V <- ["gzip, chunked", "deflate, chunked", "x-custom, chunked", "identity, chunked",
              "gzip;level=1, chunked"]],
    ?assertEqual(501, Post("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n")).

te_with_content_length_test() ->
    ?assertEqual(400, status(req("Content-Length: 3\r\nTransfer-Encoding: chunked\r\n"))),
    ?assertEqual(400, status(req("Transfer-Encoding: chunked\r\nContent-Length: 3\r\n"))),
    ?assertEqual(400, status(req("Transfer-Encoding: gzip, chunked\r\nContent-Length: 3\r\n"))).

te_in_http10_test() ->
    ?assertEqual(400, status("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n")).

connection_test() ->
    ?assertMatch(#{keepalive := true}, head(req(""))),
    ?assertMatch(#{keepalive := false}, head(req("Connection: close\r\n"))),
    ?assertMatch(#{keepalive := false}, head(req("Connection: Upgrade, CLOSE\r\n"))),
    ?assertMatch(#{keepalive := false}, head(req("Connection: x\r\nConnection: close\r\n"))),
    ?assertMatch(#{keepalive := true}, head(req("Connection: keep-alive\r\n"))),
    ?assertMatch(#{keepalive := false}, head("GET / HTTP/1.0\r\n\r\n")),
    ?assertMatch(#{keepalive := true}, head("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")),
    ?assertMatch(#{keepalive := false},
                 head("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n")).

expect_test() ->
    ?assertMatch(#{expect := true}, head(req("Expect: 100-continue\r\n"))),
    ?assertMatch(#{expect := true}, head(req("Expect: 100-Continue \r\n"))),
    %% ignored in HTTP/1.0 (RFC 9110 §10.1.1)
    ?assertMatch(#{expect := false}, head("GET / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n")),
    [?assertEqual(417, status(req(["Expect: ", V, "\r\n"])))
     || V <- ["teapot", "100-continue, foo", "", "200-ok"]],
    ?assertEqual(417, status(req("Expect: 100-continue\r\nExpect: x\r\n"))),
    ?assertEqual(417, status("GET / HTTP/1.0\r\nExpect: teapot\r\n\r\n")).

status_precedence_test() ->
    %% 400 before 501 before 417
    ?assertEqual(400, status("GET / HTTP/1.1\r\nExpect: teapot\r\n\r\n")),
    ?assertEqual(400, status(req("Expect: teapot\r\nContent-Length: x\r\n"))),
    ?assertEqual(501, status(req("Expect: teapot\r\nTransfer-Encoding: gzip, chunked\r\n"))),
    ?assertEqual(417, status(req("Expect: teapot\r\nTransfer-Encoding: chunked\r\n"))).

%%====================================================================
%% Chunked bodies (RFC 9112 §7.1)
%%====================================================================

chunked(Bytes) -> chunked(Bytes, 1 bsl 30).
chunked(Bytes, Max) ->
    St = py_web_h1_chunked:init(?LIMITS),
    case py_web_h1_chunked:decode(iolist_to_binary(Bytes), St, Max) of
        {ok, Data, Rest, done} -> {iolist_to_binary(Data), Rest};
        {ok, _Data, _Rest, _State} -> more;
        {error, S} -> S
    end.

chunked_simple_test() ->
    ?assertEqual({<<"hello world">>, <<"NEXT">>},
                 chunked("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nNEXT")),
    ?assertEqual({<<>>, <<>>}, chunked("0\r\n\r\n")),
    ?assertEqual({<<"0123456789abcdefg">>, <<>>},
                 chunked("a\r\n0123456789\r\n0007\r\nabcdefg\r\n000\r\n\r\n")),
    ?assertEqual({binary:copy(<<"x">>, 255), <<>>},
                 chunked(["fF\r\n", binary:copy(<<"x">>, 255), "\r\n0\r\n\r\n"])).

chunk_extensions_test() ->
    [?assertEqual({<<"hello">>, <<>>}, chunked(["5", E, "\r\nhello\r\n0", E, "\r\n\r\n"]))
     || E <- [";a", ";a=b", "; a = b", "\t;\ta\t=\tb", ";a=b;c;d=e", ";a=\"\"",
              ";a=\"q \\\" \\\\ \t x\"", ";a=\"caf\x{e9}\"", " ;a", ";a ;b",
              ";!#$%&'*+-.^_`|~=!#$%&'*+-.^_`|~"]].

chunk_extension_bytes_test() ->
    %% a bare LF, a bare CR, NUL or another CTL, DEL inside an extension
    [?assertEqual(400, chunked(["5;", E, "\r\nhello\r\n0\r\n\r\n"]))
     || E <- ["a\nb", "a\rb", "a\x{0}", "a=\x{0}", "a=b\x{1b}", "a=\"\x{0}\"", "a=\"\r\"",
              "a=\"\n\"", "a\x{7f}", "a=\"x\x{7f}\"", "a=\"\\\x{0}\""]].

chunk_extension_grammar_test() ->
    [?assertEqual(400, chunked(["5", E, "\r\nhello\r\n0\r\n\r\n"]))
     || E <- [";", ";=b", ";a=", ";a=b c", ";a b", "; ", ";a ", ";a= ", ";a=b ", " ",
              "\t", ";a=\"x", ";a=\"x\"y", ";a=b=c", ";a,b", ";a=(b)", "x", ";a\\b"]].

chunk_size_test() ->
    [?assertEqual(400, chunked([S, "\r\nhello\r\n0\r\n\r\n"]))
     || S <- ["", "-5", "+5", "0x5", "5.0", "g", "5 ", " 5", "1000000000000000",
              "10000000000000000000000"]],
    %% the largest size (2^60 - 1) is taken; the data is then awaited
    ?assertEqual(more, chunked("fffffffffffffff\r\nabc")),
    ?assertEqual(400, chunked("5\nhello\r\n0\r\n\r\n")),
    ?assertEqual(400, chunked("5\rhello\r\n0\r\n\r\n")),
    ?assertEqual(400, chunked("5\r\nhelloX\r\n0\r\n\r\n")),
    ?assertEqual(400, chunked("5\r\nhello\n0\r\n\r\n")),
    ?assertEqual(400, chunked("5\r\nhello\r\r\n0\r\n\r\n")),
    %% a chunk line longer than 4096 bytes
    ?assertEqual(400, chunked(["5;a=", lists:duplicate(4100, $x)])),
    ?assertEqual(more, chunked(["5;a=", lists:duplicate(4000, $x)])).

chunk_trailers_test() ->
    ?assertEqual({<<"hello">>, <<"NEXT">>},
                 chunked("5\r\nhello\r\n0\r\nX-Sum: abc\r\nX-Other:\t1 \r\n\r\nNEXT")),
    [?assertEqual(400, chunked(["0\r\n", T, "\r\n"]))
     || T <- ["Bad Name: x\r\n", ": x\r\n", "X: a\r\n folded\r\n", "X: a\x{0}\r\n",
              "X: a\rb\r\n", "X: a\n", " X: a\r\n", "X\x7f: a\r\n"]],
    Limits = ?LIMITS#{max_header_size => 20, max_headers => 2},
    St = py_web_h1_chunked:init(Limits),
    ?assertEqual({error, 431},
                 py_web_h1_chunked:decode(<<"0\r\nX-A: 1\r\nX-B: 2\r\nX-C: 3\r\n\r\n">>, St, 100)),
    ?assertEqual({error, 431},
                 py_web_h1_chunked:decode(<<"0\r\nX-A: 12345678901234567890\r\n\r\n">>, St, 100)).

chunked_incremental_test() ->
    Body = <<"5;e=\"v\"\r\nhello\r\n1\r\n \r\n10\r\n0123456789abcdef\r\n0\r\nT: 1\r\n\r\nNEXT">>,
    %% fed one byte at a time, and with a flow-control budget of 3 bytes per call
    Feed = fun(Max) ->
                   lists:foldl(
                     fun(Byte, {Buf, St, Acc}) ->
                             {ok, Data, Rest, St2} =
                                 py_web_h1_chunked:decode(<<Buf/binary, Byte>>, St, Max),
                             {Rest, St2, [Acc | Data]}
                     end, {<<>>, py_web_h1_chunked:init(?LIMITS), []},
                     binary_to_list(Body))
           end,
    [begin
         {Rest, done, Acc} = Feed(Max),
         ?assertEqual(<<"NEXT">>, Rest),
         ?assertEqual(<<"hello 0123456789abcdef">>, iolist_to_binary(Acc))
     end || Max <- [1, 3, 1000]],
    %% done stays done
    ?assertEqual({ok, [], <<"x">>, done}, py_web_h1_chunked:decode(<<"x">>, done, 10)).

chunked_flow_control_test() ->
    St = py_web_h1_chunked:init(?LIMITS),
    {ok, D1, R1, S1} = py_web_h1_chunked:decode(<<"a\r\n0123456789\r\n0\r\n\r\n">>, St, 4),
    ?assertEqual(<<"0123">>, iolist_to_binary(D1)),
    {ok, D2, R2, S2} = py_web_h1_chunked:decode(R1, S1, 4),
    ?assertEqual(<<"4567">>, iolist_to_binary(D2)),
    ?assertEqual({ok, [<<"89">>], <<>>, done}, py_web_h1_chunked:decode(R2, S2, 4)).

%%====================================================================
%% py_web_h1_field helpers
%%====================================================================

list_tokens_test() ->
    ?assertEqual([<<"a">>, <<"b c">>, <<"d">>],
                 py_web_h1_field:list_tokens(<<" A ,, b C\t,D,">>)),
    ?assertEqual([], py_web_h1_field:list_tokens(<<" , ">>)),
    ?assertEqual(<<"content-type">>, py_web_h1_field:lower(<<"Content-Type">>)),
    ?assert(py_web_h1_field:is_token(<<"chunked">>)),
    ?assertNot(py_web_h1_field:is_token(<<>>)),
    ?assertNot(py_web_h1_field:is_token(<<"a b">>)).
