%% @doc The Erlang half of tools/h1_diff.py: writes the property suite's cases
%% (py_web_h1_prop_tests:cases/2) with py_web_h1_request's verdict on each, one case a
%% line, tab-separated, binaries in hex:
%%
%%   kind  bytes  ok     method path qs version name:value,name:value...
%%   kind  bytes  error  status
%%   kind  bytes  more
%%
%% kind is `valid', `mutated' or `invalid:<fault>:<default limits?>'.
-module(h1_diff).

-export([main/1]).

-define(LIMITS, #{max_request_line => 8192, max_header_size => 32768, max_headers => 100}).

-spec main([string()]) -> no_return().
main([Out, N, Seed]) ->
    [A, B, C] = [list_to_integer(X) || X <- string:split(Seed, ",", all)],
    Cases = py_web_h1_prop_tests:cases(list_to_integer(N), {A, B, C}),
    {ok, Fd} = file:open(Out, [write, raw, binary]),
    [ok = file:write(Fd, [kind(K), $\t, hex(Bytes), $\t, verdict(Bytes), $\n])
     || {K, Bytes} <- Cases],
    ok = file:close(Fd),
    halt(0).

kind({invalid, Fault, DefaultLimits}) ->
    io_lib:format("invalid:~s:~s", [Fault, DefaultLimits]);
kind(K) ->
    atom_to_list(K).

verdict(Bytes) ->
    case py_web_h1_request:parse(Bytes, ?LIMITS) of
        {ok, #{method := M, raw_path := P, qs := Q, version := {Ma, Mi}, headers := Hs}, _} ->
            ["ok\t", hex(M), $\t, hex(P), $\t, hex(Q), $\t, io_lib:format("~b.~b", [Ma, Mi]),
             $\t, lists:join($,, [[hex(Name), $:, hex(Value)] || {Name, Value} <- Hs])];
        {more, _} ->
            "more";
        {error, S} ->
            ["error\t", integer_to_list(S)]
    end.

hex(B) -> binary:encode_hex(B).
