%% The py:call conversion table (docs/types.md), both ways: table-driven cases for every
%% row and every error shape, and PropEr round trips of random nested terms.
-module(py_convert_SUITE).

-include_lib("common_test/include/ct.hrl").
%% PropEr's macros, defined here rather than taken from proper/include/proper.hrl: Debian
%% ships that header in erlang-proper-dev, while erlang-proper (the runtime) is all these
%% need.  Same definitions as proper.hrl.
-define(DELAY(X), fun() -> X end).
-define(FORALL(X, RawType, Prop), proper:forall(RawType, fun(X) -> Prop end)).
-define(WHENFAIL(Action, Prop), proper:whenfail(?DELAY(Action), ?DELAY(Prop))).
-define(LET(X, RawType, Gen), proper_types:bind(RawType, fun(X) -> Gen end, false)).
-define(SIZED(Size, Gen), proper_types:sized(fun(Size) -> Gen end)).
-define(LAZY(X), proper_types:lazy(?DELAY(X))).
-define(SUCHTHAT(X, RawType, Cond), proper_types:add_constraint(RawType, fun(X) -> Cond end, true)).
-import(proper_types, [integer/0, float/0, binary/0, list/1, boolean/0, oneof/1,
                       frequency/1, elements/1, choose/2, non_neg_integer/0, resize/2]).
-include_lib("stdlib/include/assert.hrl").

-export([all/0, groups/0, init_per_suite/1, end_per_suite/1, end_per_testcase/2]).
-export([erlang_to_python/1, atom_is_str/1, opaque_terms/1,
         python_to_erlang/1, python_sets/1,
         erlang_to_python_errors/1, python_to_erlang_errors/1,
         nesting_limit/1, bignums/1, utf8_atoms/1,
         round_trip_table/1, not_round_trip/1, bytes_vs_str/1,
         prop_round_trip/1, prop_binary_is_str/1, prop_bytes_is_bytes/1,
         prop_bignums/1]).

-define(H, ep_convert_helper).

all() ->
    [{group, tables}, {group, properties}].

groups() ->
    [{tables, [], [erlang_to_python, atom_is_str, opaque_terms, python_to_erlang,
                   python_sets, erlang_to_python_errors, python_to_erlang_errors,
                   nesting_limit, bignums, utf8_atoms, round_trip_table, not_round_trip,
                   bytes_vs_str]},
     {properties, [], [prop_round_trip, prop_binary_is_str, prop_bytes_is_bytes,
                       prop_bignums]}].

init_per_suite(Config) ->
    ok = erlang_python_ct:start(Config),
    Config.

end_per_suite(_Config) ->
    erlang_python_ct:stop().

end_per_testcase(_TC, _Config) ->
    ?assertEqual({messages, []}, process_info(self(), messages)),
    ok.

%% ---- tables --------------------------------------------------------------------------

