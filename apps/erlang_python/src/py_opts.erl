%% @doc Option handling shared by py, py_wsgi and py_asgi.
-module(py_opts).

-export([timeout/1]).

%% @doc The `timeout' option, or else the application's `call_timeout' (30000 when unset).
-spec timeout(map()) -> {ok, timeout()} | {error, {badarg, {timeout | call_timeout, term()}}}.
timeout(Opts) ->
    case maps:find(timeout, Opts) of
        {ok, T} -> check(timeout, T);
        error -> check(call_timeout, application:get_env(erlang_python, call_timeout, 30000))
    end.

check(_Name, infinity) -> {ok, infinity};
check(_Name, T) when is_integer(T), T >= 0 -> {ok, T};
check(Name, T) -> {error, {badarg, {Name, T}}}.
