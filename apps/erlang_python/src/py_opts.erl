%% @doc Option handling shared by py, py_wsgi and py_asgi.
-module(py_opts).

-export([timeout/1]).

%% @doc The `timeout' option, or the application's `call_timeout' default.
-spec timeout(map()) -> {ok, timeout()} | {error, {badarg, {timeout, term()}}}.
timeout(Opts) ->
    case maps:get(timeout, Opts, default) of
        default -> {ok, application:get_env(erlang_python, call_timeout, 30000)};
        infinity -> {ok, infinity};
        T when is_integer(T), T >= 0 -> {ok, T};
        T -> {error, {badarg, {timeout, T}}}
    end.
