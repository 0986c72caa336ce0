%% @doc WebSocket framing, server side (RFC 6455 §5): an incremental parser of client frames
%% and the encoder of server frames. Pure: no process, no socket.
%%
%% The parser takes bytes as they arrive and returns items, in order:
%% <ul>
%% <li>`{control, close | ping | pong, Payload}': a whole control frame (payload unmasked);</li>
%% <li>`{data, text | binary | continuation, Fin, Rsv1, Length}': the header of a data
%%     frame, as soon as it is complete, then</li>
%% <li>`{payload, Bytes}': its unmasked payload, in one or more non-empty pieces as the bytes
%%     arrive (so that text can be validated before the frame is complete), then</li>
%% <li>`data_end'.</li>
%% </ul>
%% Header rules owned here (each violation is `{error, 1002, Why}' unless noted): client
%% frames are masked (§5.1); RSV2 and RSV3 are never set and RSV1 only when an extension
%% negotiated it, never on a control frame or a continuation (§5.2, RFC 7692 §6.1); the
%% opcode is known (§5.2); a control frame has FIN set and at most 125 bytes (§5.5); the
%% length uses the minimal encoding and a 64-bit length has its most significant bit clear
%% (§5.2; wsproto, Cowboy and autobahn-python reject a non-minimal length too, the websockets
%% library accepts it); a data frame longer than the maximum frame size is
%% `{error, 1009, frame_too_big}' (§7.4.1), found from its header alone.
%% Message-level rules (fragmentation order, UTF-8, sizes of whole messages) belong to
%% py_web_ws_message.
-module(py_web_ws_frame).

-export([parser/1, parse/2]).
-export([text/1, binary/1, frame/4, fragments/3, ping/1, pong/1, close/2, close_frame/0]).
-export([parse_close/1, valid_close_code/1, mask/2]).
-export_type([parser/0, item/0, opcode/0, close_code/0]).

-type opcode() :: continuation | text | binary | close | ping | pong.
-type data_opcode() :: continuation | text | binary.
-type item() :: {control, close | ping | pong, binary()}
              | {data, data_opcode(), Fin :: boolean(), Rsv1 :: boolean(),
                 Length :: non_neg_integer()}
              | {payload, binary()}
              | data_end.
-type close_code() :: 1000..4999.

-record(parser, {
    rsv1 = false :: boolean(),                     %% RSV1 negotiated (permessage-deflate)
    max_frame = infinity :: non_neg_integer() | infinity,
    buf = <<>> :: binary(),                        %% bytes of a header not yet complete
    left = 0 :: non_neg_integer(),                 %% payload bytes of the current data frame
    in_frame = false :: boolean(),                 %% inside a data frame's payload
    key = <<0:32>> :: <<_:32>>                     %% its mask, rotated to the next byte
}).
-opaque parser() :: #parser{}.

%%====================================================================
%% Parser
%%====================================================================

%% @doc A parser for one connection. `rsv1': whether permessage-deflate was negotiated;
%% `max_frame_size': the largest data frame payload accepted (default infinity).
-spec parser(#{rsv1 => boolean(), max_frame_size => non_neg_integer() | infinity}) ->
          parser().
parser(Opts) ->
    #parser{rsv1 = maps:get(rsv1, Opts, false),
            max_frame = maps:get(max_frame_size, Opts, infinity)}.

%% @doc Feed the bytes that arrived; get the items they complete. After an error the parser
%% must not be used again (the connection is failed).
-spec parse(binary(), parser()) ->
          {ok, [item()], parser()} | {error, 1002 | 1009, Why :: atom()}.
parse(Data, #parser{in_frame = true} = P) ->
    payload(Data, P, []);
parse(Data, #parser{buf = <<>>} = P) ->
    header(Data, P, []);
parse(Data, #parser{buf = Buf} = P) ->
    header(<<Buf/binary, Data/binary>>, P#parser{buf = <<>>}, []).

payload(Data, #parser{left = Left, key = Key} = P, Acc) when byte_size(Data) >= Left ->
    <<Chunk:Left/binary, Rest/binary>> = Data,
    Acc1 = case Left of
               0 -> [data_end | Acc];
               _ -> [data_end, {payload, mask(Chunk, Key)} | Acc]
           end,
    header(Rest, P#parser{left = 0, in_frame = false}, Acc1);
payload(<<>>, P, Acc) ->
    {ok, lists:reverse(Acc), P};
payload(Data, #parser{left = Left, key = Key} = P, Acc) ->
    Size = byte_size(Data),
    {ok, lists:reverse(Acc, [{payload, mask(Data, Key)}]),
     P#parser{left = Left - Size, key = rotate(Key, Size)}}.

header(<<Fin:1, R1:1, R2:1, R3:1, Op:4, Masked:1, Len7:7, _/binary>> = Data, P, Acc) ->
    case check_base(Fin, R1, R2 bor R3, Op, Masked, Len7, P) of
        ok -> header_len(Data, opcode(Op), Fin =:= 1, R1 =:= 1, Len7, P, Acc);
        {error, Why} -> {error, 1002, Why}
    end;
header(Data, P, Acc) ->
    more(Data, P, Acc).

check_base(_, _, RSV23, _, _, _, _) when RSV23 =/= 0 -> {error, reserved_bits};
check_base(_, 1, _, _, _, _, #parser{rsv1 = false}) -> {error, reserved_bits};
check_base(_, _, _, Op, _, _, _) when Op >= 3, Op =< 7; Op >= 11 -> {error, bad_opcode};
check_base(_, _, _, _, 0, _, _) -> {error, unmasked_frame};
check_base(0, _, _, Op, _, _, _) when Op >= 8 -> {error, fragmented_control};
check_base(_, _, _, Op, _, Len7, _) when Op >= 8, Len7 > 125 -> {error, control_too_big};
check_base(_, 1, _, Op, _, _, _) when Op >= 8; Op =:= 0 -> {error, bad_rsv1};
check_base(_, _, _, _, _, _, _) -> ok.

%% The extended length is checked as soon as its bytes are here, before the masking key.
header_len(Data, Op, Fin, R1, Len7, P, Acc) when Len7 < 126 ->
    case Data of
        <<_:16, Key:4/binary, Rest/binary>> -> frame(Data, Op, Fin, R1, Len7, Key, Rest, P, Acc);
        _ -> more(Data, P, Acc)
    end;
header_len(Data, Op, Fin, R1, 126, P, Acc) ->
    case Data of
        <<_:16, Len:16, _/binary>> when Len < 126 -> {error, 1002, non_minimal_length};
        <<_:16, Len:16, Key:4/binary, Rest/binary>> ->
            frame(Data, Op, Fin, R1, Len, Key, Rest, P, Acc);
        _ -> more(Data, P, Acc)
    end;
header_len(Data, Op, Fin, R1, 127, P, Acc) ->
    case Data of
        <<_:16, 1:1, _/bits>> -> {error, 1002, bad_length};
        <<_:16, Len:64, _/binary>> when Len < 65536 -> {error, 1002, non_minimal_length};
        <<_:16, Len:64, Key:4/binary, Rest/binary>> ->
            frame(Data, Op, Fin, R1, Len, Key, Rest, P, Acc);
        _ -> more(Data, P, Acc)
    end.

%% Data: the bytes from the start of this frame's header (kept whole while a control frame's
%% payload is incomplete: at most 2 + 4 + 125 bytes).
frame(Data, Op, _Fin, _R1, Len, Key, Rest, P, Acc)
  when Op =:= close; Op =:= ping; Op =:= pong ->
    case Rest of
        <<Payload:Len/binary, Rest1/binary>> ->
            header(Rest1, P, [{control, Op, mask(Payload, Key)} | Acc]);
        _ ->
            more(Data, P, Acc)
    end;
frame(_Data, _Op, _Fin, _R1, Len, _Key, _Rest, #parser{max_frame = Max}, _Acc)
  when is_integer(Max), Len > Max ->
    {error, 1009, frame_too_big};
frame(_Data, Op, Fin, R1, Len, Key, Rest, P, Acc) ->
    payload(Rest, P#parser{left = Len, in_frame = true, key = Key},
            [{data, Op, Fin, R1, Len} | Acc]).

more(Data, P, Acc) ->
    {ok, lists:reverse(Acc), P#parser{buf = binary:copy(Data)}}.

opcode(0) -> continuation;
opcode(1) -> text;
opcode(2) -> binary;
opcode(8) -> close;
opcode(9) -> ping;
opcode(10) -> pong.

opcode_number(continuation) -> 0;
opcode_number(text) -> 1;
opcode_number(binary) -> 2;
opcode_number(close) -> 8;
opcode_number(ping) -> 9;
opcode_number(pong) -> 10.

%% @doc XOR `Data' with a 4-byte masking key (§5.3): masks and unmasks. `crypto:exor/2'
%% against the key repeated to the data's length: measured faster than a binary comprehension
%% on 32- or 64-bit words from 128 bytes up (bench/ws_core.erl).
-spec mask(binary(), <<_:32>>) -> binary().
mask(<<>>, _Key) -> <<>>;
mask(Data, Key) ->
    Size = byte_size(Data),
    crypto:exor(Data, binary:part(repeat(Key, Size), 0, Size)).

repeat(Key, Size) when byte_size(Key) >= Size -> Key;
repeat(Key, Size) -> repeat(<<Key/binary, Key/binary>>, Size).

rotate(Key, N) ->
    case N band 3 of
        0 -> Key;
        R -> <<Head:R/binary, Tail/binary>> = Key, <<Tail/binary, Head/binary>>
    end.

%%====================================================================
%% Encoder (server frames are never masked, §5.1)
%%====================================================================

-spec text(iodata()) -> iodata().
text(Data) -> frame(text, true, false, Data).

-spec binary(iodata()) -> iodata().
binary(Data) -> frame(binary, true, false, Data).

-spec ping(iodata()) -> iodata().
ping(Data) -> frame(ping, true, false, Data).

-spec pong(iodata()) -> iodata().
pong(Data) -> frame(pong, true, false, Data).

%% @doc One unmasked frame: opcode, FIN, RSV1 (the permessage-deflate bit) and payload.
-spec frame(opcode(), boolean(), boolean(), iodata()) -> iodata().
frame(Op, Fin, Rsv1, Data) ->
    Len = iolist_size(Data),
    B0 = (bit(Fin) bsl 7) bor (bit(Rsv1) bsl 6) bor opcode_number(Op),
    Head = if
               Len < 126 -> <<B0, Len>>;
               Len < 65536 -> <<B0, 126, Len:16>>;
               true -> <<B0, 127, Len:64>>
           end,
    [Head | Data].

%% @doc A data message split into frames of at most `Size' payload bytes (§5.4): the first
%% carries the opcode and RSV1, the others are continuations.
-spec fragments(text | binary, {boolean(), binary()}, pos_integer()) -> iodata().
fragments(Op, {Rsv1, Data}, Size) when byte_size(Data) =< Size ->
    frame(Op, true, Rsv1, Data);
fragments(Op, {Rsv1, Data}, Size) ->
    <<First:Size/binary, Rest/binary>> = Data,
    [frame(Op, false, Rsv1, First) | continuations(Rest, Size)].

continuations(Data, Size) when byte_size(Data) =< Size ->
    [frame(continuation, true, false, Data)];
continuations(Data, Size) ->
    <<Part:Size/binary, Rest/binary>> = Data,
    [frame(continuation, false, false, Part) | continuations(Rest, Size)].

bit(true) -> 1;
bit(false) -> 0.

%% @doc A close frame with a code and a reason (§5.5.1). The reason is cut to the 123 bytes
%% a control frame leaves for it, at a UTF-8 character boundary.
-spec close(close_code(), binary()) -> iodata().
close(Code, Reason) ->
    frame(close, true, false, [<<Code:16>>, truncate_utf8(Reason, 123)]).

%% @doc A close frame without a payload (the peer then sees code 1005).
-spec close_frame() -> iodata().
close_frame() -> frame(close, true, false, <<>>).

truncate_utf8(Bin, Max) when byte_size(Bin) =< Max -> Bin;
truncate_utf8(Bin, Max) -> back_to_boundary(Bin, Max).

back_to_boundary(Bin, N) ->
    case binary:at(Bin, N) of
        B when B band 16#C0 =:= 16#80, N > 0 -> back_to_boundary(Bin, N - 1);
        _ -> binary:part(Bin, 0, N)
    end.

%%====================================================================
%% Close payloads (§5.5.1, §7.4)
%%====================================================================

%% @doc The code and reason of a received close frame: an empty payload is code 1005 (§7.1.5);
%% a 1-byte payload or a code not allowed on the wire is a protocol error (1002), a reason
%% that is not UTF-8 is 1007.
-spec parse_close(binary()) -> {ok, 1000..4999, binary()} | {error, 1002 | 1007, atom()}.
parse_close(<<>>) ->
    {ok, 1005, <<>>};
parse_close(<<Code:16, Reason/binary>>) ->
    case valid_close_code(Code) of
        false -> {error, 1002, bad_close_code};
        true ->
            case unicode:characters_to_binary(Reason) of
                R when is_binary(R) -> {ok, Code, Reason};
                _ -> {error, 1007, bad_close_reason}
            end
    end;
parse_close(_) ->
    {error, 1002, bad_close_payload}.

%% @doc Codes that may appear in a close frame (§7.4.1, §7.4.2 and IANA's registry): 1000-1003,
%% 1007-1014 and 3000-4999. Never 1004 (reserved), 1005, 1006, 1015 (never on the wire),
%% 1016-2999 (unassigned) nor anything below 1000. Same set as the websockets library.
-spec valid_close_code(integer()) -> boolean().
valid_close_code(C) when C >= 1000, C =< 1003 -> true;
valid_close_code(C) when C >= 1007, C =< 1014 -> true;
valid_close_code(C) when C >= 3000, C =< 4999 -> true;
valid_close_code(_) -> false.
