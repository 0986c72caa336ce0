%% @doc In-process benchmark of the bridge (no HTTP): calls/s and latency of the same
%% hello apps through the generic `py:call' path and through `py_wsgi:run/3' and
%% `py_asgi:run/4' (also with a browser's 15 request headers: what they cost a call), at
%% 1 and 50 concurrent Erlang callers, and the ablation of each
%% NIF optimization (switched off alone with `py_nif:set_options/1').
%%
%% Run by bench/run.py (`make bench'):
%%   erl -noshell -pa _build/default/lib/*/ebin -pa bench/work/ebin \
%%       -eval 'inproc:main(["OUT.tsv", "2000", "3"])'
%% Args: output file, milliseconds per measured run, number of runs.  Runs are
%% interleaved (run 1 of every case, then run 2 of every case...) so that the machine's
%% drift spreads over all cases alike.  Each line of the output:
%%   table  case  callers  run  calls  elapsed_us  p50_us  p99_us
%% Then the paired ratios: each fast path and its generic peer measured back to back in
%% short slices (4 x runs pairs, the order alternating), so that each ratio compares two
%% measurements a fraction of a second apart on this noisy machine:
%%   pair  case  callers  pair  generic_calls  generic_us  fast_calls  fast_us
%% Then, when the Python has sub-interpreters (3.12+), the modes: py_wsgi:run/3 and
%% py_asgi:run/4 (hello) and the CPU-bound WSGI app at 50 callers with 2 workers, in gil
%% mode and in subinterpreters mode, the application restarted in each mode before its
%% slice, the order alternating, with the CPU time the worker threads used meanwhile
%% (Linux /proc: above 1 s per second, Python ran on more than one core at once):
%%   mode  case  mode  pair  calls  elapsed_us  p50_us  p99_us  worker_cpu_ms
%% Nothing here is a test: it measures and prints, it asserts only that each case
%% returns the expected response before it is measured.
-module(inproc).

-export([main/1]).

-define(OPTIONS, [interned_keys, cached_constants, direct_response, app_cache,
                  header_cache, zero_copy, native_runner]).

main([Out, MsStr, RunsStr]) ->
    Ms = list_to_integer(MsStr),
    Runs = list_to_integer(RunsStr),
    AppsDir = filename:absname("bench/apps"),
    ok = application:load(erlang_python),
    ok = application:set_env(erlang_python, python_path, [AppsDir]),
    {ok, _} = application:ensure_all_started(erlang_python),
    Defaults = py_nif:get_options(),
    io:format("py_nif:info() = ~p~noptions = ~p~n", [py_nif:info(), Defaults]),
    {ok, Fd} = file:open(Out, [write]),
    io:format(Fd, "# info\t~s~n", [oneline(py_nif:info())]),
    io:format(Fd, "# options\t~s~n", [oneline(Defaults)]),
    io:format(Fd, "# workers\t~p~n", [application:get_env(erlang_python, workers, 4)]),
    Main = [{main, Name, N, Fun, #{}} || {Name, Fun} <- main_cases(), N <- [1, 50]],
    Ablation = [{ablation, Name, 50, Fun, Off} || {Name, Fun, Off} <- ablation_cases()],
    Cases = Main ++ Ablation,
    %% Check every case once, then warm each up.
    [begin set_opts(Off), check(Name, Fun) end || {_, Name, _, Fun, Off} <- Cases],
    [begin set_opts(Off), measure(Fun, N, max(200, Ms div 4)) end
     || {_, _, N, Fun, Off} <- Cases],
    lists:foreach(
      fun(Run) ->
              lists:foreach(
                fun({Table, Name, N, Fun, Off}) ->
                        set_opts(Off),
                        {Calls, Us, P50, P99} = measure(Fun, N, Ms),
                        io:format(Fd, "~s\t~s\t~p\t~p\t~p\t~p\t~p\t~p~n",
                                  [Table, Name, N, Run, Calls, Us, P50, P99]),
                        io:format("~-9s ~-36s ~3b callers run ~p: ~8b calls/s  "
                                  "p50 ~6.1f us  p99 ~7.1f us~n",
                                  [atom_to_list(Table), Name, N, Run, round(Calls * 1.0e6 / Us), P50, P99])
                end, Cases)
      end, lists:seq(1, Runs)),
    set_opts(#{}),
    Slice = max(200, Ms div 4),
    lists:foreach(
      fun({Name, Generic, Fast}) ->
              lists:foreach(
                fun(I) ->
                        {{Cg, Ug}, {Cf, Uf}} =
                            case I rem 2 of
                                1 -> G = slice(Generic, Slice), {G, slice(Fast, Slice)};
                                0 -> F = slice(Fast, Slice), {slice(Generic, Slice), F}
                            end,
                        io:format(Fd, "pair\t~s\t50\t~p\t~p\t~p\t~p\t~p~n", [Name, I, Cg, Ug, Cf, Uf]),
                        io:format("pair      ~-36s pair ~2b: ~.2fx~n", [Name, I, (Cf / Uf) / (Cg / Ug)])
                end, lists:seq(1, 4 * Runs))
      end, pair_cases()),
    modes(Fd, Ms, Runs),
    ok = file:close(Fd),
    halt(0).

%% ---- modes ---------------------------------------------------------------------------

modes(Fd, Ms, Runs) ->
    case maps:get(subinterpreters_supported, py:info()) of
        false ->
            io:format(Fd, "# modes\tskipped: Python ~s has no sub-interpreters with their "
                          "own GIL (3.12+)~n", [maps:get(python_version, py:info())]);
        true ->
            Slice = max(300, Ms div 4),
            lists:foreach(
              fun(I) ->
                      Order = case I rem 2 of
                                  1 -> [gil, subinterpreters];
                                  0 -> [subinterpreters, gil]
                              end,
                      [mode_slice(Fd, Mode, I, Slice) || Mode <- Order]
              end, lists:seq(1, 4 * Runs)),
            restart_in(undefined, undefined)
    end.

mode_slice(Fd, Mode, I, Slice) ->
    restart_in(Mode, 2),
    [begin
         check(Name, Fun),
         _ = measure(Fun, 50, 100), % every interpreter has imported the app
         Cpu0 = worker_cpu_ms(),
         {Calls, Us, P50, P99} = measure(Fun, 50, Slice),
         Cpu = worker_cpu_ms() - Cpu0,
         io:format(Fd, "mode\t~s\t~s\t~p\t~p\t~p\t~p\t~p\t~p~n",
                   [Name, Mode, I, Calls, Us, P50, P99, Cpu]),
         io:format("mode      ~-36s ~-15s pair ~2b: ~8b calls/s, workers ~.2f CPU s/s~n",
                   [Name, Mode, I, round(Calls * 1.0e6 / Us), Cpu * 1000 / Us])
     end || {Name, Fun} <- mode_cases()].

mode_cases() ->
    M = main_cases(),
    CpuEnv = maps:put(<<"wsgi.input">>, <<>>, environ(<<"/">>)),
    [{Name, proplists:get_value(Name, M)} || Name <- ["wsgi py_wsgi:run/3", "asgi py_asgi:run/4"]]
    ++ [{"wsgi cpu_wsgi (CPU-bound)",
         fun() -> {ok, {<<"200 OK">>, _, _}} = py_wsgi:run(bench_apps, cpu_wsgi, CpuEnv) end}].

%% CPU time (ms) used so far by the NIF's worker threads (named py-worker-N).
worker_cpu_ms() ->
    Ticks = [begin
                 {ok, Stat} = file:read_file(Task ++ "/stat"),
                 [_, Rest] = binary:split(Stat, <<") ">>),
                 Fields = binary:split(Rest, <<" ">>, [global]),
                 binary_to_integer(lists:nth(12, Fields)) + binary_to_integer(lists:nth(13, Fields))
             end || Task <- filelib:wildcard("/proc/self/task/*"),
                    is_worker(Task)],
    lists:sum(Ticks) * 10. % clock ticks of 10 ms

is_worker(Task) ->
    case file:read_file(Task ++ "/comm") of
        {ok, <<"py-worker", _/binary>>} -> true;
        _ -> false
    end.

%% The application restarted with `mode' and `workers' set (undefined: the defaults).
restart_in(Mode, Workers) ->
    ok = application:stop(erlang_python),
    [case V of
         undefined -> application:unset_env(erlang_python, K);
         _ -> application:set_env(erlang_python, K, V)
     end || {K, V} <- [{mode, Mode}, {workers, Workers}]],
    {ok, _} = application:ensure_all_started(erlang_python),
    ok.

slice(Fun, Ms) ->
    {Calls, Us, _, _} = measure(Fun, 50, Ms),
    {Calls, Us}.

oneline(Term) ->
    re:replace(io_lib:format("~0p", [Term]), "\\s+", " ", [global, {return, list}]).

set_opts(Off) ->
    All = maps:from_list([{O, true} || O <- ?OPTIONS]),
    ok = py_nif:set_options(maps:merge(All, Off)).

%% ---- the cases ------------------------------------------------------------------------

environ(Path) ->
    #{<<"REQUEST_METHOD">> => <<"GET">>, <<"SCRIPT_NAME">> => <<>>,
      <<"PATH_INFO">> => Path, <<"QUERY_STRING">> => <<>>,
      <<"SERVER_NAME">> => <<"127.0.0.1">>, <<"SERVER_PORT">> => <<"8000">>,
      <<"SERVER_PROTOCOL">> => <<"HTTP/1.1">>, <<"wsgi.url_scheme">> => <<"http">>,
      <<"REMOTE_ADDR">> => <<"127.0.0.1">>,
      <<"HTTP_HOST">> => <<"127.0.0.1:8000">>, <<"HTTP_USER_AGENT">> => <<"bench">>,
      <<"HTTP_ACCEPT">> => <<"*/*">>}.

