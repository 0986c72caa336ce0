%% EUnit tests of py_web_ws: the connection state machine (RFC 6455 §5.5 control frames,
%% §7 closing, keepalive as data), from accept to close.
-module(py_web_ws_tests).

-include_lib("eunit/include/eunit.hrl").

-import(py_web_ws_test_lib, [cframe/3, cframe/5, key/0]).

-define(KEY, <<"dGhlIHNhbXBsZSBub25jZQ==">>).

request(Extra) ->
    Hs = [{<<"host">>, <<"h">>}, {<<"upgrade">>, <<"websocket">>},
          {<<"connection">>, <<"Upgrade">>}, {<<"sec-websocket-key">>, ?KEY},
          {<<"sec-websocket-version">>, <<"13">>} | Extra],
    {ok, Req} = py_web_ws_handshake:parse(<<"GET">>, {1, 1}, Hs),
    Req.

open(Opts) -> open([], Opts).
open(Extra, Opts) ->
    {ok, _Head, Ws} = py_web_ws:accept(request(Extra), #{now => 0}, Opts),
    Ws.

bin(IoData) -> iolist_to_binary(IoData).

accept_test() ->
    {ok, Head, Ws} = py_web_ws:accept(
                       request([{<<"sec-websocket-extensions">>, <<"permessage-deflate">>},
                                {<<"sec-websocket-protocol">>, <<"chat">>}]),
                       #{subprotocol => <<"chat">>, headers => [{<<"x-a">>, <<"b">>},
                                                                 {<<"date">>, <<"today">>}],
                         now => 0},
                       #{}),
    ?assertEqual(<<"HTTP/1.1 101 Switching Protocols\r\n"
                   "upgrade: websocket\r\nconnection: Upgrade\r\n"
                   "sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                   "sec-websocket-protocol: chat\r\n"
                   "sec-websocket-extensions: permessage-deflate\r\n"
                   "x-a: b\r\ndate: today\r\n\r\n">>,
                 bin(py_web_http:head(Head, false, {1, 1}, false))),
    ?assertEqual(open, py_web_ws:status(Ws)),
    %% messages go out compressed
    {Out, _} = py_web_ws:send({text, <<"Hello">>}, 0, Ws),
    ?assertEqual(<<16#c1, 16#07, 16#f2, 16#48, 16#cd, 16#c9, 16#c9, 16#07, 16#00>>, bin(Out)).

accept_without_deflate_test() ->
    Req = request([{<<"sec-websocket-extensions">>, <<"permessage-deflate">>}]),
    {ok, Head, Ws} = py_web_ws:accept(Req, #{now => 0}, #{deflate => false}),
    ?assertEqual([], [N || {N, _} <- maps:get(headers, Head),
                           N =:= <<"sec-websocket-extensions">>]),
    {Out, _} = py_web_ws:send({text, <<"Hello">>}, 0, Ws),
    ?assertEqual(<<16#81, 5, "Hello">>, bin(Out)),
    %% and RSV1 from the client is then a protocol error
    {Events, Close, Ws1} = py_web_ws:recv(cframe(text, true, 4, <<"x">>, key()), 0, Ws),
    ?assertEqual([{close, 1002, <<>>}], Events),
    ?assertEqual(<<16#88, 2, 1002:16>>, bin(Close)),
    ?assertEqual(closed, py_web_ws:status(Ws1)).

accept_error_test() ->
    ?assertEqual({error, {bad_subprotocol, <<"nope">>}},
                 py_web_ws:accept(request([]), #{subprotocol => <<"nope">>, now => 0}, #{})).

messages_and_ping_test() ->
    Ws = open(#{}),
    Bytes = <<(cframe(text, <<"a">>, key()))/binary, (cframe(ping, <<"p1">>, key()))/binary,
              (cframe(binary, <<1, 2>>, key()))/binary, (cframe(pong, <<"x">>, key()))/binary>>,
    {Events, Out, Ws1} = py_web_ws:recv(Bytes, 5, Ws),
    ?assertEqual([{text, <<"a">>}, {binary, <<1, 2>>}], Events),
    ?assertEqual(<<16#8a, 2, "p1">>, bin(Out)),   % the pong echoes the ping's payload
    ?assertEqual(open, py_web_ws:status(Ws1)).

peer_close_test() ->
    Ws = open(#{}),
    {Events, Out, Ws1} = py_web_ws:recv(cframe(close, <<1001:16, "away">>, key()), 0, Ws),
    ?assertEqual([{close, 1001, <<"away">>}], Events),
    ?assertEqual(<<16#88, 2, 1001:16>>, bin(Out)),
    ?assertEqual(closed, py_web_ws:status(Ws1)),
    ?assertEqual(infinity, py_web_ws:deadline(Ws1)),
    %% nothing after it counts
    ?assertEqual({[], [], Ws1}, py_web_ws:recv(cframe(text, <<"late">>, key()), 1, Ws1)),
    ?assertEqual({error, closed}, py_web_ws:send({text, <<"x">>}, 1, Ws1)),
    ?assertEqual({[], Ws1}, py_web_ws:disconnected(Ws1)).

peer_close_without_code_test() ->
    {Events, Out, _} = py_web_ws:recv(cframe(close, <<>>, key()), 0, open(#{})),
    ?assertEqual([{close, 1005, <<>>}], Events),
    ?assertEqual(<<16#88, 0>>, bin(Out)).

messages_before_close_in_one_packet_test() ->
    Bytes = <<(cframe(text, <<"last">>, key()))/binary,
              (cframe(close, <<1000:16>>, key()))/binary,
              (cframe(text, <<"after">>, key()))/binary>>,
    {Events, _, _} = py_web_ws:recv(Bytes, 0, open(#{})),
    ?assertEqual([{text, <<"last">>}, {close, 1000, <<>>}], Events).

protocol_errors_close_test() ->
    Cases = [{cframe(text, <<16#FF>>, key()), 1007},
             {cframe(close, <<999:16>>, key()), 1002},
             {cframe(close, <<1000:16, 16#FF>>, key()), 1007},
             {cframe(continuation, <<"x">>, key()), 1002},
             {cframe(12, <<"x">>, key()), 1002},
             {py_web_ws_test_lib:raw(text, true, 0, <<1:7>>, none, <<"x">>), 1002},
             {cframe(binary, binary:copy(<<"x">>, 101), key()), 1009}],
    [begin
         {Events, Out, Ws1} = py_web_ws:recv(Bytes, 0, open(#{max_message_size => 100})),
         ?assertEqual({Code, [{close, Code, <<>>}]}, {Code, Events}),
         ?assertEqual({Code, <<16#88, 2, Code:16>>}, {Code, bin(Out)}),
         ?assertEqual(closed, py_web_ws:status(Ws1))
     end || {Bytes, Code} <- Cases].

app_close_handshake_test() ->
    Ws = open(#{close_timeout => 1000}),
    {Out, Ws1} = py_web_ws:send({close, 4000, <<"done">>}, 100, Ws),
    ?assertEqual(<<16#88, 6, 4000:16, "done">>, bin(Out)),
    ?assertEqual(closing, py_web_ws:status(Ws1)),
    ?assertEqual(1100, py_web_ws:deadline(Ws1)),
    ?assertEqual({error, closed}, py_web_ws:send({text, <<"x">>}, 101, Ws1)),
    %% while closing: messages dropped, pings not answered
    {[], [], Ws2} = py_web_ws:recv(<<(cframe(text, <<"x">>, key()))/binary,
                                     (cframe(ping, <<>>, key()))/binary>>, 200, Ws1),
    {Events, Out2, Ws3} = py_web_ws:recv(cframe(close, <<4000:16>>, key()), 300, Ws2),
    ?assertEqual([{close, 4000, <<>>}], Events),
    ?assertEqual([], Out2),                      % our close frame is already sent
    ?assertEqual(closed, py_web_ws:status(Ws3)).

app_close_timeout_test() ->
    {_, Ws1} = py_web_ws:send({close, 1000, <<>>}, 0, open(#{close_timeout => 1000})),
    ?assertEqual({[], [], Ws1}, py_web_ws:timeout(999, Ws1)),   % early timer: nothing
    {Events, [], Ws2} = py_web_ws:timeout(1000, Ws1),
    ?assertEqual([{close, 1006, <<>>}], Events),
    ?assertEqual(closed, py_web_ws:status(Ws2)).

app_bad_close_code_test() ->
    Ws = open(#{}),
    [?assertEqual({error, {bad_close_code, C}}, py_web_ws:send({close, C, <<>>}, 0, Ws))
     || C <- [999, 1004, 1005, 1006, 1015, 2000, 5000, nope]].

graceful_shutdown_test() ->
    {Out, Ws1} = py_web_ws:send({close, 1001, <<>>}, 0, open(#{})),
    ?assertEqual(<<16#88, 2, 1001:16>>, bin(Out)),
    ?assertEqual(closing, py_web_ws:status(Ws1)).

disconnect_is_1006_test() ->
    {Events, Ws1} = py_web_ws:disconnected(open(#{})),
    ?assertEqual([{close, 1006, <<>>}], Events),
    ?assertEqual(closed, py_web_ws:status(Ws1)).

keepalive_test() ->
    Ws = open(#{ping_interval => 1000, ping_timeout => 500}),
    ?assertEqual(1000, py_web_ws:deadline(Ws)),
    %% data from the peer pushes the deadline; an early timer does nothing
    {[], [], Ws1} = py_web_ws:recv(cframe(pong, <<>>, key()), 600, Ws),
    ?assertEqual(1600, py_web_ws:deadline(Ws1)),
    ?assertEqual({[], [], Ws1}, py_web_ws:timeout(1000, Ws1)),
    %% silence: a ping, then the timeout
    {[], Ping, Ws2} = py_web_ws:timeout(1600, Ws1),
    ?assertEqual(<<16#89, 0>>, bin(Ping)),
    ?assertEqual(2100, py_web_ws:deadline(Ws2)),
    %% an answer clears it
    {[], [], Ws3} = py_web_ws:recv(cframe(pong, <<>>, key()), 1700, Ws2),
    ?assertEqual(2700, py_web_ws:deadline(Ws3)),
    %% no answer: closed with 1011, the app is told 1006
    {[], _, Ws4} = py_web_ws:timeout(2700, Ws3),
    {Events, Out, Ws5} = py_web_ws:timeout(3200, Ws4),
    ?assertEqual([{close, 1006, <<>>}], Events),
    ?assertEqual(<<16#88, 24, 1011:16, "keepalive ping timeout">>, bin(Out)),
    ?assertEqual(closed, py_web_ws:status(Ws5)).

keepalive_off_test() ->
    Ws = open(#{ping_interval => infinity}),
    ?assertEqual(infinity, py_web_ws:deadline(Ws)),
    ?assertEqual({[], [], Ws}, py_web_ws:timeout(1 bsl 40, Ws)).

fragmented_send_test() ->
    {Out, _} = py_web_ws:send({binary, <<"abcdefg">>}, 0, open(#{deflate => false, fragment_size => 3})),
    ?assertEqual(<<16#02, 3, "abc", 16#00, 3, "def", 16#80, 1, "g">>, bin(Out)).

big_message_in_small_pieces_test() ->
    %% a 1 MiB text message fed in 1460-byte segments, with a ping in the middle of fragments
    Text = binary:copy(<<"0123456789abcdef€"/utf8>>, 55000),
    <<A:500000/binary, B/binary>> = Text,
    Bytes = <<(cframe(text, false, 0, A, key()))/binary, (cframe(ping, <<"mid">>, key()))/binary,
              (cframe(continuation, true, 0, B, key()))/binary>>,
    {Events, Out} = feed(Bytes, 1460, open(#{}), [], []),
    ?assertEqual([{text, Text}], Events),
    ?assertEqual(<<16#8a, 3, "mid">>, bin(Out)).

feed(<<>>, _N, _Ws, Events, Out) -> {Events, Out};
feed(Bytes, N, Ws, Events, Out) ->
    Size = min(N, byte_size(Bytes)),
    <<Piece:Size/binary, Rest/binary>> = Bytes,
    {E, O, Ws1} = py_web_ws:recv(Piece, 0, Ws),
    feed(Rest, N, Ws1, Events ++ E, [Out, O]).
