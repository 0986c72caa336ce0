%% @doc The command line of `bin/pyweb': uvicorn's option names, gunicorn's
%% where only gunicorn has the feature (and gunicorn's spellings of the
%% shared ones), `--opt value' and `--opt=value', short options as `-w 4'
%% and `-w4'.
%%
%% options/0 is the table every option is read from and the help text is
%% made from: one entry per option. parse/1 is pure (no environment);
%% resolve/2 then applies the environment variables uvicorn and gunicorn
%% read (`WEB_CONCURRENCY', `FORWARDED_ALLOW_IPS', `SCRIPT_NAME') where the
%% option is not given. main/1 runs `bin/pyweb': the supervisor process
%% (py_web_master) or, inside it, one server process (py_web_child).
-module(py_web_cli).

-export([main/1, parse/1, resolve/2, usage/0, version/0, options/0, refused/0,
         default_workers/1]).
-export_type([cli/0]).

%% The command line read: py_web's options (`opts') and the settings of
%% bin/pyweb itself.
-type cli() :: #{opts := map(), app_dirs := [string()], atom() => term()}.

%% How an option's value is read.
-type kind() :: flag | string | int | {int, integer(), integer()} | seconds | float
              | {enum, [atom()]} | octal | umask | optional_enum | boolean.

%% Where the value goes: a py_web option, a setting of bin/pyweb, a setting
%% that collects every occurrence, or a fixed value for a flag.
-type target() :: {opt, atom()} | {cli, atom()} | {list, atom()}
                | {set, {opt | cli, atom()}, term()} | {ignored, string()}.

%% An option of uvicorn's or gunicorn's that pyweb refuses, and why.
-type refused() :: {Names :: [string()], Why :: string()}.

-type option() :: {Names :: [string()], Arg :: string(), kind(), target(), Help :: string()}.


