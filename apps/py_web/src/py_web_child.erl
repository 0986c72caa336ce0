%% @doc One server process of bin/pyweb (a VM its supervisor, py_web_master,
%% started): starts Python, gets the listening sockets over the control
%% channel, serves the app on them with py_web, says when it is ready, and
%% stops (`stop', or SIGTERM), or hands over to its successor (`retire': py_web:retire/1)
%% when the supervisor says so. When the app cannot be loaded it prints the
%% Python traceback (from the app's code on) and a one-line summary, and
%% exits with status 1; when the server cannot start, the reason and 3.
-module(py_web_child).

-export([run/2]).

-define(EXIT_APP, 1).
-define(EXIT_STARTUP, 3).

%% @doc Run one server process; never returns.
-spec run(py_web_cli:cli(), string()) -> no_return().
run(Cli0, Control) ->
    Gen = list_to_integer(os:getenv("PYWEB_GENERATION", "1")),
    %% not for the app's own subprocesses
    Token = list_to_binary(os:getenv("PYWEB_CONTROL_TOKEN", "")),
    os:unsetenv("PYWEB_CONTROL"),
    os:unsetenv("PYWEB_CONTROL_TOKEN"),
    os:unsetenv("PYWEB_GENERATION"),
    {ok, Cli} = py_web_cli:resolve(Cli0, fun os:getenv/1),
    _ = py_web_logging:setup(Cli),
    %% a process manager may signal every process of the service: SIGTERM
    %% stops this one gracefully too, SIGHUP is the supervisor's
    py_web_signals:install(self(), [sigterm]),
    _ = application:load(erlang_python),
    ok = application:set_env(erlang_python, python_path,
                             [filename:absname(D) || D <- maps:get(app_dirs, Cli)]),
    %% erlang_python's own default, before the workers are set
    Defaults = maps:from_list([{I, py_web_cli:default_workers(I)} || I <- [asgi, wsgi, unknown]]),
    Guess = first_workers(Cli, Defaults),
    ok = application:set_env(erlang_python, workers, Guess),
    _ = case maps:find(mode, Cli) of
        {ok, Mode} -> ok = application:set_env(erlang_python, mode, Mode);
        error -> ok
    end,
    %% uvicorn's default: uvloop where it loads
    ok = application:set_env(erlang_python, event_loop, maps:get(loop, Cli, auto)),
    start(py_web),
    Workers = settle_workers(Cli, Guess, Defaults),
    logger:info("pyweb: started server process [~s] (~B Python workers)", [os:getpid(), Workers]),
    Ch = case py_web_control:connect(Control, self()) of
             {ok, C} -> C;
             {error, R1} -> fail(?EXIT_STARTUP, "cannot reach the supervisor: ~ts",
                                 [py_web_log:reason(R1)])
         end,
    ok = py_web_control:send(Ch, {hello, Gen, os:getpid(), Token}),
    Fds = receive
              {py_web_control, Ch, {term, {serve, Count}, Fs}} when length(Fs) =:= Count -> Fs;
              {py_web_control, Ch, closed} -> halt(0)
          end,
    Opts = (maps:get(opts, Cli))#{bind => [{fd, F} || F <- Fds]},
    case py_web:start(Opts#{max_requests => max_requests(Cli), on_max_requests => self()}) of
        {ok, Pid} ->
            ok = py_web_control:send(Ch, ready),
            serve(Ch, Pid, erlang:monitor(process, Pid));
        {error, R2} ->
            failed(R2, maps:get(app, Opts))
    end.

%% py_web (erlang_python with it), or erlang_python again.
start(App) ->
    case py_web_logging:quiet_start(fun() -> application:ensure_all_started(App) end) of
        {ok, _} -> ok;
        {error, R} -> fail(?EXIT_STARTUP, "cannot start Python: ~ts", [py_web_log:reason(R)])
    end.

%% What the command line says of the app's interface: asgi, wsgi, auto (Python is to be
%% asked), or unknown (that of an app factory's product, known once the factory ran in
%% py_web:start/1).
interface(#{opts := O}) ->
    case maps:get(factory, O, false) of
        true -> unknown;
        false -> maps:get(interface, O, auto)
    end.

%% The Python workers to start with: the number asked for, else the default for the
%% app's interface (py_web_cli:default_workers/1), an app of `--interface auto' taken for
%% ASGI until Python says (settle_workers/3).
first_workers(#{workers := N}, _) ->
    N;
first_workers(Cli, Defaults) ->
    maps:get(case interface(Cli) of
                 auto -> asgi;
                 I -> I
             end, Defaults).

%% With `--interface auto' and no number of workers asked for, Python says whether the
%% app is ASGI (hornbeam_detect, which imports the app's module on one worker).  When the
%% default for what it says differs from the workers started with (a WSGI app; an app
%% that cannot be detected, whose error py_web:start/1 reports), erlang_python restarts
%% with that default.  The number of workers running.
settle_workers(Cli, Guess, Defaults) ->
    case not maps:is_key(workers, Cli) andalso interface(Cli) of
        auto ->
            {M, C} = maps:get(app, maps:get(opts, Cli)),
            Interface = case py_web:detect_interface(M, C) of
                            {ok, I} -> I;
                            {error, _} -> unknown
                        end,
            case maps:get(Interface, Defaults) of
                Guess ->
                    Guess;
                N ->
                    logger:info("pyweb: ~ts:~ts is ~s: Python restarts with ~B workers",
                                [M, C, case Interface of
                                           unknown -> "not detected";
                                           _ -> Interface
                                       end, N]),
                    ok = py_web_logging:quiet_start(fun() -> application:stop(erlang_python) end),
                    ok = application:set_env(erlang_python, workers, N),
                    start(erlang_python),
                    N
            end;
        _ ->
            Guess
    end.

%% --limit-max-requests with its jitter (0: no limit).
max_requests(Cli) ->
    case maps:get(max_requests, Cli, 0) of
        0 -> infinity;
        N -> N + rand:uniform(maps:get(max_requests_jitter, Cli, 0) + 1) - 1
    end.

serve(Ch, Pid, Mon) ->
    receive
        {py_web_control, Ch, {term, retire, _}} ->
            logger:info("pyweb: server process [~s] retiring: finishing its requests",
                        [os:getpid()]),
            erlang:demonitor(Mon, [flush]),
            ok = py_web:retire(Pid),
            done(0);
        {py_web_control, Ch, {term, stop, _}} ->
            stop(Pid, Mon);
        {py_web_signal, sigterm} ->
            stop(Pid, Mon);
        {py_web_control, Ch, closed} ->
            %% the supervisor is gone
            stop(Pid, Mon);
        {py_web, max_requests, Pid} ->
            _ = py_web_control:send(Ch, max_requests),
            serve(Ch, Pid, Mon);
        {'DOWN', Mon, process, Pid, Reason} ->
            logger:error("pyweb: the server stopped: ~ts", [py_web_log:reason(Reason)]),
            done(?EXIT_STARTUP)
    end.

stop(Pid, Mon) ->
    erlang:demonitor(Mon, [flush]),
    ok = py_web:stop(Pid),
    done(0).

-spec done(non_neg_integer()) -> no_return().
done(Code) ->
    py_web_logging:flush(),
    halt(Code).

%% The server did not start: the app's traceback and a one-line summary
%% for an app that cannot be loaded; the reason otherwise.
-spec failed(term(), {binary(), binary()}) -> no_return().
failed(R = {app_load_failed, Kind, {python, _, _, Tb}, _}, {M, C}) ->
    _ = case Kind of
        K when K =:= import_failed; K =:= factory_failed -> io:put_chars(standard_error, Tb);
        _ -> ok
    end,
    fail(?EXIT_APP, "cannot load the app ~ts:~ts: ~ts", [M, C, py_web_log:reason(R)]);
failed(R, _) ->
    fail(?EXIT_STARTUP, "cannot start: ~ts", [py_web_log:reason(R)]).

-spec fail(non_neg_integer(), string(), list()) -> no_return().
fail(Code, Fmt, Args) ->
    py_web_logging:flush(),
    io:format(standard_error, "pyweb: " ++ Fmt ++ "~n", Args),
    halt(Code).
