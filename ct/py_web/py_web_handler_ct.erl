%% Shared by the Cowboy and Elli handler suites: the requests every front end
%% must answer as the embedded server does, the comparison of the answers,
%% and a watch that fails a test case when a crash report or an abnormal
%% process exit is logged while it runs.
-module(py_web_handler_ct).
-compile(nowarn_missing_spec).

-export([requests/0, ask/2, ask/3, normal/1, server/1, app/1, backends/1,
         init_group/2, end_group/1, init_case/1, end_case/0,
         observe/0, event/3, await_event/2, watch/0, watched/0, log/2, free_port/0, scope/2,
         decoded_once/2, connection_details/3]).

-include_lib("common_test/include/ct.hrl").

-define(TC, py_web_tc).

%% {Name, Request bytes, py_web_tc:recv/2 options}. Every request is answered
%% on its own connection, then a second request on that connection tells
%% whether it was kept open.
requests() ->
    [{get, http_get("/"), #{}},
     {head, req("HEAD", "/"), #{head => true}},
     {get_cl13, http_get("/cl13"), #{}},
     {head_cl13, req("HEAD", "/cl13"), #{head => true}},
     {get_cl1, http_get("/cl1"), #{}},
     {head_cl1, req("HEAD", "/cl1"), #{head => true}},
     {get_cl_two_pieces, http_get("/cl"), #{}},
     {get_cl_mismatch, http_get("/cl_bad"), #{}},
     {stream, http_get("/stream?n=3"), #{}},
     {head_stream, req("HEAD", "/stream?n=3"), #{head => true}},
     {stream_http10, <<"GET /stream?n=3 HTTP/1.0\r\n\r\n">>, #{}},
     {stream_http10_keepalive,
      <<"GET /stream?n=3 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n">>, #{}},
     {get_http10, <<"GET / HTTP/1.0\r\n\r\n">>, #{}},
     {get_http10_keepalive, <<"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n">>, #{}},
     {cookies, http_get("/cookies"), #{}},
     {cookies_verbatim, http_get("/cookies2"), #{}},
     {status_201, http_get("/status/201"), #{}},
     {status_204, http_get("/status/204"), #{}},
     {status_304, http_get("/status/304"), #{}},
     {status_404, http_get("/status/404"), #{}},
     {status_418, http_get("/status/418"), #{}},
     {echo, req("POST", "/echo", [], <<"payload">>), #{}},
     {echo_chunked, <<"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n">>, #{}},
     {big, http_get("/big?size=300000"), #{}},
     {app_error, http_get("/error"), #{}},
     {no_response, http_get("/nostart"), #{}},
     {bad_header, http_get("/badheader"), #{}},
     {error_after_start, http_get("/error_after_start"), #{}}].

http_get(Path) -> req("GET", Path).

req(Method, Path) -> req(Method, Path, [], <<>>).

req(Method, Path, Headers, Body) -> iolist_to_binary(?TC:req(Method, Path, Headers, Body)).

%% The answer to one request: #{status, headers (lower-case names, arrival
%% order), body, kept (a second request on the connection was answered)}, or
%% #{incomplete => true} when the connection closed before the response was
%% complete.
ask(Port, Request) -> ask(Port, Request, #{}).

ask(Port, Request, Opts) ->
    S = ?TC:connect(Port),
    ?TC:send(S, Request),
    R = case ?TC:recv(S, Opts) of
            {ok, Code, Hs, Body} ->
                #{status => Code, headers => Hs, body => Body, kept => kept(S)};
            {error, _} ->
                #{incomplete => true}
        end,
    gen_tcp:close(S),
    R.

kept(S) ->
    case gen_tcp:send(S, http_get("/")) of
        ok ->
            case ?TC:recv(S) of
                {ok, 200, _, _} -> true;
                {ok, Code, _, _} -> {answered, Code};
                {error, _} -> false
            end;
        {error, _} -> false
    end.

%% Headers as one compares them: names lower-case, the Date header left
%% out (its value is the time), repeated fields joined with ", " as Cowboy
%% must (its headers are a map) except Set-Cookie, whose values stay
%% separate and in order; sorted by name.
normal(#{incomplete := true}) ->
    incomplete;
normal(R = #{headers := Hs}) ->
    Names = lists:usort([N || {N, _} <- Hs, N =/= <<"date">>]),
    Norm = [case N of
                <<"set-cookie">> -> {N, ?TC:headers(N, Hs)};
                _ -> {N, iolist_to_binary(lists:join(<<", ">>, ?TC:headers(N, Hs)))}
            end || N <- Names],
    R#{headers := Norm}.

%%--------------------------------------------------------------------
%% Groups and cases of a handler suite: asgi and wsgi run on the fake
%% backend, asgi_python and wsgi_python on pyweb_test_apps through the NIF
%% (skipped without the test venv).

init_group(G, Config) ->
    I = case G of asgi -> asgi; asgi_python -> asgi; _ -> wsgi end,
    case G of
        _ when G =:= asgi; G =:= wsgi ->
            [{interface, I}, {backend, fake} | Config];
        _ ->
            case py_web_ct:venv() of
                false -> {skip, "VIRTUAL_ENV is not set (run through make test-ct)"};
                _ ->
                    ok = py_web_ct:start_python([apps_dir(Config)]),
                    [{interface, I}, {backend, python} | Config]
            end
    end.

end_group(G) when G =:= asgi_python; G =:= wsgi_python ->
    _ = application:stop(erlang_python),
    ok = application:set_env(erlang_python, python_path, []);
end_group(_) -> ok.

%% pyweb_test_apps.py lives in py_web_SUITE's data directory.
apps_dir(Config) ->
    filename:join(filename:dirname(string:trim(?config(data_dir, Config), trailing, "/")),
                  "py_web_SUITE_data").

init_case(Config) ->
    case ?config(backend, Config) of
        python -> _ = erlang_python_ct:each(pyweb_test_apps, clear_events, []);
        fake -> ok
    end,
    ok = watch(),
    Config.

%% Stops the embedded servers; fails the case on what the watch saw.
end_case() ->
    catch unregister(py_web_fake_observer),
    _ = [py_web:stop(P) || {{py_web, _}, P, _, _} <- supervisor:which_children(py_web_sup),
                           is_pid(P)],
    timer:sleep(50),   %% what the stopped processes log belongs to this case
    case watched() of
        [] -> ok;
        Events -> {fail, {logged_during_test, Events}}
    end.

%% The group's app, and the backend options that go with it.
app(Config) ->
    case ?config(backend, Config) of
        fake -> {<<"fake">>, <<"app">>};
        python ->
            {<<"pyweb_test_apps">>,
             <<(atom_to_binary(?config(interface, Config)))/binary, "_app">>}
    end.

backends(Config) ->
    case ?config(backend, Config) of
        fake -> #{asgi_backend => py_web_fake_asgi, wsgi_backend => py_web_fake_wsgi};
        python -> #{}
    end.

%% The embedded server on the group's backend and app; its port.
server(Config) ->
    {ok, Pid} = py_web:start((backends(Config))#{app => app(Config),
                                                  interface => ?config(interface, Config),
                                                  port => 0, lifespan => off}),
    py_web:port(Pid).

%% Receive the fake backend's events (call before the request).
observe() -> register(py_web_fake_observer, self()).

%% The app saw Kind (disconnected) on Path.
event(Config, Kind, Path) ->
    case ?config(backend, Config) of
        fake -> await_event(fake, {fake, Kind, Path});
        python -> await_event(python, [atom_to_binary(Kind), Path])
    end.

free_port() ->
    {ok, L} = gen_tcp:listen(0, [{ip, {127, 0, 0, 1}}, {reuseaddr, true}]),
    {ok, Port} = inet:port(L),
    gen_tcp:close(L),
    Port.

%% The scope or environ the app saw for a GET of Path (the /scope route).
scope(Port, Request) ->
    #{status := 200, body := B} = ask(Port, Request),
    try binary_to_term(B) of
        {Scope, _Opts} ->
            maps:fold(fun(K, V, A) when is_atom(K) -> A#{atom_to_binary(K) => V};
                         (K, V, A) -> A#{K => V}
                      end, #{}, Scope)
    catch error:badarg ->
            {ok, Toks, _} = erl_scan:string(binary_to_list(B)),
            {ok, {Scope, _}} = erl_parse:parse_term(Toks),
            Scope
    end.

%% An event the app recorded: {fake, Kind, What} from the fake backend
%% (the test registered as py_web_fake_observer), or [Kind, What] in
%% pyweb_test_apps' EVENTS (read from every interpreter: module globals are
%% per interpreter in subinterpreters mode).
await_event(fake, Msg) ->
    receive Msg -> ok
    after 10000 -> ct:fail({no_event, Msg})
    end;
await_event(python, Want) ->
    await_event(python, Want, erlang:monotonic_time(millisecond) + 10000).

await_event(python, Want, Deadline) ->
    Events = lists:append(erlang_python_ct:each(pyweb_test_apps, events, [])),
    case lists:member(Want, Events) of
        true -> ok;
        false ->
            case erlang:monotonic_time(millisecond) > Deadline of
                true -> ct:fail({no_event, Want, Events});
                false -> timer:sleep(20), await_event(python, Want, Deadline)
            end
    end.

%% The path of a request for
%% /scope/a%2541/%252e%252e/x?q=%41 reached the app percent-decoded
%% exactly once (uvicorn and gunicorn agree): an escaped '%' stays a '%',
%% where decoding twice would make "..".
decoded_once(asgi, Scope) ->
    #{<<"path">> := <<"/scope/a%41/%2e%2e/x">>,
      <<"raw_path">> := <<"/scope/a%2541/%252e%252e/x">>,
      <<"query_string">> := <<"q=%41">>} = Scope,
    ok;
decoded_once(wsgi, Environ) ->
    #{<<"PATH_INFO">> := <<"/scope/a%41/%2e%2e/x">>,
      <<"QUERY_STRING">> := <<"q=%41">>} = Environ,
    ok.

%% The addresses and version of the scope of an HTTP/1.0 request on a
%% connection to 127.0.0.1:Port are the connection's.
connection_details(asgi, Scope, Port) ->
    #{<<"server">> := {<<"127.0.0.1">>, Port}, <<"client">> := {<<"127.0.0.1">>, CP},
      <<"http_version">> := <<"1.0">>, <<"scheme">> := <<"http">>} = Scope,
    true = CP > 0,
    ok;
connection_details(wsgi, Environ, Port) ->
    PortBin = integer_to_binary(Port),
    #{<<"SERVER_NAME">> := <<"127.0.0.1">>, <<"SERVER_PORT">> := PortBin,
      <<"REMOTE_ADDR">> := <<"127.0.0.1">>, <<"REMOTE_PORT">> := CP,
      <<"SERVER_PROTOCOL">> := <<"HTTP/1.0">>, <<"wsgi.url_scheme">> := <<"http">>} = Environ,
    true = binary_to_integer(CP) > 0,
    ok.

%%--------------------------------------------------------------------
%% The watch: a logger handler (this module's log/2) that keeps every event
%% of level error or worse, except the app errors py_web logs on purpose
%% (metadata py_web => app: the tests make apps fail). A crash of a
%% handler or worker process, Cowboy's "had its request process ... exit"
%% and Elli's "unexpectedly crashed" are all error events.

watch() ->
    catch logger:remove_handler(py_web_watch),
    Pid = spawn(fun() -> collect([]) end),
    ok = logger:add_handler(py_web_watch, ?MODULE, #{config => #{pid => Pid},
                                                     level => error}),
    ok.

%% The events seen since watch/0; removes the handler.
watched() ->
    {ok, #{config := #{pid := Pid}}} = logger:get_handler_config(py_web_watch),
    ok = logger:remove_handler(py_web_watch),
    Pid ! {get, self()},
    receive {events, Pid, Events} -> Events
    after 5000 -> ct:fail(no_watch)
    end.

collect(Acc) ->
    receive
        {event, E} -> collect([E | Acc]);
        {get, From} -> From ! {events, self(), lists:reverse(Acc)}
    end.

log(#{meta := #{py_web := app}}, _) ->
    ok;
log(Event, #{config := #{pid := Pid}}) ->
    Pid ! {event, summary(Event)},
    ok.

summary(#{level := L, msg := {report, R}}) -> {L, R};
summary(#{level := L, msg := {string, S}}) -> {L, unicode:characters_to_binary(S)};
summary(#{level := L, msg := {F, A}}) -> {L, iolist_to_binary(io_lib:format(F, A))}.
