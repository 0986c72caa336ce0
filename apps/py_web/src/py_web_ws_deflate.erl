%% @doc permessage-deflate (RFC 7692), server side: negotiation of the client's offers and
%% the compression of messages with OTP's zlib (raw deflate).
%%
%% Negotiation (§5, §7.1): the offers are tried in the client's order and the first one this
%% server accepts wins; an offer with an unknown parameter, a parameter twice, a value where
%% none is allowed (or none where one is required), or a window size outside 8..15 is
%% declined and the next one tried. The server answers:
%% <ul>
%% <li>`server_no_context_takeover' when the client asked for it (it then MUST be in the
%%     answer) or the server's configuration wants it;</li>
%% <li>`client_no_context_takeover' when the client offered it (the client said it will not
%%     use context takeover, so the server can reset its inflater) or the configuration wants
%%     it;</li>
%% <li>`server_max_window_bits=N' with N the smaller of the client's limit and the
%%     configuration's, when either is below 15. zlib cannot deflate raw data with a 256-byte
%%     window (`deflateInit2' refuses windowBits -8 since zlib 1.2.9; it used to quietly use 9,
%%     which a client inflating with a 256-byte window could not decode), so an offer that
%%     leaves N = 8 is declined, as the websockets library (uvicorn's default) does: the
%%     client can fall back to its next offer;</li>
%% <li>`client_max_window_bits=N' only when the client offered the parameter (§7.1.2.2): N
%%     is the smaller of its value (15 when it gave none) and the configuration's, left out
%%     when it is 15 and the client gave no value. The server inflates with that window, or
%%     with 512 bytes when it is 256: zlib-based clients (zlib before 1.2.9 did it quietly)
%%     deflate with 512 bytes when 256 is agreed, and a larger window decodes any stream of a
%%     smaller one. The configuration's client_max_window_bits is 9..15 for the same reason
%%     (the websockets client refuses an answer of 8).</li>
%% </ul>
%%
%% Messages (§6, §7.2): the compressed payload is the deflate stream after a sync flush, less
%% its trailing 0x00 0x00 0xff 0xff; on receipt those four bytes are appended back. The
%% contexts are kept between messages, or reset after each one when the answer carried the
%% matching no_context_takeover. Inflating goes in steps of 16 KiB (`zlib:safeInflate/2') and
%% stops as soon as the output passes the caller's limit, so that a small compressed message
%% cannot expand beyond the maximum message size (decompression bomb).
-module(py_web_ws_deflate).

-export([config/1, negotiate/2, new/2,
         compress/2, inflate/4, close/1]).
-export_type([config/0, params/0, state/0]).

-type window_bits() :: 8..15.
%% Server configuration. Defaults: everything allowed (contexts kept, 15-bit windows),
%% compression level `default' and memory level 8, as zlib's (and uvicorn's) defaults.
-type config() :: #{server_no_context_takeover => boolean(),
                    client_no_context_takeover => boolean(),
                    server_max_window_bits => 9..15,
                    client_max_window_bits => 9..15,
                    level => zlib:zlevel(),
                    mem_level => zlib:zmemlevel()}.
%% One extension offered in the Sec-WebSocket-Extensions header (py_web_ws_handshake).
-type offer() :: py_web_ws_handshake:extension().
%% What was agreed.
-type params() :: #{server_no_context_takeover := boolean(),
                    client_no_context_takeover := boolean(),
                    server_max_window_bits := 9..15,
                    client_max_window_bits := window_bits()}.

%% The zlib contexts are opened at their first use: an idle connection holds none (a deflate
%% context with a 15-bit window and memory level 8 takes about 256 KiB, an inflate one 32 KiB).
-record(deflate, {
    params :: params(),
    level :: zlib:zlevel(),
    mem_level :: zlib:zmemlevel(),
    deflater = undefined :: undefined | zlib:zstream(),
    inflater = undefined :: undefined | zlib:zstream()
}).
-opaque state() :: #deflate{}.

-define(TAIL, <<0, 0, 255, 255>>).

%%====================================================================
%% Configuration and negotiation
%%====================================================================

%% @doc Check a configuration map (every key optional).
-spec config(map()) -> {ok, config()} | {error, {bad_option, atom(), term()}}.
config(Map) ->
    Checks = [{server_no_context_takeover, fun is_boolean/1},
              {client_no_context_takeover, fun is_boolean/1},
              {server_max_window_bits, fun(V) -> is_integer(V) andalso V >= 9 andalso V =< 15 end},
              {client_max_window_bits, fun(V) -> is_integer(V) andalso V >= 9 andalso V =< 15 end},
              {level, fun(V) -> lists:member(V, [none, default, best_compression, best_speed])
                                    orelse (is_integer(V) andalso V >= 0 andalso V =< 9) end},
              {mem_level, fun(V) -> is_integer(V) andalso V >= 1 andalso V =< 9 end}],
    Bad = [{K, maps:get(K, Map, undefined)} || K <- maps:keys(Map),
                                                 not lists:keymember(K, 1, Checks)]
        ++ [{K, V} || {K, Check} <- Checks, {ok, V} <- [maps:find(K, Map)], not Check(V)],
    case Bad of
        [] -> {ok, Map};
        [{K, V} | _] -> {error, {bad_option, K, V}}
    end.

%% @doc The first permessage-deflate offer this server accepts, the value of the
%% Sec-WebSocket-Extensions response header for it, and the agreed parameters; `none' when
%% every offer is declined (or none was made).
-spec negotiate([offer()], config()) -> {ok, iodata(), params()} | none.
negotiate([{<<"permessage-deflate">>, Params} | Rest], Config) ->
    case offer(Params, #{}) of
        {ok, Offer} ->
            case agree(Offer, Config) of
                {ok, Agreed} -> {ok, response(Offer, Agreed), Agreed};
                decline -> negotiate(Rest, Config)
            end;
        decline ->
            negotiate(Rest, Config)
    end;
negotiate([_ | Rest], Config) ->
    negotiate(Rest, Config);
negotiate([], _Config) ->
    none.

%% The offer's parameters as a map; decline on anything RFC 7692 §7.1 does not allow.
offer([{Name, Value} | Rest], Acc) ->
    Key = param_key(Name),
    case Key =/= undefined andalso not is_map_key(Key, Acc) andalso param_value(Key, Value) of
        false -> decline;
        {ok, V} -> offer(Rest, Acc#{Key => V})
    end;
offer([], Acc) ->
    {ok, Acc}.

param_key(<<"server_no_context_takeover">>) -> server_no_context_takeover;
param_key(<<"client_no_context_takeover">>) -> client_no_context_takeover;
param_key(<<"server_max_window_bits">>) -> server_max_window_bits;
param_key(<<"client_max_window_bits">>) -> client_max_window_bits;
param_key(_) -> undefined.

param_value(server_no_context_takeover, true) -> {ok, true};
param_value(client_no_context_takeover, true) -> {ok, true};
param_value(client_max_window_bits, true) -> {ok, true};
param_value(server_max_window_bits, V) when is_binary(V) -> window_bits(V);
param_value(client_max_window_bits, V) when is_binary(V) -> window_bits(V);
param_value(_, _) -> false.

%% §7.1.2: 1*DIGIT without leading zeros, 8 to 15.
window_bits(<<D>>) when D >= $8, D =< $9 -> {ok, D - $0};
window_bits(<<"1", D>>) when D >= $0, D =< $5 -> {ok, 10 + D - $0};
window_bits(_) -> false.

agree(Offer, Config) ->
    SBits = min(maps:get(server_max_window_bits, Offer, 15),
                maps:get(server_max_window_bits, Config, 15)),
    CBits = case maps:get(client_max_window_bits, Offer, undefined) of
                undefined -> 15;
                true -> maps:get(client_max_window_bits, Config, 15);
                N -> min(N, maps:get(client_max_window_bits, Config, 15))
            end,
    case SBits of
        8 -> decline;
        _ ->
            {ok, #{server_no_context_takeover =>
                       maps:get(server_no_context_takeover, Offer, false)
                       orelse maps:get(server_no_context_takeover, Config, false),
                   client_no_context_takeover =>
                       maps:get(client_no_context_takeover, Offer, false)
                       orelse maps:get(client_no_context_takeover, Config, false),
                   server_max_window_bits => SBits,
                   client_max_window_bits => CBits}}
    end.

response(Offer, #{server_no_context_takeover := SNCT, client_no_context_takeover := CNCT,
                  server_max_window_bits := SBits, client_max_window_bits := CBits}) ->
    [<<"permessage-deflate">>,
     [<<"; server_no_context_takeover">> || SNCT],
     [<<"; client_no_context_takeover">> || CNCT],
     [[<<"; server_max_window_bits=">>, integer_to_binary(SBits)]
      || SBits < 15 orelse is_map_key(server_max_window_bits, Offer)],
     [[<<"; client_max_window_bits=">>, integer_to_binary(CBits)]
      || is_map_key(client_max_window_bits, Offer),
         CBits < 15 orelse maps:get(client_max_window_bits, Offer) =/= true]].

%%====================================================================
%% Compression
%%====================================================================

%% @doc The compression state of one connection. It has two independent halves: compress/2
%% only opens and uses the deflate context, inflate/4 only the inflate one, so the sending and
%% the receiving side of a connection may each keep their own copy. The zlib contexts belong to
%% the process that first uses them (a zlib stream is bound to its process).
-spec new(params(), config()) -> state().
new(Params, Config) ->
    #deflate{params = Params, level = maps:get(level, Config, default),
             mem_level = maps:get(mem_level, Config, 8)}.

