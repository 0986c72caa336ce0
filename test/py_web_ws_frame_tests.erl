%% EUnit tests of py_web_ws_frame (RFC 6455 §5), py_web_ws_utf8 (§8.1) and
%% py_web_ws_message (§5.4 fragmentation, sizes, UTF-8 across fragments).
-module(py_web_ws_frame_tests).

-include_lib("eunit/include/eunit.hrl").

-import(py_web_ws_test_lib, [cframe/3, cframe/5, raw/6, key/0, feed_split/3]).

parse(Bytes) -> parse(Bytes, #{}).
parse(Bytes, Opts) -> py_web_ws_frame:parse(Bytes, py_web_ws_frame:parser(Opts)).

msg() -> msg(#{}).
msg(Opts) -> py_web_ws_message:new(Opts).

recv(Bytes) -> py_web_ws_message:recv(Bytes, msg()).
recv(Bytes, Opts) -> py_web_ws_message:recv(Bytes, msg(Opts)).

%% Outputs of feeding Bytes in pieces of every size from 1 to 7 and all at once: the same.
every_split(Bytes, Opts) ->
    All = py_web_ws_message:recv(Bytes, msg(Opts)),
    Results = [case feed_split(Bytes, N, msg(Opts)) of
                   {ok, Out, _} -> {ok, Out};
                   E -> E
               end || N <- lists:seq(1, 7)],
    Expected = case All of {ok, O, _} -> {ok, O}; E -> E end,
    [?assertEqual({N, Expected}, {N, R}) || {N, R} <- lists:zip(lists:seq(1, 7), Results)],
    Expected.

%%--------------------------------------------------------------------
%% §5.7 examples
%%--------------------------------------------------------------------

rfc_5_7_unmasked_text_test() ->
    ?assertEqual(<<16#81, 16#05, "Hello">>, iolist_to_binary(py_web_ws_frame:text(<<"Hello">>))).

rfc_5_7_masked_text_test() ->
    Bytes = <<16#81, 16#85, 16#37, 16#fa, 16#21, 16#3d, 16#7f, 16#9f, 16#4d, 16#51, 16#58>>,
    ?assertEqual({ok, [{text, <<"Hello">>}]}, every_split(Bytes, #{})),
    ?assertEqual(Bytes, cframe(text, <<"Hello">>, key())).

rfc_5_7_fragmented_unmasked_text_test() ->
    ?assertEqual(<<16#01, 16#03, "Hel", 16#80, 16#02, "lo">>,
                 iolist_to_binary(py_web_ws_frame:fragments(text, {false, <<"Hello">>}, 3))).

rfc_5_7_ping_pong_test() ->
    ?assertEqual(<<16#89, 16#05, "Hello">>, iolist_to_binary(py_web_ws_frame:ping(<<"Hello">>))),
    Pong = <<16#8a, 16#85, 16#37, 16#fa, 16#21, 16#3d, 16#7f, 16#9f, 16#4d, 16#51, 16#58>>,
    ?assertEqual({ok, [{pong, <<"Hello">>}]}, every_split(Pong, #{})).

rfc_5_7_lengths_test() ->
    B256 = binary:copy(<<"x">>, 256),
    ?assertMatch(<<16#82, 16#7e, 16#01, 16#00, _:256/binary>>,
                 iolist_to_binary(py_web_ws_frame:binary(B256))),
    B64k = binary:copy(<<"y">>, 65536),
    ?assertMatch(<<16#82, 16#7f, 0, 0, 0, 0, 0, 1, 0, 0, _:65536/binary>>,
                 iolist_to_binary(py_web_ws_frame:binary(B64k))),
    %% the minimal encoding at each boundary
    [?assertMatch({N, <<16#82, Head:HeadSize/binary, _:N/binary>>},
                  {N, iolist_to_binary(py_web_ws_frame:binary(binary:copy(<<"b">>, N)))})
     || {N, HeadSize, Head} <- [{125, 1, <<125>>}, {126, 3, <<126, 126:16>>},
                                {65535, 3, <<126, 65535:16>>},
                                {65536, 9, <<127, 65536:64>>}]],
    %% and the parser reads all three length encodings back, in any split
    [?assertEqual({ok, [{binary, P}]}, every_split(cframe(binary, P, key()), #{}))
     || P <- [<<>>, <<"a">>, binary:copy(<<"z">>, 125), binary:copy(<<"z">>, 126), B256,
              binary:copy(<<"q">>, 65535), B64k]].

%%--------------------------------------------------------------------
%% Header rules
%%--------------------------------------------------------------------

unmasked_client_frame_test() ->
    ?assertEqual({error, 1002, unmasked_frame}, parse(raw(text, true, 0, <<5:7>>, none, <<"Hello">>))).

reserved_bits_test() ->
    [?assertEqual({error, 1002, reserved_bits}, parse(cframe(text, true, Rsv, <<"x">>, key())))
     || Rsv <- lists:seq(1, 7)],
    %% RSV1 allowed once permessage-deflate is negotiated, on the first frame of a message only
    ?assertMatch({ok, [{data, text, true, true, 1}, {payload, _}, data_end], _},
                 parse(cframe(text, true, 4, <<"x">>, key()), #{rsv1 => true})),
    ?assertEqual({error, 1002, reserved_bits},
                 parse(cframe(text, true, 2, <<"x">>, key()), #{rsv1 => true})),
    ?assertEqual({error, 1002, bad_rsv1},
                 parse(cframe(continuation, true, 4, <<"x">>, key()), #{rsv1 => true})),
    ?assertEqual({error, 1002, bad_rsv1},
                 parse(cframe(ping, true, 4, <<"x">>, key()), #{rsv1 => true})).

opcodes_test() ->
    [?assertEqual({error, 1002, bad_opcode}, parse(cframe(Op, <<"x">>, key())))
     || Op <- [3, 4, 5, 6, 7, 11, 12, 13, 14, 15]].

control_frames_test() ->
    ?assertEqual({error, 1002, fragmented_control},
                 parse(cframe(ping, false, 0, <<"x">>, key()))),
    ?assertEqual({error, 1002, control_too_big},
                 parse(cframe(ping, binary:copy(<<"x">>, 126), key()))),
    ?assertEqual({error, 1002, control_too_big},
                 parse(cframe(close, binary:copy(<<"x">>, 126), key()))),
    P125 = binary:copy(<<"p">>, 125),
    ?assertEqual({ok, [{ping, P125}]}, every_split(cframe(ping, P125, key()), #{})),
    %% found from the first two bytes, before the rest arrives
    <<Two:2/binary, _/binary>> = cframe(pong, binary:copy(<<"x">>, 126), key()),
    ?assertEqual({error, 1002, control_too_big}, parse(Two)).

non_minimal_length_test() ->
    ?assertEqual({error, 1002, non_minimal_length},
                 parse(raw(text, true, 0, <<126:7, 5:16>>, key(), <<"Hello">>))),
    ?assertEqual({error, 1002, non_minimal_length},
                 parse(raw(text, true, 0, <<126:7, 125:16>>, key(), binary:copy(<<"a">>, 125)))),
    ?assertEqual({error, 1002, non_minimal_length},
                 parse(raw(binary, true, 0, <<127:7, 65535:64>>, key(), binary:copy(<<"a">>, 65535)))),
    %% fail fast: the extended length alone is enough
    ?assertEqual({error, 1002, non_minimal_length}, parse(<<16#81, 16#FE, 0, 5>>)),
    ?assertEqual({error, 1002, non_minimal_length}, parse(<<16#82, 16#FF, 0:48, 1, 0>>)),
    %% the exact boundaries are accepted
    ?assertMatch({ok, [{data, text, true, false, 126} | _], _},
                 parse(raw(text, true, 0, <<126:7, 126:16>>, key(), binary:copy(<<"a">>, 126)))),
    ?assertMatch({ok, [{data, binary, true, false, 65536} | _], _},
                 parse(raw(binary, true, 0, <<127:7, 65536:64>>, key(), binary:copy(<<"a">>, 65536)))).

length_msb_test() ->
    ?assertEqual({error, 1002, bad_length}, parse(<<16#82, 16#FF, 16#80, 0:56>>)),
    ?assertEqual({error, 1002, bad_length}, parse(<<16#82, 16#FF, 16#80>>)).

max_frame_size_test() ->
    Opts = #{max_frame_size => 10},
    ?assertMatch({ok, [{data, binary, true, false, 10} | _], _},
                 parse(cframe(binary, binary:copy(<<"a">>, 10), key()), Opts)),
    %% refused from the header: the 64-bit length of a huge frame, no payload needed
    ?assertEqual({error, 1009, frame_too_big},
                 parse(cframe(binary, binary:copy(<<"a">>, 11), key()), Opts)),
    ?assertEqual({error, 1009, frame_too_big},
                 parse(<<16#82, 16#FF, (1 bsl 40):64, 1, 2, 3, 4>>, Opts)),
    %% control frames are limited by §5.5 only
    ?assertMatch({ok, [{control, ping, _}], _},
                 parse(cframe(ping, binary:copy(<<"a">>, 100), key()), Opts)).

payload_in_pieces_test() ->
    %% a data frame's payload is returned as it arrives, unmasked at the right key offset
    Frame = cframe(binary, <<"abcdefghij">>, key()),
    P0 = py_web_ws_frame:parser(#{}),
    <<A:9/binary, B:2/binary, C/binary>> = Frame,
    {ok, [{data, binary, true, false, 10}, {payload, <<"abc">>}], P1} = py_web_ws_frame:parse(A, P0),
    {ok, [{payload, <<"de">>}], P2} = py_web_ws_frame:parse(B, P1),
    {ok, [{payload, <<"fghij">>}, data_end], _} = py_web_ws_frame:parse(C, P2).

several_frames_in_one_packet_test() ->
    Bytes = <<(cframe(text, <<"one">>, key()))/binary, (cframe(ping, <<"p">>, key()))/binary,
              (cframe(binary, <<2, 2>>, key()))/binary>>,
    ?assertEqual({ok, [{text, <<"one">>}, {ping, <<"p">>}, {binary, <<2, 2>>}]},
                 every_split(Bytes, #{})).

mask_offsets_test() ->
    Key = <<1, 2, 3, 4>>,
    Data = crypto:strong_rand_bytes(1001),
    ?assertEqual(Data, py_web_ws_frame:mask(py_web_ws_frame:mask(Data, Key), Key)),
    Slow = list_to_binary([B bxor binary:at(Key, I rem 4)
                           || {I, B} <- lists:zip(lists:seq(0, 1000), binary_to_list(Data))]),
    ?assertEqual(Slow, py_web_ws_frame:mask(Data, Key)).

%%--------------------------------------------------------------------
%% Fragmentation (§5.4)
%%--------------------------------------------------------------------

fragmented_with_interleaved_control_test() ->
    Bytes = <<(cframe(text, false, 0, <<"Hel">>, key()))/binary,
              (cframe(ping, <<"hi">>, key()))/binary,
              (cframe(continuation, false, 0, <<"l">>, key()))/binary,
              (cframe(pong, <<>>, key()))/binary,
              (cframe(continuation, true, 0, <<"o">>, key()))/binary>>,
    ?assertEqual({ok, [{ping, <<"hi">>}, {pong, <<>>}, {text, <<"Hello">>}]},
                 every_split(Bytes, #{})).

continuation_without_start_test() ->
    ?assertEqual({error, 1002, unexpected_continuation},
                 recv(cframe(continuation, <<"x">>, key()))).

new_message_inside_fragmented_test() ->
    Bytes = <<(cframe(text, false, 0, <<"a">>, key()))/binary,
              (cframe(binary, <<"b">>, key()))/binary>>,
    ?assertEqual({error, 1002, unfinished_message}, recv(Bytes)).

empty_fragments_test() ->
    Bytes = <<(cframe(binary, false, 0, <<>>, key()))/binary,
              (cframe(continuation, false, 0, <<>>, key()))/binary,
              (cframe(continuation, true, 0, <<>>, key()))/binary>>,
    ?assertEqual({ok, [{binary, <<>>}]}, every_split(Bytes, #{})).

max_message_size_test() ->
    Opts = #{max_message_size => 5},
    ?assertEqual({ok, [{text, <<"Hello">>}]}, every_split(cframe(text, <<"Hello">>, key()), Opts)),
    ?assertEqual({error, 1009, message_too_big}, recv(cframe(text, <<"Hello!">>, key()), Opts)),
    %% over several fragments, refused at the header of the fragment that passes the limit
    Frags = <<(cframe(text, false, 0, <<"Hel">>, key()))/binary,
              (cframe(continuation, false, 0, <<"lo">>, key()))/binary>>,
    {ok, [], M} = recv(Frags, Opts),
    <<Header:6/binary, _/binary>> = cframe(continuation, true, 0, <<"!">>, key()),
    ?assertEqual({error, 1009, message_too_big}, py_web_ws_message:recv(Header, M)).

%%--------------------------------------------------------------------
%% UTF-8 (§8.1), incremental and fail-fast
%%--------------------------------------------------------------------

utf8_valid_across_fragments_test() ->
    Text = <<"κόσμε €𝄞 ok"/utf8>>,
    %% every split point of the text into two fragments, each fed in every piece size
    [begin
         <<A:N/binary, B/binary>> = Text,
         Bytes = <<(cframe(text, false, 0, A, key()))/binary,
                   (cframe(continuation, true, 0, B, key()))/binary>>,
         ?assertEqual({ok, [{text, Text}]}, every_split(Bytes, #{}))
     end || N <- lists:seq(0, byte_size(Text))].

utf8_invalid_test() ->
    Bad = [<<16#80>>, <<16#C0, 16#80>>, <<16#C1, 16#BF>>, <<16#E0, 16#80, 16#80>>,
           <<16#ED, 16#A0, 16#80>>, <<16#ED, 16#BF, 16#BF>>, <<16#F4, 16#90, 16#80, 16#80>>,
           <<16#F5, 16#80, 16#80, 16#80>>, <<16#FF>>, <<16#F0, 16#80, 16#80, 16#80>>,
           <<"a", 16#CE, "b">>],
    [?assertEqual({error, 1007, invalid_utf8}, recv(cframe(text, B, key()))) || B <- Bad],
    %% binary messages are not checked
    [?assertMatch({ok, [{binary, _}], _}, recv(cframe(binary, B, key()))) || B <- Bad].

utf8_truncated_at_end_test() ->
    ?assertEqual({error, 1007, invalid_utf8}, recv(cframe(text, <<"a", 16#E2, 16#82>>, key()))),
    Bytes = <<(cframe(text, false, 0, <<"a", 16#E2>>, key()))/binary,
              (cframe(continuation, true, 0, <<16#82>>, key()))/binary>>,
    ?assertEqual({error, 1007, invalid_utf8}, recv(Bytes)).

utf8_fail_fast_inside_frame_test() ->
    %% Autobahn 6.4.x: the frame is not complete, the invalid prefix is already refused
    Prefix = <<"κόσμε"/utf8, 16#F4>>,          % F4 alone may start U+10xxxx
    Frame = cframe(text, <<Prefix/binary, 16#90, 16#80, 16#80, "edited">>, key()),
    Upto = 6 + byte_size(Prefix),
    {ok, [], M} = recv(binary:part(Frame, 0, Upto)),
    %% F4 90 is above U+10FFFF: refused with the next byte
    ?assertEqual({error, 1007, invalid_utf8},
                 py_web_ws_message:recv(binary:part(Frame, Upto, 1), M)).

utf8_fail_fast_split_code_point_test() ->
    %% U+D800 encoded: ED A0 80, split after ED: ED alone is a valid prefix, ED A0 is not
    F1 = cframe(text, false, 0, <<"a", 16#ED>>, key()),
    {ok, [], M} = recv(F1),
    <<Head:6/binary, Payload/binary>> = cframe(continuation, false, 0, <<16#A0, 16#80>>, key()),
    ?assertEqual({error, 1007, invalid_utf8},
                 py_web_ws_message:recv(<<Head/binary, (binary:part(Payload, 0, 1))/binary>>, M)).

utf8_module_test() ->
    S0 = py_web_ws_utf8:new(),
    {ok, S1} = py_web_ws_utf8:feed(<<16#F0>>, S0),
    {ok, S2} = py_web_ws_utf8:feed(<<16#9D>>, S1),
    ?assertEqual(error, py_web_ws_utf8:finish(S2)),
    {ok, S3} = py_web_ws_utf8:feed(<<16#84, 16#9E, "x">>, S2),
    ?assertEqual(ok, py_web_ws_utf8:finish(S3)),
    {ok, SF4} = py_web_ws_utf8:feed(<<16#F4>>, S0),
    ?assertEqual(error, py_web_ws_utf8:feed(<<16#90>>, SF4)),
    ?assertMatch({ok, _}, py_web_ws_utf8:feed(<<16#8F>>, SF4)),
    %% every code point boundary value
    [?assertEqual({ok, py_web_ws_utf8:new()}, py_web_ws_utf8:feed(<<C/utf8>>, S0))
     || C <- [0, 16#7F, 16#80, 16#7FF, 16#800, 16#D7FF, 16#E000, 16#FFFD, 16#FFFF,
              16#10000, 16#10FFFF]].

%% Against a reference made from OTP's whole-binary decoder: for 5,000 random byte strings
%% around the edges of Table 3-7 fed in random pieces, feed/2 fails exactly at the first prefix
%% that no bytes can complete into valid UTF-8 (the reference tries the completions that
%% matter: continuation bytes at the edges of every range), and finish/1 accepts exactly the
%% valid strings.
utf8_random_against_reference_test_() ->
    {timeout, 120, fun utf8_random_against_reference/0}.

utf8_random_against_reference() ->
    rand:seed(exsss, {16, 6455, 8}),
    Bytes = [16#00, 16#41, 16#7F, 16#80, 16#8F, 16#90, 16#9F, 16#A0, 16#BF, 16#C0, 16#C1, 16#C2,
             16#DF, 16#E0, 16#E1, 16#EC, 16#ED, 16#EE, 16#EF, 16#F0, 16#F1, 16#F3, 16#F4, 16#F5,
             16#FF],
    Edges = [16#80, 16#8F, 16#90, 16#9F, 16#A0, 16#BF],
    Completions = [<<>>] ++ [<<A>> || A <- Edges] ++ [<<A, B>> || A <- Edges, B <- Edges]
        ++ [<<A, B, C>> || A <- Edges, B <- Edges, C <- Edges],
    Valid = fun(B) -> is_binary(unicode:characters_to_binary(B)) end,
    Prefix = fun(B) ->
                     Valid(B) orelse
                         lists:any(fun(C) -> Valid(<<B/binary, C/binary>>) end, Completions)
             end,
    [begin
         S = list_to_binary([lists:nth(rand:uniform(length(Bytes)), Bytes)
                             || _ <- lists:seq(1, rand:uniform(8))]),
         %% the first length whose prefix cannot be completed, or none
         FirstBad = hd([N || N <- lists:seq(1, byte_size(S)), not Prefix(binary:part(S, 0, N))]
                       ++ [none]),
         Got = feed_pieces(S, 0, py_web_ws_utf8:new()),
         Want = case FirstBad of
                    none -> case Valid(S) of true -> valid; false -> incomplete end;
                    _ -> {error_at, FirstBad}
                end,
         ?assertEqual({S, Want}, {S, Got})
     end || _ <- lists:seq(1, 5000)].

%% Feed S in random pieces of 1 to 3 bytes: `valid', `incomplete' (finish/1 refuses it), or
%% {error_at, N} when a piece is refused, N being the byte of that piece at which feeding it
%% one byte at a time is refused (so that the byte where it fails is checked exactly).
feed_pieces(S, Pos, U) when Pos =:= byte_size(S) ->
    case py_web_ws_utf8:finish(U) of ok -> valid; error -> incomplete end;
feed_pieces(S, Pos, U) ->
    N = min(rand:uniform(3), byte_size(S) - Pos),
    case py_web_ws_utf8:feed(binary:part(S, Pos, N), U) of
        {ok, U1} -> feed_pieces(S, Pos + N, U1);
        error -> {error_at, first_failing_byte(S, Pos, U)}
    end.

first_failing_byte(S, Pos, U) ->
    case py_web_ws_utf8:feed(binary:part(S, Pos, 1), U) of
        {ok, U1} -> first_failing_byte(S, Pos + 1, U1);
        error -> Pos + 1
    end.

%%--------------------------------------------------------------------
%% Close payloads (§5.5.1, §7.4)
%%--------------------------------------------------------------------

close_payload_test() ->
    ?assertEqual({ok, [{close, 1005, <<>>}]}, every_split(cframe(close, <<>>, key()), #{})),
    ?assertEqual({ok, [{close, 1000, <<"bye">>}]},
                 every_split(cframe(close, <<1000:16, "bye">>, key()), #{})),
    ?assertEqual({error, 1002, bad_close_payload}, recv(cframe(close, <<3>>, key()))),
    ?assertEqual({error, 1007, bad_close_reason},
                 recv(cframe(close, <<1000:16, 16#CE, 16#BA, 16#E1, 16#BD>>, key()))),
    ?assertEqual({ok, [{close, 1000, binary:copy(<<"r">>, 123)}]},
                 every_split(cframe(close, <<1000:16, (binary:copy(<<"r">>, 123))/binary>>, key()), #{})).

close_codes_test() ->
    Valid = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
             3000, 3999, 4000, 4999],
    Invalid = [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535],
    [?assertEqual({ok, [{close, C, <<>>}], C}, {ok, element(2, recv(cframe(close, <<C:16>>, key()))), C})
     || C <- Valid],
    [?assertEqual({error, 1002, bad_close_code}, recv(cframe(close, <<C:16>>, key())))
     || C <- Invalid].

close_encoder_test() ->
    ?assertEqual(<<16#88, 2, 1000:16>>, iolist_to_binary(py_web_ws_frame:close(1000, <<>>))),
    ?assertEqual(<<16#88, 0>>, iolist_to_binary(py_web_ws_frame:close_frame())),
    %% a long reason is cut to 123 bytes at a character boundary: the frame stays a control frame
    Long = binary:copy(<<"€"/utf8>>, 50),
    <<16#88, Len, 1001:16, Reason/binary>> = iolist_to_binary(py_web_ws_frame:close(1001, Long)),
    ?assertEqual(Len, 2 + byte_size(Reason)),
    ?assertEqual(123, byte_size(Reason)),
    ?assert(is_binary(unicode:characters_to_binary(Reason))).

encoder_fragments_test() ->
    Data = list_to_binary(lists:seq(0, 255)),
    Frames = iolist_to_binary(py_web_ws_frame:fragments(binary, {true, Data}, 100)),
    ?assertMatch(<<16#42, 100, _:100/binary, 16#00, 100, _:100/binary, 16#80, 56, _:56/binary>>, Frames).
