%% EUnit tests of py_opts:timeout/1: the `timeout' option of py:call/4 (and of py_wsgi and
%% py_asgi), falling back to the application's `call_timeout'.
-module(py_opts_tests).

-include_lib("eunit/include/eunit.hrl").

%% Each test runs with call_timeout unset (the built-in default 30000) or set as it needs,
%% and restores what was there.
with_env(Value, Fun) ->
    Old = application:get_env(erlang_python, call_timeout),
    case Value of
        unset -> application:unset_env(erlang_python, call_timeout);
        V -> application:set_env(erlang_python, call_timeout, V)
    end,
    try Fun()
    after
        case Old of
            undefined -> application:unset_env(erlang_python, call_timeout);
            {ok, O} -> application:set_env(erlang_python, call_timeout, O)
        end
    end.

default_without_env_test() ->
    with_env(unset, fun() -> ?assertEqual({ok, 30000}, py_opts:timeout(#{})) end).

default_from_env_test() ->
    with_env(1234, fun() -> ?assertEqual({ok, 1234}, py_opts:timeout(#{})) end),
    with_env(infinity, fun() -> ?assertEqual({ok, infinity}, py_opts:timeout(#{})) end).

app_file_default_test() ->
    ok = case application:load(erlang_python) of
             ok -> ok;
             {error, {already_loaded, erlang_python}} -> ok
         end,
    {ok, Env} = application:get_all_key(erlang_python),
    ?assertEqual(30000, proplists:get_value(call_timeout, proplists:get_value(env, Env))).

explicit_overrides_env_test() ->
    with_env(1234, fun() ->
                           ?assertEqual({ok, 5}, py_opts:timeout(#{timeout => 5})),
                           ?assertEqual({ok, infinity}, py_opts:timeout(#{timeout => infinity}))
                   end).

valid_values_test_() ->
    [?_assertEqual({ok, T}, py_opts:timeout(#{timeout => T}))
     || T <- [0, 1, 100, 30000, 1 bsl 32, infinity]].

other_options_ignored_test() ->
    with_env(unset, fun() ->
                            ?assertEqual({ok, 30000}, py_opts:timeout(#{kwargs => #{a => 1}})),
                            ?assertEqual({ok, 7}, py_opts:timeout(#{kwargs => #{}, timeout => 7}))
                    end).

invalid_values_test_() ->
    [?_assertEqual({error, {badarg, {timeout, T}}}, py_opts:timeout(#{timeout => T}))
     || T <- [-1, -1000, 1.5, 100.0, soon, "100", <<"100">>, {100}, [], #{}, undefined]].
