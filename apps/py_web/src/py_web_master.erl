%% @doc bin/pyweb's supervisor: the process a user starts, signals and
%% sees exit. It runs no Python. It opens the listening sockets, starts a
%% server process (another VM: py_web_child) that gets them over the
%% control channel (py_web_control), and stays to:
%%
%% <ul>
%% <li>reload, on SIGHUP, on a change of a watched file (`--reload'), and
%%     when a server process reached `--limit-max-requests': a new server
%%     process loads the app from scratch (the interpreter lives as long as
%%     its VM, so new code means a new VM) and starts accepting on the same
%%     sockets; once it is ready the old one stops accepting, finishes the
%%     requests in flight and answers one last request on each kept-alive
%%     connection (py_web:retire/1). No connection is refused meanwhile:
%%     the sockets' queues are the kernel's, shared by both. If the new one
%%     cannot start (the app fails to import), the old one goes on serving.</li>
%% <li>stop, on SIGINT or SIGTERM (which bin/pyweb passes on as SIGUSR2;
%%     SIGTERM may come directly too: see stop_signal/2): the server
%%     processes stop gracefully; a second signal kills them.</li>
%% <li>start a new server process when one dies.</li>
%% </ul>
%%
%% Exit status: the first server process's when it could not start (1: the
%% app cannot be loaded; 3: the server cannot start), 0 after a stop, 143
%% after a forced one (bin/pyweb says 130 when that was SIGINT).
-module(py_web_master).

-export([run/1, check/1]).

-define(EXIT_STARTUP, 3).
-define(EXIT_FORCED, 143).
%% A server process that dies within this time of being ready counts as
%% failing again: the next one waits longer (up to ?MAX_BACKOFF).
-define(STABLE_MS, 10000).
-define(MAX_BACKOFF, 30000).
%% One stop can reach this process twice: as SIGUSR2 from bin/pyweb, which
%% passes SIGINT and SIGTERM on so, and as SIGTERM itself (a signal to the
%% process group; systemd, which signals every process of the service). A
%% signal of the other kind this soon after the first is that same stop.
-define(SAME_STOP_MS, 2000).

-record(gen, {
    n :: pos_integer(),
    port :: port(),
    os_pid :: string(),
    channel :: undefined | py_web_control:channel(),
    state = starting :: starting | ready | retiring,
    since :: integer()
}).

-record(m, {
    cli :: map(),
    listeners :: [py_web_bind:listener()],
    control :: socket:socket(),
    control_name :: string(),
    token :: binary(),                        %% what a server process proves itself with
    gens = #{} :: #{pos_integer() => #gen{}},
    channels = #{} :: #{py_web_control:channel() => pos_integer()},
    next = 1 :: pos_integer(),
    current :: undefined | pos_integer(),      %% the generation serving
    announced = false :: boolean(),            %% "running on ..." was said
    pending = false :: boolean(),              %% a reload asked for while one starts
    stopping = false :: boolean(),
    stopped_by :: undefined | paired | {sigterm | sigusr2, integer()},  %% the first stop signal
    watch :: undefined | py_web_watch:t(),
    backoff = 0 :: non_neg_integer(),
    exit = 0 :: non_neg_integer()
}).

%% @doc Run bin/pyweb's supervisor; never returns.
-spec run(py_web_cli:cli()) -> no_return().
run(Cli0) ->
    Cli = prepare(Cli0),
    case py_web_logging:setup(Cli) of
        ok -> ok;
        {error, R} -> fail(2, "--log-config: ~ts", [py_web_log:reason(R)])
    end,
    _ = [logger:notice("pyweb: ~ts ~ts: ignored (~ts)", [Name, value(V), Why])
         || {Name, V, Why} <- maps:get(ignored, Cli, []), Why =/= ""],
    _ = [logger:notice("pyweb: --config: ~ts", [N]) || N <- maps:get(notes, Cli, [])],
    py_web_signals:install(self(), [sigterm, sigusr2, sighup]),
    Listeners = listen(Cli),
    {ok, Control, Name} = case py_web_control:listen() of
                              {ok, _, _} = Ok -> Ok;
                              {error, R2} -> fail(?EXIT_STARTUP, "control socket: ~ts",
                                                  [py_web_log:reason(R2)])
                          end,
    Self = self(),
    spawn_link(fun() -> py_web_control:accept_loop(Control, Self) end),
    _ = write_pidfile(Cli),
    logger:info("pyweb: started supervisor process [~s]", [os:getpid()]),
    Watch = watch(Cli),
    %% The control socket's name can be found by anyone on the machine; the
    %% sockets go only to a process that has this (in its environment, which
    %% only the same user can read).
    Token = base64:encode(crypto:strong_rand_bytes(18)),
    M = spawn_gen(#m{cli = Cli, listeners = Listeners, control = Control,
                     control_name = Name, token = Token, watch = Watch}),
    loop(M).

