%% @doc The processes mode: the pool's shared state, `workers' worker processes (each a
%% Python OS process behind a port) and the gate that opens the API to them.  Started by
%% erlang_python_sup instead of the NIF runtime when the mode is `processes'.
-module(py_port_sup).
-behaviour(supervisor).

-export([start_link/0, init/1]).

%% @doc Starts the pool.  The workers run the interpreter whose libpython the VM loaded
%% (py_python:load/0: the rule of py_python, applied once per VM as for the NIF modes,
%% whose argument checks this mode uses), as the real executable behind it; their
%% `sys.path' and venv are py_runtime's configuration, read at each start as for the
%% embedded interpreter.  Errors are those of py_python:load/0 and
%% `{badarg, {python_path, Entry}}'.
-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    case py_python:load() of
        {ok, #{executable := Python}} ->
            try py_runtime:config() of
                #{workers := N, paths := Paths, venv := Venv} ->
                    Setup = #{python => Python, paths => Paths, venv => Venv},
                    supervisor:start_link({local, ?MODULE}, ?MODULE, {N, Setup})
            catch
                error:{badarg, _} = Bad -> {error, Bad}
            end;
        {error, _} = Error ->
            Error
    end.

-spec init({pos_integer(), py_port_worker:setup()}) ->
          {ok, {supervisor:sup_flags(), [supervisor:child_spec()]}}.
init({N, Setup}) ->
    Pool = #{id => py_port_pool, start => {py_port_pool, start_link, [N]},
             shutdown => 5000, type => worker, modules => [py_port_pool]},
    Workers = [#{id => {py_port_worker, I}, start => {py_port_worker, start_link, [I, Setup]},
                 shutdown => 5000, type => worker, modules => [py_port_worker]}
               || I <- lists:seq(1, N)],
    Gate = #{id => py_port_gate, start => {py_port_gate, start_link, []},
             shutdown => infinity, type => worker, modules => [py_port_gate]},
    %% A worker survives its OS processes' crashes (it restarts them itself): a restart of
    %% the gen_server is a bug's, rare.
    {ok, {#{strategy => one_for_one, intensity => 10, period => 10}, [Pool | Workers] ++ [Gate]}}.
