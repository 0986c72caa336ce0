%% PropEr properties of the strict HTTP/1.1 parser (py_web_h1_request, py_web_h1_field,
%% py_web_h1_chunked), seeded, run from EUnit:
%%
%%   valid_heads      generated valid requests parse to exactly the generated fields, and
%%                    every proper prefix of the head is `more'
%%   invalid_heads    a valid request with one targeted fault (a forbidden byte, a tab or
%%                    doubled separator, a bad version, a bare CR or LF, obs-fold, a bad
%%                    name, duplicate or conflicting framing, a bad Host, a limit) is
%%                    answered with the status the RFC asks for
%%   mutated_heads    valid requests, plus up to two framing fields (Host, Content-Length,
%%                    Transfer-Encoding, Connection, Expect) of random content, with
%%                    1-4 random byte edits (replace, insert, delete,
%%                    duplicate a byte, or cut the request short): never a crash, and the
%%                    parser agrees with an independent regular-expression model of the
%%                    grammar (oracle/2): accepted only when the model accepts, with the
%%                    same fields; rejected when the model rejects
%%   valid_chunked    generated chunked bodies (extensions, trailers) decode to the data,
%%                    whatever the split into reads and the flow-control budget
%%   mutated_chunked  chunked bodies with random byte edits, against the model
%%
%% `make test' runs PY_WEB_FUZZ_N (default 1000) cases per property; `make fuzz' runs
%% 100000 (PY_WEB_FUZZ_N=... to change).  PY_WEB_FUZZ_SEED=A,B,C picks the seed (default
%% 1,2,3).  Each property prints its counts (generated, accepted, rejected by status,
%% incomplete) to the terminal.
-module(py_web_h1_prop_tests).

%% PropEr's macros, defined here rather than taken from proper/include/proper.hrl:
%% Debian ships that header in erlang-proper-dev, the runtime (erlang-proper) is all
%% these need. Same definitions as proper.hrl.
-define(DELAY(X), fun() -> X end).
-define(FORALL(X, RawType, Prop), proper:forall(RawType, fun(X) -> Prop end)).
-define(LET(X, RawType, Gen), proper_types:bind(RawType, fun(X) -> Gen end, false)).
-define(SUCHTHAT(X, RawType, Cond),
        proper_types:add_constraint(RawType, fun(X) -> Cond end, true)).
%% After ours: eunit.hrl defines ?LET only when it is not defined yet.
-include_lib("eunit/include/eunit.hrl").
-import(proper_types, [list/1, non_empty/1, elements/1, oneof/1, frequency/1, choose/2,
                       vector/2, binary/0, bool/0, exactly/1]).

-export([cases/2, socket_case/0, limits/1, count/1, seed/0]).

