%% @doc JSON (RFC 8259) for what py_web reads and writes itself (OTP 25 has
%% no json module): `--log-config' files and JSON log lines. Objects decode
%% to maps with binary keys, arrays to lists, strings to binaries (UTF-8),
%% `true'/`false'/`null' to those atoms, numbers to integers or floats.
-module(py_web_json).

-export([decode/1, encode/1]).

%% @doc Decode one JSON value (surrounding whitespace allowed).
-spec decode(binary()) -> {ok, term()} | {error, {json, non_neg_integer()}}.
decode(Bin) ->
    try value(ws(Bin)) of
        {V, Rest} ->
            case ws(Rest) of
                <<>> -> {ok, V};
                R -> {error, {json, byte_size(Bin) - byte_size(R)}}
            end
    catch
        throw:{json, Rest} -> {error, {json, byte_size(Bin) - byte_size(Rest)}}
    end.

value(<<"{", T/binary>>) -> object(ws(T), #{});
value(<<"[", T/binary>>) -> array(ws(T), []);
value(<<"\"", T/binary>>) -> string(T, []);
value(<<"true", T/binary>>) -> {true, T};
value(<<"false", T/binary>>) -> {false, T};
value(<<"null", T/binary>>) -> {null, T};
value(<<C, _/binary>> = B) when C =:= $-; C >= $0, C =< $9 -> number(B);
value(B) -> throw({json, B}).

object(<<"}", T/binary>>, M) when map_size(M) =:= 0 -> {M, T};
object(<<"\"", T/binary>>, M) ->
    {K, R1} = string(T, []),
    case ws(R1) of
        <<":", R2/binary>> ->
            {V, R3} = value(ws(R2)),
            case ws(R3) of
                <<",", R4/binary>> -> object(ws(R4), M#{K => V});
                <<"}", R4/binary>> -> {M#{K => V}, R4};
                R4 -> throw({json, R4})
            end;
        R -> throw({json, R})
    end;
object(B, _) -> throw({json, B}).

array(<<"]", T/binary>>, []) -> {[], T};
array(B, Acc) ->
    {V, R1} = value(B),
    case ws(R1) of
        <<",", R2/binary>> -> array(ws(R2), [V | Acc]);
        <<"]", R2/binary>> -> {lists:reverse([V | Acc]), R2};
        R2 -> throw({json, R2})
    end.

string(<<"\"", T/binary>>, Acc) -> {unicode:characters_to_binary(lists:reverse(Acc)), T};
string(<<"\\", E, T/binary>>, Acc) when E =:= $"; E =:= $\\; E =:= $/ -> string(T, [E | Acc]);
string(<<"\\b", T/binary>>, Acc) -> string(T, [$\b | Acc]);
string(<<"\\f", T/binary>>, Acc) -> string(T, [$\f | Acc]);
string(<<"\\n", T/binary>>, Acc) -> string(T, [$\n | Acc]);
string(<<"\\r", T/binary>>, Acc) -> string(T, [$\r | Acc]);
string(<<"\\t", T/binary>>, Acc) -> string(T, [$\t | Acc]);
string(<<"\\u", H:4/binary, "\\u", L:4/binary, T/binary>> = B, Acc) ->
    case {hex(H, B), hex(L, B)} of
        {Hi, Lo} when Hi >= 16#D800, Hi =< 16#DBFF, Lo >= 16#DC00, Lo =< 16#DFFF ->
            string(T, [16#10000 + ((Hi - 16#D800) bsl 10) + (Lo - 16#DC00) | Acc]);
        {Hi, _} ->
            string(<<"\\u", L/binary, T/binary>>, [code(Hi, B) | Acc])
    end;
string(<<"\\u", H:4/binary, T/binary>> = B, Acc) ->
    string(T, [code(hex(H, B), B) | Acc]);
string(<<C/utf8, T/binary>>, Acc) when C >= 16#20 -> string(T, [C | Acc]);
string(B, _) -> throw({json, B}).

hex(H, B) ->
    try binary_to_integer(H, 16)
    catch error:badarg -> throw({json, B})
    end.

code(C, B) when C >= 16#D800, C =< 16#DFFF -> throw({json, B});
code(C, _) -> C.

number(B) ->
    case re:run(B, "^-?(0|[1-9][0-9]*)(\\.[0-9]+)?([eE][-+]?[0-9]+)?", [{capture, all, binary}]) of
        {match, [Num | Parts]} ->
            Rest = binary:part(B, byte_size(Num), byte_size(B) - byte_size(Num)),
            V = case Parts of
                    [_] -> binary_to_integer(Num);
                    [_, Frac | _] -> to_float(Num, Frac)
                end,
            {V, Rest};
        nomatch ->
            throw({json, B})
    end.

to_float(Num, <<>>) ->
    %% an exponent without a fraction: "1e3"
    [M, E] = re:split(Num, "[eE]"),
    binary_to_float(<<M/binary, ".0e", E/binary>>);
to_float(Num, _) ->
    binary_to_float(Num).

ws(<<C, T/binary>>) when C =:= $\s; C =:= $\t; C =:= $\n; C =:= $\r -> ws(T);
ws(B) -> B.

%% @doc Encode a term: maps (atom, binary or string keys), lists, binaries
%% and strings of text, numbers, atoms (true, false, null as JSON's; others
%% as strings).
-spec encode(term()) -> iodata().
encode(M) when is_map(M) ->
    [${, lists:join($,, [[encode(key(K)), $:, encode(V)] || {K, V} <- lists:sort(maps:to_list(M))]),
     $}];
encode(true) -> <<"true">>;
encode(false) -> <<"false">>;
encode(null) -> <<"null">>;
encode(A) when is_atom(A) -> encode(atom_to_binary(A));
encode(I) when is_integer(I) -> integer_to_binary(I);
encode(F) when is_float(F) -> float_to_binary(F, [short]);
encode(B) when is_binary(B) -> [$", escape(B), $"];
encode(L) when is_list(L) ->
    case io_lib:printable_unicode_list(L) of
        true when L =/= [] -> encode(unicode:characters_to_binary(L));
        _ -> [$[, lists:join($,, [encode(E) || E <- L]), $]]
    end.

key(K) when is_atom(K) -> atom_to_binary(K);
key(K) when is_list(K) -> unicode:characters_to_binary(K);
key(K) -> K.

%% Text as UTF-8; bytes that are not UTF-8 are taken for latin-1.
escape(B) ->
    Chars = case unicode:characters_to_list(B) of
                L when is_list(L) -> L;
                _ -> binary_to_list(B)
            end,
    [esc(C) || C <- Chars].

esc($") -> <<"\\\"">>;
esc($\\) -> <<"\\\\">>;
esc($\n) -> <<"\\n">>;
esc($\r) -> <<"\\r">>;
esc($\t) -> <<"\\t">>;
esc(C) when C < 16#20 -> io_lib:format("\\u~4.16.0b", [C]);
esc(C) -> <<C/utf8>>.
