%% @doc The execution mode: which one is configured, and which backend serves the API.
%%
%% `configured/0' is the rule of CONTRACTS.md: the application env `mode' of
%% erlang_python (`auto | gil | subinterpreters | free_threaded | processes'; not listed
%% in the .app file, so that "unset" can be told apart), else the OS environment variable
%% `ERLANG_PYTHON_MODE' (same names), else `auto'.
%%
%% `backend/0' is the one routing decision of `py', `py_wsgi' and `py_asgi': `port' while
%% the processes mode's workers serve (py_port_gate opens and closes it), `nif' otherwise
%% (including while stopped, where the NIF answers `not_started').  A persistent term:
%% read per call, written at start and stop only.
-module(py_mode).

-export([configured/0, modes/0, default/0, backend/0, set_backend/1]).

-type mode() :: auto | gil | subinterpreters | free_threaded | processes.
-type backend() :: nif | port.
-export_type([mode/0, backend/0]).

-define(MODES, [auto, gil, subinterpreters, free_threaded, processes]).
-define(BACKEND, {?MODULE, backend}).

-spec configured() -> mode().
configured() ->
    case application:get_env(erlang_python, mode) of
        {ok, Mode} -> check(Mode);
        undefined ->
            case os:getenv("ERLANG_PYTHON_MODE") of
                false -> default();
                "" -> default();
                Text -> check(Text)
            end
    end.

check(Mode) when is_atom(Mode) -> check(atom_to_list(Mode));
check(Text) ->
    case [M || M <- ?MODES, atom_to_list(M) =:= Text] of
        [Mode] -> Mode;
        [] -> erlang:error({bad_mode, Text})
    end.

%% @doc Every mode that can be configured.
-spec modes() -> [mode(), ...].
modes() -> ?MODES.

%% @doc The mode when neither the application env nor `ERLANG_PYTHON_MODE' names one.
-spec default() -> mode().
default() -> auto.

-spec backend() -> backend().
backend() ->
    persistent_term:get(?BACKEND, nif).

%% @doc Routes the API to `Backend' (`nif' erases the term: the default).
-spec set_backend(backend()) -> ok.
set_backend(nif) ->
    _ = persistent_term:erase(?BACKEND),
    ok;
set_backend(port) ->
    persistent_term:put(?BACKEND, port).
