%% The bin/pyweb command line (py_web_cli:parse/1 and resolve/2, pure) and
%% its help text. bin/pyweb itself, run as a user runs it: py_web_pyweb_SUITE.
-module(py_web_cli_SUITE).
-compile(nowarn_missing_spec).
-compile([export_all, nowarn_export_all]).

all() -> [defaults, all_options, value_forms, gunicorn_spellings, binds, errors,
          environment, help, help_defaults, version, compat_options, peers_options,
          gunicorn_config].

parse(Args) ->
    {ok, Cli} = py_web_cli:parse(Args),
    Cli.

%% What bin/pyweb serves with no option: uvicorn's defaults where it has the
%% option (access log on, graceful shutdown without a limit).
defaults(_) ->
    #{opts := O, app_dirs := []} = parse(["examples.hello:app"]),
    #{app := {<<"examples.hello">>, <<"app">>}, access_log := true,
      shutdown_timeout := infinity,
      bind := [{tcp, {127, 0, 0, 1}, 8000, <<"127.0.0.1">>}]} = O,
    4 = map_size(O),
    {ok, _} = py_web_opts:validate(O).

all_options(_) ->
    Cli = parse(["m:application", "--interface", "wsgi", "--factory", "--host", "0.0.0.0",
                 "--port", "9000", "--app-dir", "a", "--app-dir", "b", "--pythonpath", "c,d",
                 "--workers", "3", "--mode", "subinterpreters", "--lifespan", "off",
                 "--timeout-keep-alive", "7",
                 "--timeout-request", "30", "--timeout-graceful-shutdown", "2.5",
                 "--limit-max-body", "1000", "--limit-concurrency", "50",
                 "--limit-max-requests", "1000", "--limit-max-requests-jitter", "50",
                 "--limit-request-line", "4096", "--limit-request-fields", "50",
                 "--root-path", "/api", "--no-access-log", "--log-level", "debug",
                 "--access-log-format", "%(h)s %(s)s", "--log-config", "log.json",
                 "--access-logfile", "-", "--error-logfile", "err.log",
                 "--header", "X-A: 1", "--header", "server:edge", "--backlog", "64",
                 "--ssl-certfile", "c.pem", "--ssl-keyfile", "k.pem",
                 "--ssl-keyfile-password", "pw", "--ssl-ca-certs", "ca.pem",
                 "--ssl-cert-reqs", "2", "--no-proxy-headers", "--forwarded-allow-ips", "*",
                 "--proxy-protocol", "v2", "--proxy-allow-from", "10.0.0.0/8",
                 "--reload", "--reload-dir", "src", "--reload-include", "*.html",
                 "--reload-exclude", "*.tmp", "--reload-delay", "0.5", "--env-file", ".env",
                 "-e", "K=V", "--chdir", "/srv", "--pid", "app.pid", "--use-colors"]),
    #{opts := #{app := {<<"m">>, <<"application">>}, interface := wsgi, factory := true,
                bind := [{tcp, {0, 0, 0, 0}, 9000, <<"0.0.0.0">>}], lifespan := off,
                idle_timeout := 7000, request_timeout := 30000, shutdown_timeout := 2500,
                max_body := 1000, limit_concurrency := 50, max_request_line := 4096,
                max_headers := 50, root_path := "/api", access_log := false,
                access_log_format := "%(h)s %(s)s", headers := ["X-A: 1"],
                server_header := <<"edge">>, backlog := 64,
                certfile := "c.pem", keyfile := "k.pem", keyfile_password := "pw",
                cacertfile := "ca.pem", verify := required, proxy_headers := false,
                forwarded_allow_ips := "*", proxy_protocol := v2,
                proxy_allow_ips := "10.0.0.0/8"} = O,
      app_dirs := ["a", "b", "c", "d"], workers := 3, mode := subinterpreters, log_level := debug,
      log_config := "log.json", access_logfile := "-", error_logfile := "err.log",
      max_requests := 1000, max_requests_jitter := 50, reload := true,
      reload_dirs := ["src"], reload_includes := ["*.html"], reload_excludes := ["*.tmp"],
      reload_delay := 0.5, env_file := ".env", env := ["K=V"], chdir := "/srv",
      pidfile := "app.pid", ignored := [{"--use-colors", true, _}]} = Cli,
    #{mode := processes} = parse(["m:a", "--mode", "processes"]),
    %% every option set the command line makes is one the server accepts
    {ok, _} = py_web_opts:validate(O).

