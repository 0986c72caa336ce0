%% The pure parts of serving with bin/pyweb: access lines (py_web_access),
%% addresses (py_web_bind), --env-file (py_web_dotenv), JSON (py_web_json),
%% the reload watcher (py_web_watch), log lines (py_web_log_formatter) and
%% readable reasons (py_web_log).
-module(py_web_serving_tests).

-include_lib("eunit/include/eunit.hrl").
-include("../apps/py_web/src/py_web.hrl").

line(Format, R) ->
    {ok, F} = py_web_access:compile(Format),
    iolist_to_binary(py_web_access:line(F, R)).

request() ->
    Req = #req{method = <<"POST">>, raw_path = <<"/a%20b">>, qs = <<"x=1">>, version = {1, 1},
               headers = [{<<"referer">>, <<"http://r/">>}, {<<"user-agent">>, <<"ua/1">>},
                          {<<"authorization">>, <<"Basic ", (base64:encode(<<"ada:pw">>))/binary>>},
                          {<<"x-id">>, <<"42">>}],
               peer = {<<"10.0.0.7">>, 5555}},
    #{req => Req, peer => {<<"10.0.0.7">>, 5555}, status => 201, sent => 1234,
      start => 1700000000123456, duration => 2500123,
      headers => [{<<"Content-Type">>, <<"text/html">>}]}.

