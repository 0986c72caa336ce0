%% The execution modes: how the mode is configured and resolved, where calls run, module
%% globals per interpreter, lifespans once per interpreter, follow-ups to the owning
%% worker, FastAPI's refusal of sub-interpreters (an error in subinterpreters mode, a fall
%% back to gil in auto), restarts, and 1,000 concurrent callers.  The suite runs in the
%% mode of the run (ERLANG_PYTHON_MODE); cases that need another mode restart the
%% application in it and restore it after.
-module(py_mode_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1, init_per_testcase/2,
         end_per_testcase/2]).
-export([configured_rule/1, resolve_table/1, unavailable_mode_stops_start/1,
         calls_spread_over_interpreters/1, globals_per_interpreter/1,
         explicit_gil_mode/1, lifespan_once_per_interpreter/1,
         lifespan_failure_stops_startup/1, lifespan_state_per_interpreter/1,
         stream_followups_reach_their_worker/1, fastapi_refused_in_subinterpreters/1,
         fastapi_auto_falls_back/1, start_stop_start/1, thousand_concurrent_callers/1]).

-define(H, ep_mode_helper).

all() ->
    [configured_rule, resolve_table, unavailable_mode_stops_start,
     calls_spread_over_interpreters, globals_per_interpreter, explicit_gil_mode,
     lifespan_once_per_interpreter, lifespan_failure_stops_startup,
     lifespan_state_per_interpreter, stream_followups_reach_their_worker,
     fastapi_refused_in_subinterpreters, fastapi_auto_falls_back, start_stop_start,
     thousand_concurrent_callers].

init_per_suite(Config) ->
    %% The FastAPI app of py_asgi_SUITE too.
    AsgiData = filename:join(filename:dirname(filename:absname(?config(data_dir, Config))),
                             "py_asgi_SUITE_data"),
    ok = erlang_python_ct:start(Config, #{python_path => [AsgiData]}),
    Config.

end_per_suite(_Config) ->
    erlang_python_ct:stop().

init_per_testcase(_TC, Config) ->
    Log = filename:join(?config(priv_dir, Config), "lifespan.log"),
    _ = file:delete(Log),
    _ = file:delete(Log ++ ".first"),
    _ = erlang_python_ct:each(?H, set_log, [list_to_binary(Log)]),
    [{log, Log} | Config].

end_per_testcase(_TC, _Config) ->
    ?assertEqual({messages, []}, process_info(self(), messages)),
    ok.

%% ---- configuration -----------------------------------------------------------------

%% The application env first, then ERLANG_PYTHON_MODE, then auto; anything else is an
%% error.
configured_rule(_Config) ->
    Env = application:get_env(erlang_python, mode),
    Os = os:getenv("ERLANG_PYTHON_MODE"),
    try
        application:unset_env(erlang_python, mode),
        os:unsetenv("ERLANG_PYTHON_MODE"),
        ?assertEqual(auto, py_mode:configured()),
        os:putenv("ERLANG_PYTHON_MODE", "gil"),
        ?assertEqual(gil, py_mode:configured()),
        ok = application:set_env(erlang_python, mode, subinterpreters),
        ?assertEqual(subinterpreters, py_mode:configured()),
        ok = application:set_env(erlang_python, mode, fast),
        ?assertError({badarg, {mode, fast}}, py_mode:configured()),
        application:unset_env(erlang_python, mode),
        os:putenv("ERLANG_PYTHON_MODE", "threads"),
        ?assertError({badarg, {mode, "threads"}}, py_mode:configured())
    after
        case Env of
            {ok, M} -> application:set_env(erlang_python, mode, M);
            undefined -> application:unset_env(erlang_python, mode)
        end,
        case Os of
            false -> os:unsetenv("ERLANG_PYTHON_MODE");
            _ -> os:putenv("ERLANG_PYTHON_MODE", Os)
        end
    end.

resolve_table(_Config) ->
    Py311 = #{python_version => <<"3.11.7">>, subinterpreters_supported => false,
              free_threaded_build => false},
    Py313 = #{python_version => <<"3.13.0">>, subinterpreters_supported => true,
              free_threaded_build => false},
    Py313t = Py313#{free_threaded_build => true},
    ?assertMatch({ok, gil, _}, py_mode:resolve(auto, Py311)),
    ?assertMatch({ok, subinterpreters, _}, py_mode:resolve(auto, Py313)),
    ?assertMatch({ok, gil, _}, py_mode:resolve(gil, Py313)),
    ?assertMatch({ok, subinterpreters, _}, py_mode:resolve(subinterpreters, Py313)),
    ?assertMatch({error, {mode_unavailable, subinterpreters, _}},
                 py_mode:resolve(subinterpreters, Py311)),
    ?assertMatch({error, {mode_unavailable, free_threaded, _}},
                 py_mode:resolve(free_threaded, Py313)),
    ?assertMatch({ok, free_threaded, _}, py_mode:resolve(free_threaded, Py313t)),
    %% auto never claims the untested free_threaded mode.
    ?assertMatch({error, {mode_unavailable, auto, _}}, py_mode:resolve(auto, Py313t)),
    ?assertMatch({error, {mode_unavailable, gil, _}}, py_mode:resolve(gil, Py313t)),
    ?assertMatch({error, {mode_unavailable, processes, _}}, py_mode:resolve(processes, Py313)).

