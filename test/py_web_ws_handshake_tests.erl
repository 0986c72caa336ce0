%% EUnit tests of py_web_ws_handshake (RFC 6455 §4.2, §1.3, §9.1) and py_web_ws_deflate
%% (RFC 7692 §5, §7.1 negotiation, §7.2 compression with the §7.2.3 examples).
-module(py_web_ws_handshake_tests).

-include_lib("eunit/include/eunit.hrl").

-import(py_web_ws_test_lib, [cframe/3, cframe/5, key/0]).

-define(KEY, <<"dGhlIHNhbXBsZSBub25jZQ==">>).

base() ->
    [{<<"host">>, <<"server.example.com">>}, {<<"upgrade">>, <<"websocket">>},
     {<<"connection">>, <<"Upgrade">>}, {<<"sec-websocket-key">>, ?KEY},
     {<<"origin">>, <<"http://example.com">>},
     {<<"sec-websocket-version">>, <<"13">>}].

parse(Headers) -> py_web_ws_handshake:parse(<<"GET">>, {1, 1}, Headers).

without(Name, Hs) -> [H || {N, _} = H <- Hs, N =/= Name].
with(Name, Value, Hs) -> without(Name, Hs) ++ [{Name, Value}].

%%--------------------------------------------------------------------
%% Opening handshake
%%--------------------------------------------------------------------

rfc_1_3_accept_key_test() ->
    ?assertEqual(<<"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=">>, py_web_ws_handshake:accept_key(?KEY)).

