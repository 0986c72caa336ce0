%% @doc Helpers of the WebSocket EUnit suites: client (masked) frames, byte by byte.
-module(py_web_ws_test_lib).

-export([cframe/3, cframe/5, raw/6, key/0, feed_all/2, feed_split/3]).

-define(KEY, <<16#37, 16#fa, 16#21, 16#3d>>).

key() -> ?KEY.

%% A masked client frame with FIN set, no RSV, the minimal length encoding.
cframe(Op, Payload, Key) -> cframe(Op, true, 0, Payload, Key).

cframe(Op, Fin, Rsv, Payload, Key) ->
    Len = byte_size(Payload),
    LenBytes = if Len < 126 -> <<Len:7>>;
                  Len < 65536 -> <<126:7, Len:16>>;
                  true -> <<127:7, Len:64>>
               end,
    raw(Op, Fin, Rsv, LenBytes, Key, Payload).

%% Any header: opcode number, FIN, RSV bits (0..7), the 7-bit length field and its
%% extension as given, a key (masked) or `none' (unmasked).
raw(Op, Fin, Rsv, LenBytes, Key, Payload) ->
    F = case Fin of true -> 1; false -> 0 end,
    case Key of
        none -> <<F:1, Rsv:3, (op(Op)):4, 0:1, LenBytes/bits, Payload/binary>>;
        _ -> <<F:1, Rsv:3, (op(Op)):4, 1:1, LenBytes/bits, Key/binary,
               (py_web_ws_frame:mask(Payload, Key))/binary>>
    end.

op(continuation) -> 0;
op(text) -> 1;
op(binary) -> 2;
op(close) -> 8;
op(ping) -> 9;
op(pong) -> 10;
op(N) when is_integer(N) -> N.

%% Feed all bytes at once to py_web_ws_message; return its answer.
feed_all(Bytes, M) -> py_web_ws_message:recv(Bytes, M).

%% Feed the bytes in pieces of Size bytes, collecting outputs; stop at the first error.
feed_split(Bytes, Size, M) -> feed_split(Bytes, Size, M, []).

feed_split(<<>>, _Size, M, Acc) -> {ok, Acc, M};
feed_split(Bytes, Size, M, Acc) ->
    N = min(Size, byte_size(Bytes)),
    <<Piece:N/binary, Rest/binary>> = Bytes,
    case py_web_ws_message:recv(Piece, M) of
        {ok, Out, M1} -> feed_split(Rest, Size, M1, Acc ++ Out);
        {error, _, _} = E -> E
    end.