%% A mode this Python cannot run stops the application's start with the reason.
unavailable_mode_stops_start(_Config) ->
    Mode = case maps:get(subinterpreters_supported, py:info()) of
               true -> free_threaded;
               false -> subinterpreters
           end,
    with_mode(Mode, fun() -> ok end, fun(Start) ->
        ?assertMatch({error, {{shutdown, {failed_to_start_child, py_runtime,
                                          {mode_unavailable, Mode, _}}}, _}}, Start)
    end).

%% ---- where calls run ----------------------------------------------------------------

%% Calls go to any worker: with sub-interpreters, to several interpreters.
calls_spread_over_interpreters(_Config) ->
    Seen = ep_test_lib:pmap(fun(_) -> {ok, I} = py:call(?H, busy_interpreter, [20]), I end,
                lists:seq(1, 40)),
    Interpreters = lists:usort(erlang_python_ct:each(?H, interpreter, [])),
    ?assertEqual([], lists:usort(Seen) -- Interpreters),
    case ep_test_lib:mode() of
        subinterpreters ->
            ?assertEqual(4, length(Interpreters)),
            ?assert(length(lists:usort(Seen)) > 1);
        _ ->
            ?assertEqual(1, length(Interpreters))
    end.

%% A module global set in one interpreter is not seen in another.
globals_per_interpreter(_Config) ->
    _ = erlang_python_ct:each(?H, set_value, [none]),
    {ok, Where} = py:call(?H, set_value, [<<"here">>]),
    Values = lists:zip(erlang_python_ct:each(?H, interpreter, []), erlang_python_ct:each(?H, get_value, [])),
    ?assertEqual([{Where, <<"here">>}], [{I, V} || {I, V} <- Values, V =/= none]),
    ?assertEqual(length(Values) - 1, length([V || {_, V} <- Values, V =:= none])).