-define(LIMITS, #{max_request_line => 8192, max_header_size => 32768, max_headers => 100}).
%% Small limits for the mutation properties, so that they reach 414 and 431 too.
-define(SMALL, #{max_request_line => 120, max_header_size => 400, max_headers => 12}).
-define(STATUSES, [400, 414, 417, 431, 501, 505]).

-define(TCHARS, "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ").
-define(SPECIAL, [<<"host">>, <<"content-length">>, <<"transfer-encoding">>,
                  <<"connection">>, <<"expect">>]).

%%====================================================================
%% EUnit entry points
%%====================================================================

properties_test_() ->
    N = count(),
    {timeout, 24 * 3600,
     [{atom_to_list(P), {timeout, 24 * 3600, fun() -> check(P, N) end}}
      || P <- [valid_heads, invalid_heads, mutated_heads, valid_chunked,
               mutated_chunked]]}.

count() -> count("PY_WEB_FUZZ_N").

%% The number of cases in the environment variable Var (default 1000).
-spec count(string()) -> pos_integer().
count(Var) ->
    case os:getenv(Var) of
        false -> 1000;
        S -> list_to_integer(S)
    end.

%% PY_WEB_FUZZ_SEED, default {1, 2, 3}.
-spec seed() -> {integer(), integer(), integer()}.
seed() ->
    case os:getenv("PY_WEB_FUZZ_SEED") of
        false -> {1, 2, 3};
        S -> list_to_tuple([list_to_integer(X) || X <- string:split(S, ",", all)])
    end.

check(Prop, N) ->
    _ = rand:seed(exsplus, seed()),
    erase(stats),
    T0 = erlang:monotonic_time(millisecond),
    Result = proper:quickcheck(prop(Prop), [{numtests, N}, {max_size, 40},
                                            {on_output, fun output/2}]),
    Ms = erlang:monotonic_time(millisecond) - T0,
    Stats = lists:sort(maps:to_list(case get(stats) of undefined -> #{}; M -> M end)),
    io:format(user, "~n~p: ~p cases in ~p ms, ~p~n", [Prop, N, Ms, Stats]),
    ?assertEqual(true, Result).

%% PropEr's output but its dot per case.
output(".", []) -> ok;
output(F, A) -> io:format(user, F, A).

count_case(Key) ->
    S = case get(stats) of undefined -> #{}; M -> M end,
    put(stats, maps:update_with(Key, fun(V) -> V + 1 end, 1, S)).

prop(valid_heads) ->
    ?FORALL(R, request(), valid_head(R));
prop(invalid_heads) ->
    ?FORALL({R, Fault}, ?LET(R, request(), {R, fault(R)}), invalid_head(R, Fault));
prop(mutated_heads) ->
    ?FORALL({R, Edits}, {noisy_request(), edits()}, mutated_head(R, Edits));
prop(valid_chunked) ->
    ?FORALL({Body, Splits, Max}, {chunked_body(), list(choose(1, 60)), choose(1, 50)},
            valid_chunked(Body, Splits, Max));
prop(mutated_chunked) ->
    ?FORALL({Body, Edits}, {chunked_body(), edits()}, mutated_chunked(Body, Edits)).

%%====================================================================
%% Properties
%%====================================================================

valid_head(R) ->
    Bytes = bytes(R),
    Rest = maps:get(rest, R),
    Expected = expected(R),
    Got = py_web_h1_request:parse(Bytes, ?LIMITS),
    count_case(accepted),
    HeadLen = byte_size(Bytes) - byte_size(Rest),
    Prefixes = [K || K <- prefix_points(HeadLen),
                     not is_more(py_web_h1_request:parse(binary:part(Bytes, 0, K), ?LIMITS))],
    case {Got, Prefixes} of
        {{ok, Expected, Rest}, []} -> true;
        _ -> io:format(user, "~nbytes ~p~nexpected ~p~ngot ~p~nprefixes not more ~p~n",
                       [Bytes, Expected, Got, Prefixes]),
             false
    end.

%% Every proper prefix of a short head, and 40 spread over a long one.
prefix_points(Len) when Len =< 120 -> lists:seq(0, Len - 1);
prefix_points(Len) -> lists:usort([K * Len div 40 || K <- lists:seq(0, 39)]).

is_more({more, _}) -> true;
is_more(_) -> false.

invalid_head(R, {Name, Mutate, Status, Limits}) ->
    Bytes = bytes(Mutate(R)),
    Got = py_web_h1_request:parse(Bytes, Limits),
    count_case({Name, Status}),
    case Got of
        {error, Status} -> true;
        _ -> io:format(user, "~nfault ~p~nbytes ~p~nexpected ~p~ngot ~p~n",
                       [Name, Bytes, Status, Got]),
             false
    end.

mutated_head(R, Edits) ->
    Bytes = edit(bytes(R), Edits),
    Got = try py_web_h1_request:parse(Bytes, ?SMALL)
          catch C:E:St -> {crash, C, E, St}
          end,
    Model = oracle(Bytes, ?SMALL),
    count_case(case Got of
                   {ok, _, _} -> accepted;
                   {more, _} -> incomplete;
                   {error, S} -> {rejected, S};
                   _ -> crashed
               end),
    Agree = case {Model, Got} of
                {{accept, Head, Rest}, {ok, Head, Rest}} -> true;
                {{reject, _}, {error, S1}} -> lists:member(S1, ?STATUSES);
                {incomplete, {more, _}} -> true;
                {incomplete, {error, S2}} -> lists:member(S2, ?STATUSES);
                _ -> false
            end,
    Agree orelse io:format(user, "~nbytes ~p~nmodel ~p~ngot ~p~n", [Bytes, Model, Got]),
    Agree.

valid_chunked({Wire, Data, Rest}, Splits, Max) ->
    Reads = split(<<Wire/binary, Rest/binary>>, Splits),
    St0 = py_web_h1_chunked:init(?LIMITS),
    {Buf, St, Acc} = lists:foldl(fun(Read, {B, S, A}) -> drain(<<B/binary, Read/binary>>, S, Max, A) end,
                                 {<<>>, St0, []}, Reads),
    count_case(accepted),
    case {St, iolist_to_binary(Acc), Buf} of
        {done, Data, Rest} -> true;
        Other -> io:format(user, "~nwire ~p~nreads ~p max ~p~ngot ~p~n", [Wire, Reads, Max, Other]),
                 false
    end.

%% Decode until the budget stops producing: what a connection does between reads.
drain(Buf, St, Max, Acc) ->
    case py_web_h1_chunked:decode(Buf, St, Max) of
        {ok, Data, Rest, St2} when Data =/= []; St2 =/= St ->
            drain(Rest, St2, Max, [Acc | Data]);
        {ok, [], Rest, St2} ->
            {Rest, St2, Acc}
    end.

split(Bin, []) -> [Bin];
split(Bin, [N | Ns]) when N < byte_size(Bin) ->
    <<A:N/binary, B/binary>> = Bin,
    [A | split(B, Ns)];
split(Bin, _) -> [Bin].

mutated_chunked({Wire, _Data, Rest}, Edits) ->
    Bytes = edit(<<Wire/binary, Rest/binary>>, Edits),
    Got = try py_web_h1_chunked:decode(Bytes, py_web_h1_chunked:init(?SMALL), 1 bsl 40) of
              {ok, D, R, done} -> {done, iolist_to_binary(D), R};
              {ok, _, _, _} -> incomplete;
              Err -> Err
          catch C:E:St -> {crash, C, E, St}
          end,
    Model = chunk_oracle(Bytes, ?SMALL),
    count_case(case Got of
                   {done, _, _} -> accepted;
                   incomplete -> incomplete;
                   {error, S} -> {rejected, S};
                   _ -> crashed
               end),
    Agree = case {Model, Got} of
                {{done, D1, R1}, {done, D1, R1}} -> true;
                {reject, {error, S1}} -> S1 =:= 400 orelse S1 =:= 431;
                {incomplete, incomplete} -> true;
                {incomplete, {error, _}} -> true;
                _ -> false
            end,
    Agree orelse io:format(user, "~nbytes ~p~nmodel ~p~ngot ~p~n", [Bytes, Model, Got]),
    Agree.

%%====================================================================
%% Generators: a valid request as a model, and its bytes
%%====================================================================

%% A request: its pieces (each can be broken by a fault) and what it means.
request() ->
    ?LET({Version, {Method, Target}, Fields, Framing, Conn, Expect, Lead, Rest},
         {elements([{1, 1}, {1, 1}, {1, 1}, {1, 0}]), method_target(), vector_upto(0, 16, field()),
          framing(), connection(), expect(), elements([<<>>, <<>>, <<"\r\n">>, <<"\r\n\r\n">>]),
          binary()},
         ?LET({Host, FrF}, {host_fields(Version), framing_fields(Framing, Version)},
              ?LET(All, shuffle(Fields ++ Host ++ FrF ++ Conn ++ Expect),
                   #{lead => Lead, method => Method, sp1 => <<" ">>, target => Target,
                     sp2 => <<" ">>, version => version_bytes(Version), eol => <<"\r\n">>,
                     v => Version, fields => All, final => <<"\r\n">>, rest => Rest}))).

version_bytes({1, 1}) -> <<"HTTP/1.1">>;
version_bytes({1, 0}) -> <<"HTTP/1.0">>.

shuffle(L) ->
    ?LET(Keys, vector(length(L), choose(0, 1000)),
         [X || {_, X} <- lists:sort(lists:zip(Keys, L))]).

tchar() -> elements(?TCHARS).
short_token() -> ?LET(L, vector_upto(1, 12, tchar()), list_to_binary(L)).

vector_upto(Min, Max, G) -> ?LET(N, choose(Min, Max), vector(N, G)).

%% {Method, {Form, TargetBytes, RawPath, Qs, Authority}}
method_target() ->
    frequency([{12, {method(), origin()}},
               {2, {method(), absolute()}},
               {1, {exactly(<<"CONNECT">>), connect()}},
               {1, {exactly(<<"OPTIONS">>), exactly({asterisk, <<"*">>, <<"*">>, <<>>, <<>>})}}]).

method() ->
    ?SUCHTHAT(M, frequency([{4, elements([<<"GET">>, <<"POST">>, <<"PUT">>, <<"DELETE">>,
                                         <<"HEAD">>, <<"PATCH">>, <<"OPTIONS">>])},
                            {1, short_token()}]),
              M =/= <<"CONNECT">>).

%% A path byte: VCHAR but '?', mostly the usual ones.
path_char() ->
    frequency([{10, elements("abcdefxyz0123456789-._~/%")},
               {1, ?SUCHTHAT(C, choose(33, 126), C =/= $?)}]).
vchar() ->
    frequency([{10, elements("abc123=&+%")}, {1, choose(33, 126)}]).

origin() ->
    ?LET({Path, Query}, {list(path_char()), oneof([none, list(vchar())])},
         begin
             P = list_to_binary([$/ | Path]),
             case Query of
                 none -> {origin, P, P, <<>>, <<>>};
                 Q -> Qb = list_to_binary(Q),
                      {origin, <<P/binary, $?, Qb/binary>>, P, Qb, <<>>}
             end
         end).

absolute() ->
    ?LET({Scheme, Host, Port, Path, Query},
         {elements([<<"http">>, <<"https">>, <<"HTTP">>, <<"h2+x.y-z">>]), host(false),
          port(), list(path_char()), oneof([none, list(vchar())])},
         begin
             Auth = <<Host/binary, Port/binary>>,
             P = case Path of [] -> <<>>; _ -> list_to_binary([$/ | Path]) end,
             {Qs, QPart} = case Query of
                               none -> {<<>>, <<>>};
                               Q -> Qb = list_to_binary(Q), {Qb, <<$?, Qb/binary>>}
                           end,
             Raw = case P of <<>> -> <<"/">>; _ -> P end,
             {absolute, <<Scheme/binary, "://", Auth/binary, P/binary, QPart/binary>>,
              Raw, Qs, Auth}
         end).

connect() ->
    ?LET({Host, Port}, {host(false), choose(0, 65535)},
         begin
             A = <<Host/binary, $:, (integer_to_binary(Port))/binary>>,
             {authority, A, A, <<>>, A}
         end).

%% uri-host: reg-name, IPv4 or IP-literal; empty only where allowed.
host(EmptyOk) ->
    ?SUCHTHAT(H, frequency([{6, reg_name()},
                            {2, ?LET(Ns, vector(4, choose(0, 255)),
                                     iolist_to_binary(lists:join(".", [integer_to_list(N) || N <- Ns])))},
                            {1, elements([<<"[::1]">>, <<"[2001:db8::7]">>, <<"[v1.x]">>,
                                          <<"[::ffff:127.0.0.1]">>])}]),
              EmptyOk orelse H =/= <<>>).

reg_name() ->
    ?LET(Parts, list(frequency([{20, elements("abcxyz019.-")}, {1, elements("_~!$&'()*+,;=")},
                                {1, exactly("%4a")}])),
         iolist_to_binary(Parts)).

port() -> oneof([<<>>, ?LET(P, choose(0, 65535), <<$:, (integer_to_binary(P))/binary>>)]).

%% A field line: #{name, lead, value, trail} plus the canonical value it carries.
field() ->
    ?LET({Name, Value, Lead, Trail}, {field_name(), field_value(), ows(), ows()},
         #{name => Name, colon => <<":">>, lead => Lead, value => Value, trail => Trail,
           eol => <<"\r\n">>}).

field_name() ->
    ?SUCHTHAT(N, frequency([{3, elements([<<"Accept">>, <<"User-Agent">>, <<"X-Forwarded-For">>,
                                          <<"Cookie">>, <<"content-type">>, <<"ACCEPT-language">>,
                                          <<"Sec-Fetch-Mode">>, <<"DNT">>])},
                            {2, short_token()}]),
              not lists:member(lower(N), ?SPECIAL)).

%% A canonical value: no OWS at either end; obs-text, SP and HTAB inside.
field_value() ->
    ?LET(Cs, list(frequency([{20, choose(33, 126)}, {3, exactly($\s)}, {1, exactly($\t)},
                             {1, choose(128, 255)}])),
         trim(list_to_binary(Cs))).

ows() -> frequency([{4, exactly(<<>>)}, {1, ?LET(L, list(elements(" \t")), list_to_binary(L))}]).

plain(Name, Value) ->
    ?LET({Lead, Trail}, {ows(), ows()},
         #{name => Name, colon => <<":">>, lead => Lead, value => Value, trail => Trail,
           eol => <<"\r\n">>}).

host_fields({1, 1}) ->
    ?LET({N, H}, {case_of(<<"host">>), host_header()}, [plain(N, H)]);
host_fields({1, 0}) ->
    oneof([[], ?LET({N, H}, {case_of(<<"host">>), host_header()}, [plain(N, H)])]).

host_header() -> ?LET({H, P}, {host(true), port()}, <<H/binary, P/binary>>).

%% A name in random letter case.
case_of(Name) ->
    ?LET(Ups, vector(byte_size(Name), bool()),
         list_to_binary([case U of true -> string:to_upper(C); false -> C end
                         || {C, U} <- lists:zip(binary_to_list(Name), Ups)])).

framing() ->
    frequency([{4, exactly(none)},
               {2, ?LET({N, Zeros}, {choose(0, 1000000), choose(0, 2)},
                        {clen, N, iolist_to_binary([lists:duplicate(Zeros, $0),
                                                    integer_to_list(N)])})},
               {2, ?LET(V, elements([<<"chunked">>, <<"Chunked">>, <<"CHUNKED">>, <<", chunked">>,
                                     <<"chunked,">>, <<" , chunked , ">>]),
                        {chunked, V})}]).

framing_fields(none, _) -> [];
framing_fields({clen, _, Digits}, _) ->
    [?LET(N, case_of(<<"content-length">>), plain(N, Digits))];
framing_fields({chunked, _}, {1, 0}) -> [];
framing_fields({chunked, V}, {1, 1}) ->
    [?LET(N, case_of(<<"transfer-encoding">>), plain(N, trim(V)))].

connection() ->
    frequency([{3, exactly([])},
               {1, ?LET({N, V}, {case_of(<<"connection">>),
                                 elements([<<"close">>, <<"keep-alive">>, <<"Keep-Alive">>,
                                           <<"Upgrade">>, <<"keep-alive, Upgrade">>,
                                           <<"TE, close">>, <<"x">>])},
                        [plain(N, V)])}]).

expect() ->
    frequency([{5, exactly([])},
               {1, ?LET({N, V}, {case_of(<<"expect">>), elements([<<"100-continue">>,
                                                                  <<"100-Continue">>])},
                        [plain(N, V)])}]).

%% The bytes of a request model.
bytes(#{lead := Lead, method := M, sp1 := S1, target := T, sp2 := S2, version := V,
        eol := E, fields := Fs, final := F, rest := Rest}) ->
    iolist_to_binary([Lead, M, S1, target_bytes(T), S2, V, E,
                      [[N, C, L, Val, Tr, Eol] || #{name := N, colon := C, lead := L,
                                                    value := Val, trail := Tr,
                                                    eol := Eol} <- Fs],
                      F, Rest]).

