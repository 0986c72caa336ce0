%% Common Test suite for the embedded HTTP/1.1 server (apps/py_web). Every
%% protocol case runs four times: for both interfaces against the
%% pure-Erlang test double py_web_fake (groups asgi and wsgi: same
%% streaming API and message protocol as py_asgi/py_wsgi, no Python), and
%% for both interfaces against real Python apps through the NIF (groups
%% asgi_python and wsgi_python: py_web_SUITE_data/pyweb_test_apps.py, the
%% same paths ported to a raw ASGI and a raw WSGI app). Behaviour only, no
%% timing assertions; time limits are only upper bounds (timetraps,
%% timeouts).
-module(py_web_SUITE).
-compile(nowarn_missing_spec).

-include_lib("common_test/include/ct.hrl").
-include_lib("kernel/include/file.hrl").
-include_lib("stdlib/include/assert.hrl").

-compile([export_all, nowarn_export_all]).

-define(TC, py_web_tc).

suite() -> [{timetrap, {seconds, 60}}].

all() -> [{group, asgi}, {group, wsgi}, {group, asgi_python}, {group, wsgi_python},
          {group, wsgi_workers}, {group, server}].

groups() ->
    Proto = [hello_httpc, keepalive, keepalive_rearm, pipelining, pipelined_past_buffer,
             http10, chunked_request,
             chunked_response, large_upload, expect_continue,
             expect_continue_too_large, head, malformed, strict_parser, limits, slowloris,
             idle_timeout, request_timeout, app_error, error_after_start,
             cookies, status_no_body, app_content_length,
             disconnect_mid_stream, backpressure_stream,
             big_response, percent_path],
    Asgi = Proto ++ [streaming_both_ways, asgi_scope, lifespan_state, lifespan_failure,
                     lifespan_unsupported],
    Wsgi = Proto ++ [wsgi_environ, wsgi_body_first, spool_cleanup],
    %% the fake backend only: a real worker_exit is py_web_processes_SUITE's; what the
    %% app got with its start is the fake's to tell
    Fake = [worker_exit],
    [{asgi, [], Asgi ++ Fake ++ [asgi_small_body_whole]},
     {wsgi, [], Wsgi ++ Fake},
     {asgi_python, [], Asgi},
     {wsgi_python, [], Wsgi},
     %% two Python workers: slow uploads must not take them
     {wsgi_workers, [], [slow_uploads]},
     {server, [], [many_keepalive_connections, graceful_shutdown, tls,
                   access_log, bad_options, child_spec, date_header]}].

init_per_suite(Config) ->
    ok = start_py_web(),
    %% no "serving ..." notice for each of the ~100 servers
    ok = py_web_ct:quiet(),
    {ok, _} = application:ensure_all_started(inets),
    Config.

%% py_web's only process is the Date ticker; erlang_python is optional
%% and not needed with the test double.
start_py_web() ->
    _ = application:load(py_web),
    case application:start(py_web) of
        ok -> ok;
        {error, {already_started, _}} -> ok;
        {error, _} ->
            {ok, P} = py_web_sup:start_link(),
            unlink(P),
            ok
    end.

end_per_suite(_Config) ->
    ok.

init_per_group(wsgi, Config) -> [{interface, wsgi}, {backend, fake} | Config];
init_per_group(asgi_python, Config) ->
    start_python(Config),
    [{interface, asgi}, {backend, python} | Config];
init_per_group(wsgi_python, Config) ->
    start_python(Config),
    [{interface, wsgi}, {backend, python} | Config];
init_per_group(wsgi_workers, Config) ->
    ok = erlang_python_ct:start([], #{base => ?config(data_dir, Config),
                                      env => #{workers => 2}}),
    _ = application:ensure_all_started(py_web),
    [{interface, wsgi}, {backend, python} | Config];
init_per_group(_, Config) -> [{interface, asgi}, {backend, fake} | Config].

end_per_group(wsgi_workers, _Config) ->
    erlang_python_ct:stop();
end_per_group(G, _Config) when G =:= asgi_python; G =:= wsgi_python ->
    _ = application:stop(erlang_python),
    ok = application:set_env(erlang_python, python_path, []);
end_per_group(_, _Config) -> ok.

%% erlang_python with the suite's data dir (pyweb_test_apps.py) on sys.path.
start_python(Config) ->
    py_web_ct:start_python([?config(data_dir, Config)]).

init_per_testcase(_, Config) ->
    case ?config(backend, Config) of
        python -> _ = erlang_python_ct:each(pyweb_test_apps, clear_events, []);
        _ -> ets:new(py_web_fake_requests, [named_table, public, ordered_set])
    end,
    Config.

end_per_testcase(_, _Config) ->
    catch unregister(py_web_fake_observer),
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
    I = proplists:get_value(interface, Config, asgi),
    Base = #{interface => I, port => 0, lifespan => off},
    Backend = case proplists:get_value(backend, Config, fake) of
                  fake -> #{app => app(Config, <<"app">>),
                            asgi_backend => py_web_fake_asgi,
                            wsgi_backend => py_web_fake_wsgi};
                  python -> #{app => app(Config, <<(atom_to_binary(I))/binary, "_app">>)}
              end,
    py_web:start(maps:merge(maps:merge(Base, Backend), Extra)).

%% The app {Module, Callable} of this group's backend.
app(Config, Callable) ->
    case ?config(backend, Config) of
        python -> {<<"pyweb_test_apps">>, Callable};
        _ -> {<<"fake">>, Callable}
    end.

python(Config) -> ?config(backend, Config) =:= python.

%% Every request the app saw in this case: [{Method, Path}] (the path as the
%% app has it: raw for ASGI and the fake, decoded for Python WSGI).
app_requests(Config) ->
    case python(Config) of
        true ->
            %% every interpreter's (module globals are per interpreter in
            %% subinterpreters mode)
            L = lists:append(erlang_python_ct:each(pyweb_test_apps, requests, [])),
            [{M, P} || [M, P] <- L];
        false ->
            [{M, P} || {_, M, P} <- ets:tab2list(py_web_fake_requests)]
    end.