%% mode gil on any Python: the four workers share the main interpreter.
explicit_gil_mode(_Config) ->
    with_mode(gil, fun() ->
        ?assertMatch(#{mode := gil, configured := gil, workers := 4}, py:info()),
        ?assertMatch([#{main := true, state := running, threads := 4}],
                     [I || #{state := running} = I <- maps:get(interpreters, py:info())]),
        ?assertEqual(1, length(erlang_python_ct:each(?H, interpreter, []))),
        ?assertEqual({ok, 3}, py:call(operator, add, [1, 2]))
    end, fun(Start) -> ?assertEqual(ok, Start) end).

%% ---- lifespans ----------------------------------------------------------------------

%% Startup runs once in each interpreter, shutdown too.
lifespan_once_per_interpreter(Config) ->
    Interpreters = lists:sort(erlang_python_ct:each(?H, interpreter, [])),
    {ok, Lifespan, _State} = py_asgi:lifespan_startup(?H, lifespan_app, #{}),
    ?assertEqual([{<<"startup">>, I} || I <- Interpreters], lists:sort(log_lines(Config))),
    ok = py_asgi:lifespan_shutdown(Lifespan),
    ?assertEqual(lists:sort([{<<"startup">>, I} || I <- Interpreters] ++
                            [{<<"shutdown">>, I} || I <- Interpreters]),
                 lists:sort(log_lines(Config))).

%% When the startup fails in one interpreter, start-up fails with the app's message and
%% the interpreters where it succeeded are shut down again.
lifespan_failure_stops_startup(Config) ->
    case length(erlang_python_ct:each(?H, interpreter, [])) of
        1 ->
            {skip, "one interpreter: the lifespan cannot fail in only some of them"};
        N ->
            {error, {python, _, <<"not the first">>, _}} =
                py_asgi:lifespan_startup(?H, first_only_lifespan, #{}),
            ep_test_lib:wait_until(fun() -> length(log_lines(Config)) =:= 2 end),
            [{<<"startup">>, I}, {<<"shutdown">>, I}] = log_lines(Config),
            ?assert(N > 1)
    end.

%% scope["state"] of a request is a copy of its interpreter's lifespan state.
lifespan_state_per_interpreter(_Config) ->
    {ok, Lifespan, State} = py_asgi:lifespan_startup(?H, lifespan_app, #{}),
    Scope = #{type => <<"http">>, path => <<"/">>, state => State},
    Answers = ep_test_lib:pmap(fun(_) ->
                           {ok, {200, _, Body}} = py_asgi:run(?H, lifespan_app, Scope, <<>>),
                           words(Body)
                   end, lists:seq(1, 40)),
    ?assertEqual([], [A || [Ran, StartedIn] = A <- Answers, Ran =/= StartedIn]),
    ok = py_asgi:lifespan_shutdown(Lifespan).

%% ---- streams ------------------------------------------------------------------------

%% Body chunks fed after the start reach the worker that runs the stream, for many
%% streams at once over every worker.
stream_followups_reach_their_worker(_Config) ->
    Results = ep_test_lib:pmap(fun(I) ->
                           {ok, S} = py_asgi:start(?H, stream_app,
                                                   #{type => <<"http">>, path => <<"/">>},
                                                   #{more_body => true}),
                           [ok = py_asgi:send_body(S, <<"x">>, true) || _ <- lists:seq(1, I rem 7)],
                           ok = py_asgi:send_body(S, <<"end">>, false),
                           stream_body(S, <<>>)
                   end, lists:seq(1, 60)),
    ?assertEqual([], [R || R <- Results, not same_worker(R)]),
    ?assertEqual([integer_to_binary(3 + I rem 7) || I <- lists:seq(1, 60)],
                 [L || [_, _, L] <- Results]).

same_worker([Started, Finished, _]) -> Started =:= Finished.

stream_body(S, Acc) ->
    receive
        {asgi, S, {start, 200, _}} -> stream_body(S, Acc);
        {asgi, S, {body, B, _}} -> stream_body(S, <<Acc/binary, B/binary>>);
        {asgi, S, need_body} -> stream_body(S, Acc);
        {asgi, S, done} -> words(Acc);
        {asgi, S, Other} -> {error, Other}
    after 10000 -> timeout
    end.

%% ---- FastAPI (pydantic-core refuses sub-interpreters) ------------------------------

%% Explicit subinterpreters mode: the app's ImportError, and a logged explanation.
fastapi_refused_in_subinterpreters(_Config) ->
    case ep_test_lib:mode() of
        subinterpreters ->
            ok = logger:add_handler(py_mode_suite_h, ep_test_lib,
                                    #{config => #{pid => self()}, level => error}),
            try
                {error, {python, <<"ImportError">>, Msg, _}} = fastapi_get(),
                ?assertMatch({match, _}, re:run(Msg, "subinterpreters")),
                Log = receive {log, error, L} -> L after 5000 -> none end,
                ?assertMatch({match, _}, re:run(Log, "does not support sub-interpreters.*use "
                                                     "mode gil, or auto")),
                ?assertEqual(subinterpreters, ep_test_lib:mode())
            after
                logger:remove_handler(py_mode_suite_h)
            end;
        Mode ->
            ?assertMatch({ok, {200, _, _}}, fastapi_get()),
            {comment, io_lib:format("mode ~s: FastAPI served", [Mode])}
    end.

%% auto on Python 3.12+: starts with sub-interpreters, falls back to gil when FastAPI's
%% import is refused, logs the module, and serves.
fastapi_auto_falls_back(_Config) ->
    case maps:get(subinterpreters_supported, py:info()) of
        false ->
            {skip, "no sub-interpreters on this Python: auto is gil from the start"};
        true ->
            ok = logger:add_handler(py_mode_suite_h, ep_test_lib,
                                    #{config => #{pid => self()}, level => warning}),
            try
                with_mode(auto, fun() ->
                    ?assertMatch(#{mode := subinterpreters, configured := auto}, py:info()),
                    ?assertMatch({ok, {200, _, <<"{\"item_id\":5", _/binary>>}}, fastapi_get()),
                    #{mode := gil, fallback := #{module := Module}} = py:info(),
                    ?assertMatch(<<"pydantic_core", _/binary>>, Module),
                    Log = receive {log, warning, L} -> L after 5000 -> none end,
                    ?assertMatch({match, _}, re:run(Log, "auto mode: pydantic_core.* does not "
                                                         "support sub-interpreters.*serving in "
                                                         "gil mode")),
                    ?assertMatch({ok, {200, _, _}}, fastapi_get())
                end, fun(Start) -> ?assertEqual(ok, Start) end)
            after
                logger:remove_handler(py_mode_suite_h)
            end
    end.

fastapi_get() ->
    py_asgi:run(ep_asgi_fastapi, app, #{type => <<"http">>, path => <<"/items/5">>,
                                        query_string => <<"q=x">>}, <<>>).

%% ---- lifecycle and load -------------------------------------------------------------

%% Stop and start again, several times: same mode, same interpreters, calls served.
start_stop_start(_Config) ->
    Before = maps:get(interpreters, py:info()),
    Mode = ep_test_lib:mode(),
    [begin
         restart(),
         ?assertEqual({ok, 6}, py:call(operator, mul, [2, 3])),
         ?assertEqual(Mode, ep_test_lib:mode())
     end || _ <- lists:seq(1, 3)],
    ?assertEqual([maps:with([id, main], I) || I <- Before],
                 [maps:with([id, main], I) || I <- maps:get(interpreters, py:info())]).

%% 1,000 callers at once, each a py:call and an ASGI request.
thousand_concurrent_callers(_Config) ->
    Results = ep_test_lib:pmap(fun(I) ->
                           {py:call(operator, add, [I, 1]),
                            py_asgi:run(?H, lifespan_app, #{type => <<"http">>, path => <<"/">>,
                                                            state => #{}}, <<>>)}
                   end, lists:seq(1, 1000)),
    ?assertEqual([], [R || {I, R} <- lists:zip(lists:seq(1, 1000), Results),
                           not ok_pair(I, R)]).

ok_pair(I, {{ok, N}, {ok, {200, _, _}}}) -> N =:= I + 1;
ok_pair(_, _) -> false.

%% ---- helpers ------------------------------------------------------------------------

%% Runs Fun with the application restarted in Mode (CheckStart gets the start's result;
%% Fun runs only when it was ok), then restores the mode of the run.
with_mode(Mode, Fun, CheckStart) ->
    _ = application:stop(erlang_python),
    ok = application:set_env(erlang_python, mode, Mode),
    try
        Start = application:start(erlang_python),
        CheckStart(Start),
        case Start of
            ok -> Fun();
            _ -> ok
        end
    after
        application:unset_env(erlang_python, mode),
        restart()
    end.

restart() ->
    _ = application:stop(erlang_python),
    ok = application:start(erlang_python).

words(Bin) ->
    binary:split(Bin, <<" ">>, [global]).

log_lines(Config) ->
    case file:read_file(?config(log, Config)) of
        {ok, Text} ->
            [list_to_tuple(binary:split(L, <<" ">>))
             || L <- binary:split(Text, <<"\n">>, [global, trim_all])];
        {error, enoent} ->
            []
    end.
