%% @doc Option handling shared by py, py_wsgi and py_asgi.
%%
%% The default timeout is the application's `call_timeout'.  While the application runs it
%% is read from a persistent term that py_runtime fills in at start (and
%% {@link py:set_call_timeout/1} changes): an `application:get_env/3' per call costs an ETS
%% lookup under a shared lock, measured at a quarter of the throughput of a trivial
%% `py:call' at 50 callers.  Without the application running, the environment is read.
-module(py_opts).

-export([timeout/1, coalesce/1, load_default_timeout/0, set_default_timeout/1,
         clear_default_timeout/0]).

-define(KEY, {?MODULE, call_timeout}).

-spec timeout(map()) -> {ok, timeout()} | {error, {badarg, {timeout | call_timeout, term()}}}.
timeout(Opts) ->
    case maps:find(timeout, Opts) of
        {ok, T} -> check(timeout, T);
        error -> check(call_timeout, default())
    end.

%% @doc The streams' `coalesce' start option (py_asgi:start/4, py_wsgi:start/4): a
%% boolean, default false.
-spec coalesce(map()) -> {ok, boolean()} | {error, {badarg, {coalesce, term()}}}.
coalesce(Opts) ->
    case maps:get(coalesce, Opts, false) of
        C when is_boolean(C) -> {ok, C};
        C -> {error, {badarg, {coalesce, C}}}
    end.

default() ->
    case persistent_term:get(?KEY, undefined) of
        undefined -> application:get_env(erlang_python, call_timeout, 30000);
        T -> T
    end.

%% @doc Copies the application's `call_timeout' (default 30000) into the persistent term.
-spec load_default_timeout() -> ok.
load_default_timeout() ->
    persistent_term:put(?KEY, application:get_env(erlang_python, call_timeout, 30000)).

%% @doc Sets the default timeout (and the application environment, so that both agree).
-spec set_default_timeout(timeout()) -> ok | {error, {badarg, {call_timeout, term()}}}.
set_default_timeout(T) ->
    case check(call_timeout, T) of
        {ok, T} ->
            ok = application:set_env(erlang_python, call_timeout, T),
            persistent_term:put(?KEY, T);
        {error, _} = Error ->
            Error
    end.

%% @doc Forgets the persistent term (the application stopped): the environment is read
%% again.
-spec clear_default_timeout() -> ok.
clear_default_timeout() ->
    _ = persistent_term:erase(?KEY),
    ok.

check(_Name, infinity) -> {ok, infinity};
check(_Name, T) when is_integer(T), T >= 0 -> {ok, T};
check(Name, T) -> {error, {badarg, {Name, T}}}.