%% What the app saw: the fake sends back term_to_binary({Scope, Opts});
%% the Python app sends Erlang term text of {Scope, #{body => Body, ...}}.
%% ASGI scope keys are made binaries for both.
scope_of(Config, B) ->
    case python(Config) of
        true ->
            {ok, Toks, _} = erl_scan:string(binary_to_list(B)),
            {ok, {Scope, Opts}} = erl_parse:parse_term(Toks),
            {Scope, Opts};
        false ->
            {Scope, Opts} = binary_to_term(B),
            {maps:fold(fun(K, V, A) when is_atom(K) -> A#{atom_to_binary(K) => V};
                          (K, V, A) -> A#{K => V}
                       end, #{}, Scope), Opts}
    end.

%% An event seen by the app: {disconnected, Path}, {lifespan_startup,
%% Callable}, {lifespan_shutdown, Callable}. The fake sends messages to
%% the observer; the Python app records them (read back from every interpreter).
expect_event(Config, {Kind, What} = Event) ->
    case python(Config) of
        false ->
            expect_msg(case Event of
                           {lifespan_shutdown, C} -> {fake, Kind, {fake_lifespan, C}};
                           _ -> {fake, Kind, What}
                       end);
        true ->
            py_web_handler_ct:await_event(python, [atom_to_binary(Kind), What])
    end.

url(Port, Path) -> "http://127.0.0.1:" ++ integer_to_list(Port) ++ Path.

observe() -> register(py_web_fake_observer, self()).

expect_msg(Msg) ->
    receive Msg -> ok
    after 5000 -> ct:fail({no_message, Msg})
    end.

%% Send raw bytes, expect one response with Code, then a closed connection.
expect_close(Port, Data, Code) ->
    S = ?TC:connect(Port),
    ?TC:send(S, Data),
    {ok, Code, Hs, _} = ?TC:recv(S),
    ?assertEqual(<<"close">>, ?TC:header(<<"connection">>, Hs)),
    ?assertEqual(true, ?TC:closed(S)),
    gen_tcp:close(S).

%%--------------------------------------------------------------------
%% Protocol cases (both interfaces)

hello_httpc(Config) ->
    Port = srv(Config),
    {ok, {{_, 200, _}, Hs, Body}} =
        httpc:request(get, {url(Port, "/"), []}, [], [{body_format, binary}]),
    <<"Hello, World!">> = Body,
    "13" = proplists:get_value("content-length", Hs),
    "py_web" = proplists:get_value("server", Hs),
    true = is_list(proplists:get_value("date", Hs)),
    "text/plain" = proplists:get_value("content-type", Hs),
    %% and a POST through httpc
    {ok, {{_, 200, _}, _, <<"payload">>}} =
        httpc:request(post, {url(Port, "/echo"), [], "text/plain", <<"payload">>},
                      [], [{body_format, binary}]).

keepalive(Config) ->
    Port = srv(Config),
    S = ?TC:connect(Port),
    [{ok, 200, _, <<"Hello, World!">>} = ?TC:get(S, "/") || _ <- lists:seq(1, 5)],
    {ok, 200, Hs, <<"Hello, World!">>} = ?TC:get(S, "/"),
    undefined = ?TC:header(<<"connection">>, Hs),
    false = ?TC:closed(S, 100),
    %% Connection: close from the client is honoured
    ?TC:send(S, ?TC:req("GET", "/", [{"connection", "close"}], <<>>)),
    {ok, 200, Hs2, _} = ?TC:recv(S),
    <<"close">> = ?TC:header(<<"connection">>, Hs2),
    true = ?TC:closed(S).

%% An ASGI body of at most 1 MiB with a Content-Length and no Expect is read before the
%% app starts and given whole (more_body false), however it arrives; a larger one, one
%% with Expect: 100-continue and a chunked one reach the app as they arrive.
asgi_small_body_whole(Config) ->
    Port = srv(Config),
    Late = fun(Headers, Body) ->
               S = ?TC:connect(Port),
               Req = iolist_to_binary(?TC:req("POST", "/start_body", Headers, Body)),
               Head = byte_size(Req) - byte_size(Body),
               <<H:Head/binary, B/binary>> = Req,
               ?TC:send(S, H),
               timer:sleep(50),
               ?TC:send(S, B),
               R = ?TC:recv(S),
               gen_tcp:close(S),
               R
           end,
    Small = binary:copy(<<"s">>, 100000),
    {ok, 200, _, <<"false 100000">>} = Late([], Small),
    {ok, 200, _, <<"true 0">>} = Late([], binary:copy(<<"b">>, 1048577)),
    {ok, 200, _, <<"true 0">>} = Late([{<<"expect">>, <<"100-continue">>}], Small),
    Chunked = iolist_to_binary([integer_to_list(1000, 16), "\r\n", binary:copy(<<"c">>, 1000),
                                "\r\n0\r\n\r\n"]),
    {ok, 200, _, <<"true 0">>} = Late([{<<"transfer-encoding">>, <<"chunked">>}], Chunked).

%% The connection reads {active, N}: past N packets on one connection the socket is
%% re-armed, request after request (250 > 2 x N).
keepalive_rearm(Config) ->
    Port = srv(Config),
    S = ?TC:connect(Port),
    [{ok, 200, _, <<"Hello, World!">>} = ?TC:get(S, "/") || _ <- lists:seq(1, 250)],
    false = ?TC:closed(S, 100).

%% While an app runs, more than read_buffer bytes of pipelined requests arrive (the
%% connection goes passive meanwhile, py_web_conn:disarm/1): all are answered, in order,
%% and the connection stays open.  The pause itself is not observed here.
pipelined_past_buffer(Config) ->
    Port = srv(Config, #{read_buffer => 4096}),
    S = ?TC:connect(Port),
    Next = [?TC:req("GET", "/", [{"x-pad", binary:copy(<<"p">>, 500)}], <<>>)
            || _ <- lists:seq(1, 60)],
    ?TC:send(S, [?TC:req("GET", "/sleep?ms=200", [], <<>>) | Next]),
    {ok, 200, _, <<"slept">>} = ?TC:recv(S),
    [{ok, 200, _, <<"Hello, World!">>} = ?TC:recv(S) || _ <- Next],
    false = ?TC:closed(S, 100).

pipelining(Config) ->
    Port = srv(Config),
    S = ?TC:connect(Port),
    ?TC:send(S, [?TC:req("GET", "/", [], <<>>),
                 ?TC:req("POST", "/echo", [], <<"one">>),
                 ?TC:req("GET", "/stream?n=3", [], <<>>),
                 ?TC:req("POST", "/echo", [], <<"two">>),
                 ?TC:req("GET", "/status/404", [], <<>>)]),
    {ok, 200, _, <<"Hello, World!">>} = ?TC:recv(S),
    {ok, 200, _, <<"one">>} = ?TC:recv(S),
    {ok, 200, _, <<"chunk 1\nchunk 2\nchunk 3\n">>} = ?TC:recv(S),
    {ok, 200, _, <<"two">>} = ?TC:recv(S),
    {ok, 404, _, <<"x">>} = ?TC:recv(S),
    false = ?TC:closed(S, 100).

http10(Config) ->
    Port = srv(Config),
    S = ?TC:connect(Port),
    ?TC:send(S, "GET / HTTP/1.0\r\n\r\n"),
    {ok, 200, _, <<"Hello, World!">>} = ?TC:recv(S),
    true = ?TC:closed(S),
    %% keep-alive on request
    S2 = ?TC:connect(Port),
    ?TC:send(S2, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"),
    {ok, 200, Hs, <<"Hello, World!">>} = ?TC:recv(S2),
    <<"keep-alive">> = ?TC:header(<<"connection">>, Hs),
    ?TC:send(S2, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"),
    {ok, 200, _, <<"Hello, World!">>} = ?TC:recv(S2),
    %% a streamed response to HTTP/1.0 is delimited by close, not chunked
    ?TC:send(S2, "GET /stream?n=2 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"),
    {ok, 200, Hs3, <<"chunk 1\nchunk 2\n">>} = ?TC:recv(S2),
    undefined = ?TC:header(<<"transfer-encoding">>, Hs3),
    <<"close">> = ?TC:header(<<"connection">>, Hs3).

chunked_request(Config) ->
    Port = srv(Config),
    S = ?TC:connect(Port),
    ?TC:send(S, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"),
    ?TC:send(S, "5\r\nhello\r\n"),
    ?TC:send(S, "6;ext=1\r\n world\r\n"),
    ?TC:send(S, "0\r\nX-Trailer: t\r\n\r\n"),
    {ok, 200, _, <<"hello world">>} = ?TC:recv(S),
    %% connection still usable, and a whole chunked body in one packet
    ?TC:send(S, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                "3\r\nabc\r\nA\r\n0123456789\r\n0\r\n\r\n"),
    {ok, 200, _, <<"abc0123456789">>} = ?TC:recv(S),
    false = ?TC:closed(S, 100).

chunked_response(Config) ->
    Port = srv(Config),
    S = ?TC:connect(Port),
    ?TC:send(S, ?TC:req("GET", "/stream?n=5", [], <<>>)),
    {ok, 200, Hs, Chunks} = ?TC:recv(S, #{chunks => true}),
    <<"chunked">> = ?TC:header(<<"transfer-encoding">>, Hs),
    undefined = ?TC:header(<<"content-length">>, Hs),
    <<"chunk 1\nchunk 2\nchunk 3\nchunk 4\nchunk 5\n">> = iolist_to_binary(Chunks),
    true = length(Chunks) >= 2,
    {ok, 200, _, _} = ?TC:get(S, "/").

large_upload(Config) ->
    Port = srv(Config),
    Body = crypto:strong_rand_bytes(3 * 1024 * 1024),
    S = ?TC:connect(Port),
    ?TC:send(S, ?TC:req("POST", "/echo", [], Body)),
    {ok, 200, Hs, Body} = ?TC:recv(S),
    case ?config(interface, Config) of
        asgi ->
            %% the body reached the app in several pieces (not buffered whole)
            true = binary_to_integer(?TC:header(<<"x-body-chunks">>, Hs)) > 1;
        wsgi ->
            %% read whole first; over spool_threshold (1 MiB), from a file
            <<"1">> = ?TC:header(<<"x-body-chunks">>, Hs),
            <<"BufferedReader">> = ?TC:header(<<"x-input-type">>, Hs)
    end,
    %% same through chunked transfer-encoding
    Enc = [[integer_to_list(byte_size(P), 16), "\r\n", P, "\r\n"]
           || <<P:65536/binary>> <= Body],
    ?TC:send(S, ["POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
                 Enc, "0\r\n\r\n"]),
    {ok, 200, _, Body} = ?TC:recv(S).

expect_continue(Config) ->
    Port = srv(Config),
    S = ?TC:connect(Port),
    ?TC:send(S, "POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                "Content-Length: 5\r\n\r\n"),
    {ok, 100, _, <<>>} = ?TC:recv(S),
    ?TC:send(S, "hello"),
    {ok, 200, _, <<"hello">>} = ?TC:recv(S),
    ?TC:send(S, "POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                "Content-Length: 5\r\n\r\n"),
    case ?config(interface, Config) of
        asgi ->
            %% an app that does not read the body: no 100, and the connection
            %% is closed since the client will not send the body
            {ok, 200, Hs, <<"Hello, World!">>} = ?TC:recv(S),
            <<"close">> = ?TC:header(<<"connection">>, Hs),
            true = ?TC:closed(S);
        wsgi ->
            %% the body is read before a WSGI app starts, whether it reads it
            %% or not: the 100 comes at once, and the connection is kept
            {ok, 100, _, <<>>} = ?TC:recv(S),
            ?TC:send(S, "hello"),
            {ok, 200, Hs, <<"Hello, World!">>} = ?TC:recv(S),
            undefined = ?TC:header(<<"connection">>, Hs),
            {ok, 200, _, _} = ?TC:get(S, "/")
    end.

expect_continue_too_large(Config) ->
    Port = srv(Config, #{max_body => 10}),
    expect_close(Port, "POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                       "Content-Length: 100\r\n\r\n", 413).

head(Config) ->
    Port = srv(Config),
    S = ?TC:connect(Port),
    ?TC:send(S, ?TC:req("HEAD", "/", [], <<>>)),
    {ok, 200, Hs, <<>>} = ?TC:recv(S, #{head => true}),
    <<"13">> = ?TC:header(<<"content-length">>, Hs),
    ?TC:send(S, ?TC:req("HEAD", "/stream?n=3", [], <<>>)),
    {ok, 200, _, <<>>} = ?TC:recv(S, #{head => true}),
    %% no body bytes were sent: the next response parses cleanly
    {ok, 200, _, <<"Hello, World!">>} = ?TC:get(S, "/").

malformed(Config) ->
    Port = srv(Config),
    Cases = [{"garbage\r\n\r\n", 400},
             {"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
              "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
             {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400},
             {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400},
             {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
              "Content-Length: 4\r\n\r\nabcd", 400},
             {"GET / HTTP/1.1\r\n\r\n", 400},
             {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
             {"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505},
             {"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
              "zz\r\nhello\r\n0\r\n\r\n", 400},
             %% chunked must be the final coding (RFC 9112 §6.3): 400; a coding
             %% before it that we do not implement: 501
             {"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 400},
             {"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n", 400},
             {"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n"
              "0\r\n\r\n", 400},
             {"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
              "0\r\n\r\n", 501},
             %% a bare LF is no empty line (RFC 9112 §2.2)
             {"\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", 400},
             {"POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
             {"GET / HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n", 400},
             {"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n folded\r\n\r\n", 400},
             {"GET / HTTP/1.1\r\nHost: x\r\nExpect: teapot\r\n\r\n", 417}],
    [expect_close(Port, Data, Code) || {Data, Code} <- Cases],
    [] = app_requests(Config),
    %% leading empty lines before a request are ignored
    S = ?TC:connect(Port),
    ?TC:send(S, "\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"),
    {ok, 200, _, _} = ?TC:recv(S),
    [{<<"GET">>, <<"/">>}] = app_requests(Config).

%% What the grammar of RFC 9112 forbids and decode_packet let through (issue
%% 18): each request is answered 400 and its connection closed, and the app
%% sees none of them, nor the request smuggled in behind three of them.
strict_parser(Config) ->
    Port = srv(Config),
    Smuggled = "GET /SMUGGLED HTTP/1.1\r\nHost: x\r\n\r\n",
    Chunked = fun(Line) ->
                      ["POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
                       Line, "\r\nhello\r\n0\r\n\r\n"]
              end,
    Get = fun(Line) -> [Line, "\r\nHost: x\r\n\r\n"] end,
    Field = fun(F) -> ["GET / HTTP/1.1\r\nHost: x\r\n", F, "\r\n\r\n"] end,
    Cases =
        %% request targets with a CTL, SP, NUL, ESC, DEL or a non-ASCII byte
        [Get(["GET /a", C, "b HTTP/1.1"]) || C <- [1, 8, 9, 31, $\s, 0, 27, 127, 16#80, 16#C3]]
        ++ [Get("GET /\xC3\xA9 HTTP/1.1"), Get("GET /?q=a\x00b HTTP/1.1")]
        %% versions decode_packet took as 1.1
        ++ [Get(["GET / ", V]) || V <- ["HTTP/1.1.1", "HTTP/01.1", "HTTP/4294967297.1",
                                        "HTTP/1.1 x", "http/1.1"]]
        %% tab separators, and a request line that ends in a bare CR
        ++ [Get("GET\t/ HTTP/1.1"), Get("GET /\tHTTP/1.1"),
            "GET / HTTP/1.1\rHost: x\r\n\r\n"]
        %% field names: empty, DEL, space before the colon; values with a CTL
        ++ [Field(F) || F <- [": v", "X\x7fY: v", "X : v", "X: a\x01b", "X: a\x7fb",
                              "X: a\rb", "X: a\x00b"]]
        %% chunk extensions with a bare LF, a bare CR, a NUL, another CTL
        ++ [Chunked(["5;a=", C, "b"]) || C <- ["\n", "\r", [0], [1], [27], [127]]]
        %% the three smuggling cases: Transfer-Encoding after a bare CR on
        %% the request line, Transfer-Encoding after the version, Content-Length
        %% after a bare CR (request line, then a field value)
        ++ ["POST / HTTP/1.1\r\rTransfer-Encoding: chunked\r\nHost: x\r\n"
            "Content-Length: 5\r\n\r\n0\r\n\r\n" ++ Smuggled,
            "POST / HTTP/1.1 Transfer-Encoding: chunked\r\nHost: x\r\n"
            "Content-Length: 5\r\n\r\n0\r\n\r\n" ++ Smuggled,
            "POST / HTTP/1.1\rContent-Length: 35\r\nHost: x\r\n\r\n" ++ Smuggled,
            "POST / HTTP/1.1\r\nHost: x\r\nX: a\rContent-Length: 36\r\n\r\n" ++ Smuggled],
    [expect_close(Port, C, 400) || C <- Cases],
    [] = app_requests(Config),
    %% the app does see a valid request
    S = ?TC:connect(Port),
    {ok, 200, _, _} = ?TC:get(S, "/"),
    [{<<"GET">>, <<"/">>}] = app_requests(Config).

limits(Config) ->
    Port = srv(Config, #{max_request_line => 100, max_header_size => 1000,
                         max_headers => 10, max_body => 1000}),
    Long = lists:duplicate(200, $a),
    expect_close(Port, "GET /" ++ Long ++ " HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    %% request line longer than the limit arriving without its CRLF yet
    expect_close(Port, "GET /" ++ Long, 414),
    Big = lists:duplicate(2000, $b),
    expect_close(Port, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " ++ Big ++ "\r\n\r\n", 431),
    Many = [["X-H", integer_to_list(I), ": v\r\n"] || I <- lists:seq(1, 11)],
    expect_close(Port, ["GET / HTTP/1.1\r\nHost: x\r\n", Many, "\r\n"], 431),
    expect_close(Port, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n", 413),
    expect_close(Port, ["POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
                        "3E8\r\n", binary:copy(<<"c">>, 1000), "\r\n",
                        "2\r\ncc\r\n0\r\n\r\n"], 413),
    %% exactly at the limits is fine
    S = ?TC:connect(Port),
    ?TC:send(S, ?TC:req("POST", "/echo", [], binary:copy(<<"d">>, 1000))),
    {ok, 200, _, _} = ?TC:recv(S).

slowloris(Config) ->
    Port = srv(Config, #{header_timeout => 300}),
    S = ?TC:connect(Port),
    ?TC:send(S, "GET / HTTP/1.1\r\nHost: x\r\n"),
    %% keep trickling header lines; the server must cut us off
    Trickle = fun Loop(0) -> gave_up;
                  Loop(N) ->
                      case gen_tcp:send(S, "X-Slow: 1\r\n") of
                          ok -> timer:sleep(50), Loop(N - 1);
                          {error, _} -> cut
                      end
              end,
    _ = Trickle(200),
    case ?TC:recv(S) of
        {ok, 408, _, _} -> ok;
        {error, closed} -> ok;
        {error, econnreset} -> ok
    end,
    true = ?TC:closed(S).

idle_timeout(Config) ->
    Port = srv(Config, #{idle_timeout => 200}),
    S = ?TC:connect(Port),
    {ok, 200, _, _} = ?TC:get(S, "/"),
    true = ?TC:closed(S),
    %% a connection that never sends anything is closed too
    S2 = ?TC:connect(Port),
    true = ?TC:closed(S2).

request_timeout(Config) ->
    observe(),
    Port = srv(Config, #{request_timeout => 200}),
    expect_close(Port, ?TC:req("GET", "/hang", [], <<>>), 504),
    expect_event(Config, {disconnected, <<"/hang">>}).

app_error(Config) ->
    Port = srv(Config),
    [begin
         S = ?TC:connect(Port),
         {ok, 500, _, Body} = ?TC:get(S, Path),
         nomatch = binary:match(Body, [<<"secret">>, <<"Traceback">>, <<"ValueError">>]),
         <<"Internal Server Error">> = Body
     end || Path <- ["/error", "/start_error", "/nostart", "/badheader"]],
    %% no CRLF injection reached the client
    S2 = ?TC:connect(Port),
    {ok, 500, Hs, _} = ?TC:get(S2, "/badheader"),
    undefined = ?TC:header(<<"x-injected">>, Hs).

%% The app's worker process died before the response (erlang_python's
%% processes mode): 502, as a proxy answers for a backend that went away,
%% and the connection closed.
worker_exit(Config) ->
    Port = srv(Config),
    S = ?TC:connect(Port),
    {ok, 502, Hs, <<"Bad Gateway">>} = ?TC:get(S, "/worker_exit"),
    [<<"close">>] = ?TC:headers(<<"connection">>, Hs),
    {error, closed} = gen_tcp:recv(S, 0, 5000).

error_after_start(Config) ->
    Port = srv(Config),
    S = ?TC:connect(Port),
    ?TC:send(S, ?TC:req("GET", "/error_after_start", [], <<>>)),
    %% the response started (chunked) and is cut: incomplete body
    {error, closed} = ?TC:recv(S).

cookies(Config) ->
    Port = srv(Config),
    S = ?TC:connect(Port),
    {ok, 200, Hs, _} = ?TC:get(S, "/cookies"),
    [<<"a=1; Path=/">>, <<"b=2; Path=/">>] = ?TC:headers(<<"set-cookie">>, Hs),
    %% order kept: set-cookie, content-type, set-cookie
    [<<"set-cookie">>, <<"content-type">>, <<"set-cookie">> | _] = [N || {N, _} <- Hs].

status_no_body(Config) ->
    Port = srv(Config),
    S = ?TC:connect(Port),
    {ok, 204, Hs, <<>>} = ?TC:get(S, "/status/204"),
    undefined = ?TC:header(<<"content-length">>, Hs),
    undefined = ?TC:header(<<"transfer-encoding">>, Hs),
    {ok, 304, _, <<>>} = ?TC:get(S, "/status/304"),
    {ok, 418, _, <<"x">>} = ?TC:get(S, "/status/418"),
    {ok, 200, _, <<"Hello, World!">>} = ?TC:get(S, "/").

app_content_length(Config) ->
    Port = srv(Config),
    S = ?TC:connect(Port),
    {ok, 200, Hs, <<"hello">>} = ?TC:get(S, "/cl"),
    [<<"5">>] = ?TC:headers(<<"content-length">>, Hs),
    undefined = ?TC:header(<<"transfer-encoding">>, Hs),
    {ok, 200, _, _} = ?TC:get(S, "/").

disconnect_mid_stream(Config) ->
    observe(),
    Port = srv(Config),
    S = ?TC:connect(Port),
    ?TC:send(S, ?TC:req("GET", "/wait_disconnect", [], <<>>)),
    {ok, D} = gen_tcp:recv(S, 0, 5000),
    true = binary:match(D, <<"first">>) =/= nomatch orelse
        begin {ok, D2} = gen_tcp:recv(S, 0, 5000), binary:match(D2, <<"first">>) =/= nomatch end,
    gen_tcp:close(S),
    expect_event(Config, {disconnected, <<"/wait_disconnect">>}).

%% Each request-body chunk is echoed as a response chunk before the next
%% one is sent: both directions stream.
streaming_both_ways(Config) ->
    Port = srv(Config),
    S = ?TC:connect(Port),
    ?TC:send(S, "POST /chunks_echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                "4\r\nping\r\n"),
    {ok, 200, Hs} = read_head(S),
    <<"chunked">> = ?TC:header(<<"transfer-encoding">>, Hs),
    <<"ping">> = read_chunk(S),
    ?TC:send(S, "4\r\npong\r\n"),
    <<"pong">> = read_chunk(S),
    ?TC:send(S, "0\r\n\r\n"),
    <<>> = read_chunk(S),
    {ok, 200, _, _} = ?TC:get(S, "/").

read_head(S) ->
    %% a response head only (py_web_tc:recv/2 with head => true)
    {ok, Code, Hs, <<>>} = ?TC:recv(S, #{head => true}),
    {ok, Code, Hs}.

read_chunk(S) ->
    {ok, Line} = read_line(S),
    N = binary_to_integer(Line, 16),
    {ok, <<C:N/binary, "\r\n">>} = read_n(S, N + 2),
    case N of
        0 -> C;
        _ -> C
    end.

read_line(S) ->
    Buf = get({buf, S}),
    case binary:split(Buf, <<"\r\n">>) of
        [L, R] -> put({buf, S}, R), {ok, L};
        _ -> {ok, D} = gen_tcp:recv(S, 0, 5000), put({buf, S}, <<Buf/binary, D/binary>>), read_line(S)
    end.

read_n(S, N) ->
    Buf = get({buf, S}),
    case Buf of
        <<B:N/binary, R/binary>> -> put({buf, S}, R), {ok, B};
        _ -> {ok, D} = gen_tcp:recv(S, 0, 5000), put({buf, S}, <<Buf/binary, D/binary>>), read_n(S, N)
    end.

%% The app produces each chunk only after the previous one was acked
%% (written): many chunks arrive complete and in order.
backpressure_stream(Config) ->
    Port = srv(Config),
    S = ?TC:connect(Port),
    ?TC:send(S, ?TC:req("GET", "/stream?n=500", [], <<>>)),
    {ok, 200, _, Body} = ?TC:recv(S),
    Expected = iolist_to_binary([["chunk ", integer_to_list(I), "\n"] || I <- lists:seq(1, 500)]),
    Expected = Body.

big_response(Config) ->
    Port = srv(Config),
    S = ?TC:connect(Port),
    {ok, 200, Hs, Body} = ?TC:get(S, "/big?size=5000000"),
    5000000 = byte_size(Body),
    _ = Hs.

percent_path(Config) ->
    Port = srv(Config),
    S = ?TC:connect(Port),
    {ok, 200, _, B} = ?TC:get(S, "/scope"),
    {Env, _} = scope_of(Config, B),
    true = is_map(Env),
    %% the app routes on the decoded path
    {ok, 200, _, B2} = ?TC:get(S, "/sc%6Fpe"),
    {Env2, _} = scope_of(Config, B2),
    true = is_map(Env2),
    %% decoded exactly once (py_web_handler_ct:decoded_once/2)
    {ok, 200, _, B3} = ?TC:get(S, "/scope/a%2541/%252e%252e/x?q=%41"),
    {Env3, _} = scope_of(Config, B3),
    ok = py_web_handler_ct:decoded_once(?config(interface, Config), Env3).

%%--------------------------------------------------------------------
%% Scope / environ

asgi_scope(Config) ->
    Port = srv(Config, #{root_path => <<"/root">>}),
    S = ?TC:connect(Port),
    ?TC:send(S, "POST /scope HTTP/1.1\r\nHost: example.com\r\nX-Dup: 1\r\n"
                "Content-Type: text/plain\r\nx-dup: 2\r\nContent-Length: 4\r\n\r\nbody"),
    {ok, 200, _, B} = ?TC:recv(S),
    {Scope, Opts} = scope_of(Config, B),
    %% the path includes the root path (ASGI 2.4, uvicorn 0.26+)
    #{<<"type">> := <<"http">>, <<"http_version">> := <<"1.1">>, <<"method">> := <<"POST">>,
      <<"scheme">> := <<"http">>, <<"path">> := <<"/root/scope">>,
      <<"raw_path">> := <<"/root/scope">>,
      <<"query_string">> := <<>>, <<"root_path">> := <<"/root">>,
      <<"server">> := {<<"127.0.0.1">>, Port},
      <<"client">> := {<<"127.0.0.1">>, CPort}} = Scope,
    true = is_integer(CPort),
    [{<<"host">>, <<"example.com">>}, {<<"x-dup">>, <<"1">>},
     {<<"content-type">>, <<"text/plain">>}, {<<"x-dup">>, <<"2">>},
     {<<"content-length">>, <<"4">>}] = pairs(maps:get(<<"headers">>, Scope)),
    #{body := <<"body">>} = Opts,
    case python(Config) of
        false ->
            false = maps:is_key(<<"state">>, Scope);
        true ->
            %% no lifespan: an empty state; the types the ASGI spec asks for
            #{<<"state">> := State} = Scope,
            0 = map_size(State),
            #{types := #{<<"path">> := <<"str">>, <<"raw_path">> := <<"bytes">>,
                         <<"query_string">> := <<"bytes">>, <<"method">> := <<"str">>,
                         <<"headers">> := <<"list">>, <<"header_part">> := [<<"bytes">>],
                         <<"client">> := <<"tuple">>, <<"server">> := <<"tuple">>}} = Opts
    end,
    %% percent-decoding of path, raw_path and query string as received
    ?TC:send(S, "GET /scope/a%20b/%C3%A9?x=%20&y=2 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"),
    {ok, 200, _, B2} = ?TC:recv(S),
    {Scope2, _} = scope_of(Config, B2),
    #{<<"path">> := <<"/root/scope/a b/", 16#C3, 16#A9>>,
      <<"raw_path">> := <<"/root/scope/a%20b/%C3%A9">>,
      <<"query_string">> := <<"x=%20&y=2">>, <<"http_version">> := <<"1.0">>} = Scope2,
    [{<<"connection">>, <<"keep-alive">>}] = pairs(maps:get(<<"headers">>, Scope2)),
    %% a proxy that keeps the prefix: not added twice (the WSGI split, wsgi_environ)
    ?TC:send(S, "GET /root/scope/x HTTP/1.1\r\nHost: x\r\n\r\n"),
    {ok, 200, _, B3} = ?TC:recv(S),
    {#{<<"path">> := <<"/root/scope/x">>, <<"raw_path">> := <<"/root/scope/x">>,
       <<"root_path">> := <<"/root">>}, _} = scope_of(Config, B3).

pairs(Hs) -> [case H of [N, V] -> {N, V}; {N, V} -> {N, V} end || H <- Hs].

wsgi_environ(Config) ->
    Port = srv(Config, #{root_path => <<"/root">>}),
    S = ?TC:connect(Port),
    ?TC:send(S, "POST /scope?q=1 HTTP/1.1\r\nHost: example.com\r\nX-Dup: 1\r\n"
                "Content-Type: text/plain\r\nx-dup: 2\r\nX_Spoof: no\r\n"
                "Content-Length: 4\r\n\r\nbody"),
    {ok, 200, _, B} = ?TC:recv(S),
    {Env, Opts} = scope_of(Config, B),
    PortBin = integer_to_binary(Port),
    #{<<"REQUEST_METHOD">> := <<"POST">>, <<"SCRIPT_NAME">> := <<"/root">>,
      <<"PATH_INFO">> := <<"/scope">>, <<"QUERY_STRING">> := <<"q=1">>,
      <<"SERVER_NAME">> := <<"127.0.0.1">>, <<"SERVER_PORT">> := PortBin,
      <<"SERVER_PROTOCOL">> := <<"HTTP/1.1">>, <<"REMOTE_ADDR">> := <<"127.0.0.1">>,
      <<"wsgi.url_scheme">> := <<"http">>,
      <<"HTTP_HOST">> := <<"example.com">>, <<"HTTP_X_DUP">> := <<"1, 2">>,
      <<"CONTENT_TYPE">> := <<"text/plain">>, <<"CONTENT_LENGTH">> := <<"4">>} = Env,
    true = is_binary(maps:get(<<"REMOTE_PORT">>, Env)),
    <<"py_web/", _/binary>> = maps:get(<<"SERVER_SOFTWARE">>, Env),
    %% true only when Python runs in several OS processes
    Multi = py_web:multiprocess(),
    Multi = maps:get(<<"wsgi.multiprocess">>, Env),
    false = maps:is_key(<<"HTTP_CONTENT_TYPE">>, Env),
    false = maps:is_key(<<"HTTP_CONTENT_LENGTH">>, Env),
    false = maps:is_key(<<"HTTP_X_SPOOF">>, Env),
    #{body := <<"body">>} = Opts,
    case python(Config) of
        true -> #{<<"wsgi.version">> := {1, 0}, <<"wsgi.input">> := _} = Env;
        false -> ok
    end,
    ?TC:send(S, "GET /scope/a%20b/%C3%A9 HTTP/1.1\r\nHost: x\r\n\r\n"),
    {ok, 200, _, B2} = ?TC:recv(S),
    {#{<<"PATH_INFO">> := <<"/scope/a b/", 16#C3, 16#A9>>}, _} = scope_of(Config, B2),
    %% a proxy that keeps the prefix: SCRIPT_NAME is split off (gunicorn's rule)
    ?TC:send(S, "GET /root/scope/x HTTP/1.1\r\nHost: x\r\n\r\n"),
    {ok, 200, _, B5} = ?TC:recv(S),
    {#{<<"SCRIPT_NAME">> := <<"/root">>, <<"PATH_INFO">> := <<"/scope/x">>}, _} =
        scope_of(Config, B5),
    false = maps:is_key(<<"wsgi.input_terminated">>, Env),
    %% a chunked body, read whole and decoded: wsgi.input_terminated, and its
    %% length as CONTENT_LENGTH instead of Transfer-Encoding (whether it came
    %% in one packet with the head or not)
    ?TC:send(S, "POST /scope HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                "4\r\nbody\r\n0\r\n\r\n"),
    {ok, 200, _, B3} = ?TC:recv(S),
    {Env3, Opts3} = scope_of(Config, B3),
    #{<<"wsgi.input_terminated">> := true, <<"CONTENT_LENGTH">> := <<"4">>} = Env3,
    false = maps:is_key(<<"HTTP_TRANSFER_ENCODING">>, Env3),
    ?TC:send(S, "POST /scope HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                "4\r\nbo"),
    ?TC:send(S, "dy\r\n3\r\nabc\r\n0\r\n\r\n"),
    {ok, 200, _, B4} = ?TC:recv(S),
    {#{<<"wsgi.input_terminated">> := true, <<"CONTENT_LENGTH">> := <<"7">>}, _} =
        scope_of(Config, B4),
    case python(Config) of
        true -> #{body := <<"body">>} = Opts3;
        false -> ok
    end.

%%--------------------------------------------------------------------
%% WSGI request bodies: read whole before the app takes a worker

%% The app starts only once the body is complete (the 100 Continue tells
%% that the server has the head).
wsgi_body_first(Config) ->
    Port = srv(Config),
    S = ?TC:connect(Port),
    ?TC:send(S, "POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                "Content-Length: 10\r\n\r\n"),
    {ok, 100, _, <<>>} = ?TC:recv(S),
    [] = app_requests(Config),
    ?TC:send(S, "hello"),
    ?TC:send(S, "world"),
    {ok, 200, Hs, <<"helloworld">>} = ?TC:recv(S),
    <<"1">> = ?TC:header(<<"x-body-chunks">>, Hs),
    [{<<"POST">>, <<"/echo">>}] = app_requests(Config),
    %% a chunked body too, with what comes after it kept for the next request
    ?TC:send(S, ["POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "3\r\nabc\r\n"]),
    ?TC:send(S, ["2\r\nde\r\n0\r\n\r\n", ?TC:req("GET", "/", [], <<>>)]),
    {ok, 200, _, <<"abcde">>} = ?TC:recv(S),
    {ok, 200, _, <<"Hello, World!">>} = ?TC:recv(S).

%% A body over spool_threshold goes to a file that the app reads; the file
%% is gone after the request whatever its end: success, app error, client
%% gone while uploading or while the app runs, body timeout, request
%% timeout, the connection process killed.
spool_cleanup(Config) ->
    Dir = spool_dir(Config),
    Port = srv(Config, #{spool_dir => Dir, spool_threshold => 1000, body_timeout => 300,
                         request_timeout => 300}),
    Body = crypto:strong_rand_bytes(5000),
    Head = fun(Path) -> ["POST ", Path, " HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n"]
           end,
    Half = binary:part(Body, 0, 2000),
    %% success
    S1 = ?TC:connect(Port),
    ?TC:send(S1, [Head("/echo"), Body]),
    {ok, 200, Hs, Body} = ?TC:recv(S1),
    <<"BufferedReader">> = ?TC:header(<<"x-input-type">>, Hs),
    no_spool_files(Dir),
    %% the app fails after reading it
    S2 = ?TC:connect(Port),
    ?TC:send(S2, [Head("/read_error"), Body]),
    {ok, 500, _, _} = ?TC:recv(S2),
    no_spool_files(Dir),
    %% the client leaves while uploading (the file exists meanwhile, in a
    %% directory of this VM's that only its user can enter)
    S3 = ?TC:connect(Port),
    ?TC:send(S3, [Head("/echo"), Half]),
    [File] = spool_files(Dir),
    {ok, #file_info{mode = Mode}} = file:read_file_info(filename:dirname(File)),
    8#700 = Mode band 8#777,
    gen_tcp:close(S3),
    no_spool_files(Dir),
    %% the client stops sending: 408
    S4 = ?TC:connect(Port),
    ?TC:send(S4, [Head("/echo"), Half]),
    {ok, 408, _, _} = ?TC:recv(S4),
    no_spool_files(Dir),
    %% the app does not answer in time: 504
    S5 = ?TC:connect(Port),
    ?TC:send(S5, [Head("/hang"), Body]),
    {ok, 504, _, _} = ?TC:recv(S5),
    no_spool_files(Dir),
    %% the client leaves while the app runs
    observe(),
    {ok, Pid2} = start_srv(Config, #{spool_dir => Dir, spool_threshold => 1000}),
    S6 = ?TC:connect(py_web:port(Pid2)),
    ?TC:send(S6, [Head("/wait_disconnect"), Body]),
    {ok, <<"HTTP/1.1 200", _/binary>>} = gen_tcp:recv(S6, 0, 5000),
    gen_tcp:close(S6),
    expect_event(Config, {disconnected, <<"/wait_disconnect">>}),
    no_spool_files(Dir),
    %% the connection process is killed while the client uploads
    S7 = ?TC:connect(Port),
    ?TC:send(S7, [Head("/echo"), Half]),
    [_] = spool_files(Dir),
    [exit(P, kill) || P <- processes(),
                      proc_lib:translate_initial_call(P) =:= {py_web_conn, init, 2}],
    no_spool_files(Dir).

spool_dir(Config) ->
    Dir = filename:join(?config(priv_dir, Config),
                        "spool-" ++ integer_to_list(erlang:unique_integer([positive]))),
    ok = file:make_dir(Dir),
    list_to_binary(Dir).

spool_files(Dir) ->
    wait_until(fun() -> case filelib:wildcard(binary_to_list(Dir) ++ "/*/*.body") of
                             [] -> false;
                             Files -> Files
                         end
               end).

no_spool_files(Dir) ->
    wait_until(fun() -> filelib:wildcard(binary_to_list(Dir) ++ "/*/*.body") =:= [] end).

%% Poll (bounded) until Fun returns something other than false.
wait_until(Fun) -> wait_until(Fun, 500).

wait_until(Fun, 0) -> ct:fail({still, Fun()});
wait_until(Fun, N) ->
    case Fun() of
        false -> timer:sleep(10), wait_until(Fun, N - 1);
        true -> ok;
        Other -> Other
    end.

%% Issue 18: eight clients trickling 1 MB bodies must not hold the (two)
%% Python workers: a normal request is answered while they still upload,
%% and then each upload gets its own body back.
slow_uploads(Config) ->
    Dir = spool_dir(Config),
    Port = srv(Config, #{spool_dir => Dir, spool_threshold => 100000}),
    Size = 1000000,
    Self = self(),
    Uploads = [spawn_link(fun() -> trickle(Self, Port, Size) end) || _ <- lists:seq(1, 8)],
    %% every upload has started and is trickling
    [receive {trickling, U} -> ok after 10000 -> ct:fail(no_upload) end || U <- Uploads],
    S = ?TC:connect(Port),
    {ok, 200, _, <<"Hello, World!">>} = ?TC:get(S, "/"),
    %% the uploads were still going on: none has finished yet
    [U ! finish || U <- Uploads],
    [receive {uploaded, U, Result} -> ok = Result after 30000 -> ct:fail(no_response) end
     || U <- Uploads],
    no_spool_files(Dir).

%% One client: the head and the first bytes, then a byte every 20 ms until
%% told to finish, then the rest; reports whether the echo matched.
trickle(Parent, Port, Size) ->
    Body = crypto:strong_rand_bytes(Size),
    S = ?TC:connect(Port),
    ?TC:send(S, ["POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: ",
                 integer_to_list(Size), "\r\n\r\n", binary:part(Body, 0, 1000)]),
    Parent ! {trickling, self()},
    Sent = trickle_bytes(S, Body, 1000),
    ?TC:send(S, binary:part(Body, Sent, Size - Sent)),
    Result = case ?TC:recv(S) of
                 {ok, 200, _, Body} -> ok;
                 Other -> {bad_echo, Other}
             end,
    Parent ! {uploaded, self(), Result}.

trickle_bytes(S, Body, Sent) ->
    receive
        finish -> Sent
    after 20 ->
        ?TC:send(S, binary:part(Body, Sent, 1)),
        trickle_bytes(S, Body, Sent + 1)
    end.

%%--------------------------------------------------------------------
%% Lifespan (ASGI)

lifespan_state(Config) ->
    observe(),
    {ok, Pid} = start_srv(Config, #{lifespan => on}),
    {_, C} = app(Config, default_callable(Config)),
    expect_event(Config, {lifespan_startup, C}),
    S = ?TC:connect(py_web:port(Pid)),
    {ok, 200, _, B} = ?TC:get(S, "/scope"),
    {#{<<"state">> := #{<<"started">> := true}}, _} = scope_of(Config, B),
    ok = py_web:stop(Pid),
    expect_event(Config, {lifespan_shutdown, C}).

default_callable(Config) ->
    case python(Config) of
        true -> <<"asgi_app">>;
        false -> <<"app">>
    end.

lifespan_failure(Config) ->
    {error, {lifespan_startup_failed, {python, _, Msg, _}}} =
        start_srv(Config, #{lifespan => auto, app => app(Config, <<"fail_lifespan">>)}),
    {match, _} = re:run(Msg, "startup failed").

lifespan_unsupported(Config) ->
    {ok, _} = start_srv(Config, #{lifespan => auto, app => app(Config, <<"no_lifespan">>)}),
    {error, {lifespan, unsupported}} =
        start_srv(Config, #{lifespan => on, app => app(Config, <<"no_lifespan">>)}).

%%--------------------------------------------------------------------
%% Server-level cases

many_keepalive_connections(Config) ->
    N = 1000,
    Port = srv(Config, #{backlog => 2048}),
    Self = self(),
    Pids = [spawn_link(fun() -> client(Self, Port) end) || _ <- lists:seq(1, N)],
    %% all connected and served once, all still open at the same time
    [receive {ready, P} -> ok after 30000 -> ct:fail(not_ready) end || P <- Pids],
    #{connections := Conns} = py_web:info(hd([P || {{py_web, _}, P, _, _}
                                                       <- supervisor:which_children(py_web_sup)])),
    true = Conns >= N,
    [P ! go || P <- Pids],
    [receive {done, P} -> ok after 30000 -> ct:fail(not_done) end || P <- Pids],
    ok.

client(Parent, Port) ->
    S = ?TC:connect(Port),
    {ok, 200, _, <<"Hello, World!">>} = ?TC:get(S, "/"),
    Parent ! {ready, self()},
    receive go -> ok end,
    {ok, 200, _, <<"Hello, World!">>} = ?TC:get(S, "/"),
    Parent ! {done, self()},
    gen_tcp:close(S).

graceful_shutdown(Config) ->
    {ok, Pid} = start_srv(Config, #{shutdown_timeout => 5000}),
    Port = py_web:port(Pid),
    Busy = ?TC:connect(Port),
    Idle = ?TC:connect(Port),
    {ok, 200, _, _} = ?TC:get(Idle, "/"),
    ?TC:send(Busy, ?TC:req("GET", "/sleep?ms=500", [], <<>>)),
    timer:sleep(100),   %% let the request reach the app (not a timing assertion)
    Self = self(),
    spawn(fun() -> Self ! {stopped, py_web:stop(Pid)} end),
    %% the in-flight request completes, with connection: close
    {ok, 200, Hs, <<"slept">>} = ?TC:recv(Busy),
    <<"close">> = ?TC:header(<<"connection">>, Hs),
    true = ?TC:closed(Busy),
    true = ?TC:closed(Idle),
    expect_msg({stopped, ok}),
    {error, econnrefused} = gen_tcp:connect({127, 0, 0, 1}, Port, [binary], 1000).

tls(Config) ->
    _ = application:ensure_all_started(ssl),
    Dir = ?config(priv_dir, Config),
    #{server_config := SC} = public_key:pkix_test_data(
                               #{server_chain => #{root => [{key, {namedCurve, secp256r1}}],
                                                   peer => [{key, {namedCurve, secp256r1}}]},
                                 client_chain => #{root => [{key, {namedCurve, secp256r1}}],
                                                   peer => [{key, {namedCurve, secp256r1}}]}}),
    Cert = proplists:get_value(cert, SC),
    {KeyType, Key} = proplists:get_value(key, SC),
    CertFile = filename:join(Dir, "cert.pem"),
    KeyFile = filename:join(Dir, "key.pem"),
    ok = file:write_file(CertFile, public_key:pem_encode([{'Certificate', Cert, not_encrypted}])),
    ok = file:write_file(KeyFile, public_key:pem_encode([{KeyType, Key, not_encrypted}])),
    Port = srv(Config, #{certfile => CertFile, keyfile => KeyFile}),
    {ok, S} = ssl:connect({127, 0, 0, 1}, Port, [binary, {active, false},
                                                 {verify, verify_none}], 5000),
    ok = ssl:send(S, ?TC:req("GET", "/scope", [], <<>>)),
    Resp = recv_all_ssl(S, <<>>),
    {ok, {http_response, _, 200, _}, _} = erlang:decode_packet(http_bin, Resp, []),
    [_, Body] = binary:split(Resp, <<"\r\n\r\n">>),
    {#{scheme := <<"https">>}, _} = binary_to_term(Body),
    ok = ssl:send(S, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    Resp2 = recv_all_ssl(S, <<>>),
    {match, _} = re:run(Resp2, "Hello, World!"),
    ssl:close(S).

recv_all_ssl(S, Acc) ->
    case ssl:recv(S, 0, 2000) of
        {ok, D} ->
            A = <<Acc/binary, D/binary>>,
            case complete(A) of
                true -> A;
                false -> recv_all_ssl(S, A)
            end;
        {error, _} -> Acc
    end.

complete(A) ->
    case binary:split(A, <<"\r\n\r\n">>) of
        [H, B] ->
            case re:run(H, "content-length: ([0-9]+)", [{capture, all_but_first, binary}, caseless]) of
                {match, [L]} -> byte_size(B) >= binary_to_integer(L);
                nomatch -> false
            end;
        _ -> false
    end.

access_log(Config) ->
    ok = logger:add_handler(py_web_test_h, py_web_log_h, #{config => #{pid => self()},
                                                           level => info}),
    OldLevel = maps:get(level, logger:get_primary_config()),
    ok = logger:set_primary_config(level, info),
    try
        Port = srv(Config, #{access_log => true}),
        S = ?TC:connect(Port),
        {ok, 201, _, _} = ?TC:get(S, "/status/201?x=1"),
        receive
            {log, #{msg := {Fmt, Args}, meta := #{py_web := access}}} ->
                Line = lists:flatten(io_lib:format(Fmt, Args)),
                {match, _} = re:run(Line, "127\\.0\\.0\\.1:[0-9]+ - \"GET /status/201\\?x=1 HTTP/1\\.1\" 201")
        after 5000 -> ct:fail(no_access_log)
        end
    after
        logger:set_primary_config(level, OldLevel),
        logger:remove_handler(py_web_test_h)
    end.

bad_options(_Config) ->
    {error, {bad_option, app, undefined}} = py_web:start_link(#{}),
    {error, {bad_option, interface, foo}} = py_web:start_link(#{app => <<"m:a">>, interface => foo}),
    {error, {bad_option, port, -1}} = py_web:start_link(#{app => <<"m:a">>, port => -1}),
    {error, {bad_option, ip, "nope"}} = py_web:start_link(#{app => <<"m:a">>, ip => "nope"}),
    {error, {bad_option, max_headers, 0}} = py_web:start_link(#{app => <<"m:a">>, max_headers => 0}),
    {error, {bad_option, spool_threshold, -1}} =
        py_web:start_link(#{app => <<"m:a">>, spool_threshold => -1}),
    {error, {bad_option, spool_dir, "/nonexistent/dir"}} =
        py_web:start_link(#{app => <<"m:a">>, spool_dir => "/nonexistent/dir"}),
    %% auto interface without the Python-side detector
    {error, {interface_detection_failed, _}} =
        py_web:start(#{app => <<"m:a">>, interface => auto, port => 0}).

child_spec(_Config) ->
    #{id := {py_web, 8080}, start := {py_web, start_link, [_]}, type := worker,
      shutdown := Shutdown} = py_web:child_spec(#{app => <<"m:a">>, port => 8080}),
    true = Shutdown > 10000.

date_header(_Config) ->
    <<"Sun, 06 Nov 1994 08:49:37 GMT">> = py_web_date:format({{1994, 11, 6}, {8, 49, 37}}),
    <<"date: ", _:29/binary, "\r\n">> = py_web_date:header().
