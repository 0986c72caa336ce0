%% @doc gunicorn's configuration file (`-c FILE', `--config FILE'): a
%% Python file whose module-level names are settings (`bind', `workers',
%% `timeout'...). It is run by the Python bin/pyweb serves with (imports
%% and expressions work: `workers = multiprocessing.cpu_count() * 2'), in
%% an OS process of its own (bin/pyweb's supervisor runs no Python), and
%% each setting pyweb knows becomes the command-line option it stands for,
%% put before the command line's own: an option the command line gives
%% wins (as in gunicorn). Names gunicorn does not know are ignored (as
%% gunicorn does); server hooks (`on_starting', `post_fork'...) are not
%% run, and said so.
-module(py_web_gunicorn_config).

-export([args/2, settings_args/2]).

%% The program run on the file: its settings as JSON on standard output
%% (values JSON cannot hold are left out; hooks are named).
-define(READER, "
import json, runpy, sys
ns = runpy.run_path(sys.argv[1])
out = {}
hooks = []
for k, v in ns.items():
    if k.startswith('_'):
        continue
    if callable(v) and not isinstance(v, type):
        hooks.append(k)
        continue
    try:
        json.dumps(v)
    except (TypeError, ValueError):
        continue
    out[k] = v
out['__hooks__'] = hooks
sys.stdout.write(json.dumps(out))
").

%% gunicorn's server hooks and the other settings that are Python callables.
-define(HOOKS, [<<"on_starting">>, <<"on_reload">>, <<"when_ready">>, <<"pre_fork">>,
                <<"post_fork">>, <<"post_worker_init">>, <<"worker_int">>, <<"worker_abort">>,
                <<"pre_exec">>, <<"pre_request">>, <<"post_request">>, <<"child_exit">>,
                <<"worker_exit">>, <<"nworkers_changed">>, <<"on_exit">>, <<"ssl_context">>]).

%% @doc The command line with the settings of its `-c'/`--config' file put
%% first (and the option itself taken out), and the notices to log; the
%% command line as it is when it has none. `Python' is the interpreter to
%% run the file with.
-spec args([string()], fun(() -> {ok, file:filename()} | {error, string()})) ->
          {ok, [string()], [string()]} | {error, string()}.
args(Argv, Python) ->
    case take_config(Argv, []) of
        none -> {ok, Argv, []};
        {error, _} = E -> E;
        {File, Rest} ->
            case Python() of
                {ok, Exe} ->
                    case run(Exe, File) of
                        {ok, Settings0} ->
                            %% the app in the file (wsgi_app) unless the command line names one
                            Settings = case has_app(Rest) of
                                           true -> maps:remove(<<"wsgi_app">>, Settings0);
                                           false -> Settings0
                                       end,
                            {Args, Notes} = settings_args(Settings, Rest),
                            {ok, Args ++ Rest, Notes};
                        {error, Why} ->
                            {error, "--config " ++ File ++ ": " ++ Why}
                    end;
                {error, Why} ->
                    {error, "--config " ++ File ++ ": no Python to read it with: " ++ Why}
            end
    end.

has_app(Args) ->
    case py_web_cli:parse(Args) of
        {error, "missing MODULE:CALLABLE" ++ _} -> false;
        _ -> true
    end.

take_config([], _) -> none;
take_config([Opt, File | T], Acc) when Opt =:= "-c"; Opt =:= "--config" ->
    {File, lists:reverse(Acc, T)};
take_config([Opt], _) when Opt =:= "-c"; Opt =:= "--config" ->
    {error, Opt ++ ": missing value"};
take_config(["--config=" ++ File | T], Acc) -> {File, lists:reverse(Acc, T)};
take_config(["-c" ++ File | T], Acc) -> {File, lists:reverse(Acc, T)};
take_config([A | T], Acc) -> take_config(T, [A | Acc]).

run(Exe, File) ->
    Port = open_port({spawn_executable, Exe},
                     [{args, ["-c", ?READER, File]}, exit_status, binary, stderr_to_stdout,
                      hide]),
    collect(Port, []).

collect(Port, Acc) ->
    receive
        {Port, {data, D}} -> collect(Port, [Acc, D]);
        {Port, {exit_status, 0}} ->
            Out = iolist_to_binary(Acc),
            case py_web_json:decode(Out) of
                {ok, M} when is_map(M) -> {ok, M};
                _ -> {error, "unreadable settings: " ++ binary_to_list(Out)}
            end;
        {Port, {exit_status, _}} ->
            %% Python's traceback: its last line says what went wrong
            Lines = [L || L <- binary:split(iolist_to_binary(Acc), <<"\n">>, [global]), L =/= <<>>],
            {error, case Lines of
                        [] -> "reading it failed";
                        _ -> unicode:characters_to_list(lists:last(Lines))
                    end}
    after 60000 ->
        port_close(Port),
        {error, "reading it took more than 60 s"}
    end.

%% @doc The options for the settings of a configuration file (a map of
%% gunicorn setting names to JSON values), leaving out those the command
%% line `Given' sets itself, and the notices to log (settings that are
%% ignored, hooks that are not run).
-spec settings_args(#{binary() => term()}, [string()]) -> {[string()], [string()]}.
settings_args(Settings, Given) ->
    GivenNames = given_names(Given),
    lists:foldl(
      fun({K, V}, {Args, Notes}) ->
              case setting(K, V) of
                  skip -> {Args, Notes};
                  {note, N} -> {Args, Notes ++ [lists:flatten(N)]};
                  {Opt, OptArgs} ->
                      case lists:member(canonical(Opt), GivenNames) of
                          true -> {Args, Notes};
                          false -> {Args ++ OptArgs, Notes}
                      end
              end
      end, {[], []}, lists:sort(maps:to_list(Settings))).

%% The options the command line uses (by their first names).
given_names(Given) ->
    Used = [case string:split(A, "=") of [N | _] -> N end || A = "-" ++ _ <- Given],
    [canonical(N) || N <- Used].

%% The first name of the option a name belongs to.
canonical(Name) ->
    case [hd(Names) || {_, Os} <- py_web_cli:options(), {Names, _, _, _, _} <- Os,
                       lists:member(Name, Names)] of
        [C | _] -> C;
        [] -> Name
    end.

%% One setting: {the option's first name, its arguments}, skip, or a note.
setting(<<"__hooks__">>, Names) ->
    case [N || N <- Names, lists:member(N, ?HOOKS)] of
        [] -> skip;
        Hooks -> {note, "server hooks are not run: " ++ join(Hooks)}
    end;
setting(<<"wsgi_app">>, V) when is_binary(V) -> {app, [text(V)]};
setting(<<"bind">>, V) -> {"--bind", lists:append([["--bind", text(B)] || B <- list(V)])};
setting(<<"raw_env">>, V) -> {"--env", lists:append([["--env", text(E)] || E <- list(V)])};
setting(<<"pythonpath">>, V) when is_binary(V) -> {"--pythonpath", ["--pythonpath", text(V)]};
setting(<<"reload_extra_files">>, V) ->
    {"--reload-extra-file", lists:append([["--reload-extra-file", text(F)] || F <- list(V)])};
setting(<<"forwarded_allow_ips">>, V) ->
    {"--forwarded-allow-ips", ["--forwarded-allow-ips", join(list(V))]};
setting(<<"proxy_allow_ips">>, V) ->
    {"--proxy-allow-from", ["--proxy-allow-from", join(list(V))]};
setting(<<"proxy_protocol">>, true) -> {"--proxy-protocol", ["--proxy-protocol=auto"]};
setting(<<"proxy_protocol">>, false) -> skip;
setting(<<"proxy_protocol">>, V) when is_binary(V) ->
    {"--proxy-protocol", ["--proxy-protocol=" ++ text(V)]};
setting(<<"accesslog">>, null) -> skip;
setting(<<"errorlog">>, null) -> skip;
setting(K, V) ->
    case lists:keyfind(K, 1, simple()) of
        {_, Opt, flag} when V =:= true -> {Opt, [Opt]};
        {_, _, flag} when V =:= false; V =:= null -> skip;
        {_, Opt, value} when is_integer(V); is_binary(V); is_float(V) -> {Opt, [Opt, text(V)]};
        {_, _, value} when V =:= null -> skip;
        {_, Opt, _} -> {note, io_lib:format("setting ~ts: cannot use ~tp for ~ts", [K, V, Opt])};
        false ->
            case lists:member(K, not_applied()) of
                true -> {note, "setting " ++ text(K) ++ " is not applied (see --help)"};
                false -> skip    %% not a gunicorn setting: a helper name of the file
            end
    end.

%% gunicorn settings with an option of pyweb's that takes them as they are.
simple() ->
    [{<<"backlog">>, "--backlog", value},
     {<<"workers">>, "--workers", value},
     {<<"threads">>, "--threads", value},
     {<<"max_requests">>, "--max-requests", value},
     {<<"max_requests_jitter">>, "--max-requests-jitter", value},
     {<<"timeout">>, "--timeout", value},
     {<<"graceful_timeout">>, "--graceful-timeout", value},
     {<<"keepalive">>, "--keep-alive", value},
     {<<"limit_request_line">>, "--limit-request-line", value},
     {<<"limit_request_fields">>, "--limit-request-fields", value},
     {<<"limit_request_field_size">>, "--limit-request-field_size", value},
     {<<"reload">>, "--reload", flag},
     {<<"reuse_port">>, "--reuse-port", flag},
     {<<"chdir">>, "--chdir", value},
     {<<"pidfile">>, "--pid", value},
     {<<"accesslog">>, "--access-logfile", value},
     {<<"access_log_format">>, "--access-logformat", value},
     {<<"errorlog">>, "--error-logfile", value},
     {<<"loglevel">>, "--log-level", value},
     {<<"capture_output">>, "--capture-output", flag},
     {<<"keyfile">>, "--keyfile", value},
     {<<"certfile">>, "--certfile", value},
     {<<"ca_certs">>, "--ca-certs", value},
     {<<"cert_reqs">>, "--cert-reqs", value},
     {<<"ciphers">>, "--ciphers", value},
     {<<"root_path">>, "--root-path", value},
     {<<"asgi_lifespan">>, "--asgi-lifespan", value}].

%% gunicorn settings a configuration file may set that pyweb does not apply
%% (said at start; their options say why, in --help or when refused).
not_applied() ->
    [<<"daemon">>, <<"umask">>, <<"user">>, <<"group">>, <<"initgroups">>, <<"logconfig">>,
     <<"logconfig_dict">>, <<"logconfig_json">>, <<"logger_class">>, <<"syslog">>,
     <<"syslog_addr">>, <<"statsd_host">>, <<"paste">>, <<"worker_connections">>,
     <<"strip_header_spaces">>, <<"permit_obsolete_folding">>, <<"casefold_http_method">>,
     <<"permit_unconventional_http_method">>, <<"permit_unconventional_http_version">>,
     <<"dirty_apps">>, <<"http_protocols">>].

list(V) when is_list(V) -> V;
list(V) -> [V].

join(L) -> lists:flatten(lists:join(",", [text(X) || X <- L])).

text(B) when is_binary(B) -> unicode:characters_to_list(B);
text(I) when is_integer(I) -> integer_to_list(I);
text(F) when is_float(F) -> float_to_list(F, [short]);
text(L) when is_list(L) -> lists:flatten(L).
