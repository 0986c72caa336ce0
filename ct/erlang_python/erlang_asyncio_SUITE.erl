%% erlang_asyncio inside the VM, through the real NIF: sleep on Erlang timers (result,
%% accuracy, rounding, cancellation without leaked timer callbacks), 1,000 concurrent
%% sleeps, the asyncio API over it (gather, wait_for, timeout, shield, create_task,
%% ensure_future, wait), cancellation by py:call and py_asgi:run timeouts, and the
%% fallback to asyncio.sleep on loops of the app's own.
%%
%% Python side: erlang_asyncio_SUITE_data/ep_aio_helper.py.  It wraps the real
%% _erlang.schedule_timer/cancel_timer in a spy that counts timers scheduled,
%% cancelled, fired and refused, so every test can check that what it cancelled never
%% fired afterwards.
-module(erlang_asyncio_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-compile(nowarn_missing_spec).

-export([all/0, groups/0, init_per_suite/1, end_per_suite/1,
         init_per_testcase/2, end_per_testcase/2]).
-export([uses_erlang_timers/1, sleep_result/1, sleep_accuracy/1, sleep_zero_negative_tiny/1,
         cancel_no_leaked_timer/1, cancel_group/1,
         many_sleeps_gathered/1, many_sleeps_concurrent_calls/1,
         gather/1, wait_for/1, timeout_cm/1, shield/1, tasks_and_wait/1,
         call_timeout_cancels_sleep/1, asgi_concurrent_sleepers/1, asgi_timeout_cancels/1,
         thread_loop_falls_back/1, executor_loop_falls_back/1]).

-define(H, ep_aio_helper).

all() ->
    [{group, sleep}, {group, load}, {group, api}, {group, cancellation},
     {group, own_loops}].

groups() ->
    [{sleep, [], [uses_erlang_timers, sleep_result, sleep_accuracy, sleep_zero_negative_tiny,
                  cancel_no_leaked_timer, cancel_group]},
     {load, [], [many_sleeps_gathered, many_sleeps_concurrent_calls, asgi_concurrent_sleepers]},
     {api, [], [gather, wait_for, timeout_cm, shield, tasks_and_wait]},
     {cancellation, [], [call_timeout_cancels_sleep, asgi_timeout_cancels]},
     {own_loops, [], [thread_loop_falls_back, executor_loop_falls_back]}].

init_per_suite(Config) ->
    ok = erlang_python_ct:start(Config),
    _ = erlang_python_ct:each(?H, install_spy, []),
    Config.

end_per_suite(_Config) ->
    _ = erlang_python_ct:each(?H, uninstall_spy, []),
    erlang_python_ct:stop().

init_per_testcase(_TC, Config) ->
    _ = erlang_python_ct:each(?H, spy_reset, []),
    Config.

end_per_testcase(_TC, _Config) ->
    ?assertEqual({messages, []}, process_info(self(), messages)),
    ok.

%% ---- sleep ---------------------------------------------------------------------------

%% Inside the VM erlang_asyncio found the NIF's _erlang module, and a sleep on a worker's
%% loop goes through one Erlang timer that fires once.
uses_erlang_timers(_Config) ->
    ?assertEqual({ok, <<"_erlang">>}, py:call(?H, real_timers_module, [])),
    {ok, [<<"r">>, _]} = py:call(?H, sleep_result, [0.02, <<"r">>]),
    ?assertEqual(#{<<"scheduled">> => 1, <<"cancelled">> => 0, <<"fired">> => 1,
                   <<"refused">> => 0, <<"delays">> => [20]},
                 spy()).

sleep_result(_Config) ->
    ?assertMatch({ok, [<<"value">>, _]}, py:call(?H, sleep_result, [0.01, <<"value">>])),
    ?assertMatch({ok, [{1, 2}, _]}, py:call(?H, sleep_result, [0.01, {1, 2}])),
    ?assertMatch({ok, [none, _]}, py:call(?H, sleep_result, [0.01, none])),
    ?assertEqual({ok, none}, py:call(?H, sleep_default_result, [0.01])).

%% Never early; late by at most a scheduling delay.
sleep_accuracy(_Config) ->
    Elapsed = [begin
                   {ok, [<<"x">>, Ms]} = py:call(?H, sleep_result, [D / 1000, <<"x">>]),
                   ?assert(Ms >= D - 0.5),
                   ?assert(Ms < D + 100),
                   {D, round(Ms * 10) / 10}
               end || D <- [1, 5, 10, 50, 100]],
    ct:comment("requested ms -> measured ms: ~p", [Elapsed]).

