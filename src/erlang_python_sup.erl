%% @doc Top supervisor: the Python runtime (interpreter configuration and worker threads),
%% or in the `processes' mode (py_mode:configured/0) the worker processes (py_port_sup).
-module(erlang_python_sup).
-behaviour(supervisor).

-export([start_link/0, init/1]).

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    supervisor:start_link({local, ?MODULE}, ?MODULE, []).

-spec init([]) -> {ok, {supervisor:sup_flags(), [supervisor:child_spec()]}}.
init([]) ->
    {ok, {#{strategy => one_for_one, intensity => 3, period => 10}, [runtime(configured())]}}.

%% A mode that is no mode goes to py_runtime, whose start fails with the documented
%% {badarg, {mode, Value}}.
configured() ->
    try py_mode:configured()
    catch error:{badarg, {mode, _}} -> invalid
    end.

runtime(processes) ->
    #{id => py_port_sup,
      start => {py_port_sup, start_link, []},
      restart => permanent,
      shutdown => infinity,
      type => supervisor,
      modules => [py_port_sup]};
runtime(_NifModeOrInvalid) ->
    #{id => py_runtime,
      start => {py_runtime, start_link, []},
      restart => permanent,
      shutdown => infinity,
      type => worker,
      modules => [py_runtime]}.
