%% Test helper: bin/pyweb run as a user runs it, as an OS process whose
%% output (stdout and stderr) is kept line by line. A process of this module
%% owns the port; the test asks it for lines, sends signals and waits for the
%% exit status.
-module(pyweb_proc).
-compile(nowarn_missing_spec).

-export([start/2, wait/3, wait/2, port/1, output/1, signal/2, wait_exit/2, stop/1,
         os_pid/1, pyweb/0]).

-record(p, {owner :: pid(), os_pid :: string()}).

%% The repository's bin/pyweb (from .../_build/test/lib/py_web/ebin).
pyweb() ->
    Beam = code:which(py_web_cli),
    Root = lists:foldl(fun(_, D) -> filename:dirname(D) end, Beam, lists:seq(1, 6)),
    filename:join([Root, "bin", "pyweb"]).

%% Start bin/pyweb with Args; Opts: `cd' (its directory), `env' ([{Name,
%% Value | false}]), `exe' (another program, e.g. a wrapper that passes a file
%% descriptor on; it gets bin/pyweb's path as first argument).
start(Args, Opts) ->
    Parent = self(),
    Owner = spawn(fun() -> own(Parent, Args, Opts) end),
    receive
        {Owner, os_pid, P} -> #p{owner = Owner, os_pid = P}
    after 10000 -> error(no_start)
    end.

own(Parent, Args, Opts) ->
    {Exe, Args1} = case maps:find(exe, Opts) of
                       {ok, E} -> {E, Args};
                       error -> {pyweb(), Args}
                   end,
    Port = open_port({spawn_executable, Exe},
                     [{args, Args1}, {cd, maps:get(cd, Opts, ".")}, {env, maps:get(env, Opts, [])},
                      exit_status, stderr_to_stdout, binary, {line, 65536}]),
    {os_pid, OsPid} = erlang:port_info(Port, os_pid),
    Parent ! {self(), os_pid, integer_to_list(OsPid)},
    loop(Port, [], <<>>, running).

loop(Port, Lines, Partial, Status) ->
    receive
        {Port, {data, {eol, L}}} -> loop(Port, [<<Partial/binary, L/binary>> | Lines], <<>>, Status);
        {Port, {data, {noeol, L}}} -> loop(Port, Lines, <<Partial/binary, L/binary>>, Status);
        {Port, {exit_status, S}} -> loop(Port, Lines, Partial, {exited, S});
        {From, output} ->
            From ! {self(), output, lists:reverse(Lines), Status},
            loop(Port, Lines, Partial, Status)
    end.

os_pid(#p{os_pid = P}) -> P.

%% The output so far, one binary.
output(#p{owner = O}) ->
    {Lines, _} = snapshot(O),
    iolist_to_binary([[L, $\n] || L <- Lines]).

snapshot(O) ->
    O ! {self(), output},
    receive {O, output, Lines, Status} -> {Lines, Status} after 5000 -> error(owner_gone) end.

%% Wait until a line of the output matches Re; its captures (binaries).
wait(P, Re) -> wait(P, Re, 60000).

wait(P = #p{owner = O}, Re, Timeout) ->
    Deadline = erlang:monotonic_time(millisecond) + Timeout,
    wait_loop(P, O, Re, Deadline).

wait_loop(P, O, Re, Deadline) ->
    {Lines, Status} = snapshot(O),
    case [C || L <- Lines, {match, C} <- [re:run(L, Re, [{capture, all_but_first, binary}])]] of
        [C | _] -> C;
        [] ->
            case Status =/= running orelse erlang:monotonic_time(millisecond) > Deadline of
                true -> error({no_line, Re, Status, iolist_to_binary([[L, $\n] || L <- Lines])});
                false -> timer:sleep(50), wait_loop(P, O, Re, Deadline)
            end
    end.

%% The first TCP port bin/pyweb says it is running on.
port(P) ->
    [Port] = wait(P, "running on https?://[^ ]+:([0-9]+) "),
    binary_to_integer(Port).

signal(#p{os_pid = Pid}, Sig) ->
    _ = os:cmd("kill -" ++ Sig ++ " " ++ Pid),
    ok.

%% {ExitStatus, Output} once bin/pyweb exited.
wait_exit(P = #p{owner = O}, Timeout) ->
    Deadline = erlang:monotonic_time(millisecond) + Timeout,
    exit_loop(P, O, Deadline).

exit_loop(P, O, Deadline) ->
    case snapshot(O) of
        {Lines, {exited, S}} -> {S, iolist_to_binary([[L, $\n] || L <- Lines])};
        {Lines, running} ->
            case erlang:monotonic_time(millisecond) > Deadline of
                true -> error({no_exit, iolist_to_binary([[L, $\n] || L <- Lines])});
                false -> timer:sleep(50), exit_loop(P, O, Deadline)
            end
    end.

%% Make sure it is gone (end of a test, whatever happened): SIGTERM, then
%% SIGKILL of its process group (bin/pyweb and its supervisor; the server
%% processes stop when their supervisor's control socket closes).
stop(P = #p{os_pid = Pid, owner = O}) ->
    case snapshot(O) of
        {_, {exited, _}} -> ok;
        _ ->
            signal(P, "TERM"),
            try wait_exit(P, 15000)
            catch error:_ -> os:cmd("kill -KILL -" ++ Pid)
            end
    end,
    exit(O, kill),
    ok.