%% --opt value, --opt=value, -x value, -xvalue; levels and choices in any case.
value_forms(_) ->
    Same = [["m:a", "--port", "9001", "--workers", "2", "--log-level", "warning"],
            ["m:a", "--port=9001", "--workers=2", "--log-level=WARNING"],
            ["--port=9001", "-w", "2", "--log-level", "Warning", "m:a"],
            ["-w2", "m:a", "--port", "9001", "--log-level=warning"]],
    [First | Rest] = [parse(A) || A <- Same],
    [First = C || C <- Rest],
    #{log_level := warning, workers := 2} = First,
    #{opts := #{interface := asgi}} = parse(["m:a", "--interface=ASGI3"]),
    #{log_level := trace} = parse(["m:a", "--log-level", "TRACE"]),
    #{log_level := critical} = parse(["m:a", "--log-level=critical"]),
    %% --proxy-protocol takes a value only when one follows
    #{opts := #{proxy_protocol := auto}} = parse(["--proxy-protocol", "m:a"]),
    #{opts := #{proxy_protocol := auto}} = parse(["m:a", "--proxy-protocol"]),
    #{opts := #{proxy_protocol := v1}} = parse(["m:a", "--proxy-protocol", "v1"]),
    #{opts := #{proxy_protocol := off}} = parse(["m:a", "--proxy-protocol=false"]),
    #{opts := #{request_timeout := infinity}} = parse(["m:a", "--timeout", "0"]),
    #{opts := #{max_body := infinity}} = parse(["m:a", "--limit-max-body", "0"]),
    #{opts := #{shutdown_timeout := 0}} = parse(["m:a", "--timeout-graceful-shutdown=0"]),
    #{uds_permissions := 8#660} = parse(["m:a", "--uds", "s", "--uds-permissions", "0o660"]),
    #{uds_permissions := 8#644} = parse(["m:a", "--uds", "s", "--uds-permissions", "644"]).

%% gunicorn's names for the same settings.
gunicorn_spellings(_) ->
    G = parse(["-w", "3", "-b", "127.0.0.1:9002", "--keep-alive", "4", "--timeout", "20",
               "--graceful-timeout", "9", "--max-requests", "10", "--max-requests-jitter", "2",
               "--access-logformat", "%(h)s", "--certfile", "c", "--keyfile", "k",
               "--ca-certs", "ca", "--cert-reqs", "1", "--log-file", "-", "-p", "pid",
               "-k", "uvicorn.workers.UvicornWorker", "m:a"]),
    U = parse(["--workers", "3", "--bind", "127.0.0.1:9002", "--timeout-keep-alive", "4",
               "--timeout-request", "20", "--timeout-graceful-shutdown", "9",
               "--limit-max-requests", "10", "--limit-max-requests-jitter", "2",
               "--access-log-format", "%(h)s", "--ssl-certfile", "c", "--ssl-keyfile", "k",
               "--ssl-ca-certs", "ca", "--ssl-cert-reqs", "1", "--error-logfile", "-",
               "--pid", "pid", "m:a"]),
    #{ignored := [{"-k", "uvicorn.workers.UvicornWorker", _}]} = G,
    U = maps:remove(ignored, G).

