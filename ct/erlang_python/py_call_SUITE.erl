%% py:call/3,4: calls, keyword arguments, dotted and async functions, every error shape,
%% SystemExit, timeouts and late replies, concurrency, exception storms.
-module(py_call_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, groups/0, init_per_suite/1, end_per_suite/1,
         init_per_testcase/2, end_per_testcase/2]).
-export([basic_calls/1, names_as_binaries/1, dotted_functions/1, kwargs/1,
         async_functions/1, sync_code_runs_own_loop/1, async_many_in_flight/1,
         python_exception/1, python_exception_builtin/1, python_exception_chained/1,
         python_exception_unprintable/1, python_exception_utf8_message/1,
         missing_module/1, missing_function/1, wrong_arity/1,
         badarg_shapes/1, unconvertible_result/1,
         system_exit/1, os_exit/1, base_exceptions/1,
         timeout_returns_quickly/1, timeout_late_reply_never_arrives/1,
         timeout_async/1, timeout_race_never_leaks/1, timeout_infinity/1,
         timeout_many_values/1,
         default_timeout_from_env/1, default_timeout_read_at_start/1,
         concurrent_callers/1, exception_storm/1,
         async_system_exit/1]).

-define(H, ep_call_helper).

all() ->
    [{group, calls}, {group, errors}, {group, timeouts}, {group, load},
     {group, async_base_exceptions}].

groups() ->
    [{calls, [], [basic_calls, names_as_binaries, dotted_functions, kwargs,
                  async_functions, async_many_in_flight, sync_code_runs_own_loop]},
     {errors, [], [python_exception, python_exception_builtin, python_exception_chained,
                   python_exception_unprintable, python_exception_utf8_message,
                   missing_module, missing_function, wrong_arity, badarg_shapes,
                   unconvertible_result, system_exit, os_exit, base_exceptions]},
     {timeouts, [], [timeout_returns_quickly, timeout_late_reply_never_arrives,
                     timeout_async, timeout_race_never_leaks, timeout_infinity,
                     timeout_many_values,
                     default_timeout_from_env, default_timeout_read_at_start]},
     {load, [], [concurrent_callers, exception_storm]},
     %% Last: when it fails it can take worker threads down with it.
     {async_base_exceptions, [], [async_system_exit]}].

init_per_suite(Config) ->
    ok = erlang_python_ct:start(Config),
    Config.

end_per_suite(_Config) ->
    erlang_python_ct:stop().

init_per_testcase(_TC, Config) ->
    Config.

%% Every test leaves the caller's mailbox empty: no stray or late replies.
end_per_testcase(_TC, _Config) ->
    ?assertEqual({messages, []}, process_info(self(), messages)),
    ok.

%% ---- calls ---------------------------------------------------------------------------

basic_calls(_Config) ->
    ?assertEqual({ok, 4.0}, py:call(math, sqrt, [16.0])),
    ?assertEqual({ok, 3}, py:call(operator, add, [1, 2])),
    ?assertEqual({ok, <<"a-b">>}, py:call(builtins, <<"str.join">>, [<<"-">>, [<<"a">>, <<"b">>]])),
    ?assertEqual({ok, 3}, py:call(builtins, len, [[a, b, c]])),
    ?assertEqual({ok, none}, py:call(builtins, print, [<<"printed by py_call_SUITE">>])),
    ?assertEqual({ok, [1, 2, 3]}, py:call(builtins, sorted, [[3, 1, 2]])),
    ?assertEqual({ok, {1, 2, 3}}, py:call(builtins, tuple, [[1, 2, 3]])),
    ?assertEqual({ok, 1 bsl 100}, py:call(builtins, pow, [2, 100])),
    ?assertEqual({ok, <<"ÄÖÜ"/utf8>>}, py:call(builtins, <<"str.upper">>, [<<"äöü"/utf8>>])).

names_as_binaries(_Config) ->
    ?assertEqual({ok, 4.0}, py:call(<<"math">>, <<"sqrt">>, [16.0])),
    ?assertEqual({ok, 4.0}, py:call(<<"math">>, sqrt, [16.0])),
    ?assertEqual({ok, 4.0}, py:call(math, <<"sqrt">>, [16.0])),
    %% A dotted module name imports the submodule.
    ?assertEqual({ok, <<"a/b">>}, py:call(<<"os.path">>, join, [<<"a">>, <<"b">>])),
    ?assertEqual({ok, <<"a/b">>}, py:call('os.path', join, [<<"a">>, <<"b">>])).