target_bytes({_Form, Bytes, _Path, _Qs, _Auth}) -> Bytes;
target_bytes(Bytes) when is_binary(Bytes) -> Bytes.

%% What the parser must return for a valid model: computed from the model, not the bytes.
expected(#{method := M, target := {Form, _, Path, Qs, Auth}, v := V, fields := Fs}) ->
    Headers = [{lower(N), Val} || #{name := N, value := Val} <- Fs],
    Get = fun(Name) -> [Val || {N, Val} <- Headers, N =:= Name] end,
    Clen = case Get(<<"content-length">>) of
               [D] -> binary_to_integer(D);
               [] -> undefined
           end,
    ConnTokens = lists:append([tokens(C) || C <- Get(<<"connection">>)]),
    KeepAlive = not lists:member(<<"close">>, ConnTokens)
        andalso (V =:= {1, 1} orelse lists:member(<<"keep-alive">>, ConnTokens)),
    #{method => M, version => V, target => Form, raw_path => Path, qs => Qs,
      authority => Auth, headers => Headers, clen => Clen,
      chunked => Get(<<"transfer-encoding">>) =/= [],
      keepalive => KeepAlive,
      expect => V =:= {1, 1} andalso Get(<<"expect">>) =/= []}.

%% A request with up to two more Host, Content-Length, Transfer-Encoding, Connection or
%% Expect fields of random content (valid or not): the model judges them.
noisy_request() ->
    ?LET({R, Extra}, {request(), frequency([{3, exactly([])},
                                            {1, vector_upto(1, 2, special_noise())}])},
         R#{fields := maps:get(fields, R) ++ Extra}).

special_noise() ->
    ?LET({Name, Value}, {?LET(N, elements(?SPECIAL), case_of(N)),
                         oneof([field_value(), coding_list(),
                                ?LET(D, choose(0, 99), integer_to_binary(D))])},
         field_of(Name, Value)).

coding_list() ->
    ?LET(Parts, vector_upto(1, 4, oneof([elements([<<"chunked">>, <<"gzip">>, <<"identity">>,
                                                   <<"Chunked">>, <<"chunked;a=b">>,
                                                   <<"x ;q=1">>, <<"x;">>, <<" ">>, <<>>,
                                                   <<"100-continue">>, <<"close">>]),
                                         short_token()])),
         iolist_to_binary(lists:join(<<", ">>, Parts))).

%% The requests of the socket-level fuzzer (py_web_h1_socket_tests):
%% `{Kind, Bytes, Limits}', Limits those the server must have. Valid
%% requests, requests with one targeted fault, mutated requests, and a
%% chunked POST whose body is valid or mutated; each with what the
%% generators put after the head (a body, a pipelined request, noise).
socket_case() ->
    Chunked = <<"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n">>,
    frequency([{2, ?LET(R, request(), {valid, bytes(R), ?LIMITS})},
               {3, ?LET({R, {Name, Mutate, _Status, Limits}}, ?LET(R, request(), {R, fault(R)}),
                        {{invalid, Name}, bytes(Mutate(R)), Limits})},
               {4, ?LET({R, Edits}, {noisy_request(), edits()},
                        {mutated, edit(bytes(R), Edits), ?SMALL})},
               {1, ?LET({Wire, _Data, Rest}, chunked_body(),
                        {chunked, <<Chunked/binary, Wire/binary, Rest/binary>>, ?LIMITS})},
               {2, ?LET({{Wire, _Data, Rest}, Edits}, {chunked_body(), edits()},
                        {mutated_chunked, <<Chunked/binary, (edit(<<Wire/binary, Rest/binary>>,
                                                                  Edits))/binary>>, ?SMALL})}]).

%% The two sets of limits the generators use.
-spec limits(default | small) -> map().
limits(default) -> ?LIMITS;
limits(small) -> ?SMALL.

%%====================================================================
%% Faults: {Name, fun(Model) -> Model, Status, Limits}
%%====================================================================

fault(R = #{fields := Fs, v := V}) ->
    NF = length(Fs),
    Field = fun(_What) -> ?LET(I, choose(1, max(NF, 1)), fun(M, Fun) -> on_field(M, I, Fun) end) end,
    Faults =
        [{4, ?LET({B, Pos}, {bad_target_byte(), choose(1, 1000)},
                  {target_byte, fun(M) -> M#{target := insert_at(target_bytes(maps:get(target, M)),
                                                                 Pos, B, 1)} end,
                   400, ?LIMITS})},
         {2, ?LET({Which, Sep}, {elements([sp1, sp2]), elements([<<"\t">>, <<"  ">>, <<>>,
                                                                 <<"\v">>, <<" \t">>])},
                  {separator, fun(M) -> M#{Which := Sep} end, 400, ?LIMITS})},
         {2, ?LET(Ver, elements([<<"HTTP/1.1.1">>, <<"HTTP/01.1">>, <<"HTTP/4294967297.1">>,
                                 <<"http/1.1">>, <<"HTTP/1.1 ">>, <<"HTTP/1">>, <<"HTTP/1.1x">>,
                                 <<"HTTP\t/1.1">>, <<"HTTP/1.10">>, <<"HTTP/11">>, <<"HTTP/">>,
                                 <<"HTTP/1.1 Transfer-Encoding: chunked">>, <<>>]),
                  {version, fun(M) -> M#{version := Ver} end, 400, ?LIMITS})},
         {1, ?LET(Ver, elements([<<"HTTP/2.0">>, <<"HTTP/0.9">>, <<"HTTP/1.2">>, <<"HTTP/3.1">>]),
                  {version, fun(M) -> M#{version := Ver} end, 505, ?LIMITS})},
         {2, ?LET(E, bad_eol(), {request_line_eol, fun(M) -> M#{eol := E} end, 400, ?LIMITS})},
         {1, ?LET(E, elements([<<"\rContent-Length: 5\r\n">>, <<"\rTransfer-Encoding: chunked\r\n">>,
                               <<" Transfer-Encoding: chunked\r\n">>,
                               <<"\r\rTransfer-Encoding: chunked\r\n">>]),
                  {smuggled_on_request_line, fun(M) -> M#{eol := E} end, 400, ?LIMITS})}]
        ++ case NF of
               0 -> [];
               _ ->
                   [{3, ?LET({B, Pos, Mut}, {bad_value_byte(), choose(0, 1000), Field(value)},
                             {value_byte, fun(M) -> Mut(M, fun(F = #{value := Val}) ->
                                                                   F#{value := insert_at(Val, Pos, B, 0)}
                                                           end) end, 400, ?LIMITS})},
                    {3, ?LET({B, Pos, Mut}, {bad_name_byte(), choose(0, 1000), Field(name)},
                             {name_byte, fun(M) -> Mut(M, fun(F = #{name := N}) ->
                                                                  F#{name := insert_at(N, Pos, B, 0)}
                                                          end) end, 400, ?LIMITS})},
                    {1, ?LET(Mut, Field(empty_name),
                             {empty_name, fun(M) -> Mut(M, fun(F) -> F#{name := <<>>} end) end,
                              400, ?LIMITS})},
                    {1, ?LET({Ws, Mut}, {elements([<<" ">>, <<"\t">>]), Field(ws)},
                             {ws_before_colon, fun(M) -> Mut(M, fun(F = #{name := N}) ->
                                                                        F#{name := <<N/binary, Ws/binary>>}
                                                                end) end, 400, ?LIMITS})},
                    {1, ?LET({Fold, Mut}, {elements([<<"\r\n folded">>, <<"\r\n\tx">>, <<"\r\n ">>]),
                                           Field(fold)},
                             {obs_fold, fun(M) -> Mut(M, fun(F = #{trail := T}) ->
                                                                 F#{trail := <<T/binary, Fold/binary>>}
                                                         end) end, 400, ?LIMITS})},
                    {1, ?LET(Mut, Field(colon),
                             {no_colon, fun(M) -> Mut(M, fun(F) -> F#{colon := <<>>, value := <<"v">>} end) end,
                              400, ?LIMITS})},
                    {2, ?LET({E, Mut}, {bad_eol(), Field(eol)},
                             {field_eol, fun(M) -> Mut(M, fun(F) -> F#{eol := E} end) end,
                              400, ?LIMITS})}]
           end
        ++ framing_faults(R, V)
        ++ [{1, {too_many_fields, fun(M) -> M end, 431, ?LIMITS#{max_headers => max(NF - 1, 0)}}}
            || NF > 0]
        ++ [{1, {request_line_too_long, fun(M) -> M end, 414,
                 ?LIMITS#{max_request_line => request_line_size(R) - 1}}}]
        ++ [{1, {header_section_too_long, fun(M) -> M end, 431,
                 ?LIMITS#{max_header_size => section_size(R) - 1}}}],
    ?LET(F, frequency(Faults), F).

%% Faults of framing, Host and Expect: the model's own framing fields are dropped first.
framing_faults(R, V) ->
    Bare = fun(M = #{fields := Fs}) ->
                   M#{fields := [F || F = #{name := N} <- Fs,
                                      not lists:member(lower(N), [<<"content-length">>,
                                                                  <<"transfer-encoding">>])]}
           end,
    With = fun(Extra) -> fun(M) -> M1 = #{fields := Fs} = Bare(M),
                                   M1#{fields := Fs ++ [field_of(N, Val) || {N, Val} <- Extra]} end end,
    Drop = fun(Name) -> fun(M = #{fields := Fs}) ->
                                M#{fields := [F || F = #{name := N} <- Fs, lower(N) =/= Name]} end end,
    HostIs = fun(Val) -> fun(M) -> M1 = #{fields := Fs} = (Drop(<<"host">>))(M),
                                   M1#{fields := [field_of(<<"Host">>, Val) | Fs]} end end,
    Expects = lists:member(<<"expect">>, [lower(N) || #{name := N} <- maps:get(fields, R)]),
    [{1, ?LET(Vs, elements([[<<"5">>, <<"5">>], [<<"3">>, <<"4">>], [<<"0">>, <<"00">>]]),
              {duplicate_content_length,
               With([{<<"Content-Length">>, X} || X <- Vs]), 400, ?LIMITS})},
     {1, ?LET(Val, elements([<<"abc">>, <<"-1">>, <<"+1">>, <<"1 2">>, <<"0x10">>, <<"5, 5">>,
                             <<>>, <<"1000000000000000000">>]),
              {bad_content_length, With([{<<"Content-Length">>, Val}]), 400, ?LIMITS})},
     {1, {te_with_content_length, With([{<<"Transfer-Encoding">>, <<"chunked">>},
                                        {<<"Content-Length">>, <<"3">>}]), 400, ?LIMITS}},
     {1, ?LET(Val, elements([<<"identity">>, <<"chunked, identity">>, <<"gzip">>,
                             <<"chunked, chunked">>, <<"chunked;x=1">>, <<",">>, <<"a b, chunked">>]),
              {te_not_chunked_last, With([{<<"Transfer-Encoding">>, Val}]), 400, ?LIMITS})}]
    ++ [{1, ?LET(Val, elements([<<"gzip, chunked">>, <<"deflate, chunked">>, <<"x, chunked">>]),
                 {te_unsupported, With([{<<"Transfer-Encoding">>, Val}]), 501, ?LIMITS})}
        || V =:= {1, 1}]
    ++ [{1, {te_in_http10, With([{<<"Transfer-Encoding">>, <<"chunked">>}]), 400, ?LIMITS}}
        || V =:= {1, 0}]
    ++ [{1, {host_missing, Drop(<<"host">>), 400, ?LIMITS}} || V =:= {1, 1}]
    ++ [{1, {host_twice, fun(M = #{fields := Fs}) ->
                                 M#{fields := [field_of(<<"Host">>, <<"a">>),
                                               field_of(<<"host">>, <<"a">>) | Fs]} end,
             400, ?LIMITS}},
        {1, ?LET(Val, elements([<<"a b">>, <<"a/b">>, <<"u@a">>, <<"a:b">>, <<"[::1">>,
                                <<"a?b">>, <<"%zz">>]),
                 {host_invalid, HostIs(Val), 400, ?LIMITS})}]
    ++ [{1, ?LET(Val, elements([<<"teapot">>, <<"100-continue, x">>, <<"200">>]),
                 {expect_other, fun(M = #{fields := Fs}) ->
                                        M#{fields := Fs ++ [field_of(<<"Expect">>, Val)]} end,
                  417, ?LIMITS})}
        || not Expects].

field_of(Name, Value) ->
    #{name => Name, colon => <<":">>, lead => <<" ">>, value => Value, trail => <<>>,
      eol => <<"\r\n">>}.

%% Apply Fun to the I-th field of the model.
on_field(M = #{fields := Fs}, I, Fun) ->
    {Before, [F | After]} = lists:split(I - 1, Fs),
    M#{fields := Before ++ [Fun(F) | After]}.

request_line_size(#{method := M, sp1 := S1, target := T, sp2 := S2, version := V, eol := E}) ->
    iolist_size([M, S1, target_bytes(T), S2, V, E]).

section_size(R = #{fields := Fs}) ->
    iolist_size([[N, C, L, V, T, E] || #{name := N, colon := C, lead := L, value := V,
                                         trail := T, eol := E} <- Fs])
        + byte_size(maps:get(final, R)).

%% Insert B at position Pos (mod the size, not before From).
insert_at(Bin, Pos, B, From) ->
    Size = byte_size(Bin),
    P = case Size - From of
            N when N =< 0 -> Size;
            N -> From + Pos rem (N + 1)
        end,
    <<Head:P/binary, Tail/binary>> = Bin,
    <<Head/binary, B/binary, Tail/binary>>.

bad_target_byte() ->
    ?LET(C, oneof([choose(0, 32), choose(127, 255), exactly(27), exactly(0)]), <<C>>).
bad_value_byte() ->
    ?LET(C, ?SUCHTHAT(C, oneof([choose(0, 31), exactly(127), exactly(13), exactly(10)]), C =/= 9),
         <<C>>).
bad_name_byte() ->
    ?LET(C, ?SUCHTHAT(C, choose(0, 255), not lists:member(C, ?TCHARS) andalso C =/= $:), <<C>>).
bad_eol() ->
    elements([<<"\r">>, <<"\n">>, <<"\r\r\n">>, <<"\n\r">>, <<"\r \n">>]).

%%====================================================================
%% Random byte edits
%%====================================================================

edits() -> vector_upto(1, 4, {frequency([{3, replace}, {3, insert}, {3, delete}, {3, duplicate},
                                           {1, truncate}]),
                                choose(0, 100000), interesting_byte()}).

interesting_byte() ->
    frequency([{6, elements([$\r, $\n, $\s, $\t, 0, $:, 127, 128, 255, $;, $,, $", $=, $?, $/,
                             $%, $[, $@, $0, $a, $A])},
               {2, choose(0, 255)}]).

edit(Bin, Edits) -> lists:foldl(fun edit1/2, Bin, Edits).

edit1(_, <<>>) -> <<>>;
edit1({Op, Pos0, B}, Bin) ->
    Pos = Pos0 rem byte_size(Bin),
    <<H:Pos/binary, C, T/binary>> = Bin,
    case Op of
        replace -> <<H/binary, B, T/binary>>;
        insert -> <<H/binary, B, C, T/binary>>;
        delete -> <<H/binary, T/binary>>;
        duplicate -> <<H/binary, C, C, T/binary>>;
        truncate -> H
    end.

%%====================================================================
%% Chunked bodies: {Wire, Data, Rest}
%%====================================================================

chunked_body() ->
    ?LET({Chunks, LastExt, Trailers, Rest},
         {vector_upto(0, 6, chunk()), chunk_ext(), vector_upto(0, 3, field()), binary()},
         begin
             Wire = iolist_to_binary(
                      [[[Size, Ext, "\r\n", D, "\r\n"] || {Size, Ext, D} <- Chunks],
                       "0", LastExt, "\r\n",
                       [[N, C, L, V, T, E] || #{name := N, colon := C, lead := L, value := V,
                                                trail := T, eol := E} <- Trailers],
                       "\r\n"]),
             {Wire, iolist_to_binary([D || {_, _, D} <- Chunks]), Rest}
         end).

chunk() ->
    ?LET({Data, Zeros, Upper, Ext}, {non_empty(binary()), choose(0, 2), bool(), chunk_ext()},
         begin
             Hex = integer_to_list(byte_size(Data), 16),
             Size = lists:duplicate(Zeros, $0) ++ case Upper of
                                                      true -> Hex;
                                                      false -> string:to_lower(Hex)
                                                  end,
             {Size, Ext, Data}
         end).

chunk_ext() ->
    ?LET(Exts, vector_upto(0, 3, ?LET({B1, Name, Val}, {bws(), short_token(), oneof([none, ext_value()])},
                         [B1, ";", B1, Name,
                          case Val of none -> []; {B2, V} -> [B2, "=", B2, V] end])),
         iolist_to_binary(Exts)).

bws() -> frequency([{4, exactly(<<>>)}, {1, elements([<<" ">>, <<"\t">>, <<" \t ">>])}]).

ext_value() ->
    {bws(), oneof([short_token(), quoted_string()])}.

quoted_string() ->
    ?LET(Parts, vector_upto(0, 12, frequency([{10, ?SUCHTHAT(C, choose(32, 126), C =/= $" andalso C =/= $\\)},
                                {1, exactly($\t)}, {1, choose(128, 255)},
                                {1, ?LET(C, oneof([choose(32, 126), exactly($\t)]), [$\\, C])}])),
         iolist_to_binary([$", Parts, $"])).

%%====================================================================
%% The model of the grammar: regular expressions, written apart from the parser
%%====================================================================

-define(TOKEN, "[!#$%&'*+.^_`|~0-9A-Za-z-]+").
-define(HOST, "(?:\\[[A-Za-z0-9._~!$&'()*+,;=:-]+\\]|(?:[A-Za-z0-9._~!$&'()*+,;=-]|%[0-9A-Fa-f]{2})*)").
-define(FIELD, "^(" ?TOKEN "):[ \\t]*((?:[\\x21-\\x7e\\x80-\\xff](?:[\\t\\x20-\\x7e\\x80-\\xff]*"
               "[\\x21-\\x7e\\x80-\\xff])?)?)[ \\t]*\\z").

%% {accept, Head, Rest} | {reject, Status} | incomplete
oracle(Bin, #{max_request_line := ML, max_header_size := MH, max_headers := MN}) ->
    B = strip_crlf(Bin),
    case binary:match(B, <<"\r\n">>) of
        nomatch -> incomplete;
        {L, 2} when L + 2 > ML -> {reject, 414};
        {L, 2} ->
            case binary:match(B, <<"\r\n\r\n">>, [{scope, {L, byte_size(B) - L}}]) of
                nomatch ->
                    incomplete;
                {E, 4} ->
                    Section = binary:part(B, L + 2, E - L),
                    Rest = binary:part(B, E + 4, byte_size(B) - E - 4),
                    Lines = field_lines(Section),
                    case request_line(binary:part(B, 0, L)) of
                        {reject, S} -> {reject, S};
                        _ when E + 4 - (L + 2) > MH -> {reject, 431};
                        _ when length(Lines) > MN -> {reject, 431};
                        {ok, Line} -> fields(Line, Lines, Rest)
                    end
            end
    end.

strip_crlf(<<"\r\n", R/binary>>) -> strip_crlf(R);
strip_crlf(B) -> B.

field_lines(<<>>) -> [];
field_lines(Section) ->
    %% Section is "line\r\n..." : the last element of the split is the empty tail
    lists:droplast(binary:split(Section, <<"\r\n">>, [global])).

request_line(Line) ->
    case re:run(Line, "^(" ?TOKEN ") ([\\x21-\\x7e]+) HTTP/([0-9])\\.([0-9])\\z",
                [{capture, all_but_first, binary}]) of
        {match, [M, T, Maj, Min]} ->
            case {target_form(M, T), {Maj, Min}} of
                {error, _} -> {reject, 400};
                {Form, {<<"1">>, <<"1">>}} -> {ok, {M, {1, 1}, Form}};
                {Form, {<<"1">>, <<"0">>}} -> {ok, {M, {1, 0}, Form}};
                _ -> {reject, 505}
            end;
        nomatch ->
            {reject, 400}
    end.

target_form(<<"CONNECT">>, T) ->
    case re:run(T, "^(?=[^:/?])" ?HOST ":[0-9]+\\z") of
        {match, _} -> {authority, T, <<>>, T};
        nomatch -> error
    end;
target_form(_, T = <<"/", _/binary>>) ->
    case binary:split(T, <<"?">>) of
        [P, Q] -> {origin, P, Q, <<>>};
        [P] -> {origin, P, <<>>, <<>>}
    end;
target_form(<<"OPTIONS">>, <<"*">>) ->
    {asterisk, <<"*">>, <<>>, <<>>};
target_form(_, T) ->
    case re:run(T, "^[A-Za-z][A-Za-z0-9+.-]*://((?=[^:/?])" ?HOST "(?::[0-9]*)?)([/?].*)?\\z",
                [{capture, all_but_first, binary}]) of
        {match, [Auth | PQ]} ->
            PathQs = case PQ of [] -> <<>>; [X] -> X end,
            {P, Q} = case binary:split(PathQs, <<"?">>) of
                         [P0, Q0] -> {P0, Q0};
                         [P0] -> {P0, <<>>}
                     end,
            {absolute, case P of <<>> -> <<"/">>; _ -> P end, Q, Auth};
        nomatch ->
            error
    end.

fields({M, V, {Form, Path, Qs, Auth}}, Lines, Rest) ->
    Parsed = [re:run(X, ?FIELD, [{capture, all_but_first, binary}]) || X <- Lines],
    case lists:member(nomatch, Parsed) of
        true ->
            {reject, 400};
        false ->
            Headers = [{lower(N), Val} || {match, [N, Val]} <- Parsed],
            Get = fun(Name) -> [Val || {N, Val} <- Headers, N =:= Name] end,
            case framing(V, Get) of
                {ok, Clen, Chunked} ->
                    Conn = lists:append([tokens(C) || C <- Get(<<"connection">>)]),
                    {accept, #{method => M, version => V, target => Form, raw_path => Path,
                               qs => Qs, authority => Auth, headers => Headers, clen => Clen,
                               chunked => Chunked,
                               keepalive => not lists:member(<<"close">>, Conn) andalso
                                   (V =:= {1, 1} orelse lists:member(<<"keep-alive">>, Conn)),
                               expect => V =:= {1, 1} andalso Get(<<"expect">>) =/= []},
                     Rest};
                {reject, S} ->
                    {reject, S}
            end
    end.

framing(V, Get) ->
    Hosts = Get(<<"host">>),
    CLs = Get(<<"content-length">>),
    TEs = Get(<<"transfer-encoding">>),
    HostOk = [H || H <- Hosts, re:run(H, "^" ?HOST "(?::[0-9]*)?\\z") =/= nomatch] =:= Hosts
        andalso length(Hosts) =< 1 andalso (V =:= {1, 0} orelse Hosts =/= []),
    ClOk = case CLs of
               [] -> true;
               [C] -> re:run(C, "^[0-9]{1,18}\\z") =/= nomatch;
               _ -> false
           end,
    Codings = lists:append([tokens(T) || T <- TEs]),
    ExpectOk = lists:all(fun(E) -> tokens(E) =:= [<<"100-continue">>] end, Get(<<"expect">>)),
    Clen = case CLs of [C1] when ClOk -> binary_to_integer(C1); _ -> undefined end,
    if
        not HostOk; not ClOk -> {reject, 400};
        TEs =/= [], CLs =/= [] -> {reject, 400};
        TEs =/= [], V =:= {1, 0} -> {reject, 400};
        TEs =/= [] ->
            case te(Codings) of
                ok when ExpectOk -> {ok, undefined, true};
                ok -> {reject, 417};
                S -> {reject, S}
            end;
        not ExpectOk -> {reject, 417};
        true -> {ok, Clen, false}
    end.

te([]) -> 400;
te(Codings) ->
    case lists:last(Codings) of
        <<"chunked">> ->
            Names = [case re:run(C, "^(" ?TOKEN ")[ \\t]*(;.*)?\\z",
                                 [{capture, all_but_first, binary}]) of
                         {match, [<<"chunked">>, _]} -> bad;
                         {match, [<<"chunked">>]} -> bad;
                         {match, _} -> fine;
                         nomatch -> bad
                     end || C <- lists:droplast(Codings)],
            case {lists:member(bad, Names), Names} of
                {true, _} -> 400;
                {false, []} -> ok;
                {false, _} -> 501
            end;
        _ -> 400
    end.

tokens(V) ->
    [lower(trim(X)) || X <- binary:split(V, <<",">>, [global]), trim(X) =/= <<>>].

%% OWS trimmed, byte-wise (string:trim wants UTF-8).
trim(B) -> list_to_binary(lists:reverse(ltrim(lists:reverse(ltrim(binary_to_list(B)))))).

ltrim([C | T]) when C =:= $\s; C =:= $\t -> ltrim(T);
ltrim(L) -> L.

lower(B) -> list_to_binary(string:to_lower(binary_to_list(B))).

%% {done, Data, Rest} | reject | incomplete
chunk_oracle(Bin, Limits) -> chunk_oracle(Bin, Limits, []).

chunk_oracle(Bin, Limits, Acc) ->
    Quoted = "\"(?:[\\t \\x21\\x23-\\x5b\\x5d-\\x7e\\x80-\\xff]|\\\\[\\t \\x21-\\x7e\\x80-\\xff])*\"",
    Ext = "(?:[ \\t]*;[ \\t]*" ?TOKEN "(?:[ \\t]*=[ \\t]*(?:" ?TOKEN "|" ++ Quoted ++ "))?)*",
    case binary:match(Bin, <<"\r\n">>) of
        nomatch -> incomplete;
        {L, 2} when L + 2 > 4096 -> reject;
        {L, 2} ->
            case re:run(binary:part(Bin, 0, L), "^([0-9A-Fa-f]+)" ++ Ext ++ "\\z",
                        [{capture, all_but_first, list}]) of
                nomatch ->
                    reject;
                {match, [Hex]} ->
                    case list_to_integer(Hex, 16) of
                        Size when Size >= 1 bsl 60 -> reject;
                        0 -> trailer_oracle(binary:part(Bin, L + 2, byte_size(Bin) - L - 2),
                                            Limits, Acc);
                        Size ->
                            After = binary:part(Bin, L + 2, byte_size(Bin) - L - 2),
                            case After of
                                <<Data:Size/binary, "\r\n", Next/binary>> ->
                                    chunk_oracle(Next, Limits, [Acc | Data]);
                                <<_:Size/binary, Crlf/binary>> when Crlf =:= <<>>; Crlf =:= <<"\r">> ->
                                    incomplete;
                                <<_:Size/binary, _/binary>> ->
                                    reject;
                                _ ->
                                    incomplete
                            end
                    end
            end
    end.

trailer_oracle(<<"\r\n", Rest/binary>>, _Limits, Acc) ->
    {done, iolist_to_binary(Acc), Rest};
trailer_oracle(Bin, #{max_header_size := MH, max_headers := MN}, Acc) ->
    case binary:match(Bin, <<"\r\n\r\n">>) of
        nomatch -> incomplete;
        {E, 4} when E + 4 > MH -> reject;
        {E, 4} ->
            Lines = binary:split(binary:part(Bin, 0, E), <<"\r\n">>, [global]),
            case length(Lines) > MN orelse
                lists:any(fun(X) -> re:run(X, ?FIELD) =:= nomatch end, Lines) of
                true -> reject;
                false -> {done, iolist_to_binary(Acc), binary:part(Bin, E + 4, byte_size(Bin) - E - 4)}
            end
    end.

%%====================================================================
%% A corpus for tools/h1_diff.py: {Kind, Bytes} cases from the generators
%%====================================================================

%% @doc N cases of each kind (valid, invalid, mutated), from seed {1,2,3}.
-spec cases(pos_integer(), {integer(), integer(), integer()}) -> [{atom(), binary()}].
cases(N, {A, B, C}) ->
    %% PropEr drops the random state after each pick: seed each one
    Pick = fun(G, I) -> _ = rand:seed(exsplus, {A, B, C + I}),
                        {ok, V} = proper_gen:pick(G, 30),
                        V
           end,
    [{valid, bytes(Pick(request(), I))} || I <- lists:seq(1, N)]
        ++ [begin
                {R, {Name, Mut, _Status, Limits}} = Pick(?LET(R, request(), {R, fault(R)}), N + I),
                {{invalid, Name, Limits =:= ?LIMITS}, bytes(Mut(R))}
            end || I <- lists:seq(1, N)]
        ++ [begin
                {R, Edits} = Pick({noisy_request(), edits()}, 2 * N + I),
                {mutated, edit(bytes(R), Edits)}
            end || I <- lists:seq(1, N)].