%% @doc Every option, by help group. Defaults shown in the help text come
%% from py_web_opts (`{default}' in Help) or are stated in Help.
-spec options() -> [{string(), [option()]}].
options() ->
    Levels = [trace, debug, info, warning, error, critical],
    [{"App",
      [{["--interface"], "auto|asgi|wsgi", {enum, [auto, asgi, asgi3, wsgi]},
        {opt, interface},
        "App interface (default {default}: a coroutine function or an object with an async "
        "__call__ is ASGI, anything else WSGI; asgi3 means asgi; ASGI 2 apps are not "
        "served)"},
       {["--factory"], "", flag, {set, {opt, factory}, true},
        "MODULE:CALLABLE is an app factory: serve what calling it returns (default: off; "
        "a callable that takes no arguments is taken for one anyway, with a warning)"},
       {["--app-dir"], "DIR", string, {list, app_dirs},
        "Directory to import MODULE from, after the current one (repeatable; default: "
        "none)"},
       {["--pythonpath"], "DIRS", string, {list, python_path},
        "Comma-separated directories for the Python path (default: none; gunicorn)"},
       {["--chdir"], "DIR", string, {cli, chdir},
        "Change to DIR before loading the app (default: stay)"},
       {["--env-file"], "FILE", string, {cli, env_file},
        "Set the environment variables of FILE (KEY=VALUE lines, as python-dotenv reads "
        "them) before anything else (default: none)"},
       {["--env", "-e"], "KEY=VALUE", string, {list, env},
        "Set an environment variable (repeatable; default: none; gunicorn)"},
       {["--lifespan", "--asgi-lifespan"], "auto|on|off", {enum, [auto, on, off]},
        {opt, lifespan},
        "ASGI lifespan (default {default}: used if the app supports it; on: required)"},
       {["--workers", "-w"], "N", {int, 1, 1024}, {cli, workers},
        "Python workers (default $WEB_CONCURRENCY, else one per CPU for an ASGI app, "
        "{python_workers} for a WSGI app or an app factory): threads, sub-interpreters or OS "
        "processes (--mode); ASGI requests share them, a WSGI request holds one"},
       {["--threads"], "N", {int, 1, 1024}, {cli, threads},
        "Python workers per --workers (default 1; gunicorn's threads per worker process: "
        "-w 2 --threads 4 serves 8 WSGI requests at once)"},
       {["--mode"], "MODE", {enum, py_mode:modes()}, {cli, mode},
        "Where Python runs (default $ERLANG_PYTHON_MODE, else {mode}): gil (threads, one "
        "GIL), subinterpreters (Python 3.12+: an interpreter with its own GIL per worker, "
        "so Python uses every core; module globals are per worker), free_threaded (a "
        "free-threaded CPython build; untested), processes (--workers Python OS processes "
        "behind ports: a crash fails only its requests, answered 502; every core for any "
        "app; module globals are per worker), auto (subinterpreters on 3.12+, gil if a "
        "module of the app refuses sub-interpreters, e.g. pydantic-core; the log says "
        "which; never processes)"},
       {["--loop"], "auto|asyncio|uvloop", {enum, [auto, asyncio, uvloop]}, {cli, loop},
        "The Python workers' event loop (default auto: uvloop's where the uvloop package "
        "loads, asyncio's elsewhere); uvloop (required: the start fails without the "
        "package; the sub-interpreters of --mode subinterpreters, and auto on 3.12+, "
        "refuse it and keep asyncio's, with a warning); asyncio; the log says which; the "
        "processes mode's workers run asyncio's"},
       {["--root-path"], "PATH", string, {opt, root_path},
        "The app is mounted at PATH behind a proxy (default $SCRIPT_NAME, else none): ASGI "
        "root_path, and path includes it; WSGI SCRIPT_NAME, PATH_INFO the rest. A request "
        "path that already starts with PATH is not prefixed again"}]},
     {"Binding",
      [{["--host"], "HOST", string, {cli, host},
        "Address or host name to bind (default {ip}; 0.0.0.0 or :: for every interface)"},
       {["--port"], "N", {int, 0, 65535}, {cli, port},
        "Port to bind (default {port}; 0: any free port, printed at start)"},
       {["--bind", "-b"], "ADDR", string, {list, bind},
        "Bind ADDR: HOST:PORT, [IPV6]:PORT, unix:PATH or fd://N (repeatable; gunicorn; "
        "default: --host and --port, which are not bound when --bind, --uds or --fd is "
        "given)"},
       {["--uds"], "PATH", string, {cli, uds}, "Bind a Unix domain socket (default: none)"},
       {["--uds-permissions"], "MODE", octal, {cli, uds_permissions},
        "File mode of the --uds socket, octal (e.g. 660; default from the umask)"},
       {["--fd"], "N", {int, 0, 65535}, {cli, fd},
        "Serve on the listening socket of this file descriptor (socket activation; "
        "default: none)"},
       {["--backlog"], "N", {int, 1, 1 bsl 20}, {opt, backlog},
        "Connections waiting to be accepted (default {default})"},
       {["--reuse-port"], "", flag, {set, {opt, reuse_port}, true},
        "Set SO_REUSEPORT on the TCP sockets, so that other servers may bind the same "
        "address (default: off; gunicorn)"},
       {["--umask", "-m"], "MASK", umask, {cli, umask},
        "File mode mask of bin/pyweb's processes (the Unix socket, pid and log files): "
        "0o22, 022, 0x12 or 18 (default: inherited; gunicorn)"}]},
     {"Proxies",
      [{["--proxy-headers"], "", flag, {set, {opt, proxy_headers}, true},
        "From trusted peers, take the scheme from X-Forwarded-Proto and the client from "
        "X-Forwarded-For (or RFC 7239 Forwarded) (default: on)"},
       {["--no-proxy-headers"], "", flag, {set, {opt, proxy_headers}, false},
        "Do not"},
       {["--forwarded-allow-ips"], "IPS", string, {opt, forwarded_allow_ips},
        "Peers trusted with proxy headers: addresses, networks (10.0.0.0/8), or * "
        "(default $FORWARDED_ALLOW_IPS, else {default}); a Unix socket's peer is trusted"},
       {["--proxy-protocol"], "[v1|v2|auto]", optional_enum, {opt, proxy_protocol},
        "Read a PROXY protocol header (HAProxy's) from the peers of --proxy-allow-from "
        "(default: off; without a value: auto, v1 or v2)"},
       {["--proxy-allow-from"], "IPS", string, {opt, proxy_allow_ips},
        "Peers whose PROXY header is believed (default {default}; gunicorn)"}]},
     {"TLS",
      [{["--ssl-certfile", "--certfile"], "FILE", string, {opt, certfile},
        "Serve HTTPS with this certificate (PEM; read at start; default: plain HTTP)"},
       {["--ssl-keyfile", "--keyfile"], "FILE", string, {opt, keyfile},
        "... and this private key (PEM; default: in the certificate file)"},
       {["--ssl-keyfile-password"], "PASSWORD", string, {opt, keyfile_password},
        "Password of an encrypted key file (default: none)"},
       {["--ssl-ca-certs", "--ca-certs"], "FILE", string, {opt, cacertfile},
        "CA certificates to verify client certificates with (default: none)"},
       {["--ssl-cert-reqs", "--cert-reqs"], "0|1|2", {int, 0, 2}, {cli, cert_reqs},
        "Client certificates: 0 not asked for (default), 1 optional, 2 required"},
       {["--ssl-ciphers", "--ciphers"], "NAMES", string, {opt, ciphers},
        "Cipher suites, OpenSSL names separated by colons; other words (uvicorn's default "
        "TLSv1, HIGH...) are skipped (default: OTP's suites)"}]},
     {"WebSocket",
      [{["--ws"], "auto|none", {enum, [auto, none, websockets, 'websockets-sansio', wsproto]},
        {opt, ws},
        "WebSockets for ASGI apps (default {default}; none: an upgrade request is plain "
        "HTTP to the app; uvicorn's websockets, websockets-sansio and wsproto mean auto: "
        "py_web has its own)"},
       {["--ws-max-size", "--websocket-max-message-size"], "BYTES", {int, 0, 1 bsl 40},
        {opt, ws_max_size},
        "Largest WebSocket message, else close 1009 (default {default})"},
       {["--ws-ping-interval"], "S", seconds, {opt, ws_ping_interval},
        "Ping a WebSocket client silent for S seconds (default {default})"},
       {["--ws-ping-timeout"], "S", seconds, {opt, ws_ping_timeout},
        "... and close if it stays silent S seconds more (default {default})"},
       {["--ws-per-message-deflate"], "BOOL", boolean, {opt, ws_per_message_deflate},
        "Compress WebSocket messages (permessage-deflate) when the client offers it "
        "(default {default})"}]},
     {"Limits and timeouts",
      [{["--limit-concurrency"], "N", {int, 1, 1 bsl 30}, {opt, limit_concurrency},
        "Answer 503 to requests while more than N connections are open (default: no "
        "limit)"},
       {["--limit-max-requests", "--max-requests"], "N", {int, 0, 1 bsl 50},
        {cli, max_requests},
        "After N requests, start a new server process and retire this one (its requests "
        "finish; default 0: never)"},
       {["--limit-max-requests-jitter", "--max-requests-jitter"], "N", {int, 0, 1 bsl 50},
        {cli, max_requests_jitter},
        "Add a random 0..N to --limit-max-requests (default 0)"},
       {["--limit-max-body"], "BYTES", {int, 0, 1 bsl 50}, {opt, max_body},
        "Largest request body accepted, else 413 (default {default}: 64 MiB; 0: no "
        "limit)"},
       {["--limit-request-line"], "BYTES", {int, 1, 1 bsl 20}, {opt, max_request_line},
        "Longest request line, else 414 (default {default}; gunicorn)"},
       {["--limit-request-fields"], "N", {int, 1, 1 bsl 20}, {opt, max_headers},
        "Most request header fields, else 431 (default {default}; gunicorn)"},
       {["--h11-max-incomplete-event-size"], "BYTES", {int, 1, 1 bsl 24}, {opt, max_header_size},
        "Largest request head, line and header fields, else 431 (default {default})"},
       {["--limit-request-field_size", "--limit-request-field-size"], "BYTES",
        {int, 0, 1 bsl 24}, {cli, field_size},
        "Each header field at most BYTES (gunicorn): py_web bounds the whole head instead, "
        "raised to BYTES if lower (default: the head's limit)"},
       {["--timeout-keep-alive", "--keep-alive"], "S", seconds, {opt, idle_timeout},
        "Close idle keep-alive connections after S seconds (default {default})"},
       {["--timeout-request", "--timeout", "-t"], "S", seconds, {opt, request_timeout},
        "Answer 504 if the app has not started its response after S seconds (default "
        "{default}; 0: no limit)"},
       {["--timeout-graceful-shutdown", "--graceful-timeout"], "S", seconds,
        {opt, shutdown_timeout},
        "On shutdown or reload, wait S seconds for requests in flight, then cut them "
        "(default: wait for all of them)"}]},
     {"Reload",
      [{["--reload"], "", flag, {set, {cli, reload}, true},
        "Serve new code when a watched file changes: a new server process takes over the "
        "sockets, the old one finishes its requests (default: off)"},
       {["--reload-dir"], "DIR", string, {list, reload_dirs},
        "Directory to watch (repeatable; default: the current one)"},
       {["--reload-include"], "GLOB", string, {list, reload_includes},
        "Watch files matching GLOB too (repeatable; default *.py)"},
       {["--reload-exclude"], "GLOB", string, {list, reload_excludes},
        "Do not watch files or directories matching GLOB (repeatable; default .*, "
        ".py[cod], .sw.*, ~*; virtualenvs and __pycache__ are never watched)"},
       {["--reload-extra-file"], "FILE", string, {list, reload_extra},
        "Watch this file too (repeatable; default: none; gunicorn)"},
       {["--reload-delay"], "S", float, {cli, reload_delay},
        "Seconds between two looks at the watched files (default 0.25)"}]},
     {"Logging",
      [{["--log-level"], string:join([atom_to_list(L) || L <- Levels], "|"),
        {enum, Levels ++ [notice]}, {cli, log_level},
        "Log level, in any case (default info)"},
       {["--log-config"], "FILE", string, {cli, log_config},
        "Log handlers: OTP logger's as Erlang terms (.config), or JSON (.json): pyweb's, "
        "or Python's dictConfig as uvicorn's and gunicorn's files are written; see the "
        "README (default: lines on standard error)"},
       {["--access-log"], "", flag, {set, {opt, access_log}, true},
        "Log a line for every request, its errors included (default: on)"},
       {["--no-access-log"], "", flag, {set, {opt, access_log}, false}, "Do not"},
       {["--access-log-format", "--access-logformat"], "FORMAT", string,
        {opt, access_log_format},
        "Access line with uvicorn's and gunicorn's fields, %(h)s %(r)s %(s)s ... (default "
        "{default})"},
       {["--access-logfile"], "FILE", string, {cli, access_logfile},
        "Write access lines to FILE (- for standard output) instead of with the rest "
        "(default: with the rest; gunicorn)"},
       {["--error-logfile", "--log-file"], "FILE", string, {cli, error_logfile},
        "Write the other log lines to FILE (- for standard error, the default; gunicorn)"},
       {["--capture-output"], "", flag, {set, {cli, capture_output}, true},
        "With --error-logfile FILE: what the server processes print (the app's print(), "
        "Python warnings) goes to FILE too (default: off; gunicorn)"},
       {["--header"], "NAME:VALUE", string, {list, headers},
        "Send this header with every response (repeatable; default: none)"},
       {["--server-header"], "", flag, {set, {opt, server_header}, default},
        "Send Server: {default} unless the app sets Server (default: on)"},
       {["--no-server-header"], "", flag, {set, {opt, server_header}, false}, "Do not"},
       {["--date-header"], "", flag, {set, {opt, date_header}, true},
        "Send Date unless the app sets Date (default: on)"},
       {["--no-date-header"], "", flag, {set, {opt, date_header}, false}, "Do not"}]},
     {"Other",
      [{["--config", "-c"], "FILE", string, {cli, config},
        "Read settings from a gunicorn configuration file (Python: bind, workers, "
        "timeout...); the command line wins; hooks are not run (default: none)"},
       {["--daemon", "-D"], "", flag, {set, {cli, daemon}, true},
        "Run in the background, detached from the terminal, standard streams on /dev/null "
        "(log to --error-logfile; default: off; gunicorn)"},
       {["--pid", "-p"], "FILE", string, {cli, pidfile},
        "Write the process id to signal (bin/pyweb's) to FILE (default: none; gunicorn)"},
       {["--version", "-v"], "", flag, {set, {cli, version}, true}, "Print the versions and exit"},
       {["--help", "-h"], "", flag, {set, {cli, help}, true}, "Show this help and exit"}]},
     {"Accepted for uvicorn and gunicorn command lines, without effect",
      [ignored(["--worker-class", "-k"], "CLASS", string, "py_web serves ASGI and WSGI apps itself"),
       ignored(["--asgi-loop"], "NAME", string, "gunicorn's ASGI event loop: see --loop"),
       ignored(["--http", "--http-parser"], "NAME", string, "py_web has its own HTTP/1.1 server"),
       ignored(["--ws-max-queue"], "N", string,
               "messages are flow-controlled both ways (the app's receive and send wait)"),
       ignored(["--http2"], "", flag, "HTTP/2 is not served: HTTP/1.1 only"),
       ignored(["--http-protocols", "--http2-cleartext", "--http2-max-concurrent-streams",
                "--http2-initial-window-size", "--http2-max-frame-size",
                "--http2-max-header-list-size"],
               "VALUE", string, "HTTP/2 is not served: HTTP/1.1 only"),
       ignored(["--ssl-version"], "N", string, "TLS 1.2 and 1.3, as OTP sets them up"),
       ignored(["--suppress-ragged-eofs", "--do-handshake-on-connect"], "", flag,
               "TLS as OTP sets it up"),
       ignored(["--timeout-worker-healthcheck"], "S", string,
               "the supervisor watches its server processes itself"),
       ignored(["--reset-contextvars"], "", flag,
               "", "each request runs in a context of its own already"),
       ignored(["--preload"], "", flag, "",
               "each server process imports the app once, before it serves"),
       ignored(["--worker-connections"], "N", string,
               "connections are not limited per process (see --limit-concurrency)"),
       ignored(["--enable-stdio-inheritance", "-R"], "", flag, "",
               "server processes write to bin/pyweb's standard streams already"),
       ignored(["--name", "-n"], "NAME", string, "process titles are not set"),
       ignored(["--worker-tmp-dir"], "DIR", string, "", "no heartbeat files"),
       ignored(["--no-sendfile"], "", flag, "", "sendfile is not used"),
       ignored(["--statsd-host", "--statsd-prefix", "--dogstatsd-tags"], "VALUE", string,
               "no StatsD metrics"),
       ignored(["--enable-backlog-metric"], "", flag, "no StatsD metrics"),
       ignored(["--log-syslog", "--disable-redirect-access-to-syslog"], "", flag,
               "no syslog: log lines go to standard error (see --log-config)"),
       ignored(["--log-syslog-to", "--log-syslog-prefix", "--log-syslog-facility"], "VALUE",
               string, "no syslog: log lines go to standard error (see --log-config)"),
       ignored(["--use-colors"], "", flag, "log lines have no colours"),
       ignored(["--no-use-colors"], "", flag, "", "log lines have no colours"),
       ignored(["--reload-engine"], "NAME", string, "files are polled"),
       ignored(["--spew"], "", flag, "no line tracing"),
       ignored(["--asgi-disconnect-grace-period"], "S", string, "",
               "an app learns of a disconnect when it next receives"),
       ignored(["--forwarder-headers"], "NAMES", string,
               "SCRIPT_NAME and PATH_INFO are never taken from request headers"),
       ignored(["--header-map"], "drop", {enum, [drop]}, "",
               "header names with an underscore are dropped"),
       ignored(["--protocol"], "http", {enum, [http]}, "", "HTTP only"),
       ignored(["--uwsgi-allow-from"], "IPS", string, "no uwsgi protocol"),
       ignored(["--control-socket", "--control-socket-mode"], "VALUE", string,
               "no control socket: signals (see below)"),
       ignored(["--no-control-socket"], "", flag, "", "no control socket"),
       ignored(["--dirty-workers", "--dirty-timeout", "--dirty-threads",
                "--dirty-graceful-timeout"], "N", string, "no dirty worker pool")]}].

%% An option accepted without effect: a notice at start says Why (none
%% when Why is ""; Help then says what pyweb does instead).
ignored(Names, Arg, Kind, Why) -> ignored(Names, Arg, Kind, Why, Why).

ignored(Names, Arg, Kind, Why, Help) ->
    {Names, Arg, Kind, {ignored, Why}, "No effect: " ++ Help}.

%% @doc The options of uvicorn's and gunicorn's that pyweb refuses (a
%% command-line error that says why): what they ask cannot be done, and
%% going on without it would serve differently from what was asked.
-spec refused() -> [refused()].
refused() ->
    [{["--user", "-u", "--group", "-g", "--initgroups"],
      "run bin/pyweb as that user (systemd's User=; for a port below 1024, --fd with "
      "socket activation, or CAP_NET_BIND_SERVICE)"},
     {["--paste", "--paster", "--paste-global"],
      "PasteDeploy is not read: give the app as MODULE:CALLABLE"},
     {["--log-config-json", "--logger-class"],
      "Python logging is not used: --log-config takes OTP logger handlers (see --help)"},
     {["--strip-header-spaces", "--permit-obsolete-folding", "--permit-unconventional-http-method",
       "--permit-unconventional-http-version", "--casefold-http-method"],
      "the request parser is strict RFC 9112 and nothing relaxes it"},
     {["--dirty-app"], "no dirty worker pool"},
     {["--check-config", "--print-config"], "not supported"}].

%%--------------------------------------------------------------------
%% Parsing

%% @doc Read a command line: `help', `version', or the cli() (no
%% environment applied: see resolve/2).
-spec parse([string()]) -> {ok, cli()} | help | version | {error, string()}.
parse(Args) ->
    try
        case read(Args, #{opts => #{}, app_dirs => []}) of
            #{help := true} -> help;
            #{version := true} -> version;
            #{app := _} = Cli -> {ok, finish(Cli)};
            _ -> {error, "missing MODULE:CALLABLE (see --help)"}
        end
    catch
        throw:{cli, Msg} -> {error, lists:flatten(Msg)}
    end.

read([], Acc) ->
    Acc;
read(["--" ++ Long | T], Acc) when Long =/= "" ->
    {Name, Inline} = case string:split(Long, "=") of
                         [N, V] -> {"--" ++ N, {value, V}};
                         [N] -> {"--" ++ N, none}
                     end,
    option(find(Name), Name, Inline, T, Acc);
read(["-" ++ [C | Rest] | T], Acc) when C =/= $- ->
    Name = [$-, C],
    Inline = case Rest of "" -> none; _ -> {value, Rest} end,
    option(find(Name), Name, Inline, T, Acc);
read([App | T], Acc) ->
    case maps:is_key(app, Acc) of
        true -> throw({cli, "unexpected argument: " ++ App});
        false -> read(T, Acc#{app => app(App)})
    end.

find(Name) ->
    case [O || {_, Os} <- options(), O = {Names, _, _, _, _} <- Os, lists:member(Name, Names)] of
        [O] -> O;
        [] ->
            case [Why || {Names, Why} <- refused(), lists:member(Name, Names)] of
                [Why] -> throw({cli, Name ++ " is not supported: " ++ Why});
                [] -> throw({cli, "unknown option: " ++ Name ++ " (see --help)"})
            end
    end.

option({_, _, flag, Target, _}, Name, none, T, Acc) ->
    read(T, store(Target, true, Name, Acc));
option({_, _, flag, _, _}, Name, {value, _}, _, _) ->
    throw({cli, Name ++ " takes no value"});
option({_, _, optional_enum, Target, _}, Name, Inline, T, Acc) ->
    Modes = [off, v1, v2, auto, true, false],
    case {Inline, T} of
        {{value, V}, _} ->
            read(T, store(Target, proxy_mode(value(V, {enum, Modes}, Name)), Name, Acc));
        {none, [V | T1]} ->
            case [M || M <- Modes, atom_to_list(M) =:= string:lowercase(V)] of
                [M] -> read(T1, store(Target, proxy_mode(M), Name, Acc));
                [] -> read(T, store(Target, auto, Name, Acc))
            end;
        {none, []} ->
            read(T, store(Target, auto, Name, Acc))
    end;
option({_, _, Kind, Target, _}, Name, {value, V}, T, Acc) ->
    read(T, store(Target, value(V, Kind, Name), Name, Acc));
option({_, _, Kind, Target, _}, Name, none, [V | T], Acc) ->
    read(T, store(Target, value(V, Kind, Name), Name, Acc));
option(_, Name, none, [], _) ->
    throw({cli, Name ++ ": missing value"}).

proxy_mode(true) -> auto;
proxy_mode(false) -> off;
proxy_mode(M) -> M.

store({opt, K}, default, _, Acc = #{opts := O}) -> Acc#{opts := maps:remove(K, O)};
store({opt, K}, V, _, Acc = #{opts := O}) -> Acc#{opts := O#{K => V}};
store({cli, K}, V, _, Acc) -> Acc#{K => V};
store({list, K}, V, _, Acc) -> Acc#{K => maps:get(K, Acc, []) ++ [V]};
store({set, Where, V}, true, Name, Acc) -> store(Where, V, Name, Acc);
store({ignored, Why}, V, Name, Acc) ->
    Acc#{ignored => maps:get(ignored, Acc, []) ++ [{Name, V, Why}]}.

value(V, string, _) -> V;
value(V, {enum, _}, "--interface" = Name) when V =:= "asgi2"; V =:= "ASGI2" ->
    throw({cli, Name ++ " asgi2 is not supported: ASGI 2 apps (a class instantiated with "
                "the scope) are not served; wrap the app with "
                "asgiref.compatibility.guarantee_single_callable"});
value(V, {enum, Allowed}, Name) ->
    case [A || A <- Allowed, atom_to_list(A) =:= string:lowercase(V)] of
        [A] -> A;
        [] -> throw({cli, [Name, ": expected one of ",
                           lists:join("|", [atom_to_list(A) || A <- Allowed]), ", got ", V]})
    end;
value(V, int, Name) -> value(V, {int, 0, 1 bsl 62}, Name);
value(V, {int, Min, Max}, Name) ->
    case string:to_integer(V) of
        {I, ""} when I >= Min, I =< Max -> I;
        _ -> throw({cli, io_lib:format("~ts: expected an integer from ~B to ~B, got ~ts",
                                       [Name, Min, Max, V])})
    end;
value(V, seconds, Name) ->
    case number(V) of
        N when is_number(N), N >= 0 -> round(N * 1000);
        _ -> throw({cli, [Name, ": expected a number of seconds, got ", V]})
    end;
value(V, float, Name) ->
    case number(V) of
        N when is_number(N), N >= 0 -> N;
        _ -> throw({cli, [Name, ": expected a number, got ", V]})
    end;
value(V, boolean, Name) ->
    %% as click (uvicorn's command line) reads it
    case string:lowercase(V) of
        L when L =:= "true"; L =:= "1"; L =:= "yes"; L =:= "y"; L =:= "on"; L =:= "t" -> true;
        L when L =:= "false"; L =:= "0"; L =:= "no"; L =:= "n"; L =:= "off"; L =:= "f" -> false;
        _ -> throw({cli, [Name, ": expected true or false, got ", V]})
    end;
value(V, umask, Name) ->
    %% gunicorn's reading: 0o22, 0x12, 0b..., 022 (octal), 18 (decimal)
    {Base, Digits} = case V of
                         [$0, O | D] when O =:= $o; O =:= $O -> {8, D};
                         [$0, X | D] when X =:= $x; X =:= $X -> {16, D};
                         [$0, B | D] when B =:= $b; B =:= $B -> {2, D};
                         [$0 | D] when D =/= "" -> {8, D};
                         _ -> {10, V}
                     end,
    try list_to_integer(Digits, Base) of
        M when M >= 0, M =< 8#777 -> M;
        _ -> throw({cli, [Name, ": expected a file mode mask (0o22, 022, 18), got ", V]})
    catch
        error:badarg -> throw({cli, [Name, ": expected a file mode mask (0o22, 022, 18), got ", V]})
    end;
value(V, octal, Name) ->
    Digits = case V of "0o" ++ D -> D; _ -> V end,
    case io_lib:fread("~8u", Digits) of
        {ok, [M], ""} when M =< 8#7777 -> M;
        _ -> throw({cli, [Name, ": expected an octal file mode (660, 0o660), got ", V]})
    end.

number(V) ->
    case string:to_float(V) of
        {F, ""} -> F;
        _ ->
            case string:to_integer(V) of
                {I, ""} -> I;
                _ -> error
            end
    end.

app(Spec) ->
    case string:split(Spec, ":") of
        [M, C] when M =/= "", C =/= "" -> {list_to_binary(M), list_to_binary(C)};
        _ -> throw({cli, "expected MODULE:CALLABLE, got: " ++ Spec})
    end.

%% From what was read to py_web's options and bin/pyweb's settings.
finish(Cli = #{app := App, opts := O0}) ->
    O1 = O0#{app => App},
    O2a = case maps:find(interface, O1) of
              {ok, asgi3} -> O1#{interface := asgi};
              _ -> O1
          end,
    O2 = case maps:find(ws, O2a) of
             {ok, W} when W =/= auto, W =/= none -> O2a#{ws := auto};
             _ -> O2a
         end,
    O3 = case maps:find(headers, Cli) of
             {ok, Hs} -> default_headers(Hs, O2);
             error -> O2
         end,
    O4 = case maps:find(cert_reqs, Cli) of
             {ok, R} -> O3#{verify => lists:nth(R + 1, [none, optional, required])};
             error -> O3
         end,
    O5 = maps:map(fun(K, 0) when K =:= request_timeout; K =:= max_body -> infinity;
                     (_, V) -> V
                  end, O4),
    O6 = maps:merge(maps:with([access_log, shutdown_timeout], cli_defaults()), O5),
    O7 = case maps:find(field_size, Cli) of
             {ok, Size} ->
                 Head = maps:get(max_header_size, O6, py_web_opts:default(max_header_size)),
                 O6#{max_header_size => max(Size, Head)};
             error ->
                 O6
         end,
    Dirs = maps:get(app_dirs, Cli) ++
        lists:append([string:lexemes(P, ",") || P <- maps:get(python_path, Cli, [])]),
    maps:without([python_path, headers, cert_reqs],
                 Cli#{opts := O7#{bind => binds(Cli)}, app_dirs := Dirs}).

cli_defaults() ->
    #{access_log => py_web_opts:cli_default(access_log),
      shutdown_timeout => py_web_opts:cli_default(shutdown_timeout)}.

%% --header NAME:VALUE; a Server header replaces py_web's own (as uvicorn).
default_headers(Hs, O) ->
    lists:foldl(fun(H, Acc) ->
                        case string:split(H, ":") of
                            [N, V] ->
                                case string:lowercase(string:trim(N)) of
                                    "server" -> Acc#{server_header => list_to_binary(string:trim(V))};
                                    _ -> Acc#{headers => maps:get(headers, Acc, []) ++ [H]}
                                end;
                            _ -> throw({cli, "--header: expected NAME:VALUE, got " ++ H})
                        end
                end, O, Hs).

%% The addresses to listen on: every --bind, --uds and --fd; --host and
%% --port when none of those is given.
binds(Cli) ->
    Explicit = [bind_spec(B) || B <- maps:get(bind, Cli, [])]
        ++ [{local, U, maps:get(uds_permissions, Cli, undefined)}
            || U <- [maps:get(uds, Cli, undefined)], U =/= undefined]
        ++ [{fd, F} || F <- [maps:get(fd, Cli, undefined)], F =/= undefined],
    case Explicit of
        [] ->
            Host = maps:get(host, Cli, inet:ntoa(py_web_opts:default(ip))),
            Port = maps:get(port, Cli, py_web_opts:default(port)),
            case py_web_bind:host(Host) of
                {ok, Ip} -> [{tcp, Ip, Port, list_to_binary(Host)}];
                error -> throw({cli, "--host: not an address or a known host name: " ++ Host})
            end;
        _ ->
            Explicit
    end.

bind_spec(B) ->
    case py_web_bind:parse(B) of
        {ok, P} -> P;
        error -> throw({cli, "--bind: expected HOST:PORT, unix:PATH or fd://N, got " ++ B})
    end.

%% @doc The settings the environment gives where the command line did not:
%% `WEB_CONCURRENCY' (--workers), `FORWARDED_ALLOW_IPS'
%% (--forwarded-allow-ips), `SCRIPT_NAME' (--root-path); and the number of
%% Python workers, --workers (or WEB_CONCURRENCY, or 1) times --threads when
%% that is given. `Env' is a
%% function from a variable's name to its value or `false' (os:getenv/1).
-spec resolve(cli(), fun((string()) -> string() | false)) -> {ok, cli()} | {error, string()}.
resolve(Cli = #{opts := O}, Env) ->
    try
        Workers0 = case {maps:find(workers, Cli), Env("WEB_CONCURRENCY")} of
                       {{ok, W}, _} -> #{workers => W};
                       {error, false} -> #{};
                       {error, V} -> #{workers => value(V, {int, 1, 1024}, "WEB_CONCURRENCY")}
                   end,
        %% gunicorn's threads per worker process: as many Python workers in all
        Workers = case maps:find(threads, Cli) of
                      {ok, T} -> #{workers => min(1024, maps:get(workers, Workers0, 1) * T)};
                      error -> Workers0
                  end,
        O1 = env_opt(forwarded_allow_ips, "FORWARDED_ALLOW_IPS", O, Env),
        O2 = env_opt(root_path, "SCRIPT_NAME", O1, Env),
        {ok, maps:merge(Cli#{opts := O2}, Workers)}
    catch
        throw:{cli, Msg} -> {error, lists:flatten(Msg)}
    end.

env_opt(K, Var, O, Env) ->
    case {maps:is_key(K, O), Env(Var)} of
        {false, V} when V =/= false, V =/= "" -> O#{K => V};
        _ -> O
    end.

%%--------------------------------------------------------------------
%% Help and version

%% @doc The --help text: every option of options/0 with its default.
-spec usage() -> string().
usage() ->
    lists:flatten(
      ["Usage: pyweb [OPTIONS] MODULE:CALLABLE\n"
       "\n"
       "Serve a Python ASGI or WSGI app from the BEAM (py_web on erlang_python).\n"
       "MODULE is imported from the current directory, the --app-dir directories\n"
       "and $VIRTUAL_ENV's site-packages; CALLABLE may be dotted. Options take\n"
       "uvicorn's names (and gunicorn's where only gunicorn has the feature, or\n"
       "spells it differently); --opt VALUE and --opt=VALUE are the same.\n",
       [["\n", G, ":\n", [option_help(O) || O <- Os]] || {G, Os} <- options()],
       "\n"
       "Signals: SIGINT (Ctrl-C) or SIGTERM stop gracefully: no new connections, the\n"
       "requests in flight finish (see --timeout-graceful-shutdown), ASGI lifespan\n"
       "shutdown; a second one exits at once. SIGHUP reloads: a new server process\n"
       "loads the app again and takes over the sockets; the old one finishes its\n"
       "requests.\n"
       "\n"
       "Exit status: 0 after a stop by signal, 1 the app cannot be loaded (import\n"
       "error, no such attribute, a failing factory), 2 a command-line error, 3 the\n"
       "server cannot start (address in use, unreadable TLS files, lifespan startup\n"
       "failed), 130 or 143 forced by a second SIGINT or SIGTERM.\n"]).

option_help({Names, Arg, _, Target, Help}) ->
    Left = lists:join(", ", Names) ++ case Arg of "" -> ""; _ -> " " ++ Arg end,
    Lines = wrap(fill(Help, Target), 50),
    Pad = fun(S) -> S ++ lists:duplicate(max(1, 30 - length(S)), $\s) end,
    case length(lists:flatten(Left)) >= 29 of
        true ->
            %% names that do not fit one line wrap after a comma
            [[["  ", L, "\n"] || L <- wrap(lists:flatten(Left), 78)]
             | [[lists:duplicate(32, $\s), L, "\n"] || L <- Lines]];
        false ->
            [["  ", Pad(lists:flatten(Left)), hd(Lines), "\n"]
             | [[lists:duplicate(32, $\s), L, "\n"] || L <- tl(Lines)]]
    end.

fill(Help, Target) ->
    Subst = [{"{default}", fun() -> default_text(Target) end},
             {"{ip}", fun() -> inet:ntoa(py_web_opts:default(ip)) end},
             {"{port}", fun() -> integer_to_list(py_web_opts:default(port)) end},
             {"{python_workers}", fun() -> integer_to_list(python_workers()) end},
             {"{mode}", fun() -> atom_to_list(py_mode:default()) end}],
    lists:foldl(fun({K, F}, H) ->
                        case string:find(H, K) of
                            nomatch -> H;
                            _ -> lists:flatten(string:replace(H, K, F(), all))
                        end
                end, Help, Subst).

default_text({set, Where, _}) ->
    default_text(Where);
default_text({opt, K}) ->
    Ms = lists:member(K, [idle_timeout, request_timeout, shutdown_timeout, ws_ping_interval,
                          ws_ping_timeout]),
    case py_web_opts:cli_default(K) of
        V when Ms, is_integer(V) -> integer_to_list(V div 1000);
        V when is_integer(V) -> integer_to_list(V);
        V when is_atom(V) -> atom_to_list(V);
        V when is_binary(V) -> binary_to_list(V)
    end.

wrap(Text, Width) ->
    wrap(string:lexemes(Text, " "), Width, "", []).

wrap([], _, Line, Acc) -> lists:reverse([Line | Acc]);
wrap([W | T], Width, "", Acc) -> wrap(T, Width, W, Acc);
wrap([W | T], Width, Line, Acc) when length(Line) + 1 + length(W) > Width ->
    wrap(T, Width, W, [Line | Acc]);
wrap([W | T], Width, Line, Acc) -> wrap(T, Width, Line ++ " " ++ W, Acc).

%% @doc bin/pyweb's number of Python workers where neither --workers, --threads nor
%% WEB_CONCURRENCY gives one: for an ASGI app one per scheduler of the VM (one per CPU),
%% since its requests share the workers' event loops and more workers than cores only
%% take turns on them; erlang_python's default (its application env, 4) for a WSGI app,
%% whose request holds its worker, and for an app whose interface is not known yet
%% (`unknown': an app factory's product).
-spec default_workers(asgi | wsgi | unknown) -> pos_integer().
default_workers(asgi) ->
    %% the NIF runs at most 256 workers
    min(erlang:system_info(schedulers_online), 256);
default_workers(_) ->
    python_workers().

%% erlang_python's default number of workers (its application env).
python_workers() ->
    _ = application:load(erlang_python),
    {ok, N} = application:get_env(erlang_python, workers),
    N.

%% @doc The --version text: py_web's and erlang_python's versions, the
%% Python that would run, Erlang/OTP.
-spec version() -> string().
version() ->
    Vsn = fun(App) ->
                  _ = application:load(App),
                  case application:get_key(App, vsn) of
                      {ok, V} -> V;
                      undefined -> "?"
                  end
          end,
    Python = try py_python:find() of
                 {ok, #{version := PV, executable := Exe}} ->
                     io_lib:format("Python ~ts (~ts)", [PV, Exe]);
                 {error, {_, Why}} -> io_lib:format("no Python: ~ts", [Why]);
                 {error, _} -> "no Python"
             catch
                 error:undef -> "Python unknown"
             end,
    lists:flatten(io_lib:format("pyweb ~ts (py_web ~ts, erlang_python ~ts) with ~ts on "
                                "Erlang/OTP ~ts~n",
                                [Vsn(py_web), Vsn(py_web), Vsn(erlang_python), Python,
                                 erlang:system_info(otp_release)])).

%%--------------------------------------------------------------------
%% Running

%% @doc Entry point for bin/pyweb (`erl -eval
%% "py_web_cli:main(init:get_plain_arguments())"'): the supervisor, or one
%% server process when bin/pyweb's supervisor started this VM
%% (`PYWEB_CONTROL' set), or only a check of the command line
%% (`PYWEB_CHECK' set: bin/pyweb's --daemon, before it detaches). A
%% --config file is read first.
-spec main([string()] | [atom()]) -> no_return().
main(Args0) ->
    Args1 = [case A of _ when is_atom(A) -> atom_to_list(A); _ -> A end || A <- Args0],
    {Args, Notes} = case py_web_gunicorn_config:args(Args1, fun config_python/0) of
                        {ok, As, Ns} -> {As, Ns};
                        {error, Why} ->
                            io:format(standard_error, "pyweb: ~ts~n", [Why]),
                            halt(2)
                    end,
    case parse(Args) of
        help ->
            io:put_chars(usage()),
            halt(0);
        version ->
            io:put_chars(version()),
            halt(0);
        {error, Msg} ->
            io:format(standard_error, "pyweb: ~ts~n", [Msg]),
            halt(2);
        {ok, Cli} ->
            case {os:getenv("PYWEB_CONTROL"), os:getenv("PYWEB_CHECK")} of
                {false, false} -> py_web_master:run(Cli#{argv => Args, notes => Notes});
                {false, _} -> py_web_master:check(Cli);
                {Control, _} -> py_web_child:run(Cli, Control)
            end
    end.

%% The Python that reads a --config file: the one the app will run with.
config_python() ->
    _ = application:load(erlang_python),
    try py_python:find() of
        {ok, #{interpreter := Exe}} -> {ok, Exe};
        {error, {_, Why}} -> {error, unicode:characters_to_list(Why)}
    catch
        error:undef -> {error, "erlang_python is not built"}
    end.
