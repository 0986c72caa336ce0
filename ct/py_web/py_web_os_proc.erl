%% bin/pyweb as an OS process for the suites that run it (py_web_e2e_SUITE,
%% py_web_hostile_SUITE): where it is, a free port for it, its output and exit status.
-module(py_web_os_proc).
-compile(nowarn_missing_spec).

-export([pyweb/0, free_port/0, collect/1, collect_now/1]).

pyweb() ->
    %% .../_build/test/lib/py_web/ebin/py_web_cli.beam -> repository root
    Beam = code:which(py_web_cli),
    Root = lists:foldl(fun(_, D) -> filename:dirname(D) end, Beam, lists:seq(1, 6)),
    filename:join([Root, "bin", "pyweb"]).

free_port() ->
    {ok, L} = gen_tcp:listen(0, [{ip, {127, 0, 0, 1}}, {reuseaddr, true}]),
    {ok, Port} = inet:port(L),
    gen_tcp:close(L),
    Port.

%% Waits for the port's exit: {ExitStatus, Output}.
collect(P) -> collect(P, []).

collect(P, Acc) ->
    receive
        {P, {data, D}} -> collect(P, [Acc, D]);
        {P, {exit_status, S}} -> {S, iolist_to_binary(Acc)}
    after 120000 ->
        ct:fail({no_exit, iolist_to_binary(Acc)})
    end.

%% The output received so far.
collect_now(P) ->
    receive {P, {data, D}} -> [D | collect_now(P)] after 0 -> [] end.
