%% The bin/pyweb command line (py_web_cli:parse/1, pure) and its help text.
-module(py_web_cli_SUITE).
-compile(nowarn_missing_spec).
-compile([export_all, nowarn_export_all]).

all() -> [defaults, all_options, errors, help, help_defaults].

defaults(_) ->
    {ok, #{opts := #{app := {<<"examples.hello">>, <<"app">>}} = O,
           app_dirs := []}} = py_web_cli:parse(["examples.hello:app"]),
    1 = map_size(O).

all_options(_) ->
    {ok, Cli} = py_web_cli:parse(
                  ["m:application", "--interface", "wsgi", "--host", "0.0.0.0",
                   "--port", "9000", "--app-dir", "a", "--app-dir", "b",
                   "--workers", "4", "--mode", "processes", "--lifespan", "off",
                   "--timeout-keep-alive", "7",
                   "--timeout-request", "30", "--limit-max-body", "1000",
                   "--root-path", "/api", "--access-log", "--log-level", "debug",
                   "--ssl-certfile", "c.pem", "--ssl-keyfile", "k.pem"]),
    #{opts := #{app := {<<"m">>, <<"application">>}, interface := wsgi,
                ip := {0, 0, 0, 0}, port := 9000, lifespan := off,
                idle_timeout := 7000, request_timeout := 30000, max_body := 1000,
                root_path := <<"/api">>, access_log := true,
                certfile := "c.pem", keyfile := "k.pem"},
      app_dirs := ["a", "b"], workers := 4, mode := processes, log_level := debug} = Cli,
    %% every parsed option set is accepted by the server's validation
    {ok, _} = py_web_opts:validate(maps:get(opts, Cli)).

errors(_) ->
    {error, _} = py_web_cli:parse([]),
    {error, _} = py_web_cli:parse(["noColon"]),
    {error, _} = py_web_cli:parse(["m:a", "--port", "x"]),
    {error, _} = py_web_cli:parse(["m:a", "--port", "70000"]),
    {error, _} = py_web_cli:parse(["m:a", "--interface", "cgi"]),
    {error, _} = py_web_cli:parse(["m:a", "--mode", "fast"]),
    {error, _} = py_web_cli:parse(["m:a", "--host", "nope"]),
    {error, _} = py_web_cli:parse(["m:a", "--bogus"]),
    {error, _} = py_web_cli:parse(["m:a", "--port"]),
    {error, _} = py_web_cli:parse(["m:a", "extra"]).

help(_) ->
    help = py_web_cli:parse(["--help"]),
    help = py_web_cli:parse(["m:a", "-h"]),
    U = py_web_cli:usage(),
    %% every option is documented
    [{match, _} = re:run(U, "\\Q" ++ F ++ "\\E")
     || F <- ["--interface", "--host", "--port", "--app-dir", "--workers", "--mode",
              "--lifespan", "--timeout-keep-alive", "--limit-max-body",
              "--access-log", "--log-level", "--ssl-certfile", "--ssl-keyfile",
              "--timeout-request", "--root-path", "--help"]].

%% The help text states the defaults the server has (py_web_opts), and
%% erlang_python's for the settings of its own (workers, mode).
help_defaults(_) ->
    U = py_web_cli:usage(),
    {ok, O} = py_web_opts:validate(#{app => <<"m:a">>}),
    _ = application:load(erlang_python),
    {ok, Workers} = application:get_env(erlang_python, workers),
    %% --mode's paragraph: the default, and every mode (up to the next option)
    {match, [Mode]} = re:run(U, "\n  --mode MODE(.*?)\n  --", [dotall, {capture, [1], list}]),
    match = re:run(Mode, "default\\s+\\$ERLANG_PYTHON_MODE,\\s+else\\s+auto\\)",
                   [{capture, none}]),
    [{M, match} = {M, re:run(Mode, "\\s" ++ atom_to_list(M) ++ "\\s+\\(", [{capture, none}])}
     || M <- py_mode:modes()],
    [match = re:run(U, Re, [{capture, none}])
     || Re <- ["--workers N .*\\(default " ++ integer_to_list(Workers) ++ "\\)",
               "--port N .*\\(default " ++ integer_to_list(maps:get(port, O)) ++ ";",
               "\\(default " ++ integer_to_list(maps:get(max_body, O)) ++ "\\)",
               "after S seconds\n *\\(default " ++
                   integer_to_list(maps:get(idle_timeout, O) div 1000) ++ "\\)",
               "--host IP .*\\(default 127\\.0\\.0\\.1;"]].
