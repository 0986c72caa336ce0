%% @doc WebSocket messages from client frames (RFC 6455 §5.4, §5.6, §8.1; RFC 7692 §6). Pure.
%%
%% Takes the items of py_web_ws_frame and returns whole messages and control frames:
%% <ul>
%% <li>fragmentation: a continuation without a message in progress, or a new text/binary
%%     frame while one is in progress, is 1002; control frames may come between fragments
%%     and are returned at once (§5.4);</li>
%% <li>size: a message longer than the maximum message size is 1009 (§7.4.1), found from a
%%     frame's header when it is not compressed, while inflating when it is;</li>
%% <li>text is validated as UTF-8 piece by piece as it arrives (py_web_ws_utf8): an invalid
%%     sequence is 1007 (§8.1) before the rest of the frame or message is read;</li>
%% <li>compressed messages (RSV1 on the first frame, RFC 7692 §6) are inflated as their
%%     frames arrive (py_web_ws_deflate); corrupt compressed data is 1002;</li>
%% <li>close payloads are checked by py_web_ws_frame:parse_close/1.</li>
%% </ul>
-module(py_web_ws_message).

-export([new/1, recv/2]).
-export_type([state/0, output/0]).

-type output() :: {text, binary()} | {binary, binary()}
                | {ping, binary()} | {pong, binary()}
                | {close, 1000..4999, binary()}.

-record(msg, {
    parser :: py_web_ws_frame:parser(),
    deflate = none :: none | py_web_ws_deflate:state(),
    max = infinity :: non_neg_integer() | infinity,
    op = none :: none | text | binary,       %% the message in progress
    compressed = false :: boolean(),
    fin = false :: boolean(),                %% FIN of the frame being read
    size = 0 :: non_neg_integer(),           %% bytes of the message so far (inflated)
    acc = [] :: [binary()],                  %% its pieces, last first
    utf8 = py_web_ws_utf8:new() :: py_web_ws_utf8:state()
}).
-opaque state() :: #msg{}.

%% @doc `deflate': the permessage-deflate state when the extension was negotiated;
%% `max_message_size' and `max_frame_size' (default infinity).
-spec new(#{deflate => none | py_web_ws_deflate:state(),
            max_message_size => non_neg_integer() | infinity,
            max_frame_size => non_neg_integer() | infinity}) -> state().
new(Opts) ->
    Deflate = maps:get(deflate, Opts, none),
    #msg{parser = py_web_ws_frame:parser(#{rsv1 => Deflate =/= none,
                                           max_frame_size =>
                                               maps:get(max_frame_size, Opts, infinity)}),
         deflate = Deflate,
         max = maps:get(max_message_size, Opts, infinity)}.

%% @doc Feed bytes; get the messages and control frames they complete, in order. An error
%% carries the close code to fail the connection with; the state must not be used again.
-spec recv(binary(), state()) ->
          {ok, [output()], state()} | {error, 1002 | 1007 | 1009, Why :: atom()}.
recv(Data, #msg{parser = P} = M) ->
    case py_web_ws_frame:parse(Data, P) of
        {ok, Items, P1} -> items(Items, M#msg{parser = P1}, []);
        {error, _, _} = Error -> Error
    end.

items([], M, Out) ->
    {ok, lists:reverse(Out), M};
items([{payload, Bin} | Rest], M, Out) ->
    case piece(Bin, false, M) of
        {ok, M1} -> items(Rest, M1, Out);
        {error, _, _} = Error -> Error
    end;
items([{data, Op, Fin, Rsv1, Len} | Rest], M, Out) ->
    case start(Op, Rsv1, Len, M) of
        {ok, M1} -> items(Rest, M1#msg{fin = Fin}, Out);
        {error, _, _} = Error -> Error
    end;
items([data_end | Rest], #msg{fin = false} = M, Out) ->
    items(Rest, M, Out);
items([data_end | Rest], M, Out) ->
    case finish(M) of
        {ok, Msg, M1} -> items(Rest, M1, [Msg | Out]);
        {error, _, _} = Error -> Error
    end;
items([{control, close, Payload} | Rest], M, Out) ->
    case py_web_ws_frame:parse_close(Payload) of
        {ok, Code, Reason} -> items(Rest, M, [{close, Code, Reason} | Out]);
        {error, _, _} = Error -> Error
    end;
items([{control, Op, Payload} | Rest], M, Out) ->
    items(Rest, M, [{Op, Payload} | Out]).

start(continuation, _Rsv1, _Len, #msg{op = none}) ->
    {error, 1002, unexpected_continuation};
start(continuation, _Rsv1, Len, M) ->
    check_len(Len, M);
start(_Op, _Rsv1, _Len, #msg{op = Op}) when Op =/= none ->
    {error, 1002, unfinished_message};
start(Op, Rsv1, Len, M) ->
    check_len(Len, M#msg{op = Op, compressed = Rsv1, size = 0, acc = [],
                         utf8 = py_web_ws_utf8:new()}).

%% An uncompressed frame that would make the message too big is refused from its header.
check_len(Len, #msg{compressed = false, max = Max, size = Size})
  when is_integer(Max), Size + Len > Max ->
    {error, 1009, message_too_big};
check_len(_Len, M) ->
    {ok, M}.

%% One piece of payload (Last: the end of the message, for the inflater's tail).
piece(Bin, Last, #msg{compressed = true, deflate = D, max = Max, size = Size} = M) ->
    Limit = case Max of
                infinity -> infinity;
                _ -> Max - Size
            end,
    case py_web_ws_deflate:inflate(Bin, Last, Limit, D) of
        {ok, Pieces, N, D1} -> add(Pieces, N, M#msg{deflate = D1});
        {error, too_big} -> {error, 1009, message_too_big};
        {error, bad_data} -> {error, 1002, bad_compressed_data}
    end;
piece(Bin, _Last, M) ->
    add([Bin], byte_size(Bin), M).

add(Pieces, N, #msg{op = text, utf8 = U} = M) ->
    case utf8(Pieces, U) of
        {ok, U1} -> {ok, M#msg{utf8 = U1, size = M#msg.size + N,
                               acc = lists:reverse(Pieces, M#msg.acc)}};
        error -> {error, 1007, invalid_utf8}
    end;
add(Pieces, N, M) ->
    {ok, M#msg{size = M#msg.size + N, acc = lists:reverse(Pieces, M#msg.acc)}}.

utf8([], U) -> {ok, U};
utf8([P | Rest], U) ->
    case py_web_ws_utf8:feed(P, U) of
        {ok, U1} -> utf8(Rest, U1);
        error -> error
    end.

finish(#msg{compressed = true} = M) ->
    case piece(<<>>, true, M) of
        {ok, M1} -> complete(M1);
        {error, _, _} = Error -> Error
    end;
finish(M) ->
    complete(M).

complete(#msg{op = Op, acc = Acc, utf8 = U} = M) ->
    case Op =:= binary orelse py_web_ws_utf8:finish(U) =:= ok of
        true ->
            Data = case Acc of
                       [One] -> One;
                       _ -> iolist_to_binary(lists:reverse(Acc))
                   end,
            {ok, {Op, Data}, M#msg{op = none, compressed = false, size = 0, acc = []}};
        false ->
            {error, 1007, invalid_utf8}
    end.
