%% End-to-end: real Python apps through the real NIF, served by py_web.
%% Flask and Django (WSGI), Starlette and FastAPI (ASGI) from the test
%% venv ($VIRTUAL_ENV), apps in py_web_e2e_SUITE_data/. Clients: raw
%% gen_tcp (py_web_tc), OTP httpc, and Python httpx from the venv.
%% Behaviour only, never timing: a streamed response is shown to be
%% incremental by an app that waits, after its first chunk, until the test
%% has read that chunk and opened a gate (py:call).
-module(py_web_e2e_SUITE).
-compile(nowarn_missing_spec).
-compile([export_all, nowarn_export_all]).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-define(TC, py_web_tc).
-define(MB10, (10 * 1024 * 1024)).

suite() -> [{timetrap, {minutes, 3}}].

all() ->
    [{group, flask}, {group, django}, {group, starlette}, {group, fastapi},
     {group, lifespan}, {group, load}, {group, httpx}, {group, cli}].

groups() ->
    Common = [routing, json, form, upload_10mb, cookies, stream_incremental,
              disconnect_mid_stream, interface_auto],
    [{flask, [], Common},
     {django, [], Common},
     {starlette, [], Common ++ [lifespan_state]},
     {fastapi, [], Common ++ [lifespan_state]},
     {lifespan, [], [lifespan_shutdown_on_stop, lifespan_startup_failure,
                     lifespan_off]},
     {load, [], [many_keepalive_connections]},
     {httpx, [], [httpx_asgi, httpx_wsgi]},
     {cli, [], [cli_serves_and_stops, cli_lifespan_failure, cli_help]}].

init_per_suite(Config) ->
    case py_web_ct:python_exe() of
        false ->
            {skip, "VIRTUAL_ENV is not set: the e2e suite needs the test venv "
                   "(Flask, Django, Starlette, FastAPI, httpx); run it through make test-ct"};
        _ ->
            ok = py_web_ct:start_python([?config(data_dir, Config)]),
            ok = py_web_ct:quiet(),
            {ok, _} = application:ensure_all_started(inets),
            case py:call(importlib, import_module, [<<"e2e_common">>]) of
                {error, {python, _, _, _}} = E -> {skip, {e2e_apps, E}};
                _ -> Config
            end
    end.

end_per_suite(_Config) ->
    _ = application:stop(erlang_python),
    ok = application:set_env(erlang_python, python_path, []).

%% FastAPI's pydantic-core refuses sub-interpreters (erlang_python's py_mode_SUITE tests
%% that error and auto's fall back to gil).
init_per_group(fastapi, Config) ->
    case maps:get(mode, py:info()) of
        subinterpreters -> {skip, "pydantic-core refuses sub-interpreters"};
        _ -> group_app(fastapi, Config)
    end;
init_per_group(G, Config) ->
    group_app(G, Config).

group_app(G, Config) ->
    App = case G of
              flask -> {<<"e2e_flask">>, <<"app">>, wsgi};
              django -> {<<"e2e_django">>, <<"application">>, wsgi};
              starlette -> {<<"e2e_starlette">>, <<"app">>, asgi};
              fastapi -> {<<"e2e_fastapi">>, <<"app">>, asgi};
              _ -> {<<"e2e_starlette">>, <<"app">>, asgi}
          end,
    [{app, App} | Config].

end_per_group(_, _Config) -> ok.

init_per_testcase(_, Config) ->
    _ = erlang_python_ct:each(e2e_common, reset, []),
    Config.

end_per_testcase(_, _Config) ->
    _ = [py_web:stop(P) || {{py_web, _}, P, _, _} <- supervisor:which_children(py_web_sup),
                           is_pid(P)],
    ok.

%%--------------------------------------------------------------------
%% Helpers