deflater(#deflate{deflater = undefined, params = #{server_max_window_bits := Bits}} = St) ->
    D = zlib:open(),
    ok = zlib:deflateInit(D, St#deflate.level, deflated, -Bits, St#deflate.mem_level, default),
    St#deflate{deflater = D};
deflater(St) ->
    St.

inflater(#deflate{inflater = undefined, params = #{client_max_window_bits := Bits}} = St) ->
    I = zlib:open(),
    %% `reset': a message that ends its deflate stream (BFINAL, RFC 7692 §7.2.3.4) is followed
    %% by a new stream, which the tail appended to the message begins.
    ok = zlib:inflateInit(I, -max(Bits, 9), reset),
    St#deflate{inflater = I};
inflater(St) ->
    St.

%% @doc The compressed payload of one whole message (§7.2.1), and the state to use next. An empty message is not
%% compressed (`{false, <<>>}': sent with RSV1 clear, which §6 allows per message): a sync
%% flush of no input gives no bytes at all.
-spec compress(iodata(), state()) -> {Rsv1 :: boolean(), binary(), state()}.
compress(Data, St0) ->
    case iolist_size(Data) of
        0 ->
            {false, <<>>, St0};
        _ ->
            #deflate{deflater = D, params = #{server_no_context_takeover := Reset}} = St =
                deflater(St0),
            Out = iolist_to_binary(zlib:deflate(D, Data, sync)),
            case Reset of
                true -> ok = zlib:deflateReset(D);
                false -> ok
            end,
            {true, binary:part(Out, 0, byte_size(Out) - 4), St}
    end.

%% @doc Inflate the next piece of a compressed message; `Last' says it ends the message
%% (the 0x00 0x00 0xff 0xff tail is then appended, §7.2.2). `Limit' is how many bytes of
%% output are still allowed: `{error, too_big}' as soon as they are exceeded, having inflated
%% at most 16 KiB more. Corrupt data is `{error, bad_data}'.
-spec inflate(binary(), boolean(), non_neg_integer() | infinity, state()) ->
          {ok, [binary()], non_neg_integer(), state()} | {error, too_big | bad_data}.
inflate(Data, Last, Limit, St0) ->
    #deflate{inflater = I, params = Params} = St = inflater(St0),
    Input = case Last of
                true -> [Data, ?TAIL];
                false -> Data
            end,
    try inflate_steps(I, zlib:safeInflate(I, Input), Limit, 0, []) of
        {ok, Out, Size} ->
            case Last andalso maps:get(client_no_context_takeover, Params) of
                true -> ok = zlib:inflateReset(I);
                false -> ok
            end,
            {ok, Out, Size, St};
        too_big ->
            {error, too_big}
    catch
        error:data_error -> {error, bad_data};
        error:stream_error -> {error, bad_data}
    end.

inflate_steps(I, {Status, Out}, Limit, Size0, Acc) ->
    Size = Size0 + iolist_size(Out),
    Acc1 = [iolist_to_binary(Out) | Acc],
    if
        is_integer(Limit), Size > Limit -> too_big;
        Status =:= finished -> {ok, lists:reverse(Acc1), Size};
        true -> inflate_steps(I, zlib:safeInflate(I, []), Limit, Size, Acc1)
    end;
inflate_steps(_I, {need_dictionary, _, _}, _Limit, _Size, _Acc) ->
    error(data_error).

%% @doc Free the zlib contexts (they are also freed with the process that owns them).
-spec close(state()) -> ok.
close(#deflate{deflater = D, inflater = I}) ->
    _ = [zlib:close(Z) || Z <- [D, I], Z =/= undefined],
    ok.