value(true) -> "";
value(V) -> V.

%% @doc Check a command line as run/1 would before it starts anything (the
%% environment it names, the server's options) and halt: 0, or 2 with the
%% reason on standard error.
-spec check(py_web_cli:cli()) -> no_return().
check(Cli) ->
    _ = prepare(Cli),
    halt(0).

%% The environment first (--chdir, --env-file, --env), then what it says.
prepare(Cli) ->
    _ = case maps:find(chdir, Cli) of
        {ok, Dir} ->
            case file:set_cwd(Dir) of
                ok -> ok;
                {error, Why} -> fail(2, "--chdir ~ts: ~ts", [Dir, file:format_error(Why)])
            end;
        error -> ok
    end,
    _ = case maps:find(env_file, Cli) of
        {ok, File} ->
            case py_web_dotenv:load(File) of
                ok -> ok;
                {error, {env_file, _, {line, N}}} ->
                    fail(2, "--env-file ~ts: line ~B is not KEY=VALUE", [File, N]);
                {error, {env_file, _, R}} ->
                    fail(2, "--env-file ~ts: ~ts", [File, file:format_error(R)])
            end;
        error -> ok
    end,
    _ = [case string:split(KV, "=") of
             [K, V] when K =/= "" -> os:putenv(K, V);
             _ -> fail(2, "--env: expected KEY=VALUE, got ~ts", [KV])
         end || KV <- maps:get(env, Cli, [])],
    case py_web_cli:resolve(Cli, fun os:getenv/1) of
        {ok, Cli1} ->
            %% the server's options are checked here, once, before any process starts
            case py_web_opts:validate(maps:get(opts, Cli1)) of
                {ok, _} -> Cli1;
                {error, R1} -> fail(2, "~ts", [py_web_log:reason(R1)])
            end;
        {error, Msg} -> fail(2, "~ts", [Msg])
    end.

listen(#{opts := O}) ->
    {ok, V} = py_web_opts:validate(O),
    Opts = #{backlog => maps:get(backlog, V), reuse_port => maps:get(reuse_port, V),
             socket_opts => [binary, {active, false}]},
    lists:foldl(fun(B, Acc) ->
                        case py_web_bind:listen(B, Opts) of
                            {ok, L} -> Acc ++ [L];
                            {error, R} ->
                                _ = [py_web_bind:close(L) || L <- Acc],
                                fail(?EXIT_STARTUP, "~ts", [py_web_log:reason(R)])
                        end
                end, [], maps:get(bind, V)).

write_pidfile(#{pidfile := File}) ->
    Pid = case os:getenv("PYWEB_SCRIPT_PID") of
              false -> os:getpid();
              P -> P
          end,
    %% written whole or not at all: a process manager may read it at any time
    Tmp = File ++ ".tmp",
    case file:write_file(Tmp, [Pid, $\n]) of
        ok ->
            case file:rename(Tmp, File) of
                ok -> ok;
                {error, R} -> fail(2, "--pid ~ts: ~ts", [File, file:format_error(R)])
            end;
        {error, R} -> fail(2, "--pid ~ts: ~ts", [File, file:format_error(R)])
    end;
write_pidfile(_) ->
    ok.

watch(Cli = #{reload := true}) ->
    Dirs0 = case maps:get(reload_dirs, Cli, []) of
                [] -> [element(2, file:get_cwd())];
                Ds -> Ds
            end,
    {Dirs, Extra} = extra_files(maps:get(reload_extra, Cli, []), Dirs0),
    {Include, Exclude} = py_web_watch:patterns(maps:get(reload_includes, Cli, []) ++ Extra,
                                                maps:get(reload_excludes, Cli, [])),
    W = py_web_watch:new(#{dirs => Dirs, include => Include, exclude => Exclude}),
    logger:info("pyweb: watching ~B file(s) for changes in ~ts (~ts; not ~ts), every ~ts s",
                [length(py_web_watch:files(W)), lists:join(", ", Dirs),
                 lists:join(" ", Include), lists:join(" ", Exclude),
                 float_to_list(delay(Cli) / 1000, [{decimals, 2}, compact])]),
    erlang:send_after(delay(Cli), self(), py_web_watch),
    W;
watch(_) ->
    undefined.

delay(Cli) -> round(maps:get(reload_delay, Cli, 0.25) * 1000).

%% --reload-extra-file: a file under a watched directory is included by its
%% path relative to it; one elsewhere adds its directory, and its name.
extra_files(Files, Dirs) ->
    Abs = [filename:absname(D) || D <- Dirs],
    lists:foldl(
      fun(F, {Ds, Pats}) ->
              A = filename:absname(F),
              case [lists:nthtail(length(D) + 1, A) || D <- Abs, lists:prefix(D ++ "/", A)] of
                  [Rel | _] -> {Ds, Pats ++ [Rel]};
                  [] -> {Ds ++ [filename:dirname(A)], Pats ++ [filename:basename(A)]}
              end
      end, {Dirs, []}, Files).

%%--------------------------------------------------------------------
%% Server processes

spawn_gen(M = #m{next = N, cli = Cli, control_name = Name, token = Token}) ->
    Script = case os:getenv("PYWEB_SCRIPT") of
                 false -> fail(?EXIT_STARTUP, "PYWEB_SCRIPT is not set (run bin/pyweb)", []);
                 S -> S
             end,
    {ok, Cwd} = file:get_cwd(),
    Port = open_port({spawn_executable, Script},
                     [{args, maps:get(argv, Cli)}, {cd, Cwd}, exit_status, nouse_stdio,
                      {env, [{"PYWEB_CONTROL", Name}, {"PYWEB_CONTROL_TOKEN", binary_to_list(Token)},
                             {"PYWEB_GENERATION", integer_to_list(N)} | output(Cli)]}]),
    {os_pid, OsPid} = erlang:port_info(Port, os_pid),
    G = #gen{n = N, port = Port, os_pid = integer_to_list(OsPid), since = now_ms()},
    M#m{gens = (M#m.gens)#{N => G}, next = N + 1}.

%% --capture-output with --error-logfile FILE: bin/pyweb starts the server
%% process with its standard output and error appended to FILE.
output(#{capture_output := true, error_logfile := File}) when File =/= "-" ->
    [{"PYWEB_OUTPUT", filename:absname(File)}];
output(_) ->
    [].

%% A reload: a new generation, unless one is starting already (then one
%% more after it).
reload(M = #m{stopping = true}, _Why) ->
    M;
reload(M = #m{gens = Gens}, Why) ->
    case [G || G = #gen{state = starting} <- maps:values(Gens)] of
        [] ->
            logger:info("pyweb: ~ts: starting a new server process", [Why]),
            spawn_gen(M);
        _ ->
            M#m{pending = true}
    end.

loop(M) ->
    receive
        Msg ->
            M1 = try handle(Msg, M)
                 catch
                     C:R:St ->
                         %% a bug here must not take the server processes down
                         logger:error("pyweb: supervisor error on ~0tp: ~0tp~n~0tp", [Msg, {C, R}, St]),
                         M
                 end,
            loop(M1)
    end.

handle({py_web_control, _Ch, new}, M) ->
    %% who it is comes with its first message
    M;
handle({py_web_control, Ch, {term, {hello, N, OsPid, Token}, _}}, M = #m{gens = Gens}) ->
    case {Gens, proven(Token, M#m.token)} of
        {#{N := G = #gen{channel = undefined}}, true} when is_list(OsPid) ->
            Fds = [Fd || #{fd := Fd} <- M#m.listeners],
            ok = py_web_control:send(Ch, {serve, length(Fds)}, Fds),
            M#m{gens = Gens#{N := G#gen{channel = Ch, os_pid = OsPid}},
                channels = (M#m.channels)#{Ch => N}};
        _ ->
            py_web_control:close(Ch),
            M
    end;
handle({py_web_control, Ch, {term, ready, _}}, M) ->
    ready(maps:get(Ch, M#m.channels, undefined), M);
handle({py_web_control, Ch, {term, max_requests, _}}, M = #m{current = Current}) ->
    case maps:get(Ch, M#m.channels, undefined) of
        Current -> reload(M, "maximum number of requests reached");
        _ -> M
    end;
handle({py_web_control, Ch, closed}, M) ->
    M#m{channels = maps:remove(Ch, M#m.channels)};
handle({Port, {exit_status, Status}}, M) when is_port(Port) ->
    exited(Port, Status, M);
handle({py_web_signal, sighup}, M) ->
    reload(M, "SIGHUP");
handle({py_web_signal, S}, M) when S =:= sigterm; S =:= sigusr2 ->
    stop_signal(S, M);
handle(py_web_watch, M = #m{watch = W, cli = Cli}) ->
    {Changed, W1} = py_web_watch:changes(W),
    erlang:send_after(delay(Cli), self(), py_web_watch),
    M1 = M#m{watch = W1},
    case Changed of
        [] -> M1;
        _ ->
            Shown = [relative(F) || F <- lists:sublist(Changed, 3)],
            More = case length(Changed) > 3 of true -> ", ..."; false -> "" end,
            reload(M1, io_lib:format("changes detected in ~ts~ts", [lists:join(", ", Shown), More]))
    end;
handle({restart, Why}, M) ->
    reload(M, Why);
handle(_, M) ->
    M.

%% SIGTERM from the outside, SIGUSR2 from bin/pyweb (SIGINT or SIGTERM):
%% the first stops gracefully, the other kind soon after is the same stop,
%% any other forces.
stop_signal(S, M = #m{stopping = false}) ->
    logger:info("pyweb: shutting down (again to force)"),
    stop_all(M#m{stopping = true, pending = false, stopped_by = {S, now_ms()}});
stop_signal(S, M = #m{stopped_by = {First, At}}) when S =/= First ->
    case now_ms() - At < ?SAME_STOP_MS of
        true -> M#m{stopped_by = paired};
        false -> force(M)
    end;
stop_signal(_, M) ->
    force(M).

-spec force(#m{}) -> no_return().
force(M) ->
    logger:warning("pyweb: forced exit"),
    _ = [os:cmd("kill -KILL " ++ P) || #gen{os_pid = P} <- maps:values(M#m.gens)],
    finish(M#m{exit = ?EXIT_FORCED}).

proven(Token, Mine) ->
    is_binary(Token) andalso byte_size(Token) =:= byte_size(Mine)
        andalso crypto:hash_equals(Token, Mine).

relative(F) ->
    {ok, Cwd} = file:get_cwd(),
    case lists:prefix(Cwd ++ "/", F) of
        true -> lists:nthtail(length(Cwd) + 1, F);
        false -> F
    end.

ready(N, M = #m{gens = Gens, current = Old, announced = Announced}) when is_map_key(N, Gens) ->
    G = maps:get(N, Gens),
    Gens1 = Gens#{N := G#gen{state = ready, since = now_ms()}},
    M1 = M#m{gens = Gens1, current = N, announced = true},
    case maps:find(Old, Gens) of
        {ok, #gen{os_pid = OldPid}} ->
            logger:info("pyweb: server process [~s] serving; retiring [~s]",
                        [G#gen.os_pid, OldPid]);
        error when not Announced ->
            announce(M1);
        error ->
            logger:info("pyweb: server process [~s] serving", [G#gen.os_pid])
    end,
    M2 = retire_others(N, M1),
    case M2#m.stopping of
        true -> stop_all(M2);
        false -> after_start(M2)
    end;
ready(_, M) ->
    M.

announce(M = #m{listeners = Ls, cli = #{opts := O}}) ->
    Scheme = case maps:is_key(certfile, O) of true -> <<"https">>; false -> <<"http">> end,
    _ = [logger:info("pyweb: running on ~ts (Press CTRL+C to quit)",
                     [py_web_bind:url({Scheme, L})]) || L <- Ls],
    M.

retire_others(N, M = #m{gens = Gens}) ->
    Gens1 = maps:map(fun(K, G = #gen{state = ready, channel = Ch}) when K =/= N ->
                             _ = py_web_control:send(Ch, retire),
                             G#gen{state = retiring};
                        (_, G) -> G
                     end, Gens),
    M#m{gens = Gens1}.

%% A reload asked for while a server process was starting.
after_start(M = #m{pending = true}) ->
    reload(M#m{pending = false}, "another change");
after_start(M) ->
    M.

exited(Port, Status, M = #m{gens = Gens, current = Current}) ->
    case [G || G = #gen{port = P} <- maps:values(Gens), P =:= Port] of
        [G = #gen{n = N}] ->
            M1 = M#m{gens = maps:remove(N, Gens),
                     current = case N of Current -> undefined; _ -> Current end},
            gone(G, Status, M1);
        [] ->
            M
    end.

%% A server process ended.
gone(_G, _Status, M = #m{stopping = true}) ->
    maybe_finish(M);
gone(#gen{state = retiring}, _Status, M) ->
    M;
gone(#gen{state = starting, n = N}, Status, M = #m{announced = false}) ->
    %% the first one could not start: what it printed is the reason
    logger:debug("pyweb: server process ~B exited with status ~B", [N, Status]),
    finish(M#m{exit = case Status of 0 -> ?EXIT_STARTUP; _ -> Status end});
gone(#gen{state = starting}, Status, M = #m{current = Current}) when Current =/= undefined ->
    logger:error("pyweb: the new server process could not start (status ~B); the running "
                 "one goes on serving", [Status]),
    after_start(M);
gone(#gen{state = starting}, Status, M) ->
    restart_later(io_lib:format("the new server process could not start (status ~B)", [Status]),
                  false, M);
gone(#gen{state = ready, os_pid = P, since = Since}, Status, M) ->
    restart_later(io_lib:format("server process [~s] exited with status ~B", [P, Status]),
                  now_ms() - Since > ?STABLE_MS, M).

%% No server process serves: start one, at once after one that ran for a
%% while, else after a wait that doubles (up to ?MAX_BACKOFF).
restart_later(Why, Stable, M = #m{backoff = B}) ->
    Wait = case Stable of true -> 0; false -> min(?MAX_BACKOFF, max(500, B * 2)) end,
    logger:error("pyweb: ~ts; starting a new one~ts",
                 [Why, case Wait of 0 -> ""; _ -> io_lib:format(" in ~B ms", [Wait]) end]),
    erlang:send_after(Wait, self(), {restart, "no server process"}),
    M#m{backoff = Wait}.

stop_all(M = #m{gens = Gens}) ->
    _ = [case G of
             #gen{channel = undefined, os_pid = P} -> os:cmd("kill -TERM " ++ P);
             #gen{channel = Ch} -> py_web_control:send(Ch, stop)
         end || G <- maps:values(Gens)],
    maybe_finish(M).

maybe_finish(M = #m{gens = Gens}) when map_size(Gens) =:= 0 ->
    finish(M);
maybe_finish(M) ->
    M.

-spec finish(#m{}) -> no_return().
finish(#m{listeners = Ls, exit = Code, cli = Cli}) ->
    _ = [py_web_bind:close(L) || L <- Ls],
    _ = case maps:find(pidfile, Cli) of
        {ok, File} -> file:delete(File);
        error -> ok
    end,
    %% (after a failure, the server process's reason stays the last line)
    _ = Code =:= 0 andalso logger:info("pyweb: stopped"),
    py_web_logging:flush(),
    halt(Code).

now_ms() -> erlang:monotonic_time(millisecond).

-spec fail(non_neg_integer(), string(), list()) -> no_return().
fail(Code, Fmt, Args) ->
    io:format(standard_error, "pyweb: " ++ Fmt ++ "~n", Args),
    halt(Code).
