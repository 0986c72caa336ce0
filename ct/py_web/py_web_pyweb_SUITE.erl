%% bin/pyweb as a user runs it: an OS process started with a command line,
%% real sockets, real apps (py_web_pyweb_SUITE_data: raw ASGI and WSGI apps,
%% Starlette, Django), signals, exit statuses and what it prints. Behaviour
%% only: waits have generous upper bounds, nothing asserts how long anything
%% took. Differential cases against uvicorn and gunicorn: pyweb_diff.py.
-module(py_web_pyweb_SUITE).
-compile(nowarn_missing_spec).
-compile([export_all, nowarn_export_all]).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-define(P, pyweb_proc).
-define(TC, py_web_tc).

suite() -> [{timetrap, {minutes, 3}}].

all() ->
    [{group, start}, {group, binding}, {group, proxies}, {group, lifecycle},
     {group, logs}, {group, reload}, {group, command_lines}, differential].

groups() ->
    [{start, [], [serve_and_stop, server_vm_flags, event_loop, default_workers, option_forms,
                  exit_statuses,
                  import_error, factory, tls_files, env_file]},
     {binding, [], [uds, fd, several_binds, host_names]},
     {proxies, [], [proxy_headers, proxy_protocol, root_path_starlette, django_csrf,
                    websocket_behind_proxy, fastapi_chat_websocket]},
     {lifecycle, [], [second_signal_forces, graceful_timeout_cuts, limit_concurrency,
                      limit_max_requests]},
     {logs, [], [access_lines, wsgi_access_lines, access_log_format, log_config]},
     {reload, [], [sighup_in_flight, signals_ignored_at_start, reload_on_edit,
                   reload_extra_file, control_socket_guarded]},
     {command_lines, [], [uvicorn_command_line, gunicorn_command_line, daemon,
                          umask_and_capture_output, reuse_port]}].

init_per_suite(Config) ->
    case os:getenv("VIRTUAL_ENV") of
        false -> {skip, "VIRTUAL_ENV is not set: bin/pyweb needs the test venv (make test-ct)"};
        _ ->
            {ok, _} = application:ensure_all_started(inets),
            _ = application:ensure_all_started(ssl),
            Config
    end.

end_per_suite(_Config) -> ok.

init_per_testcase(_, Config) -> Config.

end_per_testcase(_, Config) ->
    _ = [?P:stop(P) || P <- procs()],
    erase(procs),
    Config.

procs() -> case get(procs) of undefined -> []; L -> L end.

%%--------------------------------------------------------------------
%% Helpers