scope(Path) ->
    #{type => <<"http">>, method => <<"GET">>, path => Path,
      headers => [{<<"host">>, <<"127.0.0.1:8000">>}, {<<"user-agent">>, <<"bench">>},
                  {<<"accept">>, <<"*/*">>}]}.

%% What a browser sends for a page (Chrome 131's navigation request): the main case
%% with these headers measures what a realistic set of request headers costs a call.
browser_headers() ->
    [{<<"host">>, <<"127.0.0.1:8000">>},
     {<<"user-agent">>, <<"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like "
                          "Gecko) Chrome/131.0.0.0 Safari/537.36">>},
     {<<"accept">>, <<"text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,"
                      "image/webp,*/*;q=0.8">>},
     {<<"accept-language">>, <<"en-US,en;q=0.9,fr;q=0.8">>},
     {<<"accept-encoding">>, <<"gzip, deflate, br, zstd">>},
     {<<"connection">>, <<"keep-alive">>},
     {<<"cookie">>, <<"sessionid=8b1f0c9e2d7a4f5b6c3e1a0d9f8e7c6b; "
                      "csrftoken=Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0Fe; _ga=GA1.1.123456789.1700000000">>},
     {<<"upgrade-insecure-requests">>, <<"1">>},
     {<<"sec-fetch-dest">>, <<"document">>},
     {<<"sec-fetch-mode">>, <<"navigate">>},
     {<<"sec-fetch-site">>, <<"same-origin">>},
     {<<"sec-fetch-user">>, <<"?1">>},
     {<<"sec-ch-ua">>, <<"\"Chromium\";v=\"131\", \"Not_A Brand\";v=\"24\"">>},
     {<<"sec-ch-ua-platform">>, <<"\"Linux\"">>},
     {<<"referer">>, <<"http://127.0.0.1:8000/">>}].

main_cases() ->
    Env = maps:put(<<"wsgi.input">>, <<>>, environ(<<"/">>)),
    CallEnv = environ(<<"/">>),
    Scope = scope(<<"/">>),
    BrowserScope = Scope#{headers => browser_headers()},
    {ok, Ref} = py_asgi:build_scope(Scope),
    [{"wsgi py:call (generic)",
      fun() -> {ok, {<<"200 OK">>, _, {bytes, _}}} =
                   py:call(bench_apps, wsgi_via_call, [CallEnv, {bytes, <<>>}]) end},
     {"wsgi py_wsgi:run/3",
      fun() -> {ok, {<<"200 OK">>, _, _}} = py_wsgi:run(bench_apps, hello_wsgi, Env) end},
     {"asgi py:call (generic)",
      fun() -> {ok, {200, _, {bytes, _}}} =
                   py:call(bench_apps, asgi_via_call, [Scope, {bytes, <<>>}]) end},
     {"asgi py_asgi:run/4",
      fun() -> {ok, {200, _, _}} = py_asgi:run(bench_apps, hello_asgi, Scope, <<>>) end},
     {"asgi py_asgi:run/4 15 browser headers",
      fun() -> {ok, {200, _, _}} = py_asgi:run(bench_apps, hello_asgi, BrowserScope, <<>>) end},
     {"asgi py_asgi:run/4 build_scope ref",
      fun() -> {ok, {200, _, _}} = py_asgi:run(bench_apps, hello_asgi, Ref, <<>>) end},
     {"py:call(operator, add, [1, 2])",
      fun() -> {ok, 3} = py:call(operator, add, [1, 2]) end}].

%% {fast case, its generic peer's fun, its fun}, from main_cases().
pair_cases() ->
    M = main_cases(),
    F = fun(Name) -> proplists:get_value(Name, M) end,
    [{Fast, F(Generic), F(Fast)}
     || {Fast, Generic} <- [{"wsgi py_wsgi:run/3", "wsgi py:call (generic)"},
                            {"asgi py_asgi:run/4", "asgi py:call (generic)"},
                            {"asgi py_asgi:run/4 build_scope ref", "asgi py:call (generic)"}]].

ablation_cases() ->
    Env = maps:put(<<"wsgi.input">>, <<>>, environ(<<"/">>)),
    BigEnv = maps:put(<<"wsgi.input">>, <<>>, environ(<<"/big">>)),
    Scope = scope(<<"/">>),
    Wsgi = fun() -> {ok, {<<"200 OK">>, _, _}} = py_wsgi:run(bench_apps, hello_wsgi, Env) end,
    Asgi = fun() -> {ok, {200, _, _}} = py_asgi:run(bench_apps, hello_asgi, Scope, <<>>) end,
    BigW = fun() -> {ok, {<<"200 OK">>, _, <<_:65536/binary>>}} =
                        py_wsgi:run(bench_apps, big_wsgi, BigEnv) end,
    BigA = fun() -> {ok, {200, _, <<_:65536/binary>>}} =
                        py_asgi:run(bench_apps, big_asgi, Scope, <<>>) end,
    Small = ?OPTIONS -- [zero_copy],
    [{"wsgi hello: all on", Wsgi, #{}}]
    ++ [{"wsgi hello: " ++ atom_to_list(O) ++ " off", Wsgi, #{O => false}} || O <- Small]
    ++ [{"asgi hello: all on", Asgi, #{}}]
    ++ [{"asgi hello: " ++ atom_to_list(O) ++ " off", Asgi, #{O => false}} || O <- Small]
    ++ [{"wsgi 64KiB: all on", BigW, #{}},
        {"wsgi 64KiB: zero_copy off", BigW, #{zero_copy => false}},
        {"asgi 64KiB: all on", BigA, #{}},
        {"asgi 64KiB: zero_copy off", BigA, #{zero_copy => false}}].

check(Name, Fun) ->
    try Fun() of _ -> ok
    catch C:R:St ->
            io:format("case ~s failed: ~p:~p~n~p~n", [Name, C, R, St]),
            halt(1)
    end.

%% ---- measuring -------------------------------------------------------------------------

%% N callers loop over Fun for Ms milliseconds.  Returns total calls, the elapsed time
%% (start to the last caller's end, us), and p50/p99 of the per-call latency (us).
measure(Fun, N, Ms) ->
    Self = self(),
    Go = make_ref(),
    Pids = [spawn_link(fun() -> caller(Self, Go, Fun) end) || _ <- lists:seq(1, N)],
    T0 = erlang:monotonic_time(),
    Deadline = T0 + erlang:convert_time_unit(Ms, millisecond, native),
    [P ! {Go, Deadline} || P <- Pids],
    Results = [receive {P, done, C, L, TEnd} -> {C, L, TEnd} end || P <- Pids],
    TEnd = lists:max([E || {_, _, E} <- Results]),
    Calls = lists:sum([C || {C, _, _} <- Results]),
    Lat = lists:sort(lists:append([L || {_, L, _} <- Results])),
    Us = erlang:convert_time_unit(TEnd - T0, native, microsecond),
    {Calls, Us, pct(Lat, Calls, 0.50), pct(Lat, Calls, 0.99)}.

caller(Parent, Go, Fun) ->
    receive {Go, Deadline} -> ok end,
    {C, L} = loop(Fun, Deadline, erlang:monotonic_time(), 0, []),
    Parent ! {self(), done, C, L, erlang:monotonic_time()}.

loop(_Fun, Deadline, Now, C, L) when Now >= Deadline ->
    {C, L};
loop(Fun, Deadline, T0, C, L) ->
    Fun(),
    T1 = erlang:monotonic_time(),
    loop(Fun, Deadline, T1, C + 1, [T1 - T0 | L]).

pct(_Sorted, 0, _P) -> 0.0;
pct(Sorted, N, P) ->
    K = max(1, min(N, round(P * N))),
    erlang:convert_time_unit(lists:nth(K, Sorted) * 1000, native, microsecond) / 1000.