valid_request_test() ->
    ?assertEqual({ok, #{key => ?KEY, subprotocols => [], extensions => []}}, parse(base())).

not_websocket_test() ->
    ?assertEqual(http, parse(without(<<"upgrade">>, base()))),
    ?assertEqual(http, parse(with(<<"upgrade">>, <<"h2c">>, base()))),
    %% HTTP/1.0 ignores Upgrade
    ?assertEqual(http, py_web_ws_handshake:parse(<<"GET">>, {1, 0}, base())).

token_lists_test() ->
    %% case-insensitive tokens, several values, several headers
    Hs = [{<<"host">>, <<"h">>}, {<<"upgrade">>, <<"foo">>}, {<<"upgrade">>, <<"WebSocket">>},
          {<<"connection">>, <<"keep-alive, UPGRADE">>}, {<<"sec-websocket-key">>, ?KEY},
          {<<"sec-websocket-version">>, <<" 13 ">>}],
    ?assertMatch({ok, _}, parse(Hs)),
    ?assertMatch({ok, _}, parse(base() ++ [{<<"connection">>, <<"keep-alive">>}])).

%% Field values may hold obs-text (0x80-0xFF): not UTF-8, and not a token either.
obs_text_test() ->
    ?assertEqual(http, parse(with(<<"upgrade">>, <<"websoc", 16#e2, 16#84, 16#aa, "et">>,
                                  base()))),
    ?assertEqual(http, parse(with(<<"upgrade">>, <<"a", 255, "B">>, base()))),
    ?assertEqual({error, {426, bad_version, [{<<"sec-websocket-version">>, <<"13">>}]}},
                 parse(with(<<"sec-websocket-version">>, <<" ", 255, "13">>, base()))).

rejections_test() ->
    R400 = fun(Why, Hs) -> ?assertEqual({error, {400, Why, []}}, parse(Hs)) end,
    ?assertEqual({error, {400, bad_method, []}}, py_web_ws_handshake:parse(<<"POST">>, {1, 1}, base())),
    R400(no_host, without(<<"host">>, base())),
    R400(no_connection_upgrade, without(<<"connection">>, base())),
    R400(no_connection_upgrade, with(<<"connection">>, <<"keep-alive">>, base())),
    R400(no_key, without(<<"sec-websocket-key">>, base())),
    R400(bad_key, with(<<"sec-websocket-key">>, <<"AQIDBAUGBwgJCgsMDQ4P">>, base())),   % 15 bytes
    R400(bad_key, with(<<"sec-websocket-key">>, <<"not base64 at all!!!!!!!">>, base())),
    R400(bad_key, with(<<"sec-websocket-key">>, base64:encode(<<0:17/unit:8>>), base())),
    R400(bad_key, base() ++ [{<<"sec-websocket-key">>, ?KEY}]),
    R400(no_version, without(<<"sec-websocket-version">>, base())),
    R400(bad_subprotocols, base() ++ [{<<"sec-websocket-protocol">>, <<"a b">>}]),
    R400(bad_extensions, base() ++ [{<<"sec-websocket-extensions">>, <<"x; =1">>}]).

version_426_test() ->
    [?assertEqual({error, {426, bad_version, [{<<"sec-websocket-version">>, <<"13">>}]}},
                  parse(Hs))
     || Hs <- [with(<<"sec-websocket-version">>, <<"8">>, base()),
               with(<<"sec-websocket-version">>, <<"13, 8">>, base()),
               base() ++ [{<<"sec-websocket-version">>, <<"8">>}]]].

subprotocols_test() ->
    Hs = base() ++ [{<<"sec-websocket-protocol">>, <<"chat, superchat">>},
                    {<<"sec-websocket-protocol">>, <<"v2.json,,">>}],
    {ok, #{subprotocols := P}} = parse(Hs),
    ?assertEqual([<<"chat">>, <<"superchat">>, <<"v2.json">>], P).

extensions_grammar_test() ->
    Hs = base() ++ [{<<"sec-websocket-extensions">>,
                     <<"permessage-deflate; client_max_window_bits, "
                       "Permessage-Deflate ; Server_Max_Window_Bits=\"10\"">>},
                    {<<"sec-websocket-extensions">>, <<"x-foo">>}],
    {ok, #{extensions := E}} = parse(Hs),
    ?assertEqual([{<<"permessage-deflate">>, [{<<"client_max_window_bits">>, true}]},
                  {<<"permessage-deflate">>, [{<<"server_max_window_bits">>, <<"10">>}]},
                  {<<"x-foo">>, []}], E),
    [?assertEqual(error, py_web_ws_handshake:parse_extensions([V]))
     || V <- [<<"a;">>, <<"a; b=\"x y\"">>, <<"a; b=\"unterminated">>, <<"a b">>, <<"a; b=">>]].

response_test() ->
    {ok, Req} = parse(base() ++ [{<<"sec-websocket-protocol">>, <<"chat, superchat">>}]),
    {ok, Head} = py_web_ws_handshake:response(
                   Req, #{subprotocol => <<"superchat">>,
                          extensions => <<"permessage-deflate">>,
                          headers => [{<<"x-app">>, <<"1">>}, {<<"set-cookie">>, <<"a=1">>},
                                      {<<"set-cookie">>, <<"b=2">>}]}),
    ?assertMatch(#{status := 101, framing := none, close := false, date := false,
                   server := false}, Head),
    ?assertEqual(<<"HTTP/1.1 101 Switching Protocols\r\n"
                   "upgrade: websocket\r\nconnection: Upgrade\r\n"
                   "sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                   "sec-websocket-protocol: superchat\r\n"
                   "sec-websocket-extensions: permessage-deflate\r\n"
                   "x-app: 1\r\nset-cookie: a=1\r\nset-cookie: b=2\r\n"
                   "server: py_web\r\n\r\n">>, render(Head, <<"py_web">>)),
    {ok, Plain} = py_web_ws_handshake:response(Req, #{}),
    ?assertEqual(<<"HTTP/1.1 101 Switching Protocols\r\n"
                   "upgrade: websocket\r\nconnection: Upgrade\r\n"
                   "sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n">>,
                 render(Plain, false)),
    %% the app's own Date and Server: the server adds neither
    {ok, Own} = py_web_ws_handshake:response(Req, #{headers => [{<<"Date">>, <<"d">>},
                                                                {<<"Server">>, <<"s">>}]}),
    ?assertMatch(#{date := true, server := true}, Own).

%% A head as the server writes it, without its Date.
render(Head, Server) ->
    iolist_to_binary(py_web_http:head(Head#{date := true}, false, {1, 1}, Server)).

response_errors_test() ->
    {ok, Req} = parse(base() ++ [{<<"sec-websocket-protocol">>, <<"chat">>}]),
    ?assertEqual({error, {bad_subprotocol, <<"other">>}},
                 py_web_ws_handshake:response(Req, #{subprotocol => <<"other">>})),
    [?assertEqual({error, {bad_header, H}},
                  py_web_ws_handshake:response(Req, #{headers => [H]}))
     || H <- [{<<"x">>, <<"a\r\nb: c">>}, {<<"x y">>, <<"v">>}, {<<>>, <<"v">>},
              {<<"Sec-WebSocket-Protocol">>, <<"chat">>}, {<<"connection">>, <<"close">>},
              {<<"content-length">>, <<"0">>}, {x, <<"v">>},
              %% the HTTP response check: no control character but HTAB in a value
              {<<"x">>, <<"a", 1, "b">>}, {<<"x">>, <<"a", 127>>}]].

%%--------------------------------------------------------------------
%% permessage-deflate negotiation (RFC 7692 §7.1)
%%--------------------------------------------------------------------

neg(Header) -> neg(Header, #{}).
neg(Header, Config) ->
    {ok, Offers} = py_web_ws_handshake:parse_extensions([Header]),
    case py_web_ws_deflate:negotiate(Offers, Config) of
        {ok, Resp, Params} -> {iolist_to_binary(Resp), Params};
        none -> none
    end.

params(SNCT, CNCT, SB, CB) ->
    #{server_no_context_takeover => SNCT, client_no_context_takeover => CNCT,
      server_max_window_bits => SB, client_max_window_bits => CB}.

negotiate_plain_test() ->
    ?assertEqual({<<"permessage-deflate">>, params(false, false, 15, 15)},
                 neg(<<"permessage-deflate">>)),
    ?assertEqual(none, neg(<<"x-webkit-deflate-frame">>)),
    ?assertEqual(none, py_web_ws_deflate:negotiate([], #{})).

negotiate_context_takeover_test() ->
    ?assertEqual({<<"permessage-deflate; server_no_context_takeover">>, params(true, false, 15, 15)},
                 neg(<<"permessage-deflate; server_no_context_takeover">>)),
    ?assertEqual({<<"permessage-deflate; client_no_context_takeover">>, params(false, true, 15, 15)},
                 neg(<<"permessage-deflate; client_no_context_takeover">>)),
    %% the server may ask for both even when not offered
    ?assertEqual({<<"permessage-deflate; server_no_context_takeover; client_no_context_takeover">>,
                  params(true, true, 15, 15)},
                 neg(<<"permessage-deflate">>, #{server_no_context_takeover => true,
                                                 client_no_context_takeover => true})).

negotiate_window_bits_test() ->
    ?assertEqual({<<"permessage-deflate; server_max_window_bits=10">>, params(false, false, 10, 15)},
                 neg(<<"permessage-deflate; server_max_window_bits=10">>)),
    ?assertEqual({<<"permessage-deflate; server_max_window_bits=12">>, params(false, false, 12, 15)},
                 neg(<<"permessage-deflate">>, #{server_max_window_bits => 12})),
    ?assertEqual({<<"permessage-deflate; server_max_window_bits=10">>, params(false, false, 10, 15)},
                 neg(<<"permessage-deflate; server_max_window_bits=10">>, #{server_max_window_bits => 12})),
    %% client_max_window_bits without a value: the server may pick; omitted at 15
    ?assertEqual({<<"permessage-deflate">>, params(false, false, 15, 15)},
                 neg(<<"permessage-deflate; client_max_window_bits">>)),
    ?assertEqual({<<"permessage-deflate; client_max_window_bits=9">>, params(false, false, 15, 9)},
                 neg(<<"permessage-deflate; client_max_window_bits">>, #{client_max_window_bits => 9})),
    ?assertEqual({<<"permessage-deflate; client_max_window_bits=8">>, params(false, false, 15, 8)},
                 neg(<<"permessage-deflate; client_max_window_bits=8">>)),
    ?assertEqual({<<"permessage-deflate; client_max_window_bits=11">>, params(false, false, 15, 11)},
                 neg(<<"permessage-deflate; client_max_window_bits=13">>, #{client_max_window_bits => 11})),
    %% not offered: the client's window stays 15 whatever the configuration (§7.1.2.2)
    ?assertEqual({<<"permessage-deflate">>, params(false, false, 15, 15)},
                 neg(<<"permessage-deflate">>, #{client_max_window_bits => 9})).

negotiate_window_8_declined_test() ->
    %% zlib cannot deflate raw with a 256-byte window: that offer is declined, the next taken
    ?assertEqual(none, neg(<<"permessage-deflate; server_max_window_bits=8">>)),
    ?assertEqual({<<"permessage-deflate">>, params(false, false, 15, 15)},
                 neg(<<"permessage-deflate; server_max_window_bits=8, permessage-deflate">>)).

negotiate_invalid_offers_test() ->
    Bad = [<<"permessage-deflate; server_max_window_bits">>,
           <<"permessage-deflate; server_max_window_bits=7">>,
           <<"permessage-deflate; server_max_window_bits=16">>,
           <<"permessage-deflate; server_max_window_bits=010">>,
           <<"permessage-deflate; client_max_window_bits=abc">>,
           <<"permessage-deflate; server_no_context_takeover=1">>,
           <<"permessage-deflate; client_no_context_takeover; client_no_context_takeover">>,
           <<"permessage-deflate; unknown_param">>],
    [?assertEqual({B, none}, {B, neg(B)}) || B <- Bad],
    %% several offers in order: the first acceptable one wins
    ?assertEqual({<<"permessage-deflate; server_max_window_bits=11">>, params(false, false, 11, 15)},
                 neg(<<"permessage-deflate; foo, permessage-deflate; server_max_window_bits=11, "
                       "permessage-deflate">>)).

config_test() ->
    ?assertEqual({ok, #{level => best_speed}}, py_web_ws_deflate:config(#{level => best_speed})),
    ?assertEqual({error, {bad_option, server_max_window_bits, 8}},
                 py_web_ws_deflate:config(#{server_max_window_bits => 8})),
    ?assertEqual({error, {bad_option, nope, 1}}, py_web_ws_deflate:config(#{nope => 1})).

%%--------------------------------------------------------------------
%% Compression (RFC 7692 §7.2.3 examples)
%%--------------------------------------------------------------------

state(Header) -> state(Header, #{}).
state(Header, Config) ->
    {_, Params} = neg(Header, Config),
    py_web_ws_deflate:new(Params, Config).

msg(Header) ->
    py_web_ws_message:new(#{deflate => state(Header)}).

rfc7692_7_2_3_1_hello_test() ->
    D = state(<<"permessage-deflate">>),
    ?assertMatch({true, <<16#f2, 16#48, 16#cd, 16#c9, 16#c9, 16#07, 16#00>>, _},
                 py_web_ws_deflate:compress(<<"Hello">>, D)),
    %% a compressed message from the client, whole and fragmented (§7.2.3.1)
    Whole = cframe(text, true, 4, <<16#f2, 16#48, 16#cd, 16#c9, 16#c9, 16#07, 16#00>>, key()),
    ?assertMatch({ok, [{text, <<"Hello">>}], _}, py_web_ws_message:recv(Whole, msg(<<"permessage-deflate">>))),
    Frags = <<(cframe(text, false, 4, <<16#f2, 16#48, 16#cd>>, key()))/binary,
              (cframe(continuation, true, 0, <<16#c9, 16#c9, 16#07, 16#00>>, key()))/binary>>,
    ?assertMatch({ok, [{text, <<"Hello">>}], _}, py_web_ws_message:recv(Frags, msg(<<"permessage-deflate">>))).

rfc7692_7_2_3_2_context_takeover_test() ->
    D = state(<<"permessage-deflate">>),
    {true, _, D1} = py_web_ws_deflate:compress(<<"Hello">>, D),
    ?assertMatch({true, <<16#f2, 16#00, 16#11, 16#00, 16#00>>, _},
                 py_web_ws_deflate:compress(<<"Hello">>, D1)),
    %% with server_no_context_takeover the second is compressed afresh
    N = state(<<"permessage-deflate; server_no_context_takeover">>),
    {true, First, N1} = py_web_ws_deflate:compress(<<"Hello">>, N),
    ?assertMatch({true, First, _}, py_web_ws_deflate:compress(<<"Hello">>, N1)),
    %% decompression keeps the client's context
    Two = <<(cframe(text, true, 4, <<16#f2, 16#48, 16#cd, 16#c9, 16#c9, 16#07, 16#00>>, key()))/binary,
            (cframe(text, true, 4, <<16#f2, 16#00, 16#11, 16#00, 16#00>>, key()))/binary>>,
    ?assertMatch({ok, [{text, <<"Hello">>}, {text, <<"Hello">>}], _},
                 py_web_ws_message:recv(Two, msg(<<"permessage-deflate">>))).

client_no_context_takeover_resets_inflater_test() ->
    %% the second message refers to the first one's window: valid only with context takeover
    Two = <<(cframe(text, true, 4, <<16#f2, 16#48, 16#cd, 16#c9, 16#c9, 16#07, 16#00>>, key()))/binary,
            (cframe(text, true, 4, <<16#f2, 16#00, 16#11, 16#00, 16#00>>, key()))/binary>>,
    ?assertMatch({error, 1002, bad_compressed_data},
                 py_web_ws_message:recv(Two, msg(<<"permessage-deflate; client_no_context_takeover">>))).

rfc7692_7_2_3_3_stored_block_test() ->
    F = cframe(text, true, 4, <<16#00, 16#05, 16#00, 16#fa, 16#ff, "Hello", 16#00>>, key()),
    ?assertMatch({ok, [{text, <<"Hello">>}], _}, py_web_ws_message:recv(F, msg(<<"permessage-deflate">>))).

rfc7692_7_2_3_4_bfinal_test() ->
    %% a message ending its deflate stream; the next message starts a new one
    F = <<(cframe(text, true, 4, <<16#f3, 16#48, 16#cd, 16#c9, 16#c9, 16#07, 16#00, 16#00>>, key()))/binary,
          (cframe(text, true, 4, <<16#f2, 16#48, 16#cd, 16#c9, 16#c9, 16#07, 16#00>>, key()))/binary>>,
    ?assertMatch({ok, [{text, <<"Hello">>}, {text, <<"Hello">>}], _},
                 py_web_ws_message:recv(F, msg(<<"permessage-deflate">>))).

rfc7692_7_2_3_5_two_blocks_test() ->
    F = cframe(text, true, 4, <<16#f2, 16#48, 16#05, 16#00, 16#00, 16#00, 16#ff, 16#ff,
                                16#ca, 16#c9, 16#c9, 16#07, 16#00>>, key()),
    ?assertMatch({ok, [{text, <<"Hello">>}], _}, py_web_ws_message:recv(F, msg(<<"permessage-deflate">>))).

rfc7692_7_2_3_6_empty_test() ->
    F = cframe(binary, true, 4, <<16#00>>, key()),
    ?assertMatch({ok, [{binary, <<>>}], _}, py_web_ws_message:recv(F, msg(<<"permessage-deflate">>))),
    %% an empty message is sent uncompressed (a sync flush of nothing gives no bytes)
    ?assertMatch({false, <<>>, _}, py_web_ws_deflate:compress(<<>>, state(<<"permessage-deflate">>))).

uncompressed_message_with_deflate_negotiated_test() ->
    F = cframe(text, <<"plain">>, key()),
    ?assertMatch({ok, [{text, <<"plain">>}], _}, py_web_ws_message:recv(F, msg(<<"permessage-deflate">>))).

window_bits_roundtrip_test() ->
    %% each window size the server may use, inflated with the same window by zlib itself
    [begin
         D = state(<<"permessage-deflate">>, #{server_max_window_bits => W}),
         Data = crypto:strong_rand_bytes(3000),
         Msg = binary:copy(Data, 4),
         {true, C, _} = py_web_ws_deflate:compress(Msg, D),
         Z = zlib:open(),
         ok = zlib:inflateInit(Z, -W),
         ?assertEqual(Msg, iolist_to_binary(zlib:inflate(Z, <<C/binary, 0, 0, 255, 255>>))),
         zlib:close(Z)
     end || W <- lists:seq(9, 15)],
    %% and the client's window 8 is inflated
    M8 = py_web_ws_message:new(#{deflate => state(<<"permessage-deflate; client_max_window_bits=8">>)}),
    Z8 = zlib:open(),
    ok = zlib:deflateInit(Z8, default, deflated, -9, 8, default),
    Text = binary:copy(<<"abcdefgh">>, 200),
    C8 = iolist_to_binary(zlib:deflate(Z8, Text, sync)),
    Payload = binary:part(C8, 0, byte_size(C8) - 4),
    ?assertMatch({ok, [{text, Text}], _},
                 py_web_ws_message:recv(cframe(text, true, 4, Payload, key()), M8)).

bomb_test() ->
    %% 10 MB of zeros compress to about 10 KB: refused at the limit, not inflated whole
    Z = zlib:open(),
    ok = zlib:deflateInit(Z, default, deflated, -15, 8, default),
    C = iolist_to_binary(zlib:deflate(Z, binary:copy(<<0>>, 10000000), sync)),
    Payload = binary:part(C, 0, byte_size(C) - 4),
    M = py_web_ws_message:new(#{deflate => state(<<"permessage-deflate">>),
                                max_message_size => 1000000}),
    ?assertEqual({error, 1009, message_too_big},
                 py_web_ws_message:recv(cframe(binary, true, 4, Payload, key()), M)),
    %% under the limit it passes
    M2 = py_web_ws_message:new(#{deflate => state(<<"permessage-deflate">>),
                                 max_message_size => 10000000}),
    {ok, [{binary, Big}], _} = py_web_ws_message:recv(cframe(binary, true, 4, Payload, key()), M2),
    ?assertEqual(10000000, byte_size(Big)).

corrupt_compressed_data_test() ->
    F = cframe(text, true, 4, <<16#ff, 16#ff, 16#ff, 16#ff>>, key()),
    ?assertEqual({error, 1002, bad_compressed_data},
                 py_web_ws_message:recv(F, msg(<<"permessage-deflate">>))).

compressed_invalid_utf8_test() ->
    D = state(<<"permessage-deflate">>),
    {true, C, _} = py_web_ws_deflate:compress(<<"ok", 16#ED, 16#A0, 16#80>>, D),
    ?assertEqual({error, 1007, invalid_utf8},
                 py_web_ws_message:recv(cframe(text, true, 4, C, key()), msg(<<"permessage-deflate">>))).