%% 0 and negative delays use asyncio.sleep (no timer); sub-millisecond delays round up.
sleep_zero_negative_tiny(_Config) ->
    ?assertEqual({ok, [<<"zero">>, <<"negative">>]}, py:call(?H, zero_and_negative, [])),
    ?assertEqual(0, maps:get(<<"scheduled">>, spy())),
    ?assertEqual({ok, [<<"tiny">>, true]}, py:call(?H, rounding, [])),
    ?assertMatch(#{<<"scheduled">> := 1, <<"delays">> := [1]}, spy()).

%% A cancelled sleep cancels its Erlang timer: the callback never runs afterwards.
cancel_no_leaked_timer(_Config) ->
    ?assertEqual({ok, [<<"cancelled">>, true]}, py:call(?H, cancel_sleep, [])),
    timer:sleep(300),
    ?assertEqual(#{<<"scheduled">> => 1, <<"cancelled">> => 1, <<"fired">> => 0,
                   <<"refused">> => 0, <<"delays">> => [200]},
                 spy()),
    %% The worker is fine afterwards.
    ?assertMatch({ok, [<<"after">>, _]}, py:call(?H, sleep_result, [0.01, <<"after">>])).

%% Cancelling a task that awaits gather() of 10 sleepers cancels all 10 timers.
cancel_group(_Config) ->
    ?assertEqual({ok, <<"cancelled">>}, py:call(?H, api_cancel_propagates, [])),
    timer:sleep(100),
    ?assertMatch(#{<<"scheduled">> := 10, <<"cancelled">> := 10, <<"fired">> := 0}, spy()).

%% ---- load ----------------------------------------------------------------------------

%% 1,000 concurrent 10 ms sleeps in one coroutine (gather) all complete, in far less
%% than 1,000 x 10 ms.
many_sleeps_gathered(_Config) ->
    {ok, [true, Ms]} = py:call(?H, many_sleeps, [1000, 0.01]),
    ct:comment("1000 gathered 10 ms sleeps: ~.1f ms", [Ms]),
    ?assert(Ms < 1000),
    ?assertMatch(#{<<"scheduled">> := 1000, <<"fired">> := 1000, <<"cancelled">> := 0}, spy()).

%% 1,000 callers, each a py:call of a coroutine sleeping 10 ms, at once.
many_sleeps_concurrent_calls(_Config) ->
    T0 = erlang:monotonic_time(millisecond),
    Results = ep_test_lib:pmap(fun(I) -> py:call(?H, sleep_result, [0.01, I]) end,
                               lists:seq(1, 1000)),
    Ms = erlang:monotonic_time(millisecond) - T0,
    ?assertEqual([], [{I, R} || {I, R} <- lists:zip(lists:seq(1, 1000), Results),
                                not is_result(I, R)]),
    ct:comment("1000 concurrent py:call 10 ms sleeps: ~b ms", [Ms]),
    ?assert(Ms < 3000),
    ?assertMatch(#{<<"scheduled">> := 1000, <<"fired">> := 1000}, spy()).

%% An ASGI app sleeping 100 ms with erlang_asyncio: 200 concurrent requests.
asgi_concurrent_sleepers(_Config) ->
    T0 = erlang:monotonic_time(millisecond),
    Results = ep_test_lib:pmap(fun(I) ->
                           Path = <<"/s/", (integer_to_binary(I))/binary>>,
                           {I, py_asgi:run(?H, asgi_sleep, #{type => <<"http">>, path => Path,
                                                             query_string => <<"0.1">>}, <<>>)}
                   end, lists:seq(1, 200)),
    Ms = erlang:monotonic_time(millisecond) - T0,
    ?assertEqual([{I, {ok, {200, [], <<"/s/", (integer_to_binary(I))/binary>>}}}
                  || I <- lists:seq(1, 200)], Results),
    ct:comment("200 x erlang_asyncio.sleep(0.1) through py_asgi:run: ~b ms", [Ms]),
    ?assert(Ms < 2000),
    ?assertMatch(#{<<"scheduled">> := 200, <<"fired">> := 200}, spy()).

%% ---- the asyncio API -------------------------------------------------------------------

gather(_Config) ->
    ?assertEqual({ok, [[1, 2, 3], [<<"a">>, <<"ValueError">>, <<"gathered failure">>],
                       <<"gathered failure">>]},
                 py:call(?H, api_gather, [])).

wait_for(_Config) ->
    ?assertEqual({ok, [true, true, <<"in time">>]}, py:call(?H, api_wait_for, [])),
    timer:sleep(50),
    %% The timed-out sleep's timer was cancelled, the other fired.
    ?assertMatch(#{<<"scheduled">> := 2, <<"cancelled">> := 1, <<"fired">> := 1}, spy()).

timeout_cm(_Config) ->
    ?assertEqual({ok, [true, true, <<"in time">>]}, py:call(?H, api_timeout, [])),
    timer:sleep(50),
    ?assertMatch(#{<<"scheduled">> := 2, <<"cancelled">> := 1, <<"fired">> := 1}, spy()).

%% The shielded sleep survives the outer timeout and delivers its result.
shield(_Config) ->
    ?assertEqual({ok, [<<"timed out">>, false, <<"inner result">>]}, py:call(?H, api_shield, [])),
    ?assertMatch(#{<<"scheduled">> := 1, <<"cancelled">> := 0, <<"fired">> := 1}, spy()).

tasks_and_wait(_Config) ->
    ?assertEqual({ok, [[<<"task">>, <<"future">>], true, [<<"fast">>], 1, true]},
                 py:call(?H, api_tasks, [])),
    timer:sleep(50),
    ?assertMatch(#{<<"scheduled">> := 4, <<"cancelled">> := 1, <<"fired">> := 3}, spy()).

%% ---- cancellation from Erlang ----------------------------------------------------------

%% A py:call timeout cancels the coroutine: CancelledError in the sleep, its timer
%% cancelled, no late reply; the next call works.
call_timeout_cancels_sleep(_Config) ->
    Key = <<"call-timeout">>,
    ?assertEqual({error, timeout}, py:call(?H, sleep_record, [Key, 10], #{timeout => 100})),
    timer:sleep(200),
    ?assertEqual({ok, [<<"started">>, <<"cancelled">>, <<"finally">>]}, {ok, ep_test_lib:one(?H, record, [Key])}),
    ?assertMatch(#{<<"scheduled">> := 1, <<"cancelled">> := 1, <<"fired">> := 0}, spy()),
    ?assertEqual({ok, <<"slept">>}, py:call(?H, sleep_record, [<<"next">>, 0.01])),
    ?assertEqual([], erlang_python_ct:flush()).

asgi_timeout_cancels(_Config) ->
    ?assertEqual({error, timeout},
                 py_asgi:run(?H, asgi_sleep, #{type => <<"http">>, path => <<"/t">>,
                                               query_string => <<"10">>}, <<>>, #{timeout => 100})),
    timer:sleep(200),
    ?assertEqual({ok, [<<"started">>, <<"cancelled">>]}, {ok, ep_test_lib:one(?H, record, [<<"/t">>])}),
    ?assertMatch(#{<<"scheduled">> := 1, <<"cancelled">> := 1, <<"fired">> := 0}, spy()),
    ?assertEqual({ok, {200, [], <<"/t2">>}},
                 py_asgi:run(?H, asgi_sleep, #{type => <<"http">>, path => <<"/t2">>,
                                               query_string => <<"0.01">>}, <<>>)),
    ?assertEqual([], erlang_python_ct:flush()).

%% ---- loops of the app's own ------------------------------------------------------------

%% On a loop in a thread the app started, schedule_timer refuses and sleep falls back
%% to asyncio.sleep: the right result after the right time.
thread_loop_falls_back(_Config) ->
    {ok, #{<<"result">> := [<<"thread">>, Ms]} = Out} = py:call(?H, thread_loop_sleep, [0.03]),
    ?assertEqual(false, maps:is_key(<<"error">>, Out)),
    ?assert(Ms >= 29.5),
    ?assert(Ms < 1000),
    ?assertMatch(#{<<"scheduled">> := 0, <<"refused">> := 1}, spy()).

%% The same in a thread of the worker loop's default executor (run_in_executor), while
%% the worker's loop keeps serving other sleepers on Erlang timers.
executor_loop_falls_back(_Config) ->
    Self = self(),
    spawn_link(fun() -> Self ! {other, py:call(?H, sleep_result, [0.05, <<"worker">>])} end),
    {ok, [<<"executor">>, Ms]} = py:call(?H, executor_loop_sleep, [0.03]),
    ?assert(Ms >= 29.5),
    ?assert(Ms < 1000),
    receive {other, Other} -> ?assertMatch({ok, [<<"worker">>, _]}, Other)
    after 5000 -> ct:fail(no_other)
    end,
    ?assertMatch(#{<<"scheduled">> := 1, <<"fired">> := 1, <<"refused">> := 1}, spy()).

%% ---- helpers ---------------------------------------------------------------------------

%% The spies of every interpreter, added up.
spy() ->
    ep_test_lib:sum(erlang_python_ct:each(?H, spy, [])).

is_result(I, {ok, [I, Ms]}) -> Ms >= 9.5;
is_result(_, _) -> false.
