%% @doc Top supervisor: the Python runtime (interpreter configuration and worker threads).
-module(erlang_python_sup).
-behaviour(supervisor).

-export([start_link/0, init/1]).

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    supervisor:start_link({local, ?MODULE}, ?MODULE, []).

-spec init([]) -> {ok, {supervisor:sup_flags(), [supervisor:child_spec()]}}.
init([]) ->
    Runtime = #{id => py_runtime,
                start => {py_runtime, start_link, []},
                restart => permanent,
                shutdown => infinity,
                type => worker,
                modules => [py_runtime]},
    {ok, {#{strategy => one_for_one, intensity => 3, period => 10}, [Runtime]}}.
