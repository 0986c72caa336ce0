%% @doc Micro-benchmark of the WebSocket core (not a test; nothing asserted but that each
%% case decodes what it should): the cost per message of receiving a masked text frame of
%% 1 KiB and 64 KiB (parse, unmask, UTF-8 validation, assembly: py_web_ws_message:recv/2),
%% its parts, the peers each part was chosen over, and permessage-deflate.
%%
%%   make build && mkdir -p bench/work/ebin && erlc -o bench/work/ebin bench/ws_core.erl &&
%%   erl -noshell -pa _build/default/lib/*/ebin -pa bench/work/ebin -eval 'ws_core:main()' -s init stop
%%
%% Each case runs for about 200 ms, 5 times, the runs of all cases interleaved so that the
%% machine's drift spreads over them alike; the median is printed in ns per message.
-module(ws_core).

-export([main/0]).

-define(RUNS, 5).
-define(RUN_NS, 200000000).
-define(KEY, <<16#37, 16#fa, 16#21, 16#3d>>).

main() ->
    Cases = lists:append([cases(Size) || Size <- [1024, 65536]]) ++ deflate_cases(),
    [ok = Check() || {_, _, _, Check} <- Cases],
    Results = lists:foldl(fun(_, Acc) ->
                                  [{Name, Size, measure(Fun)} || {Name, Size, Fun, _} <- Cases]
                                      ++ Acc
                          end, [], lists:seq(1, ?RUNS)),
    io:format("~-44s ~8s ~12s ~10s~n", ["case", "bytes", "ns/message", "MB/s"]),
    [begin
         Runs = lists:sort([Ns || {N, S, Ns} <- Results, N =:= Name, S =:= Size]),
         Median = lists:nth((length(Runs) + 1) div 2, Runs),
         io:format("~-44s ~8b ~12b ~10.1f~n", [Name, Size, round(Median), Size * 1000 / Median])
     end || {Name, Size, _, _} <- Cases],
    ok.

cases(Size) ->
    Ascii = binary:part(binary:copy(<<"{\"user\": \"ann\", \"text\": \"hello world\"} ">>,
                                    Size div 30 + 1), 0, Size),
    Mixed = mixed(Size),
    FrameA = py_web_ws_test_frame(Ascii),
    FrameM = py_web_ws_test_frame(Mixed),
    Masked = py_web_ws_frame:mask(Ascii, ?KEY),
    <<K:32>> = ?KEY,
    M0 = py_web_ws_message:new(#{}),
    Recv = fun(Frame, Text) ->
                   {fun() -> py_web_ws_message:recv(Frame, M0) end,
                    fun() -> {ok, [{text, Text}], _} = py_web_ws_message:recv(Frame, M0), ok end}
           end,
    {RecvA, CheckA} = Recv(FrameA, Ascii),
    {RecvM, CheckM} = Recv(FrameM, Mixed),
    [{"recv text frame (ascii): parse+unmask+utf8", Size, RecvA, CheckA},
     {"recv text frame (2-4 byte chars)", Size, RecvM, CheckM},
     {"unmask: crypto:exor (chosen)", Size, fun() -> py_web_ws_frame:mask(Masked, ?KEY) end,
      fun() -> Ascii = py_web_ws_frame:mask(Masked, ?KEY), ok end},
     {"unmask: comprehension, 32-bit words", Size, fun() -> mask32(Masked, K) end,
      fun() -> Ascii = mask32(Masked, K), ok end},
     {"unmask: comprehension, 64-bit words", Size, fun() -> mask64(Masked, K) end,
      fun() -> Ascii = mask64(Masked, K), ok end},
     {"utf8: py_web_ws_utf8 (BIF, chosen)", Size,
      fun() -> py_web_ws_utf8:feed(Mixed, py_web_ws_utf8:new()) end,
      fun() -> {ok, _} = py_web_ws_utf8:feed(Mixed, py_web_ws_utf8:new()), ok end},
     {"utf8: /utf8 match loop", Size, fun() -> utf8_loop(Mixed) end,
      fun() -> ok = utf8_loop(Mixed) end}].

deflate_cases() ->
    Json = binary:part(binary:copy(<<"{\"user\": \"ann\", \"text\": \"hello world\", \"n\": 12} ">>,
                                   30), 0, 1024),
    {ok, _, Params} = py_web_ws_deflate:negotiate([{<<"permessage-deflate">>, []}], #{}),
    D0 = py_web_ws_deflate:new(Params, #{}),
    %% client_no_context_takeover: the inflater is reset after each message, so that the
    %% same compressed frame can be received again and again by one state
    {ok, _, Reset} = py_web_ws_deflate:negotiate(
                       [{<<"permessage-deflate">>, [{<<"client_no_context_takeover">>, true}]}], #{}),
    {true, C, _} = py_web_ws_deflate:compress(Json, py_web_ws_deflate:new(Params, #{})),
    {true, _, D} = py_web_ws_deflate:compress(Json, D0),
    Frame = py_web_ws_test_frame(C, 4),
    M0 = py_web_ws_message:new(#{deflate => py_web_ws_deflate:new(Reset, #{})}),
    {ok, [{text, Json}], M} = py_web_ws_message:recv(Frame, M0),  % opens the inflater
    NewCtx = fun() ->
                     {true, _, S} = py_web_ws_deflate:compress(<<"x">>, py_web_ws_deflate:new(Params, #{})),
                     py_web_ws_deflate:close(S)
             end,
    [{"deflate: compress 1 KiB JSON (context kept)", 1024,
      fun() -> py_web_ws_deflate:compress(Json, D) end,
      fun() -> {true, _, _} = py_web_ws_deflate:compress(Json, D), ok end},
     {"deflate: recv compressed 1 KiB text frame", 1024,
      fun() -> py_web_ws_message:recv(Frame, M) end,
      fun() -> {ok, [{text, Json}], _} = py_web_ws_message:recv(Frame, M), ok end},
     {"deflate: open deflater, 1 byte, close", 1024, NewCtx, NewCtx}].

py_web_ws_test_frame(Payload) -> py_web_ws_test_frame(Payload, 0).
py_web_ws_test_frame(Payload, Rsv) ->
    Len = byte_size(Payload),
    LenBytes = if Len < 126 -> <<Len:7>>;
                  Len < 65536 -> <<126:7, Len:16>>;
                  true -> <<127:7, Len:64>>
               end,
    <<1:1, Rsv:3, 1:4, 1:1, LenBytes/bits, ?KEY/binary,
      (py_web_ws_frame:mask(Payload, ?KEY))/binary>>.

mixed(Size) ->
    Text = unicode:characters_to_binary(lists:flatten(lists:duplicate(Size, "aé€𝄞"))),
    trim_to_char(binary:part(Text, 0, Size)).

trim_to_char(Bin) ->
    case unicode:characters_to_binary(Bin) of
        B when is_binary(B) -> B;
        {incomplete, Good, _} -> <<Good/binary, (binary:copy(<<"a">>, byte_size(Bin) - byte_size(Good)))/binary>>
    end.

mask32(Data, K) ->
    W = byte_size(Data) div 4 * 4,
    <<Body:W/binary, Tail/binary>> = Data,
    <<(<< <<(X bxor K):32>> || <<X:32>> <= Body >>)/binary, (tail(Tail, <<K:32>>))/binary>>.

mask64(Data, K) ->
    K64 = (K bsl 32) bor K,
    W = byte_size(Data) div 8 * 8,
    <<Body:W/binary, Tail/binary>> = Data,
    <<(<< <<(X bxor K64):64>> || <<X:64>> <= Body >>)/binary, (mask32(Tail, K))/binary>>.

tail(T, Key) -> crypto:exor(T, binary:part(Key, 0, byte_size(T))).

utf8_loop(<<_/utf8, R/binary>>) -> utf8_loop(R);
utf8_loop(<<>>) -> ok;
utf8_loop(_) -> error.

%% ns per call over about RUN_NS of calls.
measure(Fun) ->
    N = calibrate(Fun, 1),
    T0 = erlang:monotonic_time(nanosecond),
    loop(Fun, N),
    (erlang:monotonic_time(nanosecond) - T0) / N.

calibrate(Fun, N) ->
    T0 = erlang:monotonic_time(nanosecond),
    loop(Fun, N),
    case erlang:monotonic_time(nanosecond) - T0 of
        T when T > ?RUN_NS div 20 -> max(1, round(N * ?RUN_NS / T));
        _ -> calibrate(Fun, N * 4)
    end.

loop(_, 0) -> ok;
loop(Fun, N) -> _ = Fun(), loop(Fun, N - 1).
