%% Requests through reverse proxies: trust lists, X-Forwarded-*, RFC 7239
%% Forwarded (py_web_proxy) and the PROXY protocol (py_web_proxy_protocol).
%% The X-Forwarded-For cases are uvicorn 0.55's (tests/middleware/
%% test_proxy_headers.py) on the same inputs.
-module(py_web_proxy_tests).

-include_lib("eunit/include/eunit.hrl").
-include("../apps/py_web/src/py_web.hrl").

trust(S) ->
    {ok, T} = py_web_proxy:trust(S),
    T.

trust_list_test() ->
    T = trust("127.0.0.1, ::1,10.0.0.0/8 , 2001:db8::/32,my-proxy"),
    Yes = [<<"127.0.0.1">>, <<"::1">>, <<"0:0:0:0:0:0:0:1">>, <<"10.255.0.1">>,
           <<"2001:db8:1::5">>, <<"my-proxy">>, <<"::ffff:127.0.0.1">>, <<"::ffff:10.1.2.3">>,
           undefined],
    No = [<<"127.0.0.2">>, <<"11.0.0.1">>, <<"2001:db9::1">>, <<"other">>, <<>>],
    ?assertEqual([true || _ <- Yes], [py_web_proxy:trusted(H, T) || H <- Yes]),
    ?assertEqual([false || _ <- No], [py_web_proxy:trusted(H, T) || H <- No]),
    All = trust("*"),
    ?assert(py_web_proxy:trusted(<<"8.8.8.8">>, All)),
    ?assert(py_web_proxy:trusted(<<"8.8.8.8">>, trust("1.1.1.1,*"))),
    %% a network with too many bits is a literal, as in uvicorn
    ?assertNot(py_web_proxy:trusted(<<"10.0.0.1">>, trust("10.0.0.0/33"))),
    ?assert(py_web_proxy:trusted(<<"10.0.0.1">>, trust(<<"10.0.0.0/8">>))),
    ?assertEqual(error, py_web_proxy:trust(42)).

req(Peer, Headers) ->
    #req{peer = {Peer, 1234}, headers = Headers, scheme = <<"http">>}.

cfg(Trust) ->
    #cfg{proxy = trust(Trust)}.

apply_(Peer, Headers, Trust) ->
    #req{peer = P, scheme = S} = py_web_proxy:request(req(Peer, Headers), cfg(Trust)),
    {P, S}.

%% uvicorn's table: trusted hosts, X-Forwarded-For, the client it gives.
x_forwarded_for_test_() ->
    Cases =
        [{"*", "1.2.3.4", {<<"1.2.3.4">>, 0}},
         {"*", "1.2.3.4, 10.0.0.1", {<<"1.2.3.4">>, 0}},
         {"127.0.0.1", "1.2.3.4", {<<"1.2.3.4">>, 0}},
         {"127.0.0.1", "1.2.3.4, 10.0.0.1", {<<"10.0.0.1">>, 0}},
         {"127.0.0.1,10.0.0.1", "1.2.3.4, 10.0.0.1", {<<"1.2.3.4">>, 0}},
         {"127.0.0.1,10.0.0.0/8", "1.2.3.4, 10.0.0.2, 10.0.0.1", {<<"1.2.3.4">>, 0}},
         %% every hop trusted: the left-most
         {"127.0.0.1,10.0.0.1", "10.0.0.1", {<<"10.0.0.1">>, 0}},
         %% ports
         {"127.0.0.1", "1.2.3.4:5678", {<<"1.2.3.4">>, 5678}},
         {"127.0.0.1", "[2001:db8::1]:5678", {<<"2001:db8::1">>, 5678}},
         {"127.0.0.1", "2001:db8::1", {<<"2001:db8::1">>, 0}},
         %% not an address (uvicorn would pass it on): the connection's own
         {"127.0.0.1", "1.2.3.4:x", {<<"127.0.0.1">>, 1234}},
         {"127.0.0.1", "unknown", {<<"127.0.0.1">>, 1234}}],
    [?_assertEqual({Client, <<"http">>},
                   apply_(<<"127.0.0.1">>, [{<<"x-forwarded-for">>, list_to_binary(XFF)}], T))
     || {T, XFF, Client} <- Cases].

