%% @doc The generic call path: run any Python function from Erlang.
%%
%% ```
%% {ok, 4.0} = py:call(math, sqrt, [16.0]),
%% {ok, <<"a-b">>} = py:call(builtins, <<"str.join">>, [<<"-">>, [<<"a">>, <<"b">>]]),
%% {error, timeout} = py:call(time, sleep, [5], #{timeout => 100}).
%% '''
%%
%% Arguments and results convert as in docs/types.md.  Errors:
%% `{error, {python, Type, Message, Traceback}}' (an exception; binaries, Traceback one
%% binary per line), `{error, {badarg, What}}' (an argument that cannot be converted or an
%% option of the wrong type), `{error, {unconvertible, TypeName}}' (a result with no
%% Erlang form), `{error, timeout}', `{error, not_started}'.
-module(py).

-export([call/3, call/4, info/0, set_call_timeout/1]).

-include("py_await.hrl").

-type name() :: atom() | binary().
-type error() :: {python, binary(), binary(), [binary()]}
               | {badarg, term()}
               | {unconvertible, binary()}
               | too_deep
               | timeout
               | not_started
               | {worker_exit, term()}.
-type opts() :: #{timeout => timeout(), kwargs => #{name() => term()}}.
-export_type([name/0, error/0, opts/0]).

%% @equiv call(Module, Function, Args, #{})
-spec call(name(), name(), list()) -> {ok, term()} | {error, error()}.
call(Module, Function, Args) ->
    call(Module, Function, Args, #{}).

%% @doc Calls `Module.Function(*Args, **Kwargs)' on a Python worker.  `Function'
%% may be dotted (`<<"Path.home">>').  An async function is awaited on the worker's event
%% loop.  The call runs on whichever worker is free: in `subinterpreters' mode, in any one
%% of the interpreters, and in `processes' mode in any one of the worker processes, whose
%% module globals are their own (see py_mode).  Options: `timeout' (ms or infinity;
%% default the application's `call_timeout'), `kwargs' (a map with atom or binary keys).
-spec call(name(), name(), list(), opts()) -> {ok, term()} | {error, error()}.
call(Module, Function, Args, Opts) when is_map(Opts) ->
    case py_opts:timeout(Opts) of
        {ok, Timeout} ->
            Kwargs = maps:get(kwargs, Opts, #{}),
            case py_mode:backend() of
                nif ->
                    py_mode:with_fallback(
                      fun() ->
                              Tag = make_ref(),
                              case py_nif:call(Tag, Timeout, Module, Function, Args, Kwargs) of
                                  {ok, _Job} -> ?PY_AWAIT(Tag);
                                  {error, _} = Error -> Error
                              end
                      end);
                port ->
                    py_port:call(Module, Function, Args, Kwargs, Timeout)
            end;
        {error, _} = Error -> Error
    end;
call(_Module, _Function, _Args, Opts) ->
    {error, {badarg, {options, Opts}}}.

%% @doc Changes the default timeout of `py:call', `py_wsgi:run' and `py_asgi:run' on a
%% running node (the application's `call_timeout', which is otherwise read when the
%% application starts).  A rare operation: it updates a persistent term.
-spec set_call_timeout(timeout()) -> ok | {error, {badarg, {call_timeout, term()}}}.
set_call_timeout(Timeout) ->
    py_opts:set_default_timeout(Timeout).

%% @doc The interpreter and the workers:
%% <ul>
%% <li>`mode': where Python runs now (`gil', `subinterpreters', `free_threaded' or
%%     `processes'; see py_mode), `configured': the mode asked for (`auto' by default),
%%     `fallback': present when `auto' left sub-interpreters, `#{module, message}' of the
%%     module that refused them;</li>
%% <li>`workers' (0 when stopped), `running', `queued' (calls waiting for a worker);</li>
%% <li>in the NIF modes: `spares_running' (spare workers standing in for stuck ones, see
%%     the `spare_workers' application env), `interpreters', one map per interpreter
%%     created, `#{id, main, state (running | idle), threads}' (the sub-interpreters stay
%%     when the application stops); `python_version', `build_python_version',
%%     `libpython', `subinterpreters_supported', `free_threaded_build'; `loops',
%%     `#{asyncio => N, uvloop => M}': how many running workers have each kind of event
%%     loop (the `event_loop' application env);</li>
%% <li>in the processes mode: `python_version' and `executable' of the worker processes,
%%     `os_pids', `in_flight', `restarts' and `recycles' (`queued': requests waiting for
%%     a worker process to start; see docs/processes.md).</li>
%% </ul>
-spec info() -> #{atom() => term()}.
info() ->
    Backend = case py_mode:backend() of
                  nif -> maps:remove(refused, py_nif:info());
                  port -> py_port:info()
              end,
    maps:merge(Backend, py_mode:info()).