srv(Config) -> srv(Config, #{}).

srv(Config, Extra) ->
    {ok, Pid} = start_srv(Config, Extra),
    py_web:port(Pid).

start_srv(Config, Extra) ->
    {M, C, I} = ?config(app, Config),
    py_web:start(maps:merge(#{app => {M, C}, interface => I, port => 0}, Extra)).

module(Config) ->
    {M, _, _} = ?config(app, Config),
    M.

%% Compact JSON: frameworks differ in whitespace only (keys are sent in
%% sorted order so that Flask's sort_keys does not matter).
compact(B) -> iolist_to_binary(re:replace(B, "\\s", "", [global])).

%% What the app recorded, in every interpreter (module globals are per interpreter in
%% subinterpreters mode).
events(Config) ->
    lists:append(erlang_python_ct:each(module(Config), events, [])).

%% Lifespan events: one of each per interpreter.
lifespan_events(Kinds) ->
    N = length(erlang_python_ct:each(e2e_common, events, [])),
    lists:append([lists:duplicate(N, K) || K <- Kinds]).

wait_event(Config, Want) ->
    wait_event(Config, Want, erlang:monotonic_time(millisecond) + 20000).

wait_event(Config, Want, Deadline) ->
    Events = events(Config),
    case lists:member(Want, Events) of
        true -> ok;
        false ->
            case erlang:monotonic_time(millisecond) > Deadline of
                true -> ct:fail({no_event, Want, Events});
                false -> timer:sleep(20), wait_event(Config, Want, Deadline)
            end
    end.

multipart(Boundary, Parts) ->
    [[["--", Boundary, "\r\n",
       "content-disposition: form-data; name=\"", Name, "\"",
       case File of undefined -> []; _ -> ["; filename=\"", File, "\""] end, "\r\n",
       case File of undefined -> []; _ -> "content-type: application/octet-stream\r\n" end,
       "\r\n", Data, "\r\n"] || {Name, File, Data} <- Parts],
     "--", Boundary, "--\r\n"].

%%--------------------------------------------------------------------
%% Framework cases (all four)

routing(Config) ->
    Port = srv(Config),
    S = ?TC:connect(Port),
    {ok, 200, Hs, <<"Hello, World!">>} = ?TC:get(S, "/"),
    {match, _} = re:run(?TC:header(<<"content-type">>, Hs), "^text/plain"),
    {ok, 200, Hs2, J} = ?TC:get(S, "/items/42?q=x"),
    {match, _} = re:run(?TC:header(<<"content-type">>, Hs2), "^application/json"),
    <<"{\"id\":42,\"q\":\"x\"}">> = compact(J),
    {ok, 404, _, _} = ?TC:get(S, "/no/such/route"),
    %% and through httpc
    {ok, {{_, 200, _}, _, <<"Hello, World!">>}} =
        httpc:request(get, {"http://127.0.0.1:" ++ integer_to_list(Port) ++ "/", []},
                      [], [{body_format, binary}]).

json(Config) ->
    Port = srv(Config),
    S = ?TC:connect(Port),
    ?TC:send(S, ?TC:req("POST", "/json", [{"content-type", "application/json"}],
                        <<"{\"a\": 1, \"b\": [1, 2]}">>)),
    {ok, 200, _, J} = ?TC:recv(S),
    <<"{\"a\":1,\"b\":[1,2],\"n\":2}">> = compact(J).

form(Config) ->
    Port = srv(Config),
    S = ?TC:connect(Port),
    ?TC:send(S, ?TC:req("POST", "/form",
                        [{"content-type", "application/x-www-form-urlencoded"}],
                        <<"name=Ada+L%C3%B6w&lang=erlang">>)),
    {ok, 200, _, <<"Ada L", 16#C3, 16#B6, "w/erlang">>} = ?TC:recv(S).

%% A 10 MB multipart upload: the app sees every byte (size and sha256).
upload_10mb(Config) ->
    Port = srv(Config),
    Data = crypto:strong_rand_bytes(?MB10),
    Boundary = "py-web-e2e-boundary-1234567890",
    Body = iolist_to_binary(multipart(Boundary, [{"note", undefined, "hello"},
                                                 {"file", "big.bin", Data}])),
    S = ?TC:connect(Port),
    ?TC:send(S, ?TC:req("POST", "/upload",
                        [{"content-type", "multipart/form-data; boundary=" ++ Boundary}],
                        Body)),
    {ok, 200, _, Resp} = ?TC:recv(S),
    Hex = hex(crypto:hash(sha256, Data)),
    Expect = <<"note=hello size=", (integer_to_binary(?MB10))/binary, " sha256=", Hex/binary>>,
    ?assertEqual(Expect, Resp),
    upload_chunked(S, Boundary, Body, Expect).

%% The same upload chunked. Django reads CONTENT_LENGTH only (it ignores
%% wsgi.input_terminated; under gunicorn it gets an empty body): it gets the
%% whole body because the server reads a WSGI body whole and gives its
%% length.
upload_chunked(S, Boundary, Body, Expect) ->
    Chunks = [[integer_to_list(byte_size(P), 16), "\r\n", P, "\r\n"]
              || P <- split(Body, 1 bsl 20)],
    ?TC:send(S, ["POST /upload HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n"
                 "content-type: multipart/form-data; boundary=", Boundary, "\r\n\r\n",
                 Chunks, "0\r\n\r\n"]),
    {ok, 200, _, Resp2} = ?TC:recv(S),
    ?assertEqual(Expect, Resp2).

hex(B) -> string:lowercase(<< <<(integer_to_binary(X, 16))/binary>> || <<X:4>> <= B >>).

split(B, N) when byte_size(B) =< N -> [B];
split(B, N) ->
    <<P:N/binary, R/binary>> = B,
    [P | split(R, N)].

cookies(Config) ->
    Port = srv(Config),
    S = ?TC:connect(Port),
    {ok, 200, Hs, <<"set">>} = ?TC:get(S, "/cookies/set"),
    [A, B] = ?TC:headers(<<"set-cookie">>, Hs),
    {match, _} = re:run(A, "^a=1(;|$)"),
    {match, _} = re:run(B, "^b=2;"),
    {match, _} = re:run(B, "(?i)httponly"),
    ?TC:send(S, ?TC:req("GET", "/cookies/get", [{"cookie", "a=1; b=2"}], <<>>)),
    {ok, 200, _, <<"a=1 b=2">>} = ?TC:recv(S).

%% The first chunk reaches the client while the app is still waiting (on a
%% gate only this test opens, after reading that chunk): the response is
%% streamed, not buffered.
stream_incremental(Config) ->
    Port = srv(Config),
    S = ?TC:connect(Port),
    ?TC:send(S, ?TC:req("GET", "/stream/gate", [], <<>>)),
    {ok, 200, Hs} = read_head(S),
    <<"chunked">> = ?TC:header(<<"transfer-encoding">>, Hs),
    <<"first\n">> = read_chunk(S),
    {ok, _} = py:call(module(Config), open_gate, []),
    <<"second\n">> = read_chunk(S),
    <<>> = read_chunk(S),
    %% the connection is still usable
    {ok, 200, _, <<"Hello, World!">>} = ?TC:get(S, "/").

%% The client goes away mid-stream; the app's generator is stopped and
%% records it.
disconnect_mid_stream(Config) ->
    Port = srv(Config),
    S = ?TC:connect(Port),
    ?TC:send(S, ?TC:req("GET", "/stream/forever", [], <<>>)),
    {ok, 200, _} = read_head(S),
    <<"tick 0\n">> = read_chunk(S),
    gen_tcp:close(S),
    wait_event(Config, [<<"disconnected">>, <<"/stream/forever">>]).

%% --interface auto (the default) asks hornbeam_detect.
interface_auto(Config) ->
    {M, C, I} = ?config(app, Config),
    {ok, I} = py_web:detect_interface(M, C),
    {ok, Pid} = py_web:start(#{app => <<M/binary, ":", C/binary>>, port => 0}),
    #{interface := I} = py_web:info(Pid),
    S = ?TC:connect(py_web:port(Pid)),
    {ok, 200, _, <<"Hello, World!">>} = ?TC:get(S, "/").

read_head(S) ->
    {ok, Code, Hs, <<>>} = ?TC:recv(S, #{head => true}),
    {ok, Code, Hs}.

read_chunk(S) ->
    {ok, Line} = read_line(S),
    N = binary_to_integer(hd(binary:split(Line, <<";">>)), 16),
    {ok, <<C:N/binary, "\r\n">>} = read_n(S, N + 2),
    C.

read_line(S) ->
    Buf = get({buf, S}),
    case binary:split(Buf, <<"\r\n">>) of
        [L, R] -> put({buf, S}, R), {ok, L};
        _ -> {ok, D} = gen_tcp:recv(S, 0, 10000), put({buf, S}, <<Buf/binary, D/binary>>),
             read_line(S)
    end.

read_n(S, N) ->
    Buf = get({buf, S}),
    case Buf of
        <<B:N/binary, R/binary>> -> put({buf, S}, R), {ok, B};
        _ -> {ok, D} = gen_tcp:recv(S, 0, 10000), put({buf, S}, <<Buf/binary, D/binary>>),
             read_n(S, N)
    end.

%%--------------------------------------------------------------------
%% Lifespan (Starlette, FastAPI)

lifespan_state(Config) ->
    {ok, Pid} = start_srv(Config, #{lifespan => on}),
    Startups = lifespan_events([<<"startup">>]),
    Startups = lists:sort([E || [E] <- events(Config)]),
    S = ?TC:connect(py_web:port(Pid)),
    {ok, 200, _, <<"hello from lifespan">>} = ?TC:get(S, "/state"),
    ok = py_web:stop(Pid),
    Both = lifespan_events([<<"shutdown">>, <<"startup">>]),
    Both = lists:sort([E || [E] <- events(Config)]).

lifespan_shutdown_on_stop(Config) ->
    %% lifespan auto: used because the app supports it; shutdown runs on
    %% stop after the in-flight request finished.
    {ok, Pid} = start_srv(Config, #{}),
    #{lifespan := true} = py_web:info(Pid),
    Port = py_web:port(Pid),
    S = ?TC:connect(Port),
    ?TC:send(S, ?TC:req("GET", "/stream/gate", [], <<>>)),
    {ok, 200, _} = read_head(S),
    <<"first\n">> = read_chunk(S),
    Self = self(),
    spawn(fun() -> Self ! {stopped, py_web:stop(Pid)} end),
    wait_refused(Port),
    %% in flight: not shut down yet
    Startups = lifespan_events([<<"startup">>]),
    Startups = lists:sort([E || [E] <- events(Config)]),
    {ok, _} = py:call(e2e_common, open_gate, []),
    <<"second\n">> = read_chunk(S),
    <<>> = read_chunk(S),
    receive {stopped, ok} -> ok after 20000 -> ct:fail(not_stopped) end,
    Both = lifespan_events([<<"shutdown">>, <<"startup">>]),
    Both = lists:sort([E || [E] <- events(Config)]).

wait_refused(Port) ->
    case gen_tcp:connect({127, 0, 0, 1}, Port, [binary], 1000) of
        {error, _} -> ok;   %% econnrefused, or econnreset from the closed backlog
        {ok, S} -> gen_tcp:close(S), timer:sleep(20), wait_refused(Port)
    end.

lifespan_startup_failure(_Config) ->
    {error, {lifespan_startup_failed, {python, _Type, Msg, _Tb}}} =
        py_web:start(#{app => {<<"e2e_starlette">>, <<"failing_app">>}, port => 0}),
    {match, _} = re:run(Msg, "database unreachable"),
    %% nothing was left listening or registered
    [] = [P || {{py_web, _}, P, _, _} <- supervisor:which_children(py_web_sup)].

lifespan_off(Config) ->
    {ok, Pid} = start_srv(Config, #{lifespan => off}),
    #{lifespan := false} = py_web:info(Pid),
    S = ?TC:connect(py_web:port(Pid)),
    {ok, 200, _, <<"no state">>} = ?TC:get(S, "/state"),
    [] = events(Config).

%%--------------------------------------------------------------------
%% 1,000 concurrent keep-alive connections on a hello ASGI app

many_keepalive_connections(_Config) ->
    N = 1000,
    {ok, Pid} = py_web:start(#{app => {<<"e2e_hello">>, <<"app">>}, interface => asgi,
                               lifespan => off, port => 0, backlog => 2048}),
    Port = py_web:port(Pid),
    Self = self(),
    Pids = [spawn_link(fun() -> client(Self, Port) end) || _ <- lists:seq(1, N)],
    [receive {ready, P} -> ok after 60000 -> ct:fail(not_ready) end || P <- Pids],
    %% all served once and all open at the same time
    #{connections := Conns} = py_web:info(Pid),
    true = Conns >= N,
    [P ! go || P <- Pids],
    [receive {done, P} -> ok after 60000 -> ct:fail(not_done) end || P <- Pids],
    ok.

client(Parent, Port) ->
    S = ?TC:connect(Port),
    {ok, 200, _, <<"Hello, World!">>} = ?TC:get(S, "/"),
    Parent ! {ready, self()},
    receive go -> ok end,
    {ok, 200, _, <<"Hello, World!">>} = ?TC:get(S, "/"),
    Parent ! {done, self()},
    gen_tcp:close(S).

%%--------------------------------------------------------------------
%% httpx (the venv's Python) as the client

-define(HTTPX_SCRIPT, "
import sys, httpx
base = sys.argv[1]
with httpx.Client(base_url=base, timeout=30) as c:
    r = c.get('/')
    assert r.status_code == 200 and r.text == 'Hello, World!', r
    r = c.get('/items/7', params={'q': 'z'})
    assert r.json() == {'id': 7, 'q': 'z'}, r.text
    r = c.post('/json', json={'a': 1, 'b': [1, 2]})
    assert r.json() == {'a': 1, 'b': [1, 2], 'n': 2}, r.text
    r = c.post('/form', data={'name': 'Ada', 'lang': 'py'})
    assert r.text == 'Ada/py', r.text
    r = c.get('/cookies/set')
    assert len(r.headers.get_list('set-cookie')) == 2, r.headers
    r = c.get('/cookies/get')
    assert r.text == 'a=1 b=2', r.text
    r = c.post('/upload', files={'file': ('f.bin', b'x' * 100000)}, data={'note': 'n'})
    assert r.text.startswith('note=n size=100000 '), r.text
    assert c.get('/nope').status_code == 404
print('httpx ok')
").

httpx_asgi(_Config) ->
    case maps:get(mode, py:info()) of
        subinterpreters -> httpx({<<"e2e_starlette">>, <<"app">>}); % pydantic-core refuses
        _ -> httpx({<<"e2e_fastapi">>, <<"app">>})
    end.

httpx_wsgi(_Config) ->
    httpx({<<"e2e_flask">>, <<"app">>}).

httpx(App) ->
    {ok, Pid} = py_web:start(#{app => App, port => 0}),
    Base = "http://127.0.0.1:" ++ integer_to_list(py_web:port(Pid)),
    {0, Out} = run(py_web_ct:python_exe(), ["-c", ?HTTPX_SCRIPT, Base], []),
    {match, _} = re:run(Out, "httpx ok").

%% Run an executable; {ExitStatus, Output}.
run(Exe, Args, Env) ->
    P = open_port({spawn_executable, Exe},
                  [{args, Args}, {env, Env}, exit_status, stderr_to_stdout, binary]),
    py_web_os_proc:collect(P).

%%--------------------------------------------------------------------
%% bin/pyweb

%% Serve an app from the data dir, answer requests, stop with SIGTERM:
%% exit status 0 after lifespan shutdown.
cli_serves_and_stops(Config) ->
    Port = py_web_os_proc:free_port(),
    Exe = py_web_os_proc:pyweb(),
    P = open_port({spawn_executable, Exe},
                  [{args, ["e2e_starlette:app", "--port", integer_to_list(Port),
                           "--app-dir", ?config(data_dir, Config), "--access-log",
                           "--log-level", "info"]},
                   exit_status, stderr_to_stdout, binary]),
    {os_pid, OsPid} = erlang:port_info(P, os_pid),
    Url = "http://127.0.0.1:" ++ integer_to_list(Port),
    ok = py_web_os_proc:wait_up(Url ++ "/", P, 300),
    {ok, {{_, 200, _}, _, <<"hello from lifespan">>}} =
        httpc:request(get, {Url ++ "/state", []}, [], [{body_format, binary}]),
    {ok, {{_, 200, _}, _, <<"Hello, World!">>}} =
        httpc:request(get, {Url ++ "/", []}, [], [{body_format, binary}]),
    _ = os:cmd("kill -TERM " ++ integer_to_list(OsPid)),
    {0, Out} = py_web_os_proc:collect(P),
    {match, _} = re:run(Out, "serving e2e_starlette:app \\(asgi\\)"),
    {match, _} = re:run(Out, "\"GET /state HTTP/1.1\" 200"),
    {error, econnrefused} = gen_tcp:connect({127, 0, 0, 1}, Port, [], 1000).

%% A lifespan startup failure stops bin/pyweb with status 3 (the server
%% cannot start, as uvicorn's) and the app's error.
cli_lifespan_failure(Config) ->
    {3, Out} = run(py_web_os_proc:pyweb(), ["e2e_starlette:failing_app", "--port",
                                            integer_to_list(py_web_os_proc:free_port()),
                                            "--app-dir", ?config(data_dir, Config)], []),
    {match, _} = re:run(Out, "application startup failed: .*database unreachable"),
    nomatch = re:run(Out, "lifespan_startup_failed").

cli_help(_Config) ->
    {0, Out} = run(py_web_os_proc:pyweb(), ["--help"], []),
    [{match, _} = re:run(Out, "\\Q" ++ F ++ "\\E")
     || F <- ["--interface", "--host", "--port", "--app-dir", "--workers", "--lifespan",
              "--timeout-keep-alive", "--limit-max-body", "--access-log", "--log-level",
              "--ssl-certfile", "--ssl-keyfile"]],
    {2, _} = run(py_web_os_proc:pyweb(), ["--bogus"], []).