dotted_functions(_Config) ->
    ?assertEqual({ok, <<"a/b">>}, py:call(os, <<"path.join">>, [<<"a">>, <<"b">>])),
    ?assertEqual({ok, <<"hello joe">>}, py:call(?H, <<"Greeter.hello">>, [<<"joe">>])),
    ?assertEqual({ok, 2}, py:call(?H, 'Greeter.Inner.depth', [])),
    ?assertEqual({ok, <<"ABC">>}, py:call(builtins, <<"str.upper">>, [<<"abc">>])),
    ?assertMatch({error, {python, <<"AttributeError">>,
                          <<"type object 'Greeter' has no attribute 'nope'">>, _}},
                 py:call(?H, <<"Greeter.nope">>, [])).

kwargs(_Config) ->
    ?assertEqual({ok, 255}, py:call(builtins, int, [<<"ff">>], #{kwargs => #{base => 16}})),
    ?assertEqual({ok, 255}, py:call(builtins, int, [<<"ff">>], #{kwargs => #{<<"base">> => 16}})),
    ?assertEqual({ok, {1, 2, 3}}, py:call(?H, kw, [1])),
    ?assertEqual({ok, {1, 20, 30}}, py:call(?H, kw, [1], #{kwargs => #{b => 20, c => 30}})),
    ?assertEqual({ok, {1, 2, [x]}}, py:call(?H, kw, [], #{kwargs => #{a => 1, c => [x]}})),
    ?assertEqual({ok, {1, 2, 3}}, py:call(?H, kw, [1], #{kwargs => #{}})),
    %% Keys arrive as plain str whatever their Erlang form, UTF-8 included.
    ?assertEqual({ok, [<<"x">>, <<"y">>, <<"ü"/utf8>>]},
                 py:call(?H, kwargs_keys, [], #{kwargs => #{x => 1, <<"y">> => 2, 'ü' => 3}})),
    ?assertEqual({ok, 42}, py:call(builtins, abs, [-42], #{kwargs => #{}, timeout => 5000})),
    ?assertMatch({error, {python, <<"TypeError">>,
                          <<"kw() got an unexpected keyword argument 'd'">>, _}},
                 py:call(?H, kw, [1], #{kwargs => #{d => 4}})),
    ?assertEqual({error, {badarg, {kwargs, 1}}}, py:call(?H, kw, [], #{kwargs => #{1 => 2}})),
    ?assertEqual({error, {badarg, {kwargs, [a]}}}, py:call(?H, kw, [], #{kwargs => [a]})),
    ?assertEqual({error, {badarg, {improper_list, [1 | 2]}}},
                 py:call(?H, kw, [], #{kwargs => #{a => [1 | 2]}})).

async_functions(_Config) ->
    ?assertEqual({ok, 3}, py:call(?H, add_later, [1, 2])),
    ?assertEqual({ok, 3}, py:call(?H, add_now, [1, 2])),
    ?assertEqual({ok, [I * I || I <- lists:seq(0, 49)]}, py:call(?H, gather_squares, [50])),
    {error, {python, <<"ep_call_helper.MyError">>, <<"late boom">>, TB}} =
        py:call(?H, raise_later, [<<"late boom">>]),
    ?assertEqual(<<"ep_call_helper.MyError: late boom">>, lists:last(TB)),
    ?assertEqual({ok, 3}, py:call(operator, add, [1, 2])).

%% Many coroutines suspended at once share the workers' loops: 200 concurrent calls that
%% each await asyncio.sleep all come back with their own result.
async_many_in_flight(_Config) ->
    Results = ep_test_lib:pmap(fun(I) -> py:call(?H, add_later, [I, 1]) end, lists:seq(1, 200)),
    ?assertEqual([{ok, I + 1} || I <- lists:seq(1, 200)], Results).

%% ---- errors --------------------------------------------------------------------------

python_exception(Config) ->
    {error, {python, Type, Msg, TB}} = py:call(?H, raise_my, [<<"boom">>]),
    ?assertEqual(<<"ep_call_helper.MyError">>, Type),
    ?assertEqual(<<"boom">>, Msg),
    ?assertEqual(<<"Traceback (most recent call last):">>, hd(TB)),
    ?assertEqual(<<"ep_call_helper.MyError: boom">>, lists:last(TB)),
    File = filename:join(?config(data_dir, Config), "ep_call_helper.py"),
    FrameLine = iolist_to_binary(["  File \"", File, "\", line "]),
    ?assertMatch([_], [L || L <- TB, binary:match(L, FrameLine) =/= nomatch,
                            binary:match(L, <<", in raise_my">>) =/= nomatch]),
    ?assertEqual(true, lists:member(<<"    raise MyError(msg)">>, TB)),
    ?assertEqual(true, lists:all(fun is_binary/1, TB)),
    ?assertEqual([], [L || L <- TB, binary:match(L, <<"\n">>) =/= nomatch]).

python_exception_builtin(_Config) ->
    {error, {python, Type, Msg, TB}} = py:call(operator, truediv, [1, 0]),
    ?assertEqual(<<"ZeroDivisionError">>, Type),
    ?assertEqual(<<"division by zero">>, Msg),
    ?assertEqual(<<"ZeroDivisionError: division by zero">>, lists:last(TB)),
    {error, {python, <<"KeyError">>, <<"'k'">>, TB2}} = py:call(operator, getitem, [#{}, <<"k">>]),
    ?assertEqual(<<"KeyError: 'k'">>, lists:last(TB2)),
    {error, {python, <<"ValueError">>, Msg3, _}} = py:call(builtins, int, [<<"x">>]),
    ?assertEqual(<<"invalid literal for int() with base 10: 'x'">>, Msg3),
    %% A non-builtin stdlib exception carries its module.
    ?assertMatch({error, {python, <<"json.decoder.JSONDecodeError">>,
                          <<"Expecting value: line 1 column 1 (char 0)">>, _}},
                 py:call(json, loads, [<<"nope">>])).

python_exception_chained(_Config) ->
    {error, {python, Type, Msg, TB}} = py:call(?H, raise_nested, []),
    ?assertEqual({<<"ep_call_helper.MyError">>, <<"outer">>}, {Type, Msg}),
    ?assertEqual(true, lists:member(<<"KeyError: 'inner'">>, TB)),
    ?assertEqual(true, lists:member(
                         <<"The above exception was the direct cause of the following exception:">>,
                         TB)),
    ?assertEqual(<<"ep_call_helper.MyError: outer">>, lists:last(TB)).

python_exception_unprintable(_Config) ->
    {error, {python, Type, Msg, TB}} = py:call(?H, raise_unprintable, []),
    ?assertEqual(<<"ep_call_helper.Unprintable">>, Type),
    ?assertEqual(<<"<unprintable>">>, Msg),
    ?assertEqual(<<"ep_call_helper.Unprintable: <exception str() failed>">>, lists:last(TB)),
    ?assertEqual({ok, 3}, py:call(operator, add, [1, 2])).

python_exception_utf8_message(_Config) ->
    {error, {python, <<"ep_call_helper.MyError">>, Msg, TB}} =
        py:call(?H, raise_my, [<<"héllo 日本"/utf8>>]),
    ?assertEqual(<<"héllo 日本"/utf8>>, Msg),
    ?assertEqual(<<"ep_call_helper.MyError: héllo 日本"/utf8>>, lists:last(TB)).

missing_module(_Config) ->
    {error, {python, Type, Msg, TB}} = py:call(no_such_module_xyz, f, []),
    ?assertEqual(<<"ModuleNotFoundError">>, Type),
    ?assertEqual(<<"No module named 'no_such_module_xyz'">>, Msg),
    ?assertEqual(<<"ModuleNotFoundError: No module named 'no_such_module_xyz'">>, lists:last(TB)).

missing_function(_Config) ->
    ?assertMatch({error, {python, <<"AttributeError">>,
                          <<"module 'math' has no attribute 'nope'">>,
                          [_ | _]}},
                 py:call(math, nope, [])),
    ?assertMatch({error, {python, <<"TypeError">>, <<"'float' object is not callable">>, _}},
                 py:call(math, pi, [])).

wrong_arity(_Config) ->
    ?assertMatch({error, {python, <<"TypeError">>,
                          <<"math.sqrt() takes exactly one argument (2 given)">>, _}},
                 py:call(math, sqrt, [1, 2])),
    ?assertMatch({error, {python, <<"TypeError">>,
                          <<"kw() missing 1 required positional argument: 'a'">>, _}},
                 py:call(?H, kw, [])).

badarg_shapes(_Config) ->
    ?assertEqual({error, {badarg, {module, 1}}}, py:call(1, f, [])),
    ?assertEqual({error, {badarg, {module, "math"}}}, py:call("math", sqrt, [1])),
    ?assertEqual({error, {badarg, {function, {a}}}}, py:call(math, {a}, [])),
    ?assertEqual({error, {badarg, {args, 16.0}}}, py:call(math, sqrt, 16.0)),
    ?assertEqual({error, {badarg, {args, #{}}}}, py:call(math, sqrt, #{})),
    ?assertEqual({error, {badarg, {improper_list, [a | b]}}}, py:call(math, sqrt, [a | b])),
    ?assertEqual({error, {badarg, {options, [{timeout, 1}]}}},
                 py:call(math, sqrt, [1], [{timeout, 1}])),
    ?assertEqual({error, {badarg, {timeout, -1}}}, py:call(math, sqrt, [1], #{timeout => -1})),
    ?assertEqual({error, {badarg, {timeout, 1.5}}}, py:call(math, sqrt, [1], #{timeout => 1.5})),
    ?assertEqual({error, {badarg, {timeout, soon}}}, py:call(math, sqrt, [1], #{timeout => soon})),
    ?assertEqual({error, {badarg, {kwargs, <<"k">>}}},
                 py:call(math, sqrt, [1], #{kwargs => <<"k">>})),
    ?assertEqual({error, {badarg, {invalid_utf8, <<255>>}}}, py:call(math, sqrt, [<<255>>])),
    %% A module or function name that is not UTF-8 is a Python decoding error.
    ?assertMatch({error, {python, <<"UnicodeDecodeError">>, _, _}}, py:call(<<255>>, f, [])),
    ?assertMatch({error, {python, <<"UnicodeDecodeError">>, _, _}}, py:call(math, <<255>>, [])),
    ?assertEqual({ok, 4.0}, py:call(math, sqrt, [16.0])).

unconvertible_result(_Config) ->
    ?assertEqual({error, {unconvertible, <<"Context">>}}, py:call(decimal, getcontext, [])),
    ?assertEqual({error, {unconvertible, <<"object">>}}, py:call(builtins, object, [])),
    ?assertEqual({error, {unconvertible, <<"module">>}},
                 py:call(importlib, import_module, [<<"math">>])).

system_exit(_Config) ->
    {error, {python, Type, Msg, TB}} = py:call(sys, exit, [3]),
    ?assertEqual({<<"SystemExit">>, <<"3">>}, {Type, Msg}),
    ?assertEqual(<<"SystemExit: 3">>, lists:last(TB)),
    ?assertMatch({error, {python, <<"SystemExit">>, <<"bye">>, _}},
                 py:call(?H, call_sys_exit, [<<"bye">>])),
    ?assertMatch({error, {python, <<"SystemExit">>, <<>>, _}}, py:call(sys, exit, [])),
    ?assertEqual({ok, 4.0}, py:call(math, sqrt, [16.0])).

os_exit(_Config) ->
    Msg = <<"os._exit() is disabled inside the Erlang VM">>,
    ?assertMatch({error, {python, <<"SystemExit">>, Msg, _}}, py:call(os, '_exit', [1])),
    ?assertMatch({error, {python, <<"SystemExit">>, Msg, _}}, py:call(?H, call_os_exit, [0])),
    ?assertEqual({ok, 4.0}, py:call(math, sqrt, [16.0])).

base_exceptions(_Config) ->
    ?assertMatch({error, {python, <<"KeyboardInterrupt">>, <<"stop">>, _}},
                 py:call(?H, raise_keyboard_interrupt, [])),
    ?assertEqual({ok, 4.0}, py:call(math, sqrt, [16.0])).

%% ---- timeouts ------------------------------------------------------------------------

timeout_returns_quickly(_Config) ->
    T0 = erlang:monotonic_time(millisecond),
    Result = py:call(time, sleep, [5], #{timeout => 100}),
    Elapsed = erlang:monotonic_time(millisecond) - T0,
    ?assertEqual({error, timeout}, Result),
    ct:log("timed out after ~b ms", [Elapsed]),
    ?assert(Elapsed >= 100),
    ?assert(Elapsed < 1000),
    ?assertEqual({ok, 3}, py:call(operator, add, [1, 2])).

%% The job finishes after its caller gave up: its reply is dropped, never delivered.
timeout_late_reply_never_arrives(_Config) ->
    ?assertEqual({error, timeout}, py:call(time, sleep, [0.3], #{timeout => 20})),
    ?assertEqual({error, timeout}, py:call(?H, sleep_async, [0.3], #{timeout => 20})),
    timer:sleep(700),
    ?assertEqual({messages, []}, process_info(self(), messages)),
    ?assertEqual({ok, <<"slept">>}, py:call(?H, sleep_async, [0.01])).

timeout_async(_Config) ->
    T0 = erlang:monotonic_time(millisecond),
    ?assertEqual({error, timeout}, py:call(?H, sleep_async, [5], #{timeout => 100})),
    ?assert(erlang:monotonic_time(millisecond) - T0 < 1000),
    ?assertEqual({ok, 3}, py:call(?H, add_later, [1, 2])).

%% A timeout of 0 races the reply against the cancellation: whichever wins, the caller
%% gets exactly one result, a correct one, and nothing stays in its mailbox.  (Both
%% outcomes are correct here by design; the assertion is on the mailbox and the values.)
timeout_race_never_leaks(_Config) ->
    Results = [py:call(operator, add, [I, 1], #{timeout => 0}) || I <- lists:seq(1, 300)],
    Bad = [{I, R} || {I, R} <- lists:zip(lists:seq(1, 300), Results),
                     R =/= {ok, I + 1}, R =/= {error, timeout}],
    ?assertEqual([], Bad),
    timer:sleep(200),
    ?assertEqual({messages, []}, process_info(self(), messages)).

timeout_infinity(_Config) ->
    ?assertEqual({ok, <<"slept">>}, py:call(?H, sleep_async, [0.05], #{timeout => infinity})),
    ?assertEqual({ok, none}, py:call(time, sleep, [0.05], #{timeout => infinity})).

%% More distinct timeouts than the NIF has lists for (one per value, 8): the last list
%% takes several values, submitted here longest first, and each call must still time out
%% when its own deadline passes, not when the longer one ahead of it in that list does.
timeout_many_values(_Config) ->
    Self = self(),
    Timeouts = lists:seq(600, 80, -40),
    [begin
         spawn_link(fun() ->
                            T0 = erlang:monotonic_time(millisecond),
                            R = py:call(?H, sleep_async, [5], #{timeout => T}),
                            Self ! {T, R, erlang:monotonic_time(millisecond) - T0}
                    end),
         timer:sleep(5)
     end || T <- Timeouts],
    Results = [receive {T, R, Elapsed} -> {T, R, Elapsed} end || T <- Timeouts],
    ct:log("{timeout, result, elapsed ms}: ~p", [Results]),
    ?assertEqual([], [X || {_, R, _} = X <- Results, R =/= {error, timeout}]),
    ?assertEqual([], [X || {T, _, Elapsed} = X <- Results, Elapsed < T orelse Elapsed > T + 150]).

default_timeout_from_env(_Config) ->
    {ok, Old} = application:get_env(erlang_python, call_timeout),
    ?assertEqual(30000, Old),
    ?assertEqual({error, {badarg, {call_timeout, soon}}}, py:set_call_timeout(soon)),
    ok = py:set_call_timeout(50),
    try
        ?assertEqual({ok, 50}, application:get_env(erlang_python, call_timeout)),
        ?assertEqual({error, timeout}, py:call(?H, sleep_async, [2])),
        ?assertEqual({ok, <<"slept">>}, py:call(?H, sleep_async, [0.2], #{timeout => 5000}))
    after
        ok = py:set_call_timeout(Old)
    end.

%% The environment is read when the application starts.
default_timeout_read_at_start(_Config) ->
    ok = application:stop(erlang_python),
    ok = application:set_env(erlang_python, call_timeout, 50),
    try
        {ok, _} = application:ensure_all_started(erlang_python),
        ?assertEqual({error, timeout}, py:call(?H, sleep_async, [2]))
    after
        ok = py:set_call_timeout(30000)
    end.

%% ---- load ----------------------------------------------------------------------------

concurrent_callers(_Config) ->
    N = 1000,
    Results = ep_test_lib:pmap(fun(I) ->
                           {py:call(operator, add, [I, I]),
                            py:call(builtins, str, [I]),
                            py:call(?H, add_later, [I, 1])}
                   end, lists:seq(1, N)),
    Expected = [{{ok, 2 * I}, {ok, integer_to_binary(I)}, {ok, I + 1}} || I <- lists:seq(1, N)],
    ?assertEqual(Expected, Results),
    ?assertEqual(0, maps:get(queued, py:info())).

%% 10,000 raising calls from 50 processes, each checked; the workers then still serve.
exception_storm(_Config) ->
    Procs = 50,
    PerProc = 200,
    Failures = ep_test_lib:pmap(
                 fun(P) ->
                         [{P, I, R} || I <- lists:seq(1, PerProc),
                                       R <- [storm_call(P, I)], R =/= ok]
                 end, lists:seq(1, Procs)),
    ?assertEqual([], lists:append(Failures)),
    ?assertEqual([{ok, I * 2} || I <- lists:seq(1, 100)],
                 [py:call(operator, mul, [I, 2]) || I <- lists:seq(1, 100)]),
    Info = py:info(),
    ?assertMatch(#{queued := 0, running := true, workers := 4}, Info).

storm_call(P, I) ->
    case I rem 3 of
        0 ->
            case py:call(operator, truediv, [P, 0]) of
                {error, {python, <<"ZeroDivisionError">>, <<"division by zero">>, [_ | _]}} -> ok;
                Other -> Other
            end;
        1 ->
            Msg = integer_to_binary(P * 1000 + I),
            case py:call(?H, raise_my, [Msg]) of
                {error, {python, <<"ep_call_helper.MyError">>, Msg, [_ | _]}} -> ok;
                Other -> Other
            end;
        2 ->
            case py:call(sys, exit, [I]) of
                {error, {python, <<"SystemExit">>, _, [_ | _]}} -> ok;
                Other -> Other
            end
    end.

%% ---- async base exceptions -----------------------------------------------------------

%% An async function that raises SystemExit (or KeyboardInterrupt) after suspending: asyncio
%% re-raises these from the task step out of loop.run_forever(), so the worker's loop must
%% not let them end it.  The caller gets the error; every worker keeps serving.
async_system_exit(_Config) ->
    #{workers := Workers} = py:info(),
    Opts = #{timeout => 5000},
    [?assertMatch({error, {python, <<"SystemExit">>, <<"4">>, [_ | _]}},
                  py:call(?H, exit_later, [], Opts))
     || _ <- lists:seq(1, Workers)],
    ?assertEqual([{ok, I + 1} || I <- lists:seq(1, 4 * Workers)],
                 ep_test_lib:pmap(fun(I) -> py:call(?H, add_later, [I, 1], Opts) end,
                      lists:seq(1, 4 * Workers))).

%% ---- helpers -------------------------------------------------------------------------

%% Plain functions run with no running loop on their thread, so asyncio.run (and
%% async-to-sync adapters) work in them; the worker's own loop keeps serving afterwards.
sync_code_runs_own_loop(_Config) ->
    ?assertEqual({ok, [true, 42]}, py:call(?H, run_own_loop, [21])),
    ?assertEqual({ok, 7}, py:call(?H, add_later, [3, 4])),
    ?assertEqual({ok, [true, 8]}, py:call(?H, run_own_loop, [4])).