access_fields_test() ->
    R = request(),
    ?assertEqual(<<"10.0.0.7:5555 - \"POST /a%20b?x=1 HTTP/1.1\" 201 Created">>,
                 line(<<"%(client_addr)s - \"%(request_line)s\" %(status_code)s">>, R)),
    ?assertEqual(<<"10.0.0.7 - ada \"POST /a%20b?x=1 HTTP/1.1\" 201 1234 \"http://r/\" \"ua/1\"">>,
                 line(<<"%(h)s %(l)s %(u)s \"%(r)s\" %(s)s %(b)s \"%(f)s\" \"%(a)s\"">>, R)),
    ?assertEqual(<<"POST /a%20b x=1 HTTP/1.1 2 2500 2500123 2.500123 42 text/html - -">>,
                 line(<<"%(m)s %(U)s %(q)s %(H)s %(T)s %(M)s %(D)s %(L)s %({X-Id}i)s "
                        "%({content-type}o)s %({nope}i)s %({nope}o)s">>, R)),
    ?assertMatch(<<"[", _:2/binary, "/", _:3/binary, "/2023:", _/binary>>, line(<<"%(t)s">>, R)),
    ?assertEqual(<<"<", (list_to_binary(os:getpid()))/binary, "> 100%">>,
                 line(<<"%(p)s 100%%">>, R)),
    %% a request that could not be parsed; a client that left before the response
    Bad = R#{req := undefined, status := 400, sent := 0},
    ?assertEqual(<<"10.0.0.7 \"-\" 400 - - - - -">>,
                 line(<<"%(h)s \"%(r)s\" %(s)s %(b)s %(m)s %(u)s %({x}i)s %(U)s">>, Bad)),
    ?assertEqual(<<"499 Client Closed Request">>, line(<<"%(status_code)s">>, R#{status := 499})),
    ?assertEqual(<<"- -">>, line(<<"%(h)s %(client_addr)s">>, R#{peer := undefined})),
    %% an Authorization value with obs-text (not UTF-8) has no user
    #{req := Req} = R,
    Obs = R#{req := Req#req{headers = [{<<"authorization">>, <<"B", 255, " x">>}]}},
    ?assertEqual(<<"-">>, line(<<"%(u)s">>, Obs)),
    %% errors: unknown names, a lone %, a header name missing
    [?assertEqual(error, py_web_access:compile(F))
     || F <- [<<"%(nope)s">>, <<"100% sure">>, <<"%(h)">>, <<"%({}i)s">>, <<"%({x}z)s">>]],
    %% compiling a compiled format is the same format
    {ok, C} = py_web_access:compile("%(h)s"),
    ?assertEqual({ok, C}, py_web_access:compile(C)).

bind_test() ->
    P = fun py_web_bind:parse/1,
    ?assertEqual({ok, {tcp, {0, 0, 0, 0}, 80, <<"0.0.0.0">>}}, P("0.0.0.0:80")),
    ?assertEqual({ok, {tcp, {0, 0, 0, 0, 0, 0, 0, 0}, 8000, <<"::">>}}, P("[::]")),
    ?assertEqual({ok, {tcp, {0, 0, 0, 0, 0, 0, 0, 1}, 8000, <<"::1">>}}, P("::1")),
    ?assertEqual({ok, {tcp, {127, 0, 0, 1}, 9, <<"localhost">>}}, P(<<"localhost:9">>)),
    ?assertEqual({ok, {unix, "/run/a.sock", undefined}}, P("unix:/run/a.sock")),
    ?assertEqual({ok, {unix, "/s", 8#660}}, P({local, "/s", 8#660})),
    ?assertEqual({ok, {fd, 3}}, P("fd://3")),
    ?assertEqual({ok, {tcp, {10, 0, 0, 1}, 80, <<"10.0.0.1">>}}, P({{10, 0, 0, 1}, 80})),
    [?assertEqual(error, P(B)) || B <- ["", "host:99999", "fd://x", "unix:", "no.such.host.invalid:1",
                                         "[::1", {1, 2}]],
    ?assertEqual(<<"http://[::]:8000">>,
                 py_web_bind:url(#{host => <<"::">>, port => 8000, family => inet6})),
    ?assertEqual(<<"https://localhost:1">>,
                 py_web_bind:url({<<"https">>, #{host => <<"localhost">>, port => 1, family => inet}})),
    ?assertEqual(<<"http+unix:/s">>, py_web_bind:url(#{family => local, path => <<"/s">>})).

bind_listen_test() ->
    Opts = #{backlog => 16, socket_opts => [binary, {active, false}]},
    {ok, L} = py_web_bind:listen({tcp, {127, 0, 0, 1}, 0, <<"127.0.0.1">>}, Opts),
    #{port := Port, fd := Fd} = L,
    ?assert(Port > 0),
    %% the same address again: in use, with a readable reason
    {error, {listen, _, eaddrinuse} = E} =
        py_web_bind:listen({tcp, {127, 0, 0, 1}, Port, <<"127.0.0.1">>}, Opts),
    ?assertEqual(iolist_to_binary(["cannot listen on http://127.0.0.1:", integer_to_list(Port),
                                   ": address already in use"]),
                 iolist_to_binary(py_web_log:reason(E))),
    %% a socket from a descriptor of it, as a server process of bin/pyweb
    %% gets it (SCM_RIGHTS); opening and closing it never makes the shared
    %% socket blocking, even for a moment (the other processes that accept
    %% on it would hang in accept): a process watches its flags meanwhile
    Watcher = spawn_link(fun() -> watch_nonblocking(Fd, 0) end),
    [begin
         {ok, L2} = py_web_bind:listen({fd, passed_fd(Fd)}, Opts),
         ?assertMatch(#{port := Port, family := inet}, L2),
         ok = py_web_bind:close(L2)
     end || _ <- lists:seq(1, 20)],
    Watcher ! {stop, self()},
    ?assertMatch({watched, N, 0} when N > 0, receive {watched, _, _} = W -> W end),
    ok = py_web_bind:close(L),
    ?assertMatch({error, {listen, _, ebadf}}, py_web_bind:listen({fd, 100000}, Opts)),
    {ok, U} = gen_udp:open(0),
    {ok, UFd} = inet:getfd(U),
    ?assertMatch({error, {listen, _, _}}, py_web_bind:listen({fd, passed_fd(UFd)}, Opts)),
    gen_udp:close(U).

%% Read the flags of descriptor Fd until told to stop; count the reads and
%% the times O_NONBLOCK was off.
watch_nonblocking(Fd, Blocking) -> watch_nonblocking(Fd, 0, Blocking).

watch_nonblocking(Fd, Reads, Blocking) ->
    receive
        {stop, From} -> From ! {watched, Reads, Blocking}
    after 0 ->
        {ok, Info} = file:read_file("/proc/self/fdinfo/" ++ integer_to_list(Fd)),
        {match, [Flags]} = re:run(Info, "flags:\\s*([0-7]+)", [{capture, all_but_first, list}]),
        Off = case list_to_integer(Flags, 8) band 8#4000 of 0 -> 1; _ -> 0 end,
        watch_nonblocking(Fd, Reads + 1, Blocking + Off)
    end.

%% A new descriptor of the same open socket, passed to this process over
%% bin/pyweb's control channel.
passed_fd(Fd) ->
    {ok, CL, Name} = py_web_control:listen(),
    Self = self(),
    Acceptor = spawn(fun() -> py_web_control:accept_loop(CL, Self) end),
    {ok, Ch} = py_web_control:connect(Name, self()),
    Srv = receive {py_web_control, S, new} -> S after 5000 -> error(no_channel) end,
    ok = py_web_control:send(Srv, fd, [Fd]),
    New = receive {py_web_control, Ch, {term, fd, [F]}} -> F after 5000 -> error(no_fd) end,
    py_web_control:close(Ch),
    py_web_control:close(Srv),
    exit(Acceptor, kill),
    socket:close(CL),
    New.

unix_socket_test() ->
    Dir = tmp_dir(),
    Path = filename:join(Dir, "s.sock"),
    Opts = #{backlog => 16, socket_opts => [binary, {active, false}, {nodelay, true}]},
    {ok, L} = py_web_bind:listen({unix, Path, 8#600}, Opts),
    {ok, Info} = file:read_file_info(Path),
    ?assertEqual(8#600, element(8, Info) band 8#777),
    %% a live socket is in use; a stale one (no listener) is replaced
    ?assertMatch({error, {listen, _, eaddrinuse}}, py_web_bind:listen({unix, Path, undefined}, Opts)),
    gen_tcp:close(maps:get(socket, L)),
    {ok, L2} = py_web_bind:listen({unix, Path, undefined}, Opts),
    ok = py_web_bind:close(L2),
    ?assertNot(filelib:is_file(Path)),
    ok = file:write_file(Path, <<"x">>),
    {error, {listen, _, not_a_socket} = E} = py_web_bind:listen({unix, Path, undefined}, Opts),
    ?assertMatch(<<"cannot listen on unix:", _/binary>>, iolist_to_binary(py_web_log:reason(E))).

tmp_dir() ->
    Dir = filename:join(["/tmp", "py_web_serving_tests_" ++ os:getpid() ++ "_" ++
                            integer_to_list(erlang:unique_integer([positive]))]),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    Dir.

dotenv_test() ->
    Text = <<"# comment\n\nexport A=1\nB = \"x\\ny \\\"q\\\"\" \r\nC=${A}-${NOPE:-d} # c\n"
             "D='$A # not a comment'\nE=\nF=a=b\n">>,
    ?assertEqual({ok, [{"A", "1"}, {"B", "x\ny \"q\""}, {"C", "1-d"}, {"D", "$A # not a comment"},
                       {"E", ""}, {"F", "a=b"}]},
                 py_web_dotenv:parse(Text, fun(_) -> false end)),
    ?assertEqual({ok, [{"X", "from-env"}]},
                 py_web_dotenv:parse(<<"X=${HOME_X}">>, fun("HOME_X") -> "from-env"; (_) -> false end)),
    ?assertEqual({error, {line, 2}}, py_web_dotenv:parse(<<"A=1\nnot a line\n">>, fun(_) -> false end)),
    ?assertEqual({error, {line, 1}}, py_web_dotenv:parse(<<"1A=1">>, fun(_) -> false end)),
    %% load: a variable already set is kept
    Dir = tmp_dir(),
    File = filename:join(Dir, ".env"),
    ok = file:write_file(File, <<"PYWEB_T_NEW=new\nPYWEB_T_OLD=file\n">>),
    true = os:putenv("PYWEB_T_OLD", "env"),
    ok = py_web_dotenv:load(File),
    ?assertEqual({"new", "env"}, {os:getenv("PYWEB_T_NEW"), os:getenv("PYWEB_T_OLD")}),
    ?assertMatch({error, {env_file, _, enoent}}, py_web_dotenv:load(filename:join(Dir, "nope"))).

json_test() ->
    ?assertEqual({ok, #{<<"a">> => [1, 2.5, -300.0, true, false, null, <<"é😀/\n"/utf8>>],
                        <<"b">> => #{}, <<"c">> => []}},
                 py_web_json:decode(<<" {\"a\": [1, 2.5, -3e2, true, false, null, "
                                      "\"\\u00e9\\ud83d\\ude00\\/\\n\"], \"b\": {}, \"c\": []} ">>)),
    [?assertMatch({error, {json, _}}, py_web_json:decode(B))
     || B <- [<<"{">>, <<"[1,]">>, <<"{\"a\" 1}">>, <<"01">>, <<"\"\\ud800\"">>, <<"nul">>,
              <<"1 2">>, <<"\"a\tb\"">>]],
    Term = #{message => <<"a \"b\"\n\\ é">>, n => 1, f => 1.5, l => [true, null], s => "str"},
    {ok, Back} = py_web_json:decode(iolist_to_binary(py_web_json:encode(Term))),
    ?assertEqual(#{<<"message">> => <<"a \"b\"\n\\ é"/utf8>>, <<"n">> => 1, <<"f">> => 1.5,
                   <<"l">> => [true, null], <<"s">> => <<"str">>}, Back),
    %% bytes that are not UTF-8 are taken for latin-1
    ?assertEqual(<<"\"\\u0001", 16#c3, 16#a9, "\"">>, iolist_to_binary(py_web_json:encode(<<1, 16#e9>>))).

watch_test() ->
    Dir = tmp_dir(),
    W = fun(P, B) -> ok = filelib:ensure_dir(filename:join(Dir, P)),
                     ok = file:write_file(filename:join(Dir, P), B) end,
    W("app.py", "v1"),
    W("pkg/mod.py", "m"),
    W("pkg/data.txt", "t"),
    W("pkg/mod.pyc", "c"),
    W(".git/x.py", "hidden"),
    W("venv/lib/site.py", "venv"),
    W("venv/pyvenv.cfg", "home = /usr"),
    W("pkg/__pycache__/mod.cpython-311.py", "cache"),
    W("tpl/page.html", "<p>"),
    {In, Ex} = py_web_watch:patterns(["*.html"], []),
    ?assertEqual({["*.html", "*.py"], [".*", ".py[cod]", ".sw.*", "~*"]}, {In, Ex}),
    %% a pattern the user excludes is no longer included (and the other way round)
    ?assertEqual({[], ["*.py", ".*", ".py[cod]", ".sw.*", "~*"]}, py_web_watch:patterns([], ["*.py"])),
    W0 = py_web_watch:new(#{dirs => [Dir], include => In, exclude => Ex ++ ["tpl/skip*"]}),
    Files = [F -- (Dir ++ "/") || F <- py_web_watch:files(W0)],
    ?assertEqual(["app.py", "pkg/mod.py", "tpl/page.html"], Files),
    ?assertEqual({[], W0}, py_web_watch:changes(W0)),
    %% same size, same second: told apart by content
    W("app.py", "v2"),
    {[Changed], W1} = py_web_watch:changes(W0),
    ?assertEqual(filename:join(Dir, "app.py"), Changed),
    %% a new file, a removed one, a file replaced by a rename (an editor's save)
    W("pkg/new.py", "n"),
    ok = file:delete(filename:join(Dir, "pkg/mod.py")),
    W("tpl/page.html.tmp", "<p>2"),
    ok = file:rename(filename:join(Dir, "tpl/page.html.tmp"), filename:join(Dir, "tpl/page.html")),
    {Ch2, W2} = py_web_watch:changes(W1),
    ?assertEqual(lists:sort([filename:join(Dir, F) || F <- ["pkg/new.py", "pkg/mod.py", "tpl/page.html"]]),
                 Ch2),
    ?assertEqual({[], W2}, py_web_watch:changes(W2)),
    %% not watched: nothing happens
    W("pkg/data.txt", "t2"),
    W("tpl/skip_me.html", "s"),
    ?assertMatch({[], _}, py_web_watch:changes(W2)).

formatter_test() ->
    Event = #{level => warning, msg => {"two~nlines ~p", [x]},
              meta => #{time => 1700000000123456, py_web => access}},
    Text = iolist_to_binary(py_web_log_formatter:format(Event, #{})),
    Pid = list_to_binary(os:getpid()),
    ?assertMatch({match, _}, re:run(Text, <<"^\\[2023-11-1\\d \\d\\d:\\d\\d:20\\.123[-+]\\d\\d:\\d\\d\\] \\[",
                                            Pid/binary, "\\] \\[WARNING\\] two\nlines x\n$">>)),
    Json = iolist_to_binary(py_web_log_formatter:format(Event, #{format => json})),
    {ok, #{<<"level">> := <<"warning">>, <<"message">> := <<"two\nlines x">>,
           <<"py_web">> := <<"access">>, <<"pid">> := P, <<"time">> := <<"2023-11-", _/binary>>}} =
        py_web_json:decode(Json),
    ?assertEqual(list_to_integer(os:getpid()), P),
    ?assertEqual({error, {bad_format, xml}}, py_web_log_formatter:check_config(#{format => xml})).

reasons_test() ->
    R = fun(T) -> iolist_to_binary(py_web_log:reason(T)) end,
    ?assertEqual(<<"cannot listen on http://[::]:8000: address already in use">>,
                 R({listen, {tcp, {0, 0, 0, 0, 0, 0, 0, 0}, 8000, <<"::">>}, eaddrinuse})),
    ?assertEqual(<<"cannot listen on unix:/run/x.sock: permission denied">>,
                 R({listen, {unix, "/run/x.sock", undefined}, eacces})),
    ?assertEqual(<<"cannot use the TLS certificate file c.pem: no such file or directory">>,
                 R({tls, certfile, "c.pem", enoent})),
    ?assertEqual(<<"cannot use the TLS key file k.pem: no PEM private key in it">>,
                 R({tls, keyfile, "k.pem", no_private_key})),
    ?assertEqual(<<"application startup failed: RuntimeError: db down">>,
                 R({lifespan_startup_failed, {python, <<"RuntimeError">>, <<"db down">>, []}})),
    ?assertEqual(<<"importing the module raised NameError: name 'x' is not defined (/a.py, line 3)">>,
                 R({app_load_failed, import_failed,
                    {python, <<"NameError">>, <<"name 'x' is not defined">>, <<"tb">>}, <<"/a.py, line 3">>})),
    ?assertEqual(<<"the app's response breaks the protocol: Content-Length 10 but 3 bytes of body">>,
                 R({bad_response, {content_length, 10, 3}})),
    ?assertEqual(<<"bad value for the option port: -1">>, R({bad_option, port, -1})),
    ?assertEqual(<<"connection refused">>, R(econnrefused)).
