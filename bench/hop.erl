%% @doc The cost of the port hop: the same calls in-process (no HTTP) through the NIF
%% (`gil' mode) and through one worker process (`processes' mode), at 1 caller (the
%% latency of one call: what the hop adds) and 50 callers (throughput).
%%
%% Run by bench/run.py (`make bench'), once per mode and run, the modes alternating:
%%   erl -noshell -pa _build/default/lib/*/ebin -pa bench/work/ebin \
%%       -eval 'hop:main(["processes", "OUT.tsv", "2000"])'
%% Args: the mode (`nif' or `processes'), output file (appended to), milliseconds per
%% measurement.  Each line:  mode  case  callers  calls  elapsed_us  p50_us  p99_us
%% Nothing here is a test: it checks each case's answer once, then measures.
-module(hop).

-export([main/1]).

main([Mode, Out, MsStr]) ->
    Ms = list_to_integer(MsStr),
    ok = application:load(erlang_python),
    ok = application:set_env(erlang_python, python_path, [filename:absname("bench/apps")]),
    case Mode of
        "processes" ->
            ok = application:set_env(erlang_python, mode, processes),
            ok = application:set_env(erlang_python, workers, 1);
        "nif" ->
            ok = application:set_env(erlang_python, mode, gil)
    end,
    {ok, _} = application:ensure_all_started(erlang_python),
    {ok, Fd} = file:open(Out, [append]),
    Cases = cases(),
    [{ok, _} = F() || {_, F} <- Cases],
    [measure(F, N, max(200, Ms div 4)) || {_, F} <- Cases, N <- [1, 50]],
    [begin
         {Calls, Us, P50, P99} = measure(F, N, Ms),
         io:format(Fd, "~s\t~s\t~p\t~p\t~p\t~p\t~p~n", [Mode, Name, N, Calls, Us, P50, P99]),
         io:format("~-10s ~-28s ~2b callers: ~8b calls/s  p50 ~7.1f us~n",
                   [Mode, Name, N, round(Calls * 1.0e6 / Us), float(P50)])
     end || {Name, F} <- Cases, N <- [1, 50]],
    ok = file:close(Fd),
    halt(0).

cases() ->
    Scope = #{type => <<"http">>, path => <<"/">>, headers => [{<<"host">>, <<"h">>}]},
    Environ = #{<<"REQUEST_METHOD">> => <<"GET">>, <<"SCRIPT_NAME">> => <<>>,
                <<"PATH_INFO">> => <<"/">>, <<"SERVER_NAME">> => <<"h">>,
                <<"SERVER_PORT">> => <<"80">>, <<"SERVER_PROTOCOL">> => <<"HTTP/1.1">>,
                <<"wsgi.url_scheme">> => <<"http">>, <<"wsgi.input">> => <<>>,
                <<"HTTP_HOST">> => <<"h">>},
    [{"py:call operator.add", fun() -> py:call(operator, add, [1, 2]) end},
     {"py_asgi:run/4 hello", fun() -> py_asgi:run(bench_apps, hello_asgi, Scope, <<>>) end},
     {"py_wsgi:run/3 hello", fun() -> py_wsgi:run(bench_apps, hello_wsgi, Environ) end}].

%% N processes call F in a loop for Ms; calls, elapsed us, p50/p99 of one call (us).
measure(F, N, Ms) ->
    Self = self(),
    Deadline = erlang:monotonic_time(microsecond) + Ms * 1000,
    T0 = erlang:monotonic_time(microsecond),
    Pids = [spawn_link(fun() -> Self ! {self(), loop(F, Deadline, [])} end) || _ <- lists:seq(1, N)],
    Lat = lists:append([receive {P, L} -> L end || P <- Pids]),
    Us = erlang:monotonic_time(microsecond) - T0,
    Sorted = lists:sort(Lat),
    Len = length(Sorted),
    {Len, Us, lists:nth(max(1, Len div 2), Sorted), lists:nth(max(1, (Len * 99) div 100), Sorted)}.

loop(F, Deadline, Acc) ->
    T0 = erlang:monotonic_time(microsecond),
    case T0 >= Deadline of
        true -> Acc;
        false ->
            {ok, _} = F(),
            loop(F, Deadline, [erlang:monotonic_time(microsecond) - T0 | Acc])
    end.
