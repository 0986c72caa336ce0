%% The bin/pyweb command line (py_web_cli:parse/1, pure) and the
%% Set-Cookie splitting used by the Cowboy adapter.
-module(py_web_cli_SUITE).
-compile(nowarn_missing_spec).
-compile([export_all, nowarn_export_all]).

all() -> [defaults, all_options, errors, help, cookie_opts].

defaults(_) ->
    {ok, #{opts := #{app := {<<"examples.hello">>, <<"app">>}} = O,
           app_dirs := ["."]}} = py_web_cli:parse(["examples.hello:app"]),
    1 = map_size(O).

all_options(_) ->
    {ok, Cli} = py_web_cli:parse(
                  ["m:application", "--interface", "wsgi", "--host", "0.0.0.0",
                   "--port", "9000", "--app-dir", "a", "--app-dir", "b",
                   "--workers", "4", "--mode", "subinterpreters", "--lifespan", "off",
                   "--timeout-keep-alive", "7",
                   "--timeout-request", "30", "--limit-max-body", "1000",
                   "--root-path", "/api", "--access-log", "--log-level", "debug",
                   "--ssl-certfile", "c.pem", "--ssl-keyfile", "k.pem"]),
    #{opts := #{app := {<<"m">>, <<"application">>}, interface := wsgi,
                ip := {0, 0, 0, 0}, port := 9000, lifespan := off,
                idle_timeout := 7000, request_timeout := 30000, max_body := 1000,
                root_path := <<"/api">>, access_log := true,
                certfile := "c.pem", keyfile := "k.pem"},
      app_dirs := ["a", "b"], workers := 4, mode := subinterpreters, log_level := debug} = Cli,
    %% every parsed option set is accepted by the server's validation
    {ok, _} = py_web_listener:config(maps:get(opts, Cli)).

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

cookie_opts(_) ->
    {<<"sid">>, <<"abc">>, #{path := <<"/">>, http_only := true, secure := true,
                             max_age := 3600, same_site := lax, domain := <<"x.org">>}} =
        py_web_cowboy:cookie_opts(<<"sid=abc; Path=/; HttpOnly; Secure; Max-Age=3600; "
                                    "SameSite=Lax; Domain=x.org; Expires=Wed, 21 Oct 2015 07:28:00 GMT">>),
    {<<"a">>, <<>>, #{}} = py_web_cowboy:cookie_opts(<<"a=">>).