%% Erlang term -> {Python type, repr()} as seen by a Python function.
erlang_to_python(_Config) ->
    Cases =
        [{0, <<"int">>, <<"0">>},
         {-42, <<"int">>, <<"-42">>},
         {(1 bsl 63) - 1, <<"int">>, <<"9223372036854775807">>},
         {-(1 bsl 63), <<"int">>, <<"-9223372036854775808">>},
         {(1 bsl 64) - 1, <<"int">>, <<"18446744073709551615">>},
         {1 bsl 64, <<"int">>, <<"18446744073709551616">>},
         {-(1 bsl 64), <<"int">>, <<"-18446744073709551616">>},
         {1.5, <<"float">>, <<"1.5">>},
         {-0.0, <<"float">>, <<"-0.0">>},
         {1.0e300, <<"float">>, <<"1e+300">>},
         {true, <<"bool">>, <<"True">>},
         {false, <<"bool">>, <<"False">>},
         {none, <<"NoneType">>, <<"None">>},
         {undefined, <<"NoneType">>, <<"None">>},
         {nil, <<"NoneType">>, <<"None">>},
         {foo, <<"_erlang.Atom">>, <<"Atom('foo')">>},
         {'', <<"_erlang.Atom">>, <<"Atom('')">>},
         {nan, <<"_erlang.Atom">>, <<"Atom('nan')">>},
         {'ünïcödé', <<"_erlang.Atom">>, <<"Atom('ünïcödé')"/utf8>>},
         {'日本', <<"_erlang.Atom">>, <<"Atom('日本')"/utf8>>},
         {<<"héllo"/utf8>>, <<"str">>, <<"'héllo'"/utf8>>},
         {<<>>, <<"str">>, <<"''">>},
         {<<0, 1>>, <<"str">>, <<"'\\x00\\x01'">>},
         {{bytes, <<"ab">>}, <<"bytes">>, <<"b'ab'">>},
         {{bytes, <<>>}, <<"bytes">>, <<"b''">>},
         {{bytes, <<255, 0>>}, <<"bytes">>, <<"b'\\xff\\x00'">>},
         {"abc", <<"list">>, <<"[97, 98, 99]">>},
         {[], <<"list">>, <<"[]">>},
         {[1, [2, <<"x">>]], <<"list">>, <<"[1, [2, 'x']]">>},
         {{}, <<"tuple">>, <<"()">>},
         {{1}, <<"tuple">>, <<"(1,)">>},
         {{1, a, <<"b">>}, <<"tuple">>, <<"(1, Atom('a'), 'b')">>},
         %% Only {bytes, Binary} is the bytes form; other tuples stay tuples.
         {{bytes, 1}, <<"tuple">>, <<"(Atom('bytes'), 1)">>},
         {{bytes, <<"a">>, 1}, <<"tuple">>, <<"(Atom('bytes'), 'a', 1)">>},
         {{<<"bytes">>, <<"a">>}, <<"tuple">>, <<"('bytes', 'a')">>},
         {#{}, <<"dict">>, <<"{}">>},
         {#{a => 1}, <<"dict">>, <<"{Atom('a'): 1}">>},
         {#{<<"k">> => [none]}, <<"dict">>, <<"{'k': [None]}">>},
         {#{{1, 2} => {bytes, <<"v">>}}, <<"dict">>, <<"{(1, 2): b'v'}">>}],
    Got = [{T, py:call(?H, describe, [T])} || {T, _, _} <- Cases],
    ?assertEqual([{T, {ok, {Type, Repr}}} || {T, Type, Repr} <- Cases], Got).

%% An atom is a str subclass: equal to, and hashing like, the str of its text.
atom_is_str(_Config) ->
    ?assertEqual({ok, true}, py:call(?H, equals, [foo, <<"foo">>])),
    ?assertEqual({ok, true}, py:call(?H, hash_equal, [foo, <<"foo">>])),
    ?assertEqual({ok, true}, py:call(?H, equals, ['日本', <<"日本"/utf8>>])),
    ?assertEqual({ok, <<"foo">>}, py:call(?H, as_str, [foo])),
    ?assertEqual({ok, <<"FOO">>}, py:call(builtins, <<"str.upper">>, [foo])),
    %% A Python function that returns the Atom it was given returns the atom.
    ?assertEqual({ok, foo}, py:call(?H, identity, [foo])),
    ?assertEqual({ok, <<"foobar">>}, py:call(operator, add, [foo, <<"bar">>])).

%% pids, references, ports and funs: opaque, hashable, comparable, and back unchanged.
opaque_terms(_Config) ->
    Pid = self(),
    Other = spawn(fun() -> ok end),
    Ref = make_ref(),
    Port = hd(erlang:ports()),
    X = 7,
    Fun = fun() -> X end,
    [?assertEqual({ok, {<<"_erlang.Term">>,
                        iolist_to_binary(io_lib:format("<erlang term ~w>", [T]))}},
                  py:call(?H, describe, [T])) || T <- [Pid, Ref, Port]],
    ?assertMatch({ok, {<<"_erlang.Term">>, <<"<erlang term #Fun<", _/binary>>}},
                 py:call(?H, describe, [Fun])),
    [?assertEqual({ok, T}, py:call(?H, identity, [T])) || T <- [Pid, Ref, Port, Fun]],
    ?assertEqual({ok, true}, py:call(?H, equals, [Pid, Pid])),
    ?assertEqual({ok, false}, py:call(?H, equals, [Pid, Other])),
    ?assertEqual({ok, false}, py:call(?H, equals, [Pid, <<"pid">>])),
    ?assertEqual({ok, true}, py:call(?H, hash_equal, [Ref, Ref])),
    ?assertEqual({ok, lists:sort([Pid, Other])}, py:call(builtins, sorted, [[Other, Pid]])),
    ?assertEqual({ok, lists:sort([Pid, Other])}, py:call(builtins, sorted, [[Pid, Other]])),
    ?assertEqual({ok, #{Pid => 1, Ref => 2, Port => 3, Fun => 4}},
                 py:call(?H, identity, [#{Pid => 1, Ref => 2, Port => 3, Fun => 4}])).

%% Python expression -> Erlang term.
python_to_erlang(_Config) ->
    Cases =
        [{"None", none},
         {"True", true},
         {"False", false},
         {"0", 0},
         {"-7", -7},
         {"2**63 - 1", (1 bsl 63) - 1},
         {"2**63", 1 bsl 63},
         {"-2**63 - 1", -(1 bsl 63) - 1},
         {"2**64", 1 bsl 64},
         {"__import__('enum').IntEnum('E', 'A B').B", 2},
         {"1.5", 1.5},
         {"-0.0", -0.0},
         {"float('nan')", nan},
         {"float('inf')", inf},
         {"float('-inf')", neg_inf},
         {"_erlang.Atom('foo')", foo},
         {"_erlang.Atom('true')", true},
         {"_erlang.Atom('日本')", '日本'},
         {"_erlang.Atom('ünïcödé')", 'ünïcödé'},
         {"'héllo'", <<"héllo"/utf8>>},
         {"''", <<>>},
         {"'\\x00'", <<0>>},
         {"MyStr('sub')", <<"sub">>},
         {"b'\\xff\\x00'", {bytes, <<255, 0>>}},
         {"b''", {bytes, <<>>}},
         {"bytearray(b'ab')", {bytes, <<"ab">>}},
         {"memoryview(b'ab')", {bytes, <<"ab">>}},
         {"memoryview(b'abcd')[1:3]", {bytes, <<"bc">>}},
         {"(1, 'a')", {1, <<"a">>}},
         {"()", {}},
         {"(None,)", {none}},
         {"Point(1, 2)", {1, 2}},
         {"[1, [2, 'x']]", [1, [2, <<"x">>]]},
         {"[]", []},
         {"{5}", [5]},
         {"frozenset()", []},
         {"{}", #{}},
         {"{'a': 1}", #{<<"a">> => 1}},
         {"{_erlang.Atom('k'): None}", #{k => none}},
         {"{(1, 2): b'x', 3: [True]}", #{{1, 2} => {bytes, <<"x">>}, 3 => [true]}},
         {"MyDict(a=1)", #{<<"a">> => 1}},
         {"collections.OrderedDict(a=1)", #{<<"a">> => 1}},
         {"collections.defaultdict(int, a=1)", #{<<"a">> => 1}},
         {"collections.Counter('aab')", #{<<"a">> => 2, <<"b">> => 1}}],
    Got = [{S, ev(S)} || {S, _} <- Cases],
    ?assertEqual([{S, {ok, T}} || {S, T} <- Cases], Got),
    %% Exactness, not only ==.
    ?assertMatch({ok, F} when is_float(F), ev("2.0")),
    ?assertMatch({ok, I} when is_integer(I), ev("2")).

%% Sets and frozensets become lists (in Python's iteration order).
python_sets(_Config) ->
    {ok, L} = ev("{3, 1, 2, 'x'}"),
    ?assertEqual([1, 2, 3, <<"x">>], lists:sort(L)),
    {ok, L2} = ev("frozenset({(1, 2), None})"),
    ?assertEqual([none, {1, 2}], lists:sort(L2)).

erlang_to_python_errors(_Config) ->
    Cases =
        [{<<255>>, {invalid_utf8, <<255>>}},
         {<<"ok", 16#C0, 16#80>>, {invalid_utf8, <<"ok", 16#C0, 16#80>>}},
         {<<16#ED, 16#A0, 16#80>>, {invalid_utf8, <<16#ED, 16#A0, 16#80>>}},
         {[<<"fine">>, <<"caf", 16#E9>>], {invalid_utf8, <<"caf", 16#E9>>}},
         {<<1:3>>, {bitstring, <<1:3>>}},
         {<<"abc", 1:1>>, {bitstring, <<"abc", 1:1>>}},
         {{bytes, <<1:3>>}, {bitstring, <<1:3>>}},
         {[1 | 2], {improper_list, [1 | 2]}},
         {{x, [[a | b]]}, {improper_list, [a | b]}},
         {#{[1] => 2}, {unhashable_key, [1]}},
         {#{#{} => 1}, {unhashable_key, #{}}},
         {#{{[1]} => x}, {unhashable_key, {[1]}}},
         {[#{k => #{[] => 1}}], {unhashable_key, []}},
         %% Distinct Erlang keys that are one key in Python.
         {#{1 => a, 1.0 => b}, {duplicate_key, 1.0}},
         {#{1 => a, true => b}, {duplicate_key, true}},
         {#{abc => 1, <<"abc">> => 2}, {duplicate_key, <<"abc">>}},
         {#{{a} => 1, {<<"a">>} => 2}, {duplicate_key, {<<"a">>}}}],
    Got = [{T, py:call(?H, identity, [T])} || {T, _} <- Cases],
    ?assertEqual([{T, {error, {badarg, Why}}} || {T, Why} <- Cases], Got),
    ?assertEqual({error, {badarg, {invalid_utf8, <<255>>}}},
                 py:call(?H, identity, [], #{kwargs => #{x => <<255>>}})).

python_to_erlang_errors(_Config) ->
    Cases =
        [{"decimal.getcontext()", {unconvertible, <<"Context">>}},
         {"decimal.Decimal(1)", {unconvertible, <<"Decimal">>}},
         {"object()", {unconvertible, <<"object">>}},
         {"complex(1, 2)", {unconvertible, <<"complex">>}},
         {"Point", {unconvertible, <<"type">>}},
         {"len", {unconvertible, <<"builtin_function_or_method">>}},
         {"[1, (2, object())]", {unconvertible, <<"object">>}},
         {"{'a': object()}", {unconvertible, <<"object">>}},
         {"{None: 1, _erlang.Atom('none'): 2}",
          {unconvertible, <<"dict with keys equal in Erlang">>}},
         {"{float('nan'): 1, float('nan'): 2}",
          {unconvertible, <<"dict with keys equal in Erlang">>}},
         {"_erlang.Atom('x' * 256)", {unconvertible, <<"Atom">>}},
         {"_erlang.Atom('日' * 256)", {unconvertible, <<"Atom">>}}],
    Got = [{S, ev(S)} || {S, _} <- Cases],
    ?assertEqual([{S, {error, Why}} || {S, Why} <- Cases], Got),
    {error, {python, Type, Msg, TB}} = ev("'a\\ud800'"),
    ?assertEqual(<<"UnicodeEncodeError">>, Type),
    ?assertEqual(<<"'utf-8' codec can't encode character '\\ud800' in position 1: "
                   "surrogates not allowed">>, Msg),
    ?assertEqual(<<"UnicodeEncodeError: ", Msg/binary>>, lists:last(TB)).

%% 2000 levels each way: an argument may be nested 1999 deep (the argument list is a
%% level), a result 2000 deep.
nesting_limit(_Config) ->
    ?assertEqual({ok, 1999}, py:call(?H, depth, [nest(1999)])),
    ?assertEqual({error, {badarg, too_deep}}, py:call(?H, depth, [nest(2000)])),
    ?assertEqual({error, {badarg, too_deep}}, py:call(?H, depth, [nest(100000)])),
    ?assertEqual({ok, nest(2000)}, py:call(?H, nest, [2000])),
    ?assertEqual({error, too_deep}, py:call(?H, nest, [2001])),
    ?assertEqual({error, too_deep}, py:call(?H, nest, [100000])),
    Tuples = lists:foldl(fun(_, Acc) -> {Acc} end, {}, lists:seq(1, 1999)),
    ?assertEqual({ok, Tuples}, py:call(?H, identity, [Tuples])),
    Maps = lists:foldl(fun(_, Acc) -> #{k => Acc} end, #{}, lists:seq(1, 5000)),
    ?assertEqual({error, {badarg, too_deep}}, py:call(?H, identity, [Maps])).

bignums(_Config) ->
    Big = list_to_integer("1" ++ lists:duplicate(250, $0)) + 123456789,
    ?assertEqual(251, length(integer_to_list(Big))),
    [begin
         ?assertEqual({ok, N}, py:call(?H, identity, [N])),
         ?assertEqual({ok, integer_to_binary(N)}, py:call(?H, int_text, [N])),
         ?assertEqual({ok, N}, py:call(?H, int_from_text, [integer_to_binary(N)]))
     end || N <- [Big, -Big, Big * Big, 1 bsl 1000, -(1 bsl 1000) + 1]],
    ?assertEqual({ok, list_to_integer("1" ++ lists:duplicate(300, $0)) + 7},
                 ev("10**300 + 7")),
    ?assertEqual({ok, -(list_to_integer("1" ++ lists:duplicate(300, $0)) + 7)},
                 ev("-(10**300 + 7)")),
    ?assertEqual({ok, 1 bsl 2000}, py:call(operator, lshift, [1, 2000])),
    ?assertEqual({ok, Big * 3}, py:call(operator, mul, [Big, 3])).

utf8_atoms(_Config) ->
    Long = list_to_atom(lists:duplicate(255, 16#65E5)),       % 255 code points, 765 bytes
    LongLatin1 = list_to_atom(lists:duplicate(255, $é)),
    Astral = list_to_atom([16#1F600, $a, 16#10FFFF]),
    Atoms = ['ünïcödé', '日本', Long, LongLatin1, Astral, 'a b', 'Ünï日'],
    ?assertEqual([{ok, A} || A <- Atoms], [py:call(?H, identity, [A]) || A <- Atoms]),
    ?assertEqual([{ok, atom_to_binary(A, utf8)} || A <- Atoms],
                 [py:call(?H, as_str, [A]) || A <- Atoms]),
    ?assertEqual({ok, 'ünïcödé'}, ev("_erlang.Atom('ünïcödé')")),
    ?assertEqual({ok, Long}, ev("_erlang.Atom('日' * 255)")),
    ?assertEqual({ok, Astral}, ev("_erlang.Atom('\\U0001F600a\\U0010FFFF')")).

%% Terms whose Erlang -> Python -> Erlang trip is the identity.
round_trip_table(_Config) ->
    X = 1,
    Terms =
        [0, 1, -1, 255, 256, (1 bsl 27) - 1, 1 bsl 27, (1 bsl 63) - 1, -(1 bsl 63),
         (1 bsl 64) - 1, 1 bsl 64, -(1 bsl 64), 1 bsl 200,
         0.0, 1.5, -2.25, 1.0e308, 5.0e-324, 2.2250738585072014e-308,
         true, false, none, foo, 'Foo Bar', '', nan, inf, neg_inf, bytes,
         <<>>, <<"abc">>, <<"héllo 日本 \x{1F600}"/utf8>>, <<0, 0>>,
         {bytes, <<>>}, {bytes, <<0, 255, 128>>}, {bytes, <<"text">>},
         {bytes, 1}, {bytes, a, <<"b">>}, {bytes, {bytes, <<"x">>}},
         [], [1, 2, 3], "string", [[[]]], [a, <<"b">>, {c}],
         {}, {1}, {a, b, c}, {{}, [{}]},
         #{}, #{a => 1}, #{1 => 1, 2.5 => 2, <<"k">> => 3, {t, 1} => 4, {bytes, <<"b">>} => 5},
         #{k => #{k => #{k => [#{}]}}},
         self(), make_ref(), hd(erlang:ports()), fun() -> X end, fun lists:map/2],
    ?assertEqual([{ok, T} || T <- Terms], [py:call(?H, identity, [T]) || T <- Terms]).

%% undefined and nil are None, and None comes back as none.
not_round_trip(_Config) ->
    ?assertEqual({ok, none}, py:call(?H, identity, [undefined])),
    ?assertEqual({ok, none}, py:call(?H, identity, [nil])),
    ?assertEqual({ok, [none, {none}, #{none => none}]},
                 py:call(?H, identity, [[undefined, {nil}, #{undefined => nil}]])),
    ?assertEqual({ok, {bytes, <<"x">>}}, py:call(?H, identity, [{bytes, <<"x">>}])),
    ?assertEqual({ok, <<"bytes">>}, py:call(?H, type_of, [{bytes, <<"x">>}])).

%% A binary is always str and {bytes, B} always bytes, whatever the content.
bytes_vs_str(_Config) ->
    ?assertEqual({ok, <<"str">>}, py:call(?H, type_of, [<<"looks like bytes \x00\x01">>])),
    ?assertEqual({ok, <<"bytes">>}, py:call(?H, type_of, [{bytes, <<"plain text">>}])),
    ?assertEqual({error, {badarg, {invalid_utf8, <<137, "PNG">>}}},
                 py:call(?H, type_of, [<<137, "PNG">>])),
    ?assertEqual({ok, <<"bytes">>}, py:call(?H, type_of, [{bytes, <<137, "PNG">>}])),
    ?assertEqual({ok, {bytes, <<"abc">>}}, py:call(builtins, bytes, [[97, 98, 99]])),
    ?assertEqual({ok, <<"abc">>}, py:call(builtins, str, [<<"abc">>])),
    ?assertEqual({ok, <<"abc">>}, py:call(builtins, <<"bytes.decode">>, [{bytes, <<"abc">>}])),
    ?assertEqual({ok, {bytes, <<"abc">>}}, py:call(builtins, <<"str.encode">>, [<<"abc">>])).

%% ---- properties ----------------------------------------------------------------------

prop_round_trip(_Config) ->
    check(?FORALL(T, term_gen(),
                  ?WHENFAIL(ct:log("term: ~tp~nresult: ~tp", [T, py:call(?H, identity, [T])]),
                            py:call(?H, identity, [T]) =:= {ok, T})),
          500).

prop_binary_is_str(_Config) ->
    check(?FORALL(B, oneof([binary(), utf8_bin()]),
                  case unicode:characters_to_binary(B) of
                      B ->
                          py:call(?H, type_of, [B]) =:= {ok, <<"str">>} andalso
                              py:call(?H, identity, [B]) =:= {ok, B};
                      _ ->
                          py:call(?H, identity, [B]) =:= {error, {badarg, {invalid_utf8, B}}}
                  end),
          300).

prop_bytes_is_bytes(_Config) ->
    check(?FORALL(B, oneof([binary(), utf8_bin()]),
                  py:call(?H, type_of, [{bytes, B}]) =:= {ok, <<"bytes">>} andalso
                      py:call(?H, identity, [{bytes, B}]) =:= {ok, {bytes, B}}),
          300).

prop_bignums(_Config) ->
    check(?FORALL(N, big_int(),
                  py:call(?H, identity, [N]) =:= {ok, N} andalso
                      py:call(?H, int_text, [N]) =:= {ok, integer_to_binary(N)} andalso
                      py:call(?H, int_from_text, [integer_to_binary(N)]) =:= {ok, N}),
          300).

check(Prop, NumTests) ->
    Opts = [{numtests, NumTests}, {on_output, fun(F, A) -> ct:log(F, A) end}],
    case proper:quickcheck(Prop, Opts) of
        true -> ok;
        Other ->
            %% ~p, not ~tp: the reason is printed to a latin-1 console, and a Unicode
            %% atom or binary in it would crash CT's error notification.
            ct:fail(lists:flatten(io_lib:format("property failed: ~p~ncounterexample: ~p",
                                                [Other, proper:counterexample()])))
    end.

%% ---- generators: the round-trip set --------------------------------------------------

term_gen() ->
    ?SIZED(S, term_gen(S)).

term_gen(S) when S =< 1 ->
    leaf();
term_gen(S) ->
    Sub = S div 3,
    frequency([{4, leaf()},
               {1, ?LAZY(list(term_gen(Sub)))},
               {1, ?LAZY(?LET(L, list(term_gen(Sub)), list_to_tuple(L)))},
               {1, ?LAZY(map_gen(Sub))}]).

%% Every leaf is hashable in Python, so any leaf can be a map key.
leaf() ->
    frequency([{3, integer()},
               {1, big_int()},
               {1, elements([0, (1 bsl 63) - 1, -(1 bsl 63), 1 bsl 63, (1 bsl 64) - 1,
                             1 bsl 64, -(1 bsl 64) - 1])},
               {2, float()},
               {1, elements([0.0, -0.0, 1.0e308, -1.0e308, 5.0e-324, 0.1])},
               {1, boolean()},
               {1, none},
               {3, atom_gen()},
               {3, utf8_bin()},
               {2, ?LET(B, binary(), {bytes, B})},
               {1, opaque()}]).

big_int() ->
    ?LET({Sign, Bits, Low}, {elements([1, -1]), choose(64, 1200), non_neg_integer()},
         Sign * ((1 bsl Bits) + Low)).

char_gen() ->
    frequency([{6, choose($a, $z)},
               {2, choose(0, 127)},
               {2, choose(128, 255)},
               {2, choose(256, 16#D7FF)},
               {1, choose(16#E000, 16#FFFF)},
               {1, choose(16#10000, 16#10FFFF)}]).

utf8_bin() ->
    ?LET(Cs, list(char_gen()), unicode:characters_to_binary(Cs)).

atom_gen() ->
    ?SUCHTHAT(A,
              oneof([?LET(Cs, resize(12, list(char_gen())), list_to_atom(Cs)),
                     ?LET(C, char_gen(), list_to_atom(lists:duplicate(255, C))),
                     elements(['ünïcödé', '日本', nan, inf, neg_inf, bytes, none, ok,
                               error])]),
              A =/= undefined andalso A =/= nil).

opaque() ->
    X = erlang:unique_integer(),
    elements([self(), whereis(init), make_ref(), hd(erlang:ports()),
              fun() -> X end, fun lists:reverse/1]).

map_gen(S) ->
    ?LET(KVs, list({key_gen(S), term_gen(S)}), distinct_keys(KVs)).

key_gen(S) when S =< 1 ->
    leaf();
key_gen(S) ->
    frequency([{4, leaf()},
               {1, ?LAZY(?LET(L, list(key_gen(S div 3)), list_to_tuple(L)))}]).

%% A map from KVs keeping only keys that stay distinct in Python (where 1 == 1.0 == True
%% and an Atom equals the str of its text); the first of equal keys wins.
distinct_keys(KVs) ->
    {Map, _} = lists:foldl(
                 fun({K, V}, {M, Seen}) ->
                         N = py_key(K),
                         case maps:is_key(N, Seen) orelse maps:is_key(K, M) of
                             true -> {M, Seen};
                             false -> {M#{K => V}, Seen#{N => true}}
                         end
                 end, {#{}, #{}}, KVs),
    Map.

py_key(true) -> {num, 1};
py_key(false) -> {num, 0};
py_key(none) -> none;
py_key(I) when is_integer(I) -> {num, I};
py_key(F) when is_float(F), abs(F) >= 9007199254740992.0 -> {num, trunc(F)};
py_key(F) when is_float(F) ->
    T = trunc(F),
    case float(T) == F of
        true -> {num, T};
        false -> {num, F}
    end;
py_key(A) when is_atom(A) -> {str, atom_to_binary(A, utf8)};
py_key(B) when is_binary(B) -> {str, B};
py_key({bytes, B}) when is_binary(B) -> {bytes, B};
py_key(T) when is_tuple(T) -> {tuple, [py_key(E) || E <- tuple_to_list(T)]};
py_key(Other) -> {term, Other}.

%% ---- helpers -------------------------------------------------------------------------

ev(Src) ->
    py:call(?H, ev, [unicode:characters_to_binary(Src)]).

nest(0) -> [];
nest(N) -> [nest(N - 1)].
