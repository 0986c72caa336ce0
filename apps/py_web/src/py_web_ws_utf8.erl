%% @doc Incremental UTF-8 validation of WebSocket text (RFC 6455 §5.6, §8.1).
%%
%% A text message arrives in pieces (TCP segments, frames, inflated chunks); each piece is
%% checked as it arrives, so that an invalid byte sequence is found at its first byte that
%% cannot be the start of a valid sequence, even when the sequence is split between two
%% pieces ("fail fast", Autobahn cases 6.4.x). The state carried between pieces is the
%% incomplete code point at the end of the last piece (at most 3 bytes).
%%
%% Validity is Unicode's (Table 3-7): no overlong forms, no surrogates (U+D800..U+DFFF), nothing
%% above U+10FFFF. The bulk of each piece is checked by `unicode:characters_to_binary/1' (a
%% BIF; the fastest of the ways measured, see bench/ws_core.erl); only the split sequence at a
%% piece's end is checked here, byte by byte.
-module(py_web_ws_utf8).

-export([new/0, feed/2, finish/1]).
-export_type([state/0]).

%% The bytes of an incomplete code point left over from the previous piece.
-opaque state() :: binary().

-spec new() -> state().
new() -> <<>>.

%% @doc Validate the next piece of a text message. `error' as soon as the bytes seen so far
%% cannot be a prefix of valid UTF-8.
-spec feed(binary(), state()) -> {ok, state()} | error.
feed(Data, <<>>) ->
    check(Data);
feed(Data, Pending) ->
    Need = seq_len(binary:first(Pending)) - byte_size(Pending),
    case Data of
        <<More:Need/binary, Rest/binary>> ->
            case unicode:characters_to_binary(<<Pending/binary, More/binary>>) of
                B when is_binary(B) -> check(Rest);
                _ -> error
            end;
        _ ->
            Partial = <<Pending/binary, Data/binary>>,
            case valid_prefix(Partial) of
                true -> {ok, Partial};
                false -> error
            end
    end.

%% @doc The message is complete: valid only if no code point is left unfinished.
-spec finish(state()) -> ok | error.
finish(<<>>) -> ok;
finish(_) -> error.

check(Data) ->
    case unicode:characters_to_binary(Data) of
        B when is_binary(B) -> {ok, <<>>};
        {incomplete, _, Rest} ->
            case valid_prefix(Rest) of
                true -> {ok, binary:copy(Rest)};
                false -> error
            end;
        {error, _, _} -> error
    end.

%% Length of the sequence a lead byte starts (the lead's own validity is checked by
%% valid_prefix/1 before a lead is ever kept).
seq_len(B) when B >= 16#F0 -> 4;
seq_len(B) when B >= 16#E0 -> 3;
seq_len(_) -> 2.

%% A proper prefix (1 to 3 bytes) of some valid sequence (Unicode Table 3-7).
valid_prefix(<<L>>) -> L >= 16#C2 andalso L =< 16#F4;
valid_prefix(<<L, B>>) -> second_ok(L, B);
valid_prefix(<<L, B, C>>) when L >= 16#F0 -> second_ok(L, B) andalso cont(C);
valid_prefix(_) -> false.

second_ok(L, B) when L >= 16#C2, L =< 16#DF -> cont(B);
second_ok(16#E0, B) -> B >= 16#A0 andalso B =< 16#BF;
second_ok(16#ED, B) -> B >= 16#80 andalso B =< 16#9F;
second_ok(L, B) when L >= 16#E1, L =< 16#EF -> cont(B);
second_ok(16#F0, B) -> B >= 16#90 andalso B =< 16#BF;
second_ok(16#F4, B) -> B >= 16#80 andalso B =< 16#8F;
second_ok(L, B) when L >= 16#F1, L =< 16#F3 -> cont(B);
second_ok(_, _) -> false.

cont(B) -> B >= 16#80 andalso B =< 16#BF.