%% bin/pyweb with Args, started in the data dir (or Opts' cd).
pyweb(Config, Args) -> pyweb(Config, Args, #{}).

pyweb(Config, Args, Opts) ->
    P = ?P:start(Args, maps:merge(#{cd => ?config(data_dir, Config)}, Opts)),
    put(procs, [P | procs()]),
    P.

%% Serve and wait until it says where: {Proc, Port}.
serve(Config, Args) -> serve(Config, Args, #{}).

serve(Config, Args, Opts) ->
    P = pyweb(Config, Args ++ ["--port", "0"], Opts),
    {P, ?P:port(P)}.

%% A request with these exact headers (Host first unless given).
raw(Port, Method, Path, Headers) -> raw(Port, Method, Path, Headers, <<>>).

raw(Port, Method, Path, Headers, Body) ->
    S = ?TC:connect(Port),
    R = raw_on(S, Method, Path, Headers, Body),
    gen_tcp:close(S),
    R.

raw_on(S, Method, Path, Headers, Body) ->
    Host = case lists:keymember("host", 1, [{string:lowercase(N), V} || {N, V} <- Headers]) of
               true -> [];
               false -> ["host: localhost\r\n"]
           end,
    CL = case Body of <<>> -> []; _ -> ["content-length: ", integer_to_list(byte_size(Body)), "\r\n"] end,
    ?TC:send(S, [Method, " ", Path, " HTTP/1.1\r\n", Host, [[N, ": ", V, "\r\n"] || {N, V} <- Headers],
                 CL, "\r\n", Body]),
    ?TC:recv(S).

get(Port, Path) ->
    {ok, Status, _, Body} = raw(Port, "GET", Path, []),
    {Status, Body}.

json(Port, Path, Headers) ->
    {ok, 200, _, Body} = raw(Port, "GET", Path, Headers),
    json(Body).

json(Body) ->
    {ok, J} = py_web_json:decode(Body),
    J.

%% Repeat F until it returns true (for state that settles: bounded).
until(F, What) -> until(F, What, 600).

until(_F, What, 0) -> ct:fail({never, What});
until(F, What, N) ->
    case F() of
        true -> ok;
        false -> timer:sleep(50), until(F, What, N - 1)
    end.

python() -> filename:join([os:getenv("VIRTUAL_ENV"), "bin", "python"]).

tmp(Config, Name) ->
    Dir = filename:join(?config(priv_dir, Config), Name),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    Dir.

%% A directory with a short path, for Unix sockets (107 bytes at most).
short_tmp(Name) ->
    Dir = filename:join("/tmp", "pw-" ++ Name ++ "-" ++ os:getpid()),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    Dir.

lines(Out) -> [L || L <- binary:split(Out, <<"\n">>, [global]), L =/= <<>>].

%% Every line of bin/pyweb's log: [time] [pid] [LEVEL] message (continuation
%% lines of a multi-line message aside: tracebacks).
-define(LOG_LINE, "^\\[\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d\\.\\d{3}[-+]\\d\\d:\\d\\d\\] \\[\\d+\\] "
                  "\\[(DEBUG|INFO|NOTICE|WARNING|ERROR|CRITICAL)\\] ").

%%--------------------------------------------------------------------
%% Starting and stopping

%% Serve, answer, stop on SIGTERM with status 0; every log line has its time
%% and level, on standard error (nothing on standard output). SIGTERM to
%% every process of the service, as systemd sends it (bin/pyweb, which
%% passes it on, its supervisor and its server process get it), is still
%% one graceful stop: the request in flight is answered.
serve_and_stop(Config) ->
    {P, Port} = serve(Config, ["pw_apps:app"]),
    {200, <<"Hello, World!">>} = get(Port, "/"),
    [Server] = ?P:wait(P, "started server process \\[(\\d+)\\]"),
    S = ?TC:connect(Port),
    ?TC:send(S, ?TC:req("GET", "/slow?1", [], <<>>)),
    _ = ?P:wait(P, "pw_apps: /slow entered"),
    _ = os:cmd("kill -TERM -" ++ ?P:os_pid(P) ++ " " ++ binary_to_list(Server)),
    {ok, 200, _, <<"slow v1">>} = ?TC:recv(S),
    {0, Out} = ?P:wait_exit(P, 30000),
    nomatch = re:run(Out, "forced"),
    [{match, _} = re:run(L, ?LOG_LINE) || L <- lines(Out), not is_app_line(L)],
    {match, _} = re:run(Out, "\\[INFO\\] pyweb: running on http://127.0.0.1:" ++
                            integer_to_list(Port) ++ " \\(Press CTRL\\+C to quit\\)"),
    {match, _} = re:run(Out, "127.0.0.1:\\d+ - \"GET / HTTP/1.1\" 200 OK 13 "),
    {error, econnrefused} = gen_tcp:connect({127, 0, 0, 1}, Port, [], 1000),
    %% stderr only: the same run with stdout discarded prints the same
    Sh = io_lib:format("exec '~ts' pw_apps:app --port 0 2>&1 >/dev/null", [?P:pyweb()]),
    P2 = pyweb(Config, ["-c", lists:flatten(Sh)], #{exe => "/bin/sh"}),
    _ = ?P:port(P2).

%% The server VM runs with bin/pyweb-vm-flags, then PYWEB_ERL_FLAGS (which can set
%% them back); on one or two CPUs they share the allocator instances.  Its environment
%% has what `pyweb-vm-flags --env` lists, unless the caller's has a value of its own.
server_vm_flags(Config) ->
    Script = filename:join(filename:dirname(?P:pyweb()), "pyweb-vm-flags"),
    Flags = string:lexemes(os:cmd(Script), " \n"),
    Shared = ["+MHt", "false", "+MFt", "false", "+MBt", "false", "+MSt", "false"],
    %% one CPU, whatever OMP_NUM_THREADS says (nproc would answer it)
    OneCpu = string:lexemes(os:cmd("OMP_NUM_THREADS=8 taskset -c 0 " ++ Script), " \n"),
    ["+Bi" | _] = OneCpu,
    true = lists:suffix(Shared, OneCpu),
    Env = string:lexemes(os:cmd(Script ++ " --env"), "\n"),
    true = lists:member("MALLOC_MMAP_THRESHOLD_=4194304", Env),
    Server = fun(Opts) ->
                     {P, _} = serve(Config, ["pw_apps:app", "--no-access-log"], Opts),
                     [Pid] = ?P:wait(P, "started server process \\[(\\d+)\\]"),
                     Proc = fun(F) ->
                                    {ok, B} = file:read_file(iolist_to_binary(["/proc/", Pid, "/", F])),
                                    [binary_to_list(A) || A <- binary:split(B, <<0>>, [global])]
                            end,
                     {Proc("cmdline"), Proc("environ")}
             end,
    %% beam.smp's own command line has its emulator flags as -Flag
    Emu = fun(Fs) -> [case F of [$+ | R] -> [$- | R]; _ -> F end || F <- Fs] end,
    {[_ | Cmd], Environ} = Server(#{}),
    true = lists:prefix(Emu(Flags), Cmd),
    [] = Env -- Environ,
    Back = ["+MHt", "true", "+MFt", "true", "+MBt", "true", "+MSt", "true", "+MYtt", "128"],
    {[_ | Cmd2], Environ2} = Server(#{env => [{"PYWEB_ERL_FLAGS", string:join(Back, " ")},
                                              {"MALLOC_MMAP_THRESHOLD_", "131072"}]}),
    true = lists:prefix(Emu(Flags ++ Back), Cmd2),
    true = lists:member("MALLOC_MMAP_THRESHOLD_=131072", Environ2),
    false = lists:member("MALLOC_MMAP_THRESHOLD_=4194304", Environ2).

%% --loop: the Python workers' event loop (auto by default: uvloop, a test dependency,
%% where it loads), said in the start log; a name it does not know is status 2.
event_loop(Config) ->
    {P, Port} = serve(Config, ["pw_apps:app", "--mode", "gil", "-w", "3"]),
    {200, <<"uvloop">>} = get(Port, "/loop"),
    _ = ?P:wait(P, "3 workers, event loop uvloop"),
    {P2, Port2} = serve(Config, ["pw_apps:app", "--mode", "gil", "--loop", "asyncio", "-w", "3"]),
    {200, <<"asyncio.unix_events">>} = get(Port2, "/loop"),
    _ = ?P:wait(P2, "3 workers, event loop asyncio"),
    {2, Bad} = run_exit(Config, ["pw_apps:app", "--loop", "trio"]),
    {match, _} = re:run(Bad, "--loop").

%% The number of Python workers where none is asked for: one per CPU (the server VM's
%% schedulers: the machine's CPUs, as this VM's) for an ASGI app, whether given as such or
%% detected; erlang_python's default (4) for a WSGI app, which a detected one gets by a
%% restart of Python, and for an app factory's product.  Asked for, it is the number.
default_workers(Config) ->
    Cpus = integer_to_list(erlang:system_info(schedulers_online)),
    Started = fun(P, N) -> ?P:wait(P, "started server process \\[\\d+\\] \\(" ++ N ++
                                       " Python workers\\)") end,
    Restart = "pw_apps:wsgi_app is wsgi: Python restarts with 4 workers",
    {P1, Port1} = serve(Config, ["pw_apps:app"]),
    {200, _} = get(Port1, "/"),
    _ = Started(P1, Cpus),
    {P2, Port2} = serve(Config, ["pw_apps:app", "--interface", "asgi"]),
    {200, _} = get(Port2, "/"),
    _ = Started(P2, Cpus),
    {P3, Port3} = serve(Config, ["pw_apps:wsgi_app"]),
    {200, _} = get(Port3, "/"),
    _ = ?P:wait(P3, Restart),
    _ = Started(P3, "4"),
    {P4, Port4} = serve(Config, ["pw_apps:wsgi_app", "--interface", "wsgi"]),
    {200, _} = get(Port4, "/"),
    _ = Started(P4, "4"),
    nomatch = re:run(?P:output(P4), "restarts"),
    {P5, Port5} = serve(Config, ["pw_apps:create_app", "--factory"]),
    {200, _} = get(Port5, "/"),
    _ = Started(P5, "4"),
    {P6, Port6} = serve(Config, ["pw_apps:wsgi_app", "--workers", "3"]),
    {200, _} = get(Port6, "/"),
    _ = Started(P6, "3"),
    nomatch = re:run(?P:output(P6), "restarts").

%% What pw_apps prints itself.
is_app_line(L) -> binary:match(L, <<"pw_apps: ">>) =:= {0, 9}.

%% --opt=value, short options, any case for levels, WEB_CONCURRENCY.
option_forms(Config) ->
    {P, Port} = serve(Config, ["--log-level=DEBUG", "-w3", "--interface=ASGI3", "pw_apps:app",
                               "--timeout-keep-alive=2"]),
    {200, _} = get(Port, "/"),
    _ = ?P:wait(P, "started server process \\[\\d+\\] \\(3 Python workers\\)"),
    %% debug shows no OTP progress reports (Erlang terms about OTP's processes)
    nomatch = re:run(?P:output(P), "supervisor: |started_at|mfargs"),
    {P2, Port2} = serve(Config, ["pw_apps:app"], #{env => [{"WEB_CONCURRENCY", "2"}]}),
    {200, _} = get(Port2, "/"),
    _ = ?P:wait(P2, "\\(2 Python workers\\)"),
    {0, V} = run_exit(Config, ["--version"]),
    {match, _} = re:run(V, "^pyweb [0-9.]+ \\(py_web [0-9.]+, erlang_python [0-9.]+\\) with Python "),
    {0, H} = run_exit(Config, ["--help"]),
    {match, _} = re:run(H, "--limit-max-requests"),
    {2, E} = run_exit(Config, ["pw_apps:app", "--port=x"]),
    <<"pyweb: --port: expected an integer from 0 to 65535, got x\n">> = E.

run_exit(Config, Args) ->
    run_exit(Config, Args, #{}).

run_exit(Config, Args, Opts) ->
    P = pyweb(Config, Args, Opts),
    ?P:wait_exit(P, 60000).

%% The documented exit statuses, with a one-line reason and no Erlang terms.
exit_statuses(Config) ->
    {1, Missing} = run_exit(Config, ["no_such_module:app", "--port", "0"]),
    {match, _} = re:run(Missing, "pyweb: cannot load the app no_such_module:app: could not import "
                                 "the module: No module named 'no_such_module'\n$"),
    nomatch = re:run(Missing, "Traceback"),
    {1, NoAttr} = run_exit(Config, ["pw_apps:nope", "--port", "0"]),
    {match, _} = re:run(NoAttr, "no such attribute: module 'pw_apps' has no attribute 'nope'"),
    %% the port is taken
    {ok, L} = gen_tcp:listen(0, [{ip, {127, 0, 0, 1}}]),
    {ok, Taken} = inet:port(L),
    {3, InUse} = run_exit(Config, ["pw_apps:app", "--port", integer_to_list(Taken)]),
    {match, _} = re:run(InUse, "pyweb: cannot listen on http://127.0.0.1:" ++ integer_to_list(Taken)
                               ++ ": address already in use\n$"),
    gen_tcp:close(L),
    %% no free-threaded build here: Python does not start (and OTP's reports of its
    %% supervisors are not shown); the server process says it started, with its
    %% workers, only once Python runs
    {3, NoMode} = run_exit(Config, ["pw_apps:app", "--port", "0", "--mode", "free_threaded"]),
    {match, _} = re:run(NoMode, "(^|\n)pyweb: cannot start Python: the mode free_threaded is "
                                "not available: needs a free-threaded CPython build [^\n]*\n$"),
    nomatch = re:run(NoMode, "started server process"),
    %% a worker's set-up fails (the event loop asked for does not import): its exception
    %% in one line
    Broken = tmp(Config, "broken_uvloop"),
    ok = file:write_file(filename:join(Broken, "uvloop.py"), "raise ImportError('a broken uvloop')\n"),
    {3, NoLoop} = run_exit(Config, ["pw_apps:app", "--port", "0", "--mode", "gil", "--loop",
                                    "uvloop", "--app-dir", Broken]),
    {match, _} = re:run(NoLoop, "\npyweb: cannot start Python: worker [0-9]+ failed to start: "
                                "ImportError: a broken uvloop\n$"),
    {2, Bad} = run_exit(Config, ["pw_apps:app", "--access-log-format", "%(nope)s"]),
    {match, _} = re:run(Bad, "bad value for the option access_log_format"),
    [nomatch = re:run(O, "[{}]|<<|errorContext|crasher") || O <- [Missing, NoAttr, InUse, NoMode,
                                                                 NoLoop]].

%% An app whose import fails: its traceback, from its own code, with file and
%% line; then a one-line summary; status 1.
import_error(Config) ->
    Dir = tmp(Config, "broken"),
    ok = file:write_file(filename:join(Dir, "broken_app.py"),
                         "import os\n\ndef helper():\n    return 1 / 0\n\nhelper()\n"),
    ok = file:write_file(filename:join(Dir, "syntax_app.py"), "app = = 1\n"),
    {1, Out} = run_exit(Config, ["broken_app:app", "--port", "0"], #{cd => Dir}),
    {match, _} = re:run(Out, "Traceback \\(most recent call last\\):\n"
                             "  File \"[^\"]*broken_app.py\", line 6, in <module>\n"
                             "    helper\\(\\)\n"
                             "(    [~^]+\n)?"          %% Python 3.13 marks the call
                             "  File \"[^\"]*broken_app.py\", line 4, in helper\n"),
    {match, _} = re:run(Out, "ZeroDivisionError: division by zero\n"
                             "pyweb: cannot load the app broken_app:app: importing the module raised "
                             "ZeroDivisionError: division by zero \\([^)]*broken_app.py, line 4\\)\n$"),
    nomatch = re:run(Out, "hornbeam|importlib"),
    {1, Syn} = run_exit(Config, ["syntax_app:app", "--port", "0"], #{cd => Dir}),
    {match, _} = re:run(Syn, "File \"[^\"]*syntax_app.py\", line 1\n    app = = 1\n"),
    {match, _} = re:run(Syn, "raised SyntaxError: invalid syntax \\(syntax_app.py, line 1\\)\n$").

%% --factory, and a factory found without it (with a warning).
factory(Config) ->
    {_, Port} = serve(Config, ["pw_apps:create_app", "--factory"]),
    {200, <<"Hello, World!">>} = get(Port, "/"),
    {P2, Port2} = serve(Config, ["pw_apps:create_app"]),
    {200, <<"Hello, World!">>} = get(Port2, "/"),
    _ = ?P:wait(P2, "\\[WARNING\\] py_web: pw_apps:create_app takes no arguments: taken for an app "
                    "factory"),
    {1, Out} = run_exit(Config, ["pw_apps:app", "--factory", "--port", "0"]),
    {match, _} = re:run(Out, "the app factory raised TypeError: "),
    {match, _} = re:run(Out, "missing 3 required positional arguments").

%% A certificate or key that cannot be read stops the start, saying which.
tls_files(Config) ->
    Dir = tmp(Config, "tls"),
    Key = filename:join(Dir, "key.pem"),
    ok = file:write_file(Key, <<"not a key">>),
    {3, Out} = run_exit(Config, ["pw_apps:app", "--port", "0", "--ssl-certfile",
                                 filename:join(Dir, "nope.pem"), "--ssl-keyfile", Key]),
    {match, _} = re:run(Out, "pyweb: cannot start: cannot use the TLS certificate file "
                             "[^ ]*nope.pem: no such file or directory\n$"),
    Cert = filename:join(Dir, "cert.pem"),
    {CertPem, KeyPem} = test_pair(),
    ok = file:write_file(Cert, CertPem),
    {3, Out2} = run_exit(Config, ["pw_apps:app", "--port", "0", "--ssl-certfile", Cert,
                                  "--ssl-keyfile", Key]),
    {match, _} = re:run(Out2, "cannot use the TLS key file [^ ]*key.pem: no PEM private key in it\n$"),
    %% and a good pair serves HTTPS
    ok = file:write_file(Key, KeyPem),
    {_, Port} = serve(Config, ["pw_apps:app", "--ssl-certfile", Cert, "--ssl-keyfile", Key]),
    {ok, S} = ssl:connect({127, 0, 0, 1}, Port, [binary, {active, false}, {verify, verify_none}]),
    ok = ssl:send(S, "GET /scope HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"),
    {match, _} = re:run(recv_all_ssl(S, <<>>), "\"scheme\": \"https\""),
    ssl:close(S),
    %% --ssl-ciphers: the TLS 1.2 suites named (uvicorn's default word TLSv1 skipped);
    %% TLS 1.3 is as OTP sets it up
    {_, Port2} = serve(Config, ["pw_apps:app", "--ssl-certfile", Cert, "--ssl-keyfile", Key,
                                "--ssl-ciphers", "TLSv1:ECDHE-ECDSA-AES128-GCM-SHA256"]),
    Suite = fun(Versions, Ciphers) ->
                    case ssl:connect({127, 0, 0, 1}, Port2,
                                     [binary, {active, false}, {verify, verify_none},
                                      {versions, Versions} | Ciphers], 10000) of
                        {ok, S2} ->
                            {ok, [{selected_cipher_suite, CS}]} =
                                ssl:connection_information(S2, [selected_cipher_suite]),
                            ssl:close(S2),
                            CS;
                        {error, _} = E -> E
                    end
            end,
    #{cipher := aes_128_gcm, key_exchange := ecdhe_ecdsa} = Suite(['tlsv1.2'], []),
    {error, _} = Suite(['tlsv1.2'], [{ciphers, [ssl:str_to_suite("ECDHE-ECDSA-AES256-GCM-SHA384")]}]),
    #{key_exchange := any} = Suite(['tlsv1.3'], []).

%% A certificate and its key, PEM.
test_pair() ->
    Curve = [{key, {namedCurve, secp256r1}}],
    #{server_config := SC} = public_key:pkix_test_data(
                               #{server_chain => #{root => Curve, peer => Curve},
                                 client_chain => #{root => Curve, peer => Curve}}),
    {KeyType, Key} = proplists:get_value(key, SC),
    {public_key:pem_encode([{'Certificate', proplists:get_value(cert, SC), not_encrypted}]),
     public_key:pem_encode([{KeyType, Key, not_encrypted}])}.

recv_all_ssl(S, Acc) ->
    case ssl:recv(S, 0, 10000) of
        {ok, D} -> recv_all_ssl(S, <<Acc/binary, D/binary>>);
        {error, _} -> Acc
    end.

%% --env-file sets variables the app reads (an already set one is kept).
env_file(Config) ->
    Dir = tmp(Config, "envfile"),
    File = filename:join(Dir, "app.env"),
    ok = file:write_file(File, "# settings\nPW_GREETING=\"hello there\"\nexport PW_KEPT=file\n"),
    {_, Port} = serve(Config, ["pw_apps:app", "--env-file", File],
                      #{env => [{"PW_KEPT", "environment"}]}),
    {200, <<"hello there">>} = get(Port, "/env?PW_GREETING"),
    {200, <<"environment">>} = get(Port, "/env?PW_KEPT"),
    {2, Out} = run_exit(Config, ["pw_apps:app", "--env-file", filename:join(Dir, "nope.env")]),
    {match, _} = re:run(Out, "--env-file [^ ]*nope.env: no such file or directory").

%%--------------------------------------------------------------------
%% Binding

%% --uds with --uds-permissions: the socket file has the mode, serves, its
%% client is None (as uvicorn), and is removed at the end.
uds(Config) ->
    Dir = short_tmp("uds"),
    Path = filename:join(Dir, "app.sock"),
    P = pyweb(Config, ["pw_apps:app", "--uds", Path, "--uds-permissions", "600"]),
    _ = ?P:wait(P, "running on http\\+unix:" ++ Path),
    {ok, #{mode := Mode}} = file_mode(Path),
    8#600 = Mode band 8#777,
    {ok, S} = gen_tcp:connect({local, Path}, 0, [local, binary, {active, false}]),
    put({buf, S}, <<>>),
    ok = gen_tcp:send(S, "GET /scope HTTP/1.1\r\nhost: example.com\r\n\r\n"),
    {ok, 200, _, B} = ?TC:recv(S),
    #{<<"client">> := null, <<"server">> := null} = json(B),
    ok = ?P:signal(P, "TERM"),
    {0, _} = ?P:wait_exit(P, 30000),
    false = filelib:is_file(Path).

file_mode(Path) ->
    case file:read_file_info(Path) of
        {ok, I} -> {ok, #{mode => element(8, I)}};
        E -> E
    end.

%% --fd: the listening socket a process manager opened (systemd, circus):
%% a wrapper opens it and runs bin/pyweb with it inherited.
fd(Config) ->
    Wrapper = filename:join(?config(data_dir, Config), "with_fd.py"),
    P2 = ?P:start([Wrapper, ?P:pyweb(), "pw_apps:app", "--fd", "FD"],
                  #{exe => python(), cd => ?config(data_dir, Config)}),
    put(procs, [P2 | procs()]),
    [PortB] = ?P:wait(P2, "^with_fd: port ([0-9]+)"),
    Port = binary_to_integer(PortB),
    _ = ?P:wait(P2, "running on http://127.0.0.1:" ++ integer_to_list(Port)),
    {200, <<"Hello, World!">>} = get(Port, "/").

%% Several --bind (gunicorn): each one serves.
several_binds(Config) ->
    Dir = short_tmp("binds"),
    Sock = filename:join(Dir, "b.sock"),
    P = pyweb(Config, ["pw_apps:app", "-b", "127.0.0.1:0", "--bind", "unix:" ++ Sock,
                       "--bind=127.0.0.1:0"]),
    Ports = [binary_to_integer(B) || B <- wait_all(P, "running on http://127.0.0.1:([0-9]+) ", 2)],
    _ = ?P:wait(P, "running on http\\+unix:" ++ Sock),
    [{200, <<"Hello, World!">>} = get(Port, "/") || Port <- Ports],
    {ok, S} = gen_tcp:connect({local, Sock}, 0, [local, binary, {active, false}]),
    put({buf, S}, <<>>),
    ok = gen_tcp:send(S, "GET / HTTP/1.1\r\nhost: x\r\n\r\n"),
    {ok, 200, _, <<"Hello, World!">>} = ?TC:recv(S).

wait_all(P, Re, N) ->
    until(fun() -> length(matches(?P:output(P), Re)) >= N end, Re),
    matches(?P:output(P), Re).

matches(Out, Re) ->
    case re:run(Out, Re, [global, {capture, all_but_first, binary}]) of
        {match, Ms} -> [M || [M] <- Ms];
        nomatch -> []
    end.

%% --host takes names; `--host ::' is shown as http://[::]:PORT.
host_names(Config) ->
    {_, Port} = serve(Config, ["pw_apps:app", "--host", "localhost"]),
    {200, _} = get(Port, "/"),
    case gen_tcp:listen(0, [inet6, {ip, {0, 0, 0, 0, 0, 0, 0, 1}}]) of
        {ok, L6} ->
            gen_tcp:close(L6),
            P = pyweb(Config, ["pw_apps:app", "--host", "::", "--port", "0"]),
            [Port6] = ?P:wait(P, "running on http://\\[::\\]:([0-9]+) "),
            {ok, S} = gen_tcp:connect({0, 0, 0, 0, 0, 0, 0, 1}, binary_to_integer(Port6),
                                      [inet6, binary, {active, false}]),
            put({buf, S}, <<>>),
            ok = gen_tcp:send(S, "GET / HTTP/1.1\r\nhost: x\r\n\r\n"),
            {ok, 200, _, _} = ?TC:recv(S);
        {error, _} ->
            {comment, "no IPv6 on this machine: --host :: not tried"}
    end.

%%--------------------------------------------------------------------
%% Proxies

%% X-Forwarded-Proto/For from a trusted peer set the scheme and the client
%% (ASGI and WSGI alike); from an untrusted one, or with --no-proxy-headers,
%% nothing changes. FORWARDED_ALLOW_IPS is read. (Trust lists at length:
%% the differential case.)
proxy_headers(Config) ->
    XF = [{"x-forwarded-proto", "https"}, {"x-forwarded-for", "203.0.113.7, 127.0.0.1"}],
    {_, Port} = serve(Config, ["pw_apps:app"]),
    #{<<"scheme">> := <<"https">>, <<"client">> := [<<"203.0.113.7">>, 0]} =
        json(Port, "/scope", XF),
    {_, WPort} = serve(Config, ["pw_apps:wsgi_app", "--interface", "wsgi"]),
    %% true only where the app runs in several OS processes (the suite's mode)
    MultiProcess = os:getenv("ERLANG_PYTHON_MODE") =:= "processes",
    #{<<"wsgi.url_scheme">> := <<"https">>, <<"REMOTE_ADDR">> := <<"203.0.113.7">>,
      <<"SERVER_SOFTWARE">> := <<"py_web/", _/binary>>,
      <<"wsgi.multiprocess">> := MultiProcess} =
        json(WPort, "/environ", XF),
    {_, Port3} = serve(Config, ["pw_apps:app"], #{env => [{"FORWARDED_ALLOW_IPS", "10.1.1.1"}]}),
    #{<<"scheme">> := <<"http">>} = json(Port3, "/scope", XF),
    {_, Port4} = serve(Config, ["pw_apps:app", "--no-proxy-headers"]),
    #{<<"scheme">> := <<"http">>, <<"client">> := [<<"127.0.0.1">>, _]} = json(Port4, "/scope", XF),
    %% RFC 7239 from a proxy that sends only that
    #{<<"scheme">> := <<"https">>, <<"client">> := [<<"2001:db8::1">>, 4711]} =
        json(Port, "/scope", [{"forwarded", "for=\"[2001:db8::1]:4711\";proto=https"}]).

%% --proxy-protocol: the PROXY header's client is the app's client.
proxy_protocol(Config) ->
    {_, Port} = serve(Config, ["pw_apps:app", "--proxy-protocol"]),
    S = ?TC:connect(Port),
    ?TC:send(S, "PROXY TCP4 198.51.100.9 192.0.2.1 40000 443\r\nGET /scope HTTP/1.1\r\nhost: x\r\n\r\n"),
    {ok, 200, _, B} = ?TC:recv(S),
    #{<<"client">> := [<<"198.51.100.9">>, 40000], <<"server">> := [<<"192.0.2.1">>, 443]} = json(B),
    %% the same connection goes on with its next request
    {ok, 200, _, B2} = ?TC:get(S, "/scope"),
    #{<<"client">> := [<<"198.51.100.9">>, 40000]} = json(B2),
    gen_tcp:close(S),
    %% v2, then X-Forwarded-For is not believed from the client it names
    S2 = ?TC:connect(Port),
    V2 = <<"\r\n\r\n\0\r\nQUIT\n", 16#21, 16#11, 12:16, 198, 51, 100, 10, 192, 0, 2, 1, 40001:16, 80:16>>,
    ?TC:send(S2, [V2, "GET /scope HTTP/1.1\r\nhost: x\r\nx-forwarded-for: 6.6.6.6\r\n\r\n"]),
    {ok, 200, _, B3} = ?TC:recv(S2),
    #{<<"client">> := [<<"198.51.100.10">>, 40001]} = json(B3),
    %% without a header: the connection's own address
    #{<<"client">> := [<<"127.0.0.1">>, _]} = json(Port, "/scope", []),
    %% a header from a peer not allowed: not read (a bad request)
    {_, Port2} = serve(Config, ["pw_apps:app", "--proxy-protocol=v1", "--proxy-allow-from", "10.0.0.1"]),
    S3 = ?TC:connect(Port2),
    ?TC:send(S3, "PROXY TCP4 198.51.100.9 192.0.2.1 40000 443\r\nGET /scope HTTP/1.1\r\nhost: x\r\n\r\n"),
    {ok, 400, _, _} = ?TC:recv(S3).

%% Starlette under --root-path (a proxy that strips /api): request.url,
%% url_for and redirects keep the prefix; a proxy that keeps it works too.
root_path_starlette(Config) ->
    {_, Port} = serve(Config, ["pw_starlette:app", "--root-path", "/api"]),
    H = [{"host", "example.com"}],
    Expect = #{<<"url">> => <<"http://example.com/api/items/3">>,
               <<"url_for">> => <<"http://example.com/api/items/7">>,
               <<"base_url">> => <<"http://example.com/api/">>,
               <<"root_path">> => <<"/api">>, <<"path">> => <<"/api/items/3">>},
    Expect = json(Port, "/items/3", H),
    Expect = json(Port, "/api/items/3", H),
    {ok, 302, Hs, _} = raw(Port, "GET", "/go", [{"host", "example.com"}, {"x-forwarded-proto", "https"}]),
    <<"https://example.com/api/items/1">> = ?TC:header(<<"location">>, Hs),
    %% the WSGI split is the same: SCRIPT_NAME + PATH_INFO
    {_, WPort} = serve(Config, ["pw_apps:wsgi_app", "--root-path", "/api/"]),
    #{<<"SCRIPT_NAME">> := <<"/api">>, <<"PATH_INFO">> := <<"/environ">>} = json(WPort, "/api/environ", []),
    #{<<"SCRIPT_NAME">> := <<"/api">>, <<"PATH_INFO">> := <<"/environ">>} = json(WPort, "/environ", []).

%% Django's CSRF check behind a TLS-terminating proxy: the form post passes
%% (302, as under gunicorn) because X-Forwarded-Proto makes the request
%% secure; without proxy headers it is refused (403).
django_csrf(Config) ->
    Post = fun(Port) ->
                   {ok, 200, Hs, Page} = raw(Port, "GET", "/form", [{"host", "example.com"},
                                                                      {"x-forwarded-proto", "https"}]),
                   [<<"csrftoken=", Cookie0/binary>> | _] = ?TC:headers(<<"set-cookie">>, Hs),
                   [Cookie | _] = binary:split(Cookie0, <<";">>),
                   <<"token=", Token/binary>> = Page,
                   raw(Port, "POST", "/form",
                       [{"host", "example.com"}, {"x-forwarded-proto", "https"},
                        {"x-forwarded-for", "203.0.113.50"},
                        {"origin", "https://example.com"}, {"referer", "https://example.com/form"},
                        {"cookie", ["csrftoken=", Cookie]},
                        {"content-type", "application/x-www-form-urlencoded"}],
                       <<"csrfmiddlewaretoken=", Token/binary>>)
           end,
    {_, Port} = serve(Config, ["pw_django:application"]),
    {ok, 302, Hs, _} = Post(Port),
    <<"/done">> = ?TC:header(<<"location">>, Hs),
    {_, Port2} = serve(Config, ["pw_django:application", "--no-proxy-headers"]),
    {ok, 403, _, _} = Post(Port2).

%% A WebSocket through a TLS-terminating proxy: its scope's scheme is wss
%% and its client the forwarded one; a reload (SIGHUP) closes it with 1001
%% (going away: the client reconnects to the new server process).
websocket_behind_proxy(Config) ->
    {P, Port} = serve(Config, ["pw_apps:app"]),
    {ok, S} = gen_tcp:connect({127, 0, 0, 1}, Port, [binary, {active, false}]),
    ok = gen_tcp:send(S, ["GET /ws HTTP/1.1\r\nhost: example.com\r\nupgrade: websocket\r\n"
                          "connection: Upgrade\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                          "sec-websocket-version: 13\r\nx-forwarded-proto: https\r\n"
                          "x-forwarded-for: 203.0.113.5\r\n\r\n"]),
    {<<"HTTP/1.1 101 ", _/binary>>, Rest} = ws_head(S, <<>>),
    {text, Json, Rest2} = ws_frame(S, Rest),
    #{<<"type">> := <<"websocket">>, <<"scheme">> := <<"wss">>,
      <<"client">> := [<<"203.0.113.5">>, 0]} = json(Json),
    ok = ?P:signal(P, "HUP"),
    {close, <<1001:16, _/binary>>, _} = ws_frame(S, Rest2),
    gen_tcp:close(S).

%% bin/pyweb serving py_web_ws_SUITE's FastAPI chat to its ws_client.py chat scenario: the
%% page, then a websocket with a browser's handshake (Origin, User-Agent, compression)
%% beside a second member. One interpreter (the room is a module global; FastAPI does not
%% load in a sub-interpreter).
fastapi_chat_websocket(Config) ->
    Here = filename:dirname(string:trim(?config(data_dir, Config), trailing, "/")),
    WsData = filename:join(Here, "py_web_ws_SUITE_data"),
    {_, Port} = serve(Config, ["ws_fastapi_chat:app", "--app-dir", WsData, "--mode", "gil",
                               "--workers", "1"]),
    Out = os:cmd(py_web_ct:python_exe() ++ " " ++ filename:join(WsData, "ws_client.py") ++
                 " ws://127.0.0.1:" ++ integer_to_list(Port) ++ " chat 2>&1; echo rc=$?"),
    ?assertEqual("ok\nrc=0\n", Out).

ws_head(S, Buf) ->
    case binary:split(Buf, <<"\r\n\r\n">>) of
        [Head, Rest] -> {Head, Rest};
        [_] -> {ok, D} = gen_tcp:recv(S, 0, 30000), ws_head(S, <<Buf/binary, D/binary>>)
    end.

%% One unmasked frame from the server: {text | close | Opcode, Payload, Rest}.
ws_frame(S, <<_:4, Op:4, 0:1, Len:7, More/binary>> = Buf) ->
    {N, Body} = case Len of
                    126 when byte_size(More) >= 2 -> <<L:16, B/binary>> = More, {L, B};
                    127 when byte_size(More) >= 8 -> <<L:64, B/binary>> = More, {L, B};
                    _ when Len < 126 -> {Len, More};
                    _ -> {more, More}
                end,
    case N =/= more andalso byte_size(Body) >= N of
        true ->
            <<Payload:N/binary, Rest/binary>> = Body,
            {case Op of 1 -> text; 8 -> close; _ -> Op end, Payload, Rest};
        false ->
            ws_more(S, Buf)
    end;
ws_frame(S, Buf) ->
    ws_more(S, Buf).

ws_more(S, Buf) ->
    {ok, D} = gen_tcp:recv(S, 0, 30000),
    ws_frame(S, <<Buf/binary, D/binary>>).

%%--------------------------------------------------------------------
%% Lifecycle

%% The graceful stop waits for the request in flight (no limit by
%% default); a second SIGINT (Ctrl-C pressed twice, however fast) ends it
%% at once with status 130.
second_signal_forces(Config) ->
    {P, Port} = serve(Config, ["pw_apps:app"]),
    S = ?TC:connect(Port),
    ?TC:send(S, ?TC:req("GET", "/hang", [], <<>>)),
    _ = ?P:wait(P, "pw_apps: /hang entered"),
    ok = ?P:signal(P, "INT"),
    _ = ?P:wait(P, "shutting down"),
    %% still waiting for /hang
    timer:sleep(300),
    {_, running} = {P, status(P)},
    ok = ?P:signal(P, "INT"),
    {130, Out} = ?P:wait_exit(P, 30000),
    {match, _} = re:run(Out, "\\[WARNING\\] pyweb: forced exit").

status(P) ->
    try ?P:wait_exit(P, 0) of
        {S, _} -> S
    catch error:_ -> running
    end.

%% --timeout-graceful-shutdown: the request still running then gets a 503
%% and an access line; the stop is clean (status 0).
graceful_timeout_cuts(Config) ->
    {P, Port} = serve(Config, ["pw_apps:app", "--timeout-graceful-shutdown", "1"]),
    S = ?TC:connect(Port),
    ?TC:send(S, ?TC:req("GET", "/hang", [], <<>>)),
    _ = ?P:wait(P, "pw_apps: /hang entered"),
    ok = ?P:signal(P, "TERM"),
    {ok, 503, _, <<"Service Unavailable">>} = ?TC:recv(S),
    {0, Out} = ?P:wait_exit(P, 30000),
    {match, _} = re:run(Out, "\"GET /hang HTTP/1.1\" 503 Service Unavailable"),
    {match, _} = re:run(Out, "1 request\\(s\\) still in flight cut").

%% --limit-concurrency: over the limit, 503 (and the others are served).
limit_concurrency(Config) ->
    {P, Port} = serve(Config, ["pw_apps:app", "--limit-concurrency", "1"]),
    S = ?TC:connect(Port),
    ?TC:send(S, ?TC:req("GET", "/slow?3", [], <<>>)),
    _ = ?P:wait(P, "pw_apps: /slow entered"),
    {ok, 503, _, _} = raw(Port, "GET", "/", []),
    {ok, 200, _, <<"slow v1">>} = ?TC:recv(S),
    gen_tcp:close(S),
    until(fun() -> get(Port, "/") =:= {200, <<"Hello, World!">>} end, served_again),
    _ = ?P:wait(P, "\"GET / HTTP/1.1\" 503 Service Unavailable").

%% --limit-max-requests: after N requests a new server process takes over;
%% no request fails meanwhile.
limit_max_requests(Config) ->
    {P, Port} = serve(Config, ["pw_apps:app", "--limit-max-requests", "3"]),
    Pids = [begin
                {200, <<"v1 ", Pid/binary>>} = get(Port, "/version"),
                Pid
            end || _ <- lists:seq(1, 12)],
    until(fun() -> length(lists:usort(Pids ++ [element(2, get(Port, "/version"))])) >= 2 end,
          new_process),
    _ = ?P:wait(P, "maximum number of requests reached: starting a new server process").

%%--------------------------------------------------------------------
%% Logs

%% An access line for every request: the app's 200/404/500, the server's
%% own 400/413, a timeout (504), a client that left (499); the app's
%% traceback once per failing request; --header and --no-server-header.
access_lines(Config) ->
    {P, Port} = serve(Config, ["pw_apps:app", "--timeout-request", "1", "--limit-max-body", "10",
                               "--header", "X-Frame-Options: DENY", "--no-server-header"]),
    {ok, 200, Hs, _} = raw(Port, "GET", "/", []),
    <<"DENY">> = ?TC:header(<<"x-frame-options">>, Hs),
    undefined = ?TC:header(<<"server">>, Hs),
    {404, _} = get(Port, "/missing"),
    {500, _} = get(Port, "/error"),
    {ok, 413, Hs413, _} = raw(Port, "POST", "/", [], <<"more than ten bytes">>),
    <<"DENY">> = ?TC:header(<<"x-frame-options">>, Hs413),
    S = ?TC:connect(Port),
    ?TC:send(S, "GARBAGE\r\n\r\n"),
    {ok, 400, _, _} = ?TC:recv(S),
    {504, _} = get(Port, "/hang"),
    S2 = ?TC:connect(Port),
    ?TC:send(S2, ?TC:req("GET", "/slow?1", [], <<>>)),
    _ = ?P:wait(P, "pw_apps: /slow entered"),
    gen_tcp:close(S2),
    Lines = ["\"GET / HTTP/1.1\" 200 OK", "\"GET /missing HTTP/1.1\" 404 Not Found",
             "\"GET /error HTTP/1.1\" 500 Internal Server Error",
             "\"POST / HTTP/1.1\" 413 Content Too Large", " - \"-\" 400 Bad Request",
             "\"GET /hang HTTP/1.1\" 504 Gateway Timeout",
             "\"GET /slow\\?1 HTTP/1.1\" 499 Client Closed Request"],
    [_ = ?P:wait(P, L) || L <- Lines],
    Out = ?P:output(P),
    %% the traceback once, in an error line that names the request
    {match, [_]} = re:run(Out, "Traceback", [global]),
    {match, [_, _]} = re:run(Out, "RuntimeError: boom in /error", [global]),  %% summary + traceback
    {match, _} = re:run(Out, "\\[ERROR\\] py_web: GET /error: RuntimeError: boom in /error\n"
                             "Traceback \\(most recent call last\\):"),
    [{match, _} = re:run(L, ?LOG_LINE) || L <- lines(Out), binary:first(L) =:= $[].

%% A WSGI body is read before the app: its errors have access lines too (a
%% body over the limit, a client that leaves in the middle of it).
wsgi_access_lines(Config) ->
    {P, Port} = serve(Config, ["pw_apps:wsgi_app", "--limit-max-body", "10"]),
    S0 = ?TC:connect(Port),
    ?TC:send(S0, "POST /environ HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n"
                 "c\r\nmore than 10\r\n0\r\n\r\n"),
    {ok, 413, _, _} = ?TC:recv(S0),
    S = ?TC:connect(Port),
    ?TC:send(S, "POST /environ HTTP/1.1\r\nhost: x\r\ncontent-length: 8\r\n\r\nhalf"),
    timer:sleep(200),
    gen_tcp:close(S),
    {200, _} = get(Port, "/environ"),
    [_ = ?P:wait(P, L) || L <- ["\"POST /environ HTTP/1.1\" 413 Content Too Large",
                                "\"POST /environ HTTP/1.1\" 499 Client Closed Request",
                                "\"GET /environ HTTP/1.1\" 200 OK"]].

%% --access-log-format with gunicorn's fields (--access-logformat too).
access_log_format(Config) ->
    {P, Port} = serve(Config, ["pw_apps:app", "--access-logformat",
                               "%(h)s %(l)s %(u)s %(t)s \"%(r)s\" %(s)s %(b)s \"%(f)s\" \"%(a)s\" "
                               "%({x-request-id}i)s %({content-type}o)s %(p)s"]),
    {ok, 200, _, _} = raw(Port, "GET", "/?q=1",
                          [{"user-agent", "tester/1.0"}, {"referer", "http://r/"},
                           {"x-request-id", "abc"},
                           {"authorization", "Basic " ++ base64:encode_to_string("ada:secret")}]),
    _ = ?P:wait(P, "127.0.0.1 - ada \\[\\d\\d/\\w{3}/\\d{4}:\\d\\d:\\d\\d:\\d\\d [-+]\\d{4}\\] "
                   "\"GET /\\?q=1 HTTP/1.1\" 200 13 \"http://r/\" \"tester/1.0\" abc text/plain <\\d+>"),
    %% --no-access-log
    {P2, Port2} = serve(Config, ["pw_apps:app", "--no-access-log"]),
    {200, _} = get(Port2, "/"),
    ok = ?P:signal(P2, "TERM"),
    {0, Out} = ?P:wait_exit(P2, 30000),
    nomatch = re:run(Out, "\"GET / HTTP/1.1\"").

%% --log-config: JSON that asks for JSON lines; --access-logfile to a file.
log_config(Config) ->
    Dir = tmp(Config, "logcfg"),
    Cfg = filename:join(Dir, "log.json"),
    ok = file:write_file(Cfg, <<"{\"level\": \"INFO\", \"handlers\": {\"default\": "
                                "{\"type\": \"standard_error\", \"format\": \"json\"}}}">>),
    {P, Port} = serve(Config, ["pw_apps:app", "--log-config", Cfg]),
    {200, _} = get(Port, "/"),
    _ = ?P:wait(P, "\"py_web\":\"access\""),
    [begin
         {ok, #{<<"level">> := _, <<"time">> := _, <<"message">> := _, <<"pid">> := _}} =
             py_web_json:decode(L)
     end || L <- lines(?P:output(P))],
    Access = filename:join(Dir, "access.log"),
    {P2, Port2} = serve(Config, ["pw_apps:app", "--access-logfile", Access]),
    {200, _} = get(Port2, "/"),
    until(fun() -> case file:read_file(Access) of
                       {ok, B} -> binary:match(B, <<"\"GET / HTTP/1.1\" 200">>) =/= nomatch;
                       _ -> false
                   end end, access_file),
    nomatch = re:run(?P:output(P2), "\"GET / HTTP/1.1\""),
    {2, Bad} = run_exit(Config, ["pw_apps:app", "--log-config", filename:join(Dir, "nope.json")]),
    {match, _} = re:run(Bad, "--log-config: cannot use the log configuration [^ ]*nope.json: "
                             "no such file or directory\n$"),
    %% uvicorn's --log-config JSON (Python's dictConfig): its handlers, by the
    %% loggers that use them; a JSON formatter writes JSON
    Dict = filename:join(Dir, "uvicorn-log.json"),
    AccessJson = filename:join(Dir, "access.jsonl"),
    ok = file:write_file(Dict, [<<"{\"version\": 1, \"disable_existing_loggers\": false,
      \"formatters\": {\"default\": {\"format\": \"%(message)s\"},
                     \"json\": {\"()\": \"pythonjsonlogger.jsonlogger.JsonFormatter\"}},
      \"handlers\": {\"default\": {\"class\": \"logging.StreamHandler\", \"formatter\": \"default\",
                                  \"stream\": \"ext://sys.stderr\"},
                   \"access\": {\"class\": \"logging.FileHandler\", \"formatter\": \"json\",
                              \"filename\": \"">>, AccessJson, <<"\"}},
      \"loggers\": {\"uvicorn\": {\"handlers\": [\"default\"], \"level\": \"INFO\"},
                  \"uvicorn.access\": {\"handlers\": [\"access\"], \"level\": \"INFO\"}}}">>]),
    {P3, Port3} = serve(Config, ["pw_apps:app", "--log-config", Dict]),
    {200, _} = get(Port3, "/"),
    until(fun() -> file_has(AccessJson, <<"\"py_web\":\"access\"">>) end, access_json),
    nomatch = re:run(?P:output(P3), "\"GET / HTTP/1.1\""),
    %% Python's .ini and .yaml logging files: not read, and said so
    Ini = filename:join(Dir, "logging.ini"),
    ok = file:write_file(Ini, "[loggers]\nkeys=root\n"),
    {2, IniOut} = run_exit(Config, ["pw_apps:app", "--log-config", Ini]),
    {match, _} = re:run(IniOut, "Python logging's .ini and .yaml files are not read").

%%--------------------------------------------------------------------
%% Reload

%% SIGHUP with requests in flight: they finish on the old code, requests
%% sent meanwhile are all answered, new ones get the new code; the process
%% is not stopped.
sighup_in_flight(Config) ->
    Dir = app_copy(Config, "hup"),
    %% No access log: the load logs thousands of lines a second, which the test would keep
    %% and search for nothing.
    {P, Port} = serve(Config, ["pw_apps:app", "--no-access-log"], #{cd => Dir}),
    {200, <<"v1 ", _/binary>>} = get(Port, "/version"),
    Self = self(),
    Slow = [spawn_link(fun() -> Self ! {slow, self(), get(Port, "/slow?2")} end)
            || _ <- lists:seq(1, 3)],
    _ = wait_all(P, "pw_apps: (/slow) entered", 3),
    set_version(Dir, "v2"),
    Load = spawn_link(fun() -> load(Self, Port, []) end),
    ok = ?P:signal(P, "HUP"),
    _ = ?P:wait(P, "SIGHUP: starting a new server process"),
    %% (in the processes mode another worker process answers v1 with another pid)
    until(fun() -> case get(Port, "/version") of
                       {200, <<"v2 ", _/binary>>} -> true;
                       _ -> false
                   end
          end, new_code),
    {200, <<"v2 ", _/binary>>} = get(Port, "/version"),
    [receive {slow, S, R} -> {200, <<"slow v1">>} = R end || S <- Slow],
    Load ! stop,
    Results = receive {load, L} -> L end,
    ct:comment("~B requests during the reload, all answered", [length(Results)]),
    [] = [R || R <- Results, element(1, R) =/= 200],
    true = length(Results) > 0,
    _ = ?P:wait(P, "retiring: finishing its requests"),
    running = status(P).

%% Requests one after another on one kept-alive connection and on new ones.
load(Parent, Port, Acc) ->
    receive stop -> Parent ! {load, Acc}
    after 0 ->
        R = try get(Port, "/version")
            catch C:E -> {failed, C, E}
            end,
        load(Parent, Port, [R | Acc])
    end.

app_copy(Config, Name) ->
    Dir = tmp(Config, Name),
    {ok, _} = file:copy(filename:join(?config(data_dir, Config), "pw_apps.py"),
                        filename:join(Dir, "pw_apps.py")),
    Dir.

set_version(Dir, V) ->
    File = filename:join(Dir, "pw_apps.py"),
    {ok, B} = file:read_file(File),
    New = re:replace(B, "^VERSION = \"[^\"]*\"", ["VERSION = \"", V, "\""], [multiline, {return, binary}]),
    ok = file:write_file(File, New).

%% Started with SIGHUP and SIGINT ignored (as nohup and a script's `&' start it), bin/pyweb
%% still reloads on SIGHUP and stops on SIGINT, as uvicorn and gunicorn do.
signals_ignored_at_start(Config) ->
    Sh = io_lib:format("trap '' HUP INT; exec '~ts' pw_apps:app --port 0 --no-access-log",
                       [?P:pyweb()]),
    P = pyweb(Config, ["-c", lists:flatten(Sh)], #{exe => "/bin/sh"}),
    Port = ?P:port(P),
    {200, <<"v1 ", Old/binary>>} = get(Port, "/version"),
    ok = ?P:signal(P, "HUP"),
    _ = ?P:wait(P, "SIGHUP: starting a new server process"),
    _ = ?P:wait(P, "retiring: finishing its requests"),
    {200, <<"v1 ", New/binary>>} = get(Port, "/version"),
    true = New =/= Old,
    ok = ?P:signal(P, "INT"),
    {0, _} = ?P:wait_exit(P, 30000).

%% --reload: a save is served; a save that breaks the app keeps the old code
%% serving (and prints why); the next good save is served.
reload_on_edit(Config) ->
    Dir = app_copy(Config, "reload"),
    {P, Port} = serve(Config, ["pw_apps:app", "--reload", "--reload-delay", "0.1"], #{cd => Dir}),
    _ = ?P:wait(P, "watching 1 file\\(s\\) for changes"),
    {200, <<"v1 ", _/binary>>} = get(Port, "/version"),
    set_version(Dir, "v2"),
    until(fun() -> binary:match(element(2, get(Port, "/version")), <<"v2 ">>) =/= nomatch end, v2),
    _ = ?P:wait(P, "changes detected in pw_apps.py: starting a new server process"),
    File = filename:join(Dir, "pw_apps.py"),
    {ok, Good} = file:read_file(File),
    ok = file:write_file(File, <<Good/binary, "\nraise RuntimeError('half-saved')\n">>),
    _ = ?P:wait(P, "RuntimeError: half-saved"),
    _ = ?P:wait(P, "the new server process could not start"),
    {200, <<"v2 ", _/binary>>} = get(Port, "/version"),
    ok = file:write_file(File, Good),
    set_version(Dir, "v3"),
    until(fun() -> binary:match(element(2, get(Port, "/version")), <<"v3 ">>) =/= nomatch end, v3),
    ok = ?P:signal(P, "TERM"),
    {0, _} = ?P:wait_exit(P, 30000).

%% --reload-extra-file (gunicorn): a file that is not Python, watched too.
reload_extra_file(Config) ->
    Dir = app_copy(Config, "extra"),
    Extra = filename:join(Dir, "settings.toml"),
    ok = file:write_file(Extra, "a = 1\n"),
    {P, Port} = serve(Config, ["pw_apps:app", "--reload", "--reload-delay", "0.1",
                               "--reload-extra-file", Extra], #{cd => Dir}),
    _ = ?P:wait(P, "watching 2 file\\(s\\)"),
    {200, <<"v1 ", Pid1/binary>>} = get(Port, "/version"),
    ok = file:write_file(Extra, "a = 2\n"),
    _ = ?P:wait(P, "changes detected in settings.toml"),
    until(fun() -> element(2, get(Port, "/version")) =/= <<"v1 ", Pid1/binary>> end, reloaded).

%% The control socket between bin/pyweb's supervisor and its server
%% processes has a name anyone on the machine can find: a process that
%% connects and claims to be the server process being started (SIGHUP) gets
%% no sockets without the secret the real one has; the real one takes over.
control_socket_guarded(Config) ->
    Dir = app_copy(Config, "guard"),
    {P, Port} = serve(Config, ["pw_apps:app"], #{cd => Dir}),
    [Sup] = ?P:wait(P, "started supervisor process \\[(\\d+)\\]"),
    {ok, Unix} = file:read_file("/proc/net/unix"),
    {match, [Name]} = re:run(Unix, "@(pyweb-" ++ binary_to_list(Sup) ++ "-\\d+)",
                             [{capture, all_but_first, binary}]),
    {200, <<"v1 ", _/binary>>} = get(Port, "/version"),
    set_version(Dir, "v2"),
    ok = ?P:signal(P, "HUP"),
    _ = ?P:wait(P, "SIGHUP: starting a new server process"),
    {ok, S} = socket:open(local, stream, default),
    ok = socket:connect(S, #{family => local, path => <<0, Name/binary>>}),
    Hello = term_to_binary({hello, 2, "1", base64:encode(crypto:strong_rand_bytes(18))}),
    ok = socket:send(S, <<(byte_size(Hello)):32, Hello/binary>>),
    %% closed, nothing sent (no descriptors)
    {error, closed} = socket:recvmsg(S, 0, 64, [], 10000),
    socket:close(S),
    until(fun() -> binary:match(element(2, get(Port, "/version")), <<"v2 ">>) =/= nomatch end, v2).

%%--------------------------------------------------------------------
%% uvicorn's and gunicorn's command lines, unchanged

%% A uvicorn command line as a deployment writes it: served, with notices
%% for what has no effect here.
uvicorn_command_line(Config) ->
    {P, Port} = serve(Config, ["pw_apps:app", "--host", "127.0.0.1", "--workers", "2",
                               "--loop", "uvloop", "--http", "httptools", "--ws", "websockets",
                               "--proxy-headers", "--forwarded-allow-ips", "*",
                               "--no-date-header", "--header", "X-Served-By:pyweb",
                               "--timeout-keep-alive", "5", "--timeout-graceful-shutdown", "10",
                               "--limit-concurrency", "100", "--backlog", "512",
                               "--log-level", "info", "--no-use-colors", "--reset-contextvars",
                               "--lifespan", "on", "--app-dir", "."]),
    {ok, 200, Hs, <<"Hello, World!">>} = raw(Port, "GET", "/", []),
    undefined = ?TC:header(<<"date">>, Hs),
    <<"pyweb">> = ?TC:header(<<"x-served-by">>, Hs),
    _ = ?P:wait(P, "\\(2 Python workers\\)"),
    _ = ?P:wait(P, "\\[NOTICE\\] pyweb: --http httptools: ignored \\(py_web has its own HTTP/1.1 server"),
    %% uvicorn's --ws websockets is py_web's own, --loop uvloop is taken (py_web_pyweb_SUITE:
    %% event_loop): no notice
    nomatch = re:run(?P:output(P), "--reset-contextvars|--no-use-colors|--ws|--loop").

%% A gunicorn command line with its configuration file (bind, workers and
%% threads, raw_env, accesslog, a hook) and the usual flags.
gunicorn_command_line(Config) ->
    P = pyweb(Config, ["-c", "pw_gunicorn.conf.py", "-k", "uvicorn.workers.UvicornWorker",
                       "--preload", "--max-requests", "1000", "--max-requests-jitter", "50",
                       "--keep-alive", "5", "--forwarded-allow-ips", "*",
                       "--worker-tmp-dir", "/dev/shm", "--log-level", "info",
                       "--error-logfile", "-", "--graceful-timeout", "5", "pw_apps:app"]),
    Port = ?P:port(P),
    {200, <<"from gunicorn.conf.py">>} = get(Port, "/env?PW_GREETING"),
    #{<<"client">> := [<<"203.0.113.9">>, 0]} =
        json(Port, "/scope", [{"x-forwarded-for", "203.0.113.9"}]),
    _ = ?P:wait(P, "\\(4 Python workers\\)"),
    _ = ?P:wait(P, "\\[NOTICE\\] pyweb: --config: server hooks are not run: post_fork"),
    _ = ?P:wait(P, "\\[NOTICE\\] pyweb: -k uvicorn.workers.UvicornWorker: ignored"),
    %% accesslog = "-": access lines on standard output
    _ = ?P:wait(P, "\"GET /scope HTTP/1.1\" 200"),
    %% a configuration file that does not run: its error, status 2
    Dir = tmp(Config, "gconf"),
    Bad = filename:join(Dir, "bad.conf.py"),
    ok = file:write_file(Bad, "workers = 1 / 0\n"),
    {2, Out} = run_exit(Config, ["-c", Bad, "pw_apps:app"]),
    {match, _} = re:run(Out, "pyweb: --config [^ ]*bad.conf.py: ZeroDivisionError: division by zero\n$").

%% --daemon (gunicorn's -D): checked, then detached: bin/pyweb returns 0 at
%% once, the server runs on with its pid file and log file.
daemon(Config) ->
    Dir = short_tmp("daemon"),
    Pid = filename:join(Dir, "pyweb.pid"),
    Log = filename:join(Dir, "pyweb.log"),
    {2, Bad} = run_exit(Config, ["pw_apps:app", "-D", "--port", "x"]),
    {match, _} = re:run(Bad, "--port: expected an integer"),
    {0, <<>>} = run_exit(Config, ["pw_apps:app", "-D", "--port", "0", "--pid", Pid,
                                  "--error-logfile", Log]),
    %% (written whole: never seen empty)
    until(fun() -> filelib:is_file(Pid) end, pid_file),
    {ok, PidText} = file:read_file(Pid),
    {match, [OsPid]} = re:run(PidText, "^([0-9]+)\n$", [{capture, all_but_first, list}]),
    try
        until(fun() -> file_has(Log, <<"running on">>) end, log_file),
        {ok, L} = file:read_file(Log),
        {match, [PortB]} = re:run(L, "running on http://127.0.0.1:([0-9]+)",
                                  [{capture, all_but_first, binary}]),
        {200, <<"Hello, World!">>} = get(binary_to_integer(PortB), "/")
    after
        os:cmd("kill -TERM " ++ OsPid)
    end,
    until(fun() -> not filelib:is_file(Pid) end, stopped),
    {ok, L2} = file:read_file(Log),
    {match, _} = re:run(L2, "pyweb: stopped").

%% --umask (gunicorn's -m) for the files bin/pyweb makes (the Unix socket);
%% --capture-output: what the app prints goes to --error-logfile.
umask_and_capture_output(Config) ->
    Dir = short_tmp("umask"),
    Sock = filename:join(Dir, "app.sock"),
    Log = filename:join(Dir, "error.log"),
    P = pyweb(Config, ["pw_apps:app", "--uds", Sock, "--umask", "077", "--capture-output",
                       "--error-logfile", Log]),
    %% (the log lines go to the file)
    until(fun() -> file_has(Log, <<"running on http+unix:">>) end, running),
    {ok, #{mode := Mode}} = file_mode(Sock),
    0 = Mode band 8#077,
    {ok, S} = gen_tcp:connect({local, Sock}, 0, [local, binary, {active, false}]),
    put({buf, S}, <<>>),
    ok = gen_tcp:send(S, "GET /slow?0 HTTP/1.1\r\nhost: x\r\n\r\n"),
    {ok, 200, _, <<"slow v1">>} = ?TC:recv(S),
    until(fun() -> file_has(Log, <<"pw_apps: /slow entered">>) end, captured),
    nomatch = re:run(?P:output(P), "pw_apps: /slow entered").

file_has(File, Text) ->
    case file:read_file(File) of
        {ok, B} -> binary:match(B, Text) =/= nomatch;
        {error, _} -> false
    end.

%% --reuse-port (gunicorn): a second server binds the same port.
reuse_port(Config) ->
    {_, Port} = serve(Config, ["pw_apps:app", "--reuse-port"]),
    P2 = pyweb(Config, ["pw_apps:app", "--reuse-port", "--port", integer_to_list(Port)]),
    Port = ?P:port(P2),
    {200, _} = get(Port, "/").

%%--------------------------------------------------------------------
%% Differential: the same requests to uvicorn, gunicorn and bin/pyweb.

differential(Config) ->
    Script = filename:join(?config(data_dir, Config), "pyweb_diff.py"),
    P = ?P:start([Script, ?P:pyweb()], #{exe => python(), cd => ?config(data_dir, Config)}),
    put(procs, [P | procs()]),
    {Status, Out} = ?P:wait_exit(P, 150000),
    ct:log("~ts", [Out]),
    0 = Status,
    [N] = ?P:wait(P, "^differential: ([0-9]+) cases agree"),
    ct:comment("~s cases agree with uvicorn/gunicorn", [N]).
