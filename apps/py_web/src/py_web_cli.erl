%% @doc Command line of `bin/pyweb' (uvicorn's habits):
%%
%% `pyweb MODULE:CALLABLE [options]'; see usage/0 or `pyweb --help'.
%% parse/1 is pure (tested on its own); main/1 configures erlang_python
%% and logging, starts the server and waits until the VM stops (SIGTERM
%% stops the VM through init:stop/0, which drains the server).
-module(py_web_cli).

-export([main/1, parse/1, usage/0]).

-type cli() :: #{opts := map(), app_dirs := [string()], workers => pos_integer(),
                 mode => py_mode:configured(), log_level => logger:level()}.

%% @doc Options of the command line as py_web:start/1 options plus the
%% settings that belong to erlang_python and logging.
-spec parse([string()]) -> {ok, cli()} | help | {error, string()}.
parse(Args) ->
    try
        case lists:member("--help", Args) orelse lists:member("-h", Args) of
            true -> help;
            false -> {ok, parse(Args, undefined, #{opts => #{}, app_dirs => []})}
        end
    catch
        throw:{cli, Msg} -> {error, Msg}
    end.

parse([], undefined, _) ->
    throw({cli, "missing MODULE:CALLABLE (see --help)"});
parse([], App, Acc = #{opts := O, app_dirs := Dirs}) ->
    Acc#{opts := O#{app => App}, app_dirs := lists:reverse(Dirs)};
parse(["--interface", V | T], App, Acc) ->
    parse(T, App, opt(interface, atom(V, [auto, asgi, wsgi], "--interface"), Acc));
parse(["--host", V | T], App, Acc) ->
    case inet:parse_address(V) of
        {ok, Ip} -> parse(T, App, opt(ip, Ip, Acc));
        {error, _} -> throw({cli, "--host: not an IP address: " ++ V})
    end;
parse(["--port", V | T], App, Acc) ->
    parse(T, App, opt(port, int(V, 0, 65535, "--port"), Acc));
parse(["--app-dir", V | T], App, Acc = #{app_dirs := D}) ->
    parse(T, App, Acc#{app_dirs := [V | D]});
parse(["--workers", V | T], App, Acc) ->
    parse(T, App, Acc#{workers => int(V, 1, 1024, "--workers")});
parse(["--mode", V | T], App, Acc) ->
    parse(T, App, Acc#{mode => atom(V, py_web_opts:python_modes(), "--mode")});
parse(["--lifespan", V | T], App, Acc) ->
    parse(T, App, opt(lifespan, atom(V, [auto, on, off], "--lifespan"), Acc));
parse(["--timeout-keep-alive", V | T], App, Acc) ->
    parse(T, App, opt(idle_timeout, 1000 * int(V, 1, 86400, "--timeout-keep-alive"), Acc));
parse(["--timeout-request", V | T], App, Acc) ->
    parse(T, App, opt(request_timeout, 1000 * int(V, 1, 86400, "--timeout-request"), Acc));
parse(["--limit-max-body", V | T], App, Acc) ->
    parse(T, App, opt(max_body, int(V, 0, 1 bsl 50, "--limit-max-body"), Acc));
parse(["--root-path", V | T], App, Acc) ->
    parse(T, App, opt(root_path, list_to_binary(V), Acc));
parse(["--access-log" | T], App, Acc) ->
    parse(T, App, opt(access_log, true, Acc));
parse(["--no-access-log" | T], App, Acc) ->
    parse(T, App, opt(access_log, false, Acc));
parse(["--log-level", V | T], App, Acc) ->
    L = atom(V, [critical, error, warning, notice, info, debug], "--log-level"),
    parse(T, App, Acc#{log_level => L});
parse(["--ws", V | T], App, Acc) ->
    parse(T, App, opt(ws, atom(V, [auto, none], "--ws"), Acc));
parse(["--ws-max-size", V | T], App, Acc) ->
    parse(T, App, opt(ws_max_size, int(V, 0, 1 bsl 40, "--ws-max-size"), Acc));
parse(["--ws-ping-interval", V | T], App, Acc) ->
    parse(T, App, opt(ws_ping_interval, ms(V, "--ws-ping-interval"), Acc));
parse(["--ws-ping-timeout", V | T], App, Acc) ->
    parse(T, App, opt(ws_ping_timeout, ms(V, "--ws-ping-timeout"), Acc));
parse(["--ws-per-message-deflate", V | T], App, Acc) ->
    parse(T, App, opt(ws_per_message_deflate, bool(V, "--ws-per-message-deflate"), Acc));
parse(["--ssl-certfile", V | T], App, Acc) ->
    parse(T, App, opt(certfile, V, Acc));
parse(["--ssl-keyfile", V | T], App, Acc) ->
    parse(T, App, opt(keyfile, V, Acc));
parse(["--" ++ _ = Flag | _], _App, _Acc) ->
    throw({cli, "unknown option or missing value: " ++ Flag});
parse([AppSpec | T], undefined, Acc) ->
    case string:split(AppSpec, ":") of
        [M, C] when M =/= "", C =/= "" ->
            parse(T, {list_to_binary(M), list_to_binary(C)}, Acc);
        _ ->
            throw({cli, "expected MODULE:CALLABLE, got: " ++ AppSpec})
    end;
parse([Extra | _], _App, _Acc) ->
    throw({cli, "unexpected argument: " ++ Extra}).

opt(K, V, Acc = #{opts := O}) -> Acc#{opts := O#{K => V}}.

atom(V, Allowed, Flag) ->
    case [A || A <- Allowed, atom_to_list(A) =:= V] of
        [A] -> A;
        [] -> throw({cli, Flag ++ ": expected one of " ++
                         lists:join("|", [atom_to_list(A) || A <- Allowed])})
    end.

int(V, Min, Max, Flag) ->
    case string:to_integer(V) of
        {I, ""} when I >= Min, I =< Max -> I;
        _ -> throw({cli, Flag ++ ": expected an integer from " ++
                         integer_to_list(Min) ++ " to " ++ integer_to_list(Max)})
    end.

%% Seconds (an integer or a decimal, as uvicorn takes them) as whole milliseconds.
ms(V, Flag) ->
    S = case string:to_float(V) of
            {F, ""} -> F;
            _ -> case string:to_integer(V) of
                     {I, ""} -> I;
                     _ -> -1
                 end
        end,
    case S > 0 andalso S =< 86400 of
        true -> max(1, round(S * 1000));
        false -> throw({cli, Flag ++ ": expected seconds, more than 0 and at most 86400"})
    end.

%% A boolean as click (uvicorn's command line) spells it.
bool(V, Flag) ->
    case string:lowercase(V) of
        L when L =:= "true"; L =:= "1"; L =:= "yes"; L =:= "y"; L =:= "on"; L =:= "t" -> true;
        L when L =:= "false"; L =:= "0"; L =:= "no"; L =:= "n"; L =:= "off"; L =:= "f" -> false;
        _ -> throw({cli, Flag ++ ": expected true or false"})
    end.

%% @doc The --help text (defaults as py_web_opts and erlang_python have them).
-spec usage() -> string().
usage() ->
    D = fun py_web_opts:default/1,
    lists:flatten(io_lib:format(
      "Usage: pyweb MODULE:CALLABLE [options]\n"
      "\n"
      "Serve a Python ASGI or WSGI app from the BEAM (py_web on erlang_python).\n"
      "MODULE is imported from the current directory, the --app-dir directories\n"
      "and $VIRTUAL_ENV's site-packages; CALLABLE may be dotted.\n"
      "\n"
      "Examples (from the repository root):\n"
      "  bin/pyweb examples.hello:app\n"
      "  bin/pyweb examples.hello:wsgi_app --interface wsgi --port 8080\n"
      "  VIRTUAL_ENV=$PWD/.venv bin/pyweb examples.showcase:app --access-log\n"
      "\n"
      "Options:\n"
      "  --interface auto|asgi|wsgi  App interface (default ~s: detected from the\n"
      "                              callable: coroutine function or async __call__\n"
      "                              is ASGI, anything else WSGI)\n"
      "  --host IP                   Address to bind (default ~s; 0.0.0.0 or\n"
      "                              :: for every interface)\n"
      "  --port N                    Port to bind (default ~B; 0 = any free port)\n"
      "  --app-dir DIR               Directory added to the Python path, after the\n"
      "                              current directory, to import MODULE from\n"
      "                              (repeatable, searched in the order given)\n"
      "  --workers N                 Python workers (default ~B): threads,\n"
      "                              sub-interpreters or OS processes (--mode). ASGI\n"
      "                              requests share them; each WSGI request holds\n"
      "                              one while it runs\n"
      "  --mode MODE                 Where Python runs (erlang_python's mode; default\n"
      "                              $ERLANG_PYTHON_MODE, else ~s): gil (threads, one\n"
      "                              GIL), subinterpreters (Python 3.12+: one\n"
      "                              interpreter with its own GIL per worker, so\n"
      "                              Python uses every core; module globals are per\n"
      "                              worker), free_threaded (a free-threaded CPython\n"
      "                              build; untested), processes (--workers Python OS\n"
      "                              processes behind ports: a crash fails only its\n"
      "                              requests, answered 502; every core for any app;\n"
      "                              module globals are per worker), auto\n"
      "                              (subinterpreters on 3.12+, gil if a module of the\n"
      "                              app refuses sub-interpreters, e.g. FastAPI's\n"
      "                              pydantic-core; the log says which; never\n"
      "                              processes)\n"
      "  --lifespan auto|on|off      ASGI lifespan (default ~s: used if the app\n"
      "                              supports it; on: required). A startup failure\n"
      "                              stops the server with the app's error\n"
      "  --timeout-keep-alive S      Close idle keep-alive connections after S seconds\n"
      "                              (default ~B)\n"
      "  --timeout-request S         Answer 504 if the app has not started its\n"
      "                              response after S seconds (default ~B)\n"
      "  --limit-max-body BYTES      Largest request body accepted, else 413\n"
      "                              (default ~B)\n"
      "  --root-path PATH            ASGI root_path / WSGI SCRIPT_NAME (an app\n"
      "                              mounted below a proxy prefix)\n"
      "  --access-log                Log one line per request (info level: sets the\n"
      "                              log level to info unless --log-level is given)\n"
      "  --no-access-log             Do not (the default)\n"
      "  --log-level LEVEL           critical|error|warning|notice|info|debug\n"
      "                              (default notice; info with --access-log)\n"
      "  --ws auto|none              WebSockets for ASGI apps (default ~s; none: an\n"
      "                              upgrade request is plain HTTP to the app)\n"
      "  --ws-max-size BYTES         Largest WebSocket message, else close 1009\n"
      "                              (default ~B)\n"
      "  --ws-ping-interval S        Ping a WebSocket client silent for S seconds\n"
      "                              (default ~s)\n"
      "  --ws-ping-timeout S         ... and close if it stays silent S seconds more\n"
      "                              (default ~s)\n"
      "  --ws-per-message-deflate B  Compress WebSocket messages (permessage-deflate)\n"
      "                              when the client offers it (default ~s)\n"
      "  --ssl-certfile FILE         Serve HTTPS with this certificate (PEM) ...\n"
      "  --ssl-keyfile FILE          ... and this private key (PEM)\n"
      "  -h, --help                  Show this help and exit\n"
      "\n"
      "Ctrl-C or SIGTERM stops gracefully: no new connections, in-flight requests\n"
      "finish (up to ~B s), then ASGI lifespan shutdown. Exit status: 0 after a\n"
      "clean stop, 1 if the server cannot start (the app's error is printed),\n"
      "2 for a command-line error.\n",
      [D(interface), inet:ntoa(D(ip)), D(port), py_web_opts:python_default(workers),
       py_web_opts:python_default(mode), D(lifespan),
       D(idle_timeout) div 1000, D(request_timeout) div 1000, D(max_body),
       D(ws), D(ws_max_size), seconds(D(ws_ping_interval)), seconds(D(ws_ping_timeout)),
       D(ws_per_message_deflate),
       D(shutdown_timeout) div 1000])).

seconds(Ms) -> float_to_list(Ms / 1000, [{decimals, 3}, compact]).

%% @doc Entry point for bin/pyweb (e.g. `erl -noshell -s py_web_cli main
%% -extra ARGS' or `-eval "py_web_cli:main(init:get_plain_arguments())"').
-spec main([string()] | [atom()]) -> no_return().
main(Args0) ->
    Args = [case A of _ when is_atom(A) -> atom_to_list(A); _ -> A end || A <- Args0],
    case parse(Args) of
        help ->
            io:put_chars(usage()),
            halt(0);
        {error, Msg} ->
            io:format(standard_error, "pyweb: ~s~n", [Msg]),
            halt(2);
        {ok, Cli} ->
            run(Cli)
    end.

-spec run(cli()) -> no_return().
run(Cli = #{opts := Opts, app_dirs := Dirs}) ->
    %% Access log lines are info events: --access-log alone shows them.
    Default = case maps:get(access_log, Opts, false) of
                  true -> info;
                  false -> notice
              end,
    logging(maps:get(log_level, Cli, Default)),
    %% erlang_python puts its python/ package, then the current directory on
    %% sys.path, then python_path (the --app-dir directories, in their
    %% order), and imports from $VIRTUAL_ENV itself.
    _ = application:load(erlang_python),
    ok = application:set_env(erlang_python, python_path, [filename:absname(D) || D <- Dirs]),
    case maps:find(workers, Cli) of
        {ok, N} -> ok = application:set_env(erlang_python, workers, N);
        error -> ok
    end,
    case maps:find(mode, Cli) of
        {ok, Mode} -> ok = application:set_env(erlang_python, mode, Mode);
        error -> ok
    end,
    case application:ensure_all_started(py_web) of
        {ok, _} -> ok;
        {error, R} -> fail("cannot start: ~ts", [reason(R)])
    end,
    case py_web:start(Opts) of
        {ok, Pid} ->
            Ref = erlang:monitor(process, Pid),
            receive
                {'DOWN', Ref, process, Pid, shutdown} ->
                    %% init:stop/0 (SIGTERM) is taking the VM down.
                    receive after infinity -> ok end;
                {'DOWN', Ref, process, Pid, Reason} ->
                    fail("server stopped: ~ts", [reason(Reason)])
            end;
        {error, Reason} ->
            fail("~ts", [reason(Reason)])
    end.

%% One line per event on the default handler ("notice: ..."), no progress
%% reports below debug, and the Python side's log records (domain
%% [erlang_python]: wsgi.errors, logging) shown: OTP's default handler
%% drops events whose domain is not under [otp].
logging(Level) ->
    ok = logger:set_primary_config(level, Level),
    _ = case Level of
        debug -> ok;
        _ -> _ = logger:add_primary_filter(pyweb_no_progress,
                                           {fun logger_filters:progress/2, stop})
    end,
    _ = logger:add_handler_filter(default, pyweb_erlang_python,
                                  {fun logger_filters:domain/2, {log, sub, [erlang_python]}}),
    _ = logger:update_formatter_config(default, #{legacy_header => false,
                                                  single_line => false,
                                                  template => [level, ": ", msg, "\n"]}),
    ok.

%% A readable reason: Python exceptions as "Type: message".
reason({python, Type, Msg, _Tb}) ->
    io_lib:format("~ts: ~ts", [Type, Msg]);
reason({Tag, {python, _, _, _} = P}) ->
    io_lib:format("~p: ~ts", [Tag, reason(P)]);
reason({Tag, {Tag2, {python, _, _, _} = P}}) ->
    io_lib:format("~p: ~p: ~ts", [Tag, Tag2, reason(P)]);
reason(R) ->
    io_lib:format("~0p", [R]).

-spec fail(string(), list()) -> no_return().
fail(Fmt, Args) ->
    io:format(standard_error, "pyweb: " ++ Fmt ++ "~n", Args),
    halt(1).