binds(_) ->
    B = fun(Args) -> maps:get(bind, maps:get(opts, parse(["m:a" | Args]))) end,
    [{tcp, {0, 0, 0, 0, 0, 0, 0, 0}, 8000, <<"::">>}] = B(["--host", "::"]),
    [{tcp, {127, 0, 0, 1}, 8000, <<"localhost">>}] = B(["--host", "localhost"]),
    [{tcp, {127, 0, 0, 1}, 0, <<"127.0.0.1">>}] = B(["--port", "0"]),
    %% several --bind; --uds and --fd take the place of --host/--port (as uvicorn)
    [{tcp, {127, 0, 0, 1}, 1, <<"127.0.0.1">>}, {tcp, {0, 0, 0, 0, 0, 0, 0, 1}, 2, <<"::1">>},
     {unix, "/run/a.sock", undefined}, {fd, 3}] =
        B(["-b", "127.0.0.1:1", "--bind", "[::1]:2", "--bind", "unix:/run/a.sock", "-b", "fd://3",
           "--port", "5"]),
    [{local, "/s", 8#600}] = B(["--uds", "/s", "--uds-permissions", "600", "--host", "0.0.0.0"]),
    [{fd, 4}] = B(["--fd", "4"]),
    Cli = parse(["m:a", "--uds", "/s"]),
    {ok, #{bind := [{unix, "/s", undefined}]}} = py_web_opts:validate(maps:get(opts, Cli)).

errors(_) ->
    Err = fun(Args) -> {error, Msg} = py_web_cli:parse(Args), Msg end,
    "missing MODULE:CALLABLE" ++ _ = Err([]),
    "expected MODULE:CALLABLE, got: noColon" = Err(["noColon"]),
    "--port: expected an integer from 0 to 65535, got x" = Err(["m:a", "--port", "x"]),
    "--port: expected an integer from 0 to 65535, got 70000" = Err(["m:a", "--port=70000"]),
    "--interface: expected one of auto|asgi|asgi3|wsgi, got cgi" = Err(["m:a", "--interface", "cgi"]),
    "--host: not an address or a known host name: no.such.host.invalid" =
        Err(["m:a", "--host", "no.such.host.invalid"]),
    "unknown option: --bogus (see --help)" = Err(["m:a", "--bogus"]),
    "unknown option: -Z (see --help)" = Err(["m:a", "-Z"]),
    "--port: missing value" = Err(["m:a", "--port"]),
    "--reload takes no value" = Err(["m:a", "--reload=yes"]),
    "unexpected argument: extra" = Err(["m:a", "extra"]),
    "--header: expected NAME:VALUE, got nocolon" = Err(["m:a", "--header", "nocolon"]),
    "--bind: expected HOST:PORT, unix:PATH or fd://N, got a:b:c" = Err(["m:a", "-b", "a:b:c"]),
    "--uds-permissions: expected an octal file mode" ++ _ = Err(["m:a", "--uds-permissions", "9"]),
    "--reload-delay: expected a number, got soon" = Err(["m:a", "--reload-delay", "soon"]),
    "--mode: expected one of auto|gil|subinterpreters|free_threaded|processes, got fast" =
        Err(["m:a", "--mode", "fast"]).

%% Environment variables fill in what the command line does not say.
environment(_) ->
    Env = fun(Vars) -> fun(K) -> proplists:get_value(K, Vars, false) end end,
    Vars = [{"WEB_CONCURRENCY", "6"}, {"FORWARDED_ALLOW_IPS", "10.0.0.1"}, {"SCRIPT_NAME", "/app"}],
    {ok, #{workers := 6, opts := #{forwarded_allow_ips := "10.0.0.1", root_path := "/app"}}} =
        py_web_cli:resolve(parse(["m:a"]), Env(Vars)),
    {ok, #{workers := 2, opts := #{forwarded_allow_ips := "*", root_path := "/x"}}} =
        py_web_cli:resolve(parse(["m:a", "-w", "2", "--forwarded-allow-ips", "*",
                                  "--root-path", "/x"]), Env(Vars)),
    {ok, C} = py_web_cli:resolve(parse(["m:a"]), Env([])),
    false = maps:is_key(workers, C),
    {error, "WEB_CONCURRENCY: expected an integer from 1 to 1024, got many"} =
        py_web_cli:resolve(parse(["m:a"]), Env([{"WEB_CONCURRENCY", "many"}])).

help(_) ->
    help = py_web_cli:parse(["--help"]),
    help = py_web_cli:parse(["m:a", "-h"]),
    U = py_web_cli:usage(),
    %% every option of the table is in the help text, each name of it
    Names = [N || {_, Os} <- py_web_cli:options(), {Ns, _, _, _, _} <- Os, N <- Ns],
    true = length(Names) > 60,
    [{match, _} = re:run(U, "\\Q" ++ N ++ "\\E[ ,=\\n]") || N <- Names],
    %% every line fits a terminal
    [true = length(L) =< 82 || L <- string:split(U, "\n", all)].

%% Every option the help lists says its default (or, in the last group, that
%% it has no effect, and why).
help_every_default() ->
    [{Names, Help} || {Group, Os} <- py_web_cli:options(),
                      Group =/= "Accepted for uvicorn and gunicorn command lines, without effect",
                      {Names, _, _, _, Help} <- Os,
                      Help =/= "Do not", not lists:member("--help", Names),
                      not lists:member("--version", Names),
                      string:find(Help, "default") =:= nomatch].

%% The help text states the defaults the server has (py_web_opts), and
%% erlang_python's for the settings of its own (workers, mode).
help_defaults(_) ->
    U = py_web_cli:usage(),
    Flat = re:replace(U, "\\s+", " ", [global, {return, list}]),
    D = fun py_web_opts:cli_default/1,
    [{match, _} = re:run(Flat, "\\Q" ++ Text ++ "\\E")
     || Text <- ["--port N Port to bind (default " ++ integer_to_list(D(port)),
                 "(default " ++ integer_to_list(D(max_body)) ++ ": 64 MiB; 0: no limit)",
                 "seconds (default " ++ integer_to_list(D(idle_timeout) div 1000) ++ ")",
                 "(default " ++ integer_to_list(D(backlog)) ++ ")",
                 "else " ++ binary_to_list(D(forwarded_allow_ips)),
                 "(default " ++ binary_to_list(D(access_log_format)) ++ ")",
                 "(default 127.0.0.1;"]],
    [] = help_every_default().

version(_) ->
    version = py_web_cli:parse(["--version"]),
    V = py_web_cli:version(),
    {match, _} = re:run(V, "^pyweb [0-9.]+ \\(py_web [0-9.]+, erlang_python [0-9.]+\\) with "
                           ".* on Erlang/OTP [0-9]+\n$").

%% uvicorn's and gunicorn's options pyweb takes without effect (a notice at
%% start says why), the ones it refuses (a command-line error that says
%% why), and the ones it maps onto its own.
compat_options(_) ->
    #{ignored := Ignored, opts := O} =
        parse(["m:a", "--ws", "websockets", "--ws-max-queue", "32", "--http2", "--loop", "uvloop",
               "--reset-contextvars", "--ssl-version", "17", "--preload", "-n", "api",
               "--worker-tmp-dir", "/dev/shm", "--statsd-host", "localhost:8125",
               "--worker-connections", "100", "--header-map", "drop", "--protocol", "http",
               "--date-header", "--reuse-port"]),
    ["--ws-max-queue", "--http2", "--reset-contextvars", "--ssl-version",
     "--preload", "-n", "--worker-tmp-dir", "--statsd-host", "--worker-connections",
     "--header-map", "--protocol"] = [N || {N, _, _} <- Ignored],
    #{date_header := true, reuse_port := true, ws := auto} = O,
    %% WebSockets: uvicorn's options, and gunicorn's name for the message size
    #{opts := #{ws := none, ws_max_size := 100, ws_ping_interval := 5500,
                ws_ping_timeout := 3000, ws_per_message_deflate := false}} =
        parse(["m:a", "--ws", "none", "--ws-max-size", "100", "--ws-ping-interval", "5.5",
               "--ws-ping-timeout", "3", "--ws-per-message-deflate", "False"]),
    #{opts := #{ws_max_size := 4096}} = parse(["m:a", "--websocket-max-message-size", "4096"]),
    {error, "--ws-per-message-deflate: expected true or false, got maybe"} =
        py_web_cli:parse(["m:a", "--ws-per-message-deflate", "maybe"]),
    #{opts := #{date_header := false}} = parse(["m:a", "--no-date-header"]),
    #{opts := #{lifespan := on}} = parse(["m:a", "--asgi-lifespan", "on"]),
    #{opts := #{ciphers := "ECDHE-RSA-AES128-GCM-SHA256"}} =
        parse(["m:a", "--ciphers", "ECDHE-RSA-AES128-GCM-SHA256"]),
    %% the head limit: uvicorn's h11 size, and gunicorn's per-field size raising it
    #{opts := #{max_header_size := 1000}} = parse(["m:a", "--h11-max-incomplete-event-size", "1000"]),
    #{opts := #{max_header_size := 65536}} = parse(["m:a", "--limit-request-field_size", "65536"]),
    #{opts := #{max_header_size := 32768}} = parse(["m:a", "--limit-request-field-size", "100"]),
    %% gunicorn's umask, read as gunicorn reads it
    [#{umask := 8#22} = parse(["m:a", "--umask", M]) || M <- ["0o22", "022", "0x12", "18"]],
    #{umask := 8#7} = parse(["m:a", "-m7"]),
    {error, "--umask: expected a file mode mask (0o22, 022, 18), got 9x"} =
        py_web_cli:parse(["m:a", "--umask", "9x"]),
    #{config := "g.py", daemon := true, capture_output := true, reload_extra := ["t.html"]} =
        parse(["m:a", "-c", "g.py", "-D", "--capture-output", "--reload-extra-file", "t.html"]),
    version = py_web_cli:parse(["-v"]),
    %% refused, saying why
    {error, "--user is not supported: run bin/pyweb as that user" ++ _} =
        py_web_cli:parse(["m:a", "--user", "www"]),
    {error, "-g is not supported: " ++ _} = py_web_cli:parse(["m:a", "-g", "www"]),
    {error, "--permit-obsolete-folding is not supported: the request parser is strict" ++ _} =
        py_web_cli:parse(["m:a", "--permit-obsolete-folding"]),
    {error, "--interface asgi2 is not supported: ASGI 2 apps" ++ _} =
        py_web_cli:parse(["m:a", "--interface", "asgi2"]),
    {error, "--header-map: expected one of drop, got dangerous"} =
        py_web_cli:parse(["m:a", "--header-map", "dangerous"]),
    %% gunicorn's threads per worker process: Python workers in all
    Env = fun(Vars) -> fun(K) -> proplists:get_value(K, Vars, false) end end,
    {ok, #{workers := 8}} = py_web_cli:resolve(parse(["m:a", "-w", "2", "--threads", "4"]), Env([])),
    {ok, #{workers := 3}} = py_web_cli:resolve(parse(["m:a", "--threads", "3"]), Env([])),
    {ok, #{workers := 6}} = py_web_cli:resolve(parse(["m:a", "--threads", "3"]),
                                               Env([{"WEB_CONCURRENCY", "2"}])).

%% Every option of the uvicorn and gunicorn of the test venv is one pyweb
%% knows: taken (with or without effect) or refused with a reason, never
%% "unknown option". (A newer uvicorn or gunicorn with a new option fails
%% this until the option is placed.)
peers_options(_) ->
    case os:getenv("VIRTUAL_ENV") of
        false -> {skip, "VIRTUAL_ENV is not set: uvicorn and gunicorn are in the test venv"};
        Venv ->
            Known = [N || {_, Os} <- py_web_cli:options(), {Ns, _, _, _, _} <- Os, N <- Ns]
                ++ [N || {Ns, _} <- py_web_cli:refused(), N <- Ns],
            Peers = [{Peer, options_in(os:cmd(filename:join([Venv, "bin", Peer]) ++ " --help"))}
                     || Peer <- ["uvicorn", "gunicorn"]],
            [true = length(Opts) > 30 || {_, Opts} <- Peers],
            [] = [{Peer, N} || {Peer, Opts} <- Peers, N <- Opts, not lists:member(N, Known)],
            {comment, lists:flatten(io_lib:format("~B uvicorn and ~B gunicorn options",
                                                  [length(O) || {_, O} <- Peers]))}
    end.

%% The option names of a --help text (click's and argparse's).
options_in(Help) ->
    {match, Ms} = re:run(Help, "(?:^|[\\s,/\\[])(--?[a-zA-Z][a-zA-Z0-9_-]*)",
                         [global, multiline, {capture, all_but_first, list}]),
    lists:usort([M || [M] <- Ms, M =/= "--", not lists:prefix("---", M)]).

%% A gunicorn configuration file's settings as options: the command line's
%% own win, list settings give one option each, hooks and what is not
%% applied are said.
gunicorn_config(_) ->
    Settings = #{<<"bind">> => [<<"0.0.0.0:80">>, <<"unix:/run/a.sock">>],
                 <<"workers">> => 3, <<"threads">> => 2, <<"timeout">> => 30,
                 <<"reload">> => true, <<"preload_app">> => true, <<"accesslog">> => null,
                 <<"raw_env">> => [<<"A=1">>], <<"forwarded_allow_ips">> => [<<"10.0.0.1">>, <<"10.0.0.2">>],
                 <<"umask">> => 18, <<"helper">> => 4, <<"wsgi_app">> => <<"pkg.wsgi:app">>,
                 <<"__hooks__">> => [<<"post_fork">>, <<"my_helper">>]},
    {Args, Notes} = py_web_gunicorn_config:settings_args(Settings, ["-w", "5", "m:a"]),
    ["--bind", "0.0.0.0:80", "--bind", "unix:/run/a.sock",
     "--forwarded-allow-ips", "10.0.0.1,10.0.0.2", "--env", "A=1", "--reload",
     "--threads", "2", "--timeout", "30", "pkg.wsgi:app"] = Args,
    ["server hooks are not run: post_fork", "setting umask is not applied (see --help)"] = Notes,
    %% with the command line after them, they parse; the command line's -w wins
    #{workers := 5, threads := 2, reload := true} = parse((Args -- ["pkg.wsgi:app"]) ++ ["-w", "5", "m:a"]).
