%% @doc Where Python runs: the execution mode, one rule for each decision.
%%
%% Configured by the application env `mode' of `erlang_python', else the OS environment
%% variable `ERLANG_PYTHON_MODE' (same names), else `auto':
%% <ul>
%% <li>`gil': worker threads in one interpreter under one GIL (any Python 3.11+);</li>
%% <li>`subinterpreters': one sub-interpreter with its own GIL per worker (3.12+): Python
%%     runs on as many cores as there are workers; module globals are per interpreter;</li>
%% <li>`free_threaded': worker threads in one interpreter of a free-threaded
%%     (`Py_GIL_DISABLED') build.  Untested: no such build could be run yet;</li>
%% <li>`processes': Python in OS processes behind ports (chosen explicitly only);</li>
%% <li>`auto': `subinterpreters' on Python 3.12+, else `gil'.  When a module refuses
%%     sub-interpreters (an ImportError saying so, e.g. pydantic-core under FastAPI), the
%%     workers are replaced by `gil' ones, the refusal is logged with the module's name
%%     and the call that met it is run again (see {@link with_fallback/1}).  `auto' never
%%     picks `free_threaded' (untested) or `processes'.</li>
%% </ul>
-module(py_mode).

-export([configured/0, default/0, resolve/2, with_fallback/1, publish/1, info/0]).

-type configured() :: auto | gil | subinterpreters | free_threaded | processes.
-type mode() :: gil | subinterpreters | free_threaded.
-export_type([configured/0, mode/0]).

-define(MODES, [auto, gil, subinterpreters, free_threaded, processes]).
-define(KEY, {?MODULE, info}).

%% @doc The configured mode: the application env `mode', else `ERLANG_PYTHON_MODE',
%% else `auto'.  Raises `error({badarg, {mode, Value}})' for anything else.
-spec configured() -> configured().
configured() ->
    case application:get_env(erlang_python, mode) of
        {ok, Mode} -> check(Mode);
        undefined ->
            case os:getenv("ERLANG_PYTHON_MODE") of
                false -> default();
                "" -> default();
                Name -> check(Name)
            end
    end.

%% @doc The mode when neither the application env nor `ERLANG_PYTHON_MODE' sets one.
-spec default() -> auto.
default() ->
    auto.

check(Mode) when is_atom(Mode) ->
    case lists:member(Mode, ?MODES) of
        true -> Mode;
        false -> erlang:error({badarg, {mode, Mode}})
    end;
check(Name) when is_list(Name) ->
    case [M || M <- ?MODES, atom_to_list(M) =:= Name] of
        [Mode] -> Mode;
        [] -> erlang:error({badarg, {mode, Name}})
    end.

%% @doc The mode the NIF runs for a configured one, given the interpreter
%% (`py_nif:info()'); the second element says why, for the log.
-spec resolve(configured(), #{atom() => term()}) ->
          {ok, mode(), binary()} | {error, {mode_unavailable, configured(), binary()}}.
resolve(gil, #{free_threaded_build := true}) ->
    unavailable(gil, <<"this CPython is a free-threaded build: use mode free_threaded">>);
resolve(gil, _) ->
    {ok, gil, <<"configured">>};
resolve(subinterpreters, #{free_threaded_build := true}) ->
    unavailable(subinterpreters, <<"this CPython is a free-threaded build: use mode "
                                   "free_threaded">>);
resolve(subinterpreters, #{subinterpreters_supported := true}) ->
    {ok, subinterpreters, <<"configured">>};
resolve(subinterpreters, #{python_version := V}) ->
    unavailable(subinterpreters, <<"needs Python 3.12 or later (sub-interpreters with their "
                                   "own GIL); this is ", V/binary>>);
resolve(free_threaded, #{free_threaded_build := true}) ->
    {ok, free_threaded, <<"configured (untested: no free-threaded build has run the "
                          "suites yet)">>};
resolve(free_threaded, #{python_version := V}) ->
    unavailable(free_threaded, <<"needs a free-threaded CPython build (Py_GIL_DISABLED); "
                                 "this is ", V/binary>>);
resolve(processes, _) ->
    unavailable(processes, <<"not provided by this build of erlang_python">>);
resolve(auto, #{free_threaded_build := true}) ->
    unavailable(auto, <<"this CPython is a free-threaded build, and auto does not choose "
                        "the untested free_threaded mode: set mode free_threaded">>);
resolve(auto, #{subinterpreters_supported := true, python_version := V}) ->
    {ok, subinterpreters, <<"auto: Python ", V/binary, " runs one sub-interpreter per "
                            "worker; gil if a module refuses sub-interpreters">>};
resolve(auto, #{python_version := V}) ->
    {ok, gil, <<"auto: Python ", V/binary, " has no sub-interpreters with their own "
                "GIL (3.12+)">>}.

unavailable(Mode, Why) ->
    {error, {mode_unavailable, Mode, Why}}.

%% @doc Runs `Call' (a call through the NIF) and, when it fails with an ImportError,
%% asks py_runtime whether `auto' mode has fallen back from sub-interpreters to `gil'
%% (because of this error, or earlier); if so `Call' runs again, once.  (After a fall
%% back every call failing with ImportError is run a second time: a refusal met just
%% before the switch cannot be told apart from an ImportError met after it.)  Any other
%% result is returned as it is.
-spec with_fallback(fun(() -> Result)) -> Result.
with_fallback(Call) ->
    case Call() of
        {error, {python, <<"ImportError">>, _, _}} = Error ->
            case py_runtime:fallback() of
                retry -> Call();
                no -> Error
            end;
        Result ->
            Result
    end.

%% @doc Records what py:info() adds to the NIF's view (py_runtime calls it).
-spec publish(#{configured := configured(), fallback := undefined | map()}) -> ok.
publish(Info) ->
    persistent_term:put(?KEY, Info).

%% @doc `configured' and, after auto fell back, `fallback' (#{module, message}).
-spec info() -> #{configured := configured(), fallback => map()}.
info() ->
    case persistent_term:get(?KEY, undefined) of
        undefined -> #{configured => configured()};
        #{fallback := undefined} = I -> maps:remove(fallback, I);
        I -> I
    end.
