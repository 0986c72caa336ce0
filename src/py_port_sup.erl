%% @doc The processes mode: the pool's shared state, `workers' worker processes (each a
%% Python OS process behind a port) and the gate that opens the API to them.  Started by
%% erlang_python_sup instead of the NIF runtime when the mode is `processes'.
-module(py_port_sup).
-behaviour(supervisor).

-export([start_link/0, init/1]).

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    supervisor:start_link({local, ?MODULE}, ?MODULE, []).

-spec init([]) -> {ok, {supervisor:sup_flags(), [supervisor:child_spec()]}}.
init([]) ->
    N = application:get_env(erlang_python, workers, 4),
    Pool = #{id => py_port_pool, start => {py_port_pool, start_link, [N]},
             shutdown => 5000, type => worker, modules => [py_port_pool]},
    Workers = [#{id => {py_port_worker, I}, start => {py_port_worker, start_link, [I]},
                 shutdown => 5000, type => worker, modules => [py_port_worker]}
               || I <- lists:seq(1, N)],
    Gate = #{id => py_port_gate, start => {py_port_gate, start_link, []},
             shutdown => infinity, type => worker, modules => [py_port_gate]},
    %% A worker survives its OS processes' crashes (it restarts them itself): a restart of
    %% the gen_server is a bug's, rare.
    {ok, {#{strategy => one_for_one, intensity => 10, period => 10}, [Pool | Workers] ++ [Gate]}}.