untrusted_peer_is_ignored_test() ->
    H = [{<<"x-forwarded-for">>, <<"1.2.3.4">>}, {<<"x-forwarded-proto">>, <<"https">>}],
    ?assertEqual({{<<"192.168.0.9">>, 1234}, <<"http">>}, apply_(<<"192.168.0.9">>, H, "127.0.0.1")),
    %% proxy_headers off: nothing applied even from a trusted peer
    R = req(<<"127.0.0.1">>, H),
    ?assertEqual(R, py_web_proxy:request(R, #cfg{proxy = undefined})).

x_forwarded_proto_test() ->
    P = fun(V) -> element(2, apply_(<<"127.0.0.1">>, [{<<"x-forwarded-proto">>, V}], "127.0.0.1")) end,
    ?assertEqual(<<"https">>, P(<<"https">>)),
    ?assertEqual(<<"https">>, P(<<" https ">>)),
    %% wss: the scheme of a WebSocket scope over TLS (its scope says wss)
    ?assertEqual(<<"https">>, P(<<"wss">>)),
    ?assertEqual(<<"http">>, P(<<"ws">>)),
    %% not one of http, https, ws, wss: ignored (uvicorn)
    ?assertEqual(<<"http">>, P(<<"https, http">>)),
    ?assertEqual(<<"http">>, P(<<"ftp">>)),
    %% the last one counts
    ?assertEqual(<<"https">>, element(2, apply_(<<"127.0.0.1">>,
                                                [{<<"x-forwarded-proto">>, <<"http">>},
                                                 {<<"x-forwarded-proto">>, <<"https">>}],
                                                "127.0.0.1"))),
    %% several X-Forwarded-For fields are one list
    ?assertEqual({{<<"5.6.7.8">>, 0}, <<"http">>},
                 apply_(<<"127.0.0.1">>, [{<<"x-forwarded-for">>, <<"1.2.3.4">>},
                                          {<<"x-forwarded-for">>, <<"5.6.7.8">>}], "127.0.0.1")).

forwarded_test() ->
    F = fun(V, T) -> apply_(<<"127.0.0.1">>, [{<<"forwarded">>, V}], T) end,
    ?assertEqual({{<<"192.0.2.60">>, 0}, <<"https">>},
                 F(<<"for=192.0.2.60;proto=https;by=203.0.113.43">>, "127.0.0.1")),
    ?assertEqual({{<<"2001:db8:cafe::17">>, 4711}, <<"https">>},
                 F(<<"For=\"[2001:db8:cafe::17]:4711\";Proto=HTTPS">>, "127.0.0.1")),
    %% the walk: the right-most untrusted node, with its element's proto
    ?assertEqual({{<<"198.51.100.1">>, 0}, <<"https">>},
                 F(<<"for=192.0.2.1;proto=http, for=198.51.100.1;proto=https, for=10.0.0.1">>,
                   "127.0.0.1,10.0.0.0/8")),
    %% unknown / obfuscated client: the scheme is taken, the address is not
    ?assertEqual({{<<"127.0.0.1">>, 1234}, <<"https">>},
                 F(<<"for=unknown;proto=https">>, "127.0.0.1")),
    ?assertEqual({{<<"127.0.0.1">>, 1234}, <<"https">>},
                 F(<<"for=\"_hidden\";proto=https">>, "127.0.0.1")),
    %% next to X-Forwarded-*, Forwarded is not read (a client may have sent it)
    ?assertEqual({{<<"1.2.3.4">>, 0}, <<"http">>},
                 apply_(<<"127.0.0.1">>, [{<<"forwarded">>, <<"for=6.6.6.6;proto=https">>},
                                          {<<"x-forwarded-for">>, <<"1.2.3.4">>}], "127.0.0.1")),
    %% quoted strings hold separators
    ?assertEqual([#{for => <<"a,b;c">>, <<"ext">> => <<"q\"x">>}],
                 py_web_proxy:forwarded(<<"for=\"a,b;c\";ext=\"q\\\"x\"">>)).

%% A field value may hold any octet (obs-text): never a crash, and what is
%% not an address or a scheme is ignored.
non_utf8_fields_test() ->
    Bad = <<"1.2.3.4", 146, " ">>,
    ?assertEqual({{<<"127.0.0.1">>, 1234}, <<"http">>},
                 apply_(<<"127.0.0.1">>, [{<<"x-forwarded-proto">>, <<" ", 146>>},
                                          {<<"x-forwarded-for">>, <<" ", 255, 146>>}], "127.0.0.1")),
    ?assertMatch({{<<"127.0.0.1">>, 1234}, _}, apply_(<<"127.0.0.1">>, [{<<"x-forwarded-for">>, Bad}], "*")),
    ?assertMatch({{<<"127.0.0.1">>, 1234}, _},
                 apply_(<<"127.0.0.1">>, [{<<"x-forwarded-for">>, <<"unknown">>}], "127.0.0.1")),
    ?assertEqual({{<<"127.0.0.1">>, 1234}, <<"http">>},
                 apply_(<<"127.0.0.1">>, [{<<"forwarded">>, <<"for=", 146, ";pro", 200, "to=https">>}],
                        "127.0.0.1")).

unix_socket_peer_is_trusted_test() ->
    R = #req{peer = undefined, headers = [{<<"x-forwarded-for">>, <<"1.2.3.4">>},
                                          {<<"x-forwarded-proto">>, <<"https">>}]},
    #req{peer = P, scheme = S} = py_web_proxy:request(R, cfg("127.0.0.1")),
    ?assertEqual({{<<"1.2.3.4">>, 0}, <<"https">>}, {P, S}).

proxy_protocol_v1_test() ->
    Parse = fun py_web_proxy_protocol:parse/2,
    ?assertEqual({ok, #{peer => {<<"1.2.3.4">>, 1000}, local => {<<"5.6.7.8">>, 80}},
                  <<"GET / HTTP/1.1\r\n">>},
                 Parse(auto, <<"PROXY TCP4 1.2.3.4 5.6.7.8 1000 80\r\nGET / HTTP/1.1\r\n">>)),
    ?assertEqual({ok, #{peer => {<<"2001:db8::1">>, 1}, local => {<<"::1">>, 2}}, <<>>},
                 Parse(v1, <<"PROXY TCP6 2001:db8::1 ::1 1 2\r\n">>)),
    ?assertEqual({ok, local, <<"x">>}, Parse(v1, <<"PROXY UNKNOWN\r\nx">>)),
    ?assertEqual(more, Parse(auto, <<"PRO">>)),
    ?assertEqual(more, Parse(auto, <<"PROXY TCP4 1.2.3.4">>)),
    ?assertEqual({ok, none, <<"GET / HTTP/1.1\r\n">>}, Parse(auto, <<"GET / HTTP/1.1\r\n">>)),
    %% v2 only: a v1 line is not a header
    ?assertEqual({ok, none, <<"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n">>},
                 Parse(v2, <<"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n">>)),
    [?assertEqual({error, bad_proxy_header}, Parse(auto, Bad))
     || Bad <- [<<"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n">>, <<"PROXY TCP4 ::1 5.6.7.8 1 2\r\n">>,
                <<"PROXY TCP4 1.2.3.4 5.6.7.8 1 70000\r\n">>, <<"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n">>,
                <<"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n">>,
                <<"PROXY ", (binary:copy(<<"x">>, 120))/binary>>]].

v2(VerCmd, FamProto, Body) ->
    <<"\r\n\r\n\0\r\nQUIT\n", VerCmd, FamProto, (byte_size(Body)):16, Body/binary>>.

proxy_protocol_v2_test() ->
    Parse = fun py_web_proxy_protocol:parse/2,
    V4 = v2(16#21, 16#11, <<1, 2, 3, 4, 5, 6, 7, 8, 1000:16, 80:16>>),
    ?assertEqual({ok, #{peer => {<<"1.2.3.4">>, 1000}, local => {<<"5.6.7.8">>, 80}}, <<"rest">>},
                 Parse(v2, <<V4/binary, "rest">>)),
    V6 = v2(16#21, 16#21, <<16#20010db8:32, 0:80, 1:16, 0:112, 1:16, 7:16, 443:16>>),
    ?assertEqual({ok, #{peer => {<<"2001:db8::1">>, 7}, local => {<<"::1">>, 443}}, <<>>},
                 Parse(auto, V6)),
    %% TLVs after the addresses are skipped
    ?assertMatch({ok, #{peer := {<<"1.2.3.4">>, 1000}}, <<"x">>},
                 Parse(auto, <<(v2(16#21, 16#11, <<1, 2, 3, 4, 5, 6, 7, 8, 1000:16, 80:16,
                                                   1, 0, 2, "h2">>))/binary, "x">>)),
    ?assertEqual({ok, local, <<>>}, Parse(auto, v2(16#20, 16#00, <<>>))),
    ?assertEqual(more, Parse(auto, binary:part(V4, 0, 20))),
    ?assertEqual(more, Parse(auto, <<"\r\n\r\n">>)),
    ?assertEqual({error, bad_proxy_header}, Parse(auto, v2(16#31, 16#11, <<0:96>>))),
    ?assertEqual({error, bad_proxy_header}, Parse(auto, v2(16#21, 16#11, <<1, 2, 3>>))),
    %% v1 only: a v2 header is not one
    ?assertMatch({ok, none, _}, Parse(v1, V4)).

%% The header read from a real socket, before the request and before TLS.
proxy_protocol_read_test() ->
    {ok, L} = gen_tcp:listen(0, [binary, {active, false}, {ip, {127, 0, 0, 1}}]),
    {ok, Port} = inet:port(L),
    Read = fun(Send, Tls) ->
                   {ok, C} = gen_tcp:connect({127, 0, 0, 1}, Port, [binary]),
                   ok = gen_tcp:send(C, Send),
                   {ok, S} = gen_tcp:accept(L, 5000),
                   R = py_web_proxy_protocol:read(S, auto, Tls, 5000),
                   Next = gen_tcp:recv(S, 0, 200),
                   gen_tcp:close(S), gen_tcp:close(C),
                   {R, Next}
           end,
    ?assertMatch({{ok, #{peer := {<<"1.2.3.4">>, 9}}, <<"GET", _/binary>>}, _},
                 Read(<<"PROXY TCP4 1.2.3.4 5.6.7.8 9 80\r\nGET / HTTP/1.1\r\n\r\n">>, false)),
    ?assertMatch({{ok, none, <<"GET / HTTP/1.1\r\n\r\n">>}, _},
                 Read(<<"GET / HTTP/1.1\r\n\r\n">>, false)),
    %% before TLS: exactly the header is read, the rest is the handshake's
    ?assertMatch({{ok, #{peer := {<<"1.2.3.4">>, 9}}, <<>>}, {ok, <<22, 3, 1>>}},
                 Read(<<"PROXY TCP4 1.2.3.4 5.6.7.8 9 80\r\n", 22, 3, 1>>, true)),
    ?assertMatch({{ok, #{peer := {<<"1.2.3.4">>, 1000}}, <<>>}, {ok, <<22>>}},
                 Read(<<(v2(16#21, 16#11, <<1, 2, 3, 4, 5, 6, 7, 8, 1000:16, 80:16>>))/binary, 22>>,
                      true)),
    ?assertMatch({{error, no_proxy_header}, _}, Read(<<22, 3, 1, 0, 0, 0>>, true)),
    gen_tcp:close(L).
