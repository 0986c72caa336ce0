%% WebSockets through the embedded server (py_web_conn, py_web_ws_conn, py_asgi's websocket
%% streams, the real NIF): Starlette and FastAPI endpoints driven by the websockets library
%% from the test venv (ws_client.py: echo with and without permessage-deflate up to 1 MiB,
%% subprotocol, Origin, fragmented messages and pings, denials 403 and 401, close codes,
%% the app raising, broadcast to 100 clients, 1,000 concurrent websockets, TLS, graceful
%% shutdown, the FastAPI chat with a browser's handshake), and raw sockets for the
%% protocol's edge cases (handshake refusals, UTF-8 split across fragments, a ping between
%% fragments, oversize messages, bad opcodes, unmasked frames, bad close codes, a client
%% that vanishes, `ws => none', an idle connection hibernating).  The group `cowboy' runs
%% the client scenarios against py_web_cowboy on real Cowboy (SKIPPED when Cowboy is not
%% on the code path: it cannot be installed here, see py_web_cowboy_SUITE).
-module(py_web_ws_SUITE).
-compile(nowarn_missing_spec).
-compile([export_all, nowarn_export_all]).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-define(APPS, ws_apps).

suite() -> [{timetrap, {minutes, 5}}].

all() ->
    [{group, client}, {group, raw}, {group, cowboy}].

groups() ->
    [{client, [], [echo_deflate, echo_plain, denials, close_codes, broadcast_100,
                   many_1000, fastapi_chat, tls, graceful_shutdown_1001]},
     {raw, [], [handshake_refusals, compression_negotiated, utf8_split_across_fragments,
                ping_between_fragments, message_too_big, invalid_opcode, unmasked_frame,
                bad_close_code, client_vanishes_1006, ws_none, app_errors_logged,
                socket_rearmed, pause_resume_reading, server_options_101,
                idle_hibernates]},
     {cowboy, [], [cowboy_echo_deflate, cowboy_echo_plain, cowboy_denials, cowboy_close_codes,
                   cowboy_broadcast_100, cowboy_fastapi_chat, cowboy_idle_hibernates]}].

init_per_suite(Config) ->
    case py_web_ct:python_exe() of
        false ->
            {skip, "VIRTUAL_ENV is not set: the suite needs the test venv (websockets, "
                   "Starlette, FastAPI); run it through make test-ct"};
        _ ->
            ok = py_web_ct:start_python([?config(data_dir, Config)]),
            ok = py_web_ct:quiet(),
            Config
    end.

end_per_suite(_Config) ->
    _ = application:stop(erlang_python),
    ok = application:set_env(erlang_python, python_path, []).

init_per_group(cowboy, Config) ->
    case code:which(cowboy_req) of
        non_existing ->
            {skip, "cowboy is not on the code path (cowboy_req non_existing): "
                   "py_web_cowboy_ws is compiled but not exercised"};
        _ ->
            {ok, _} = application:ensure_all_started(cowboy),
            Config
    end;
init_per_group(_, Config) -> Config.
end_per_group(_, _Config) -> ok.

init_per_testcase(_, Config) ->
    _ = erlang_python_ct:each(?APPS, reset, []),
    Config.

end_per_testcase(_, _Config) -> ok.

%%====================================================================
%% The websockets library as the client
%%====================================================================

echo_deflate(_Config) -> client(#{}, "echo").

echo_plain(_Config) -> client(#{}, "echo_plain").

denials(_Config) -> client(#{}, "deny").

close_codes(_Config) -> client(#{}, "closes").

%% A room is a module global: in subinterpreters mode each worker has its own, and in
%% processes mode each worker process (as each process of `uvicorn --workers N' has), so
%% a broadcast reaches only the members that landed on the sender's worker.
broadcast_100(_Config) ->
    one_interpreter(fun() -> client(#{}, "broadcast", ["100"]) end).

one_interpreter(F) ->
    case maps:get(mode, py:info()) of
        subinterpreters -> {skip, "module globals are per sub-interpreter: no shared room"};
        processes -> {skip, "module globals are per worker process: no shared room"};
        _ -> F()
    end.

many_1000(_Config) -> client(#{acceptors => 20, backlog => 2048}, "many", ["1000"]).

fastapi_chat(_Config) ->
    chat_room(fun() -> client(<<"ws_fastapi_chat:app">>, #{}, "chat", []) end).

%% The chat room is a module global too (see broadcast_100), and FastAPI does not load
%% in a sub-interpreter.
chat_room(F) ->
    case maps:get(mode, py:info()) of
        subinterpreters -> {skip, "pydantic-core refuses sub-interpreters"};
        _ -> one_interpreter(F)
    end.

tls(Config) ->
    {CertFile, KeyFile} = cert(Config),
    {ok, Srv} = py_web_ct:serve(<<"ws_apps:app">>, #{certfile => CertFile, keyfile => KeyFile}),
    try
        py_client("wss://127.0.0.1:" ++ integer_to_list(maps:get(port, Srv)), "echo", [])
    after
        py_web_ct:stop(Srv)
    end.

%% The server stops while a client holds a websocket: the client gets close 1001.
graceful_shutdown_1001(_Config) ->
    {ok, Srv} = py_web_ct:serve(<<"ws_apps:app">>, #{}),
    P = open_port({spawn_executable, py_web_ct:python_exe()},
                  [{args, [client_script(), ws_url(Srv), "hold"]}, exit_status,
                   stderr_to_stdout, binary]),
    wait_output(P, <<"connected">>, []),
    ok = py_web_ct:stop(Srv),
    {0, Out} = collect(P, []),
    {match, _} = re:run(Out, "closed 1001").

%% Without empty messages: Cowboy 2.12 garbles them under permessage-deflate (ws_client.py).
cowboy_echo_deflate(_Config) -> cowboy_client("echo_nonempty", []).

cowboy_echo_plain(_Config) -> cowboy_client("echo_plain", []).

cowboy_denials(_Config) -> cowboy_client("deny", []).

cowboy_close_codes(_Config) -> cowboy_client("closes", []).

cowboy_broadcast_100(_Config) ->
    one_interpreter(fun() -> cowboy_client("broadcast", ["100"]) end).

cowboy_fastapi_chat(_Config) ->
    chat_room(fun() -> cowboy_client(<<"ws_fastapi_chat:app">>, "chat", []) end).

%% Cowboy's connection process hibernates once the websocket is open, and again when the
%% keepalive finds it idle (its ping); it wakes for the next message.
cowboy_idle_hibernates(_Config) ->
    with_cowboy(<<"ws_apps:app">>, #{ws_ping_interval => 300}, fun(Port) ->
        {S, Hibernating} = open_watched(Port, {cowboy_clear, connection_process, 4}),
        ep_wait(Hibernating, 400),
        ok = gen_tcp:send(S, frame(text, true, <<"one">>)),
        ?assertEqual({text, <<"one">>}, recv_frame(S)),
        ?assertNot(Hibernating()),
        ?assertEqual({ping, <<>>}, recv_frame(S)),
        ep_wait(Hibernating, 400),
        ok = gen_tcp:send(S, frame(text, true, <<"two">>)),
        ?assertEqual({text, <<"two">>}, recv_frame(S))
    end).

cowboy_client(Scenario, Args) -> cowboy_client(<<"ws_apps:app">>, Scenario, Args).

cowboy_client(App, Scenario, Args) ->
    with_cowboy(App, #{}, fun(Port) ->
        py_client("ws://127.0.0.1:" ++ integer_to_list(Port), Scenario, Args)
    end).

with_cowboy(App, Extra, F) ->
    Opts = Extra#{app => App, interface => asgi},
    Dispatch = cowboy_router:compile([{'_', [{"/[...]", py_web_cowboy, Opts}]}]),
    Name = {?MODULE, make_ref()},
    {ok, _} = cowboy:start_clear(Name, [{port, 0}], #{env => #{dispatch => Dispatch}}),
    try F(ranch:get_port(Name)) after cowboy:stop_listener(Name) end.

client(Opts, Scenario) -> client(Opts, Scenario, []).

client(Opts, Scenario, Args) -> client(<<"ws_apps:app">>, Opts, Scenario, Args).

client(App, Opts, Scenario, Args) ->
    {ok, Srv} = py_web_ct:serve(App, Opts),
    try
        py_client(ws_url(Srv), Scenario, Args)
    after
        py_web_ct:stop(Srv)
    end.

py_client(Url, Scenario, Args) ->
    P = open_port({spawn_executable, py_web_ct:python_exe()},
                  [{args, [client_script(), Url, Scenario | Args]}, exit_status,
                   stderr_to_stdout, binary]),
    case collect(P, []) of
        {0, Out} -> {match, _} = re:run(Out, "^ok$", [multiline]), ok;
        {Status, Out} -> ct:fail({client, Scenario, Status, Out})
    end.

client_script() ->
    filename:join(code:lib_dir(py_web), "../../../../ct/py_web/py_web_ws_SUITE_data/ws_client.py").

ws_url(#{port := Port}) -> "ws://127.0.0.1:" ++ integer_to_list(Port).

collect(P, Acc) ->
    receive
        {P, {data, D}} -> collect(P, [Acc, D]);
        {P, {exit_status, S}} -> {S, iolist_to_binary(Acc)}
    after 240000 ->
        ct:fail({no_exit, iolist_to_binary(Acc)})
    end.

wait_output(P, What, Acc) ->
    receive
        {P, {data, D}} ->
            All = iolist_to_binary([Acc, D]),
            case binary:match(All, What) of
                nomatch -> wait_output(P, What, All);
                _ -> ok
            end;
        {P, {exit_status, S}} -> ct:fail({client_exited, S, Acc})
    after 30000 ->
        ct:fail({no_output, What, Acc})
    end.

cert(Config) ->
    _ = application:ensure_all_started(ssl),
    Dir = ?config(priv_dir, Config),
    %% RSA with SHA-256 signatures: what Python's OpenSSL client accepts by default.
    Opts = [{key, {rsa, 2048, 65537}}, {digest, sha256}],
    Chain = #{root => Opts, intermediates => [], peer => Opts},
    #{server_config := SC} = public_key:pkix_test_data(#{server_chain => Chain,
                                                         client_chain => Chain}),
    {KeyType, Key} = proplists:get_value(key, SC),
    CertFile = filename:join(Dir, "ws_rsa_cert.pem"),
    KeyFile = filename:join(Dir, "ws_rsa_key.pem"),
    ok = file:write_file(CertFile, public_key:pem_encode(
                                     [{'Certificate', proplists:get_value(cert, SC),
                                       not_encrypted}])),
    ok = file:write_file(KeyFile, public_key:pem_encode([{KeyType, Key, not_encrypted}])),
    %% ssl caches PEM files by name: no entry of an earlier suite's may stand in for these
    ok = ssl:clear_pem_cache(),
    {CertFile, KeyFile}.

%%====================================================================
%% Raw sockets
%%====================================================================

handshake_refusals(_Config) ->
    with_server(#{}, fun(Port) ->
        {400, _} = handshake(Port, "/echo", [{"Sec-WebSocket-Key", "short"}], #{}),
        {426, Head} = handshake(Port, "/echo", [{"Sec-WebSocket-Version", "8"}], #{}),
        {match, _} = re:run(Head, "sec-websocket-version: 13", [caseless])
    end).

compression_negotiated(_Config) ->
    with_server(#{}, fun(Port) ->
        Ext = "permessage-deflate; client_max_window_bits; server_no_context_takeover",
        {101, Head} = handshake(Port, "/echo", [{"Sec-WebSocket-Extensions", Ext}], #{}),
        {match, _} = re:run(Head, "sec-websocket-extensions: permessage-deflate; "
                                  "server_no_context_takeover", [caseless])
    end),
    with_server(#{ws_per_message_deflate => false}, fun(Port) ->
        Ext = "permessage-deflate",
        {101, Head} = handshake(Port, "/echo", [{"Sec-WebSocket-Extensions", Ext}], #{}),
        nomatch = re:run(Head, "sec-websocket-extensions", [caseless])
    end).

%% "é" (C3 A9) split between two fragments of one text message: one message for the app.
utf8_split_across_fragments(_Config) ->
    with_ws(#{}, fun(S) ->
        ok = gen_tcp:send(S, [frame(text, false, <<"a", 16#C3>>),
                              frame(continuation, true, <<16#A9, "b">>)]),
        ?assertEqual({text, <<"aéb"/utf8>>}, recv_frame(S))
    end).

ping_between_fragments(_Config) ->
    with_ws(#{}, fun(S) ->
        ok = gen_tcp:send(S, [frame(text, false, <<"he">>), frame(ping, true, <<"p!">>),
                              frame(continuation, true, <<"llo">>)]),
        ?assertEqual({pong, <<"p!">>}, recv_frame(S)),
        ?assertEqual({text, <<"hello">>}, recv_frame(S))
    end).

%% Over ws_max_size: close 1009, and the app hears 1009.
message_too_big(_Config) ->
    with_ws(#{ws_max_size => 1000}, fun(S) ->
        ok = gen_tcp:send(S, frame(binary, true, binary:copy(<<"x">>, 1001))),
        ?assertEqual({close, 1009}, recv_frame(S)),
        closed(S),
        wait_disconnect(1009)
    end).

invalid_opcode(_Config) ->
    with_ws(#{}, fun(S) ->
        ok = gen_tcp:send(S, raw_frame(3, true, <<"x">>, true)),
        ?assertEqual({close, 1002}, recv_frame(S)),
        closed(S)
    end).

unmasked_frame(_Config) ->
    with_ws(#{}, fun(S) ->
        ok = gen_tcp:send(S, raw_frame(1, true, <<"x">>, false)),
        ?assertEqual({close, 1002}, recv_frame(S)),
        closed(S)
    end).

bad_close_code(_Config) ->
    with_ws(#{}, fun(S) ->
        ok = gen_tcp:send(S, frame(close, true, <<1005:16>>)),
        ?assertEqual({close, 1002}, recv_frame(S)),
        closed(S)
    end).

%% A client that goes away without a close frame: websocket.disconnect 1006.
client_vanishes_1006(_Config) ->
    with_ws(#{}, fun(S) ->
        ok = gen_tcp:send(S, frame(text, true, <<"hi">>)),
        {text, <<"hi">>} = recv_frame(S),
        ok = gen_tcp:close(S),
        wait_disconnect(1006)
    end).

%% The 101 is written and logged as any response: the server's default headers
%% (--header), no Date with --no-date-header, its Server name, the access-log format.
server_options_101(_Config) ->
    ok = logger:add_handler(ws_access, py_web_log_h, #{config => #{pid => self()},
                                                      level => info}),
    Level = maps:get(level, logger:get_primary_config()),
    ok = logger:set_primary_config(level, info),
    try
        with_server(#{headers => [{<<"x-default">>, <<"1">>}], date_header => false,
                      server_header => <<"wsrv">>, access_log => true,
                      access_log_format => <<"%(s)s %(r)s">>}, fun(Port) ->
            {101, Head} = handshake(Port, "/echo?q=1", [], #{}),
            {match, _} = re:run(Head, "\r\nx-default: 1\r\n"),
            {match, _} = re:run(Head, "\r\nserver: wsrv\r\n"),
            nomatch = re:run(Head, "\r\ndate:", [caseless]),
            receive
                {log, #{msg := {"~ts", [Line]}, meta := #{py_web := access}}} ->
                    ?assertEqual(<<"101 GET /echo?q=1 HTTP/1.1">>, iolist_to_binary(Line))
            after 5000 ->
                ct:fail(no_access_line)
            end
        end)
    after
        logger:set_primary_config(level, Level),
        logger:remove_handler(ws_access)
    end.

%% One message per socket read, more of them than one {active, N} arming delivers: the
%% connection re-arms the socket when it turns passive, and every message is echoed.
socket_rearmed(_Config) ->
    Calls = trace_active(fun() ->
        with_ws(#{}, fun(S) ->
            lists:foreach(fun(I) ->
                              Text = integer_to_binary(I),
                              ok = gen_tcp:send(S, frame(text, true, Text)),
                              ?assertEqual({text, Text}, recv_frame(S))
                          end, lists:seq(1, 250))
        end)
    end),
    %% armed at the start, then again each time the N messages were delivered
    ?assert(length([N || N <- Calls, is_integer(N)]) >= 3),
    ?assertEqual([], [N || N <- Calls, N =:= false]).

%% 100 messages written at once to an app that does not read for 0.5 s: at 32 waiting
%% the app says pause_reading (the socket is made passive), once it has taken half of them
%% resume_reading (armed again); every message is echoed, in order.
pause_resume_reading(_Config) ->
    Texts = [integer_to_binary(I) || I <- lists:seq(1, 100)],
    Calls = trace_active(fun() ->
        with_server(#{}, fun(Port) ->
            S = open(Port, "/late_echo"),
            ok = gen_tcp:send(S, [frame(text, true, T) || T <- Texts]),
            [?assertEqual({text, T}, recv_frame(S)) || T <- Texts],
            gen_tcp:close(S)
        end)
    end),
    Paused = lists:dropwhile(fun(N) -> N =/= false end, Calls),
    ?assertMatch([false | _], Paused),
    ?assert(lists:any(fun is_integer/1, Paused)).

%% An idle connection hibernates (once answered, again after a second with nothing to do)
%% and wakes for the next message: echoed as before.
idle_hibernates(_Config) ->
    with_server(#{}, fun(Port) ->
        {S, Hibernating} = open_watched(Port, {py_web_conn, init, 2}),
        ep_wait(Hibernating, 400),
        lists:foreach(fun(I) ->
                          Text = integer_to_binary(I),
                          ok = gen_tcp:send(S, frame(text, true, Text)),
                          ?assertEqual({text, Text}, recv_frame(S))
                      end, lists:seq(1, 3)),
        ?assertNot(Hibernating()),
        ep_wait(Hibernating, 400),
        ok = gen_tcp:send(S, frame(text, true, <<"again">>)),
        ?assertEqual({text, <<"again">>}, recv_frame(S)),
        gen_tcp:close(S)
    end).

%% A websocket on /echo, and whether the connection process it started (proc_lib's initial
%% call MFA; one of an earlier case may still be lingering) is hibernating.
open_watched(Port, MFA) ->
    Started = fun() -> [P || P <- processes(), proc_lib:translate_initial_call(P) =:= MFA] end,
    Before = Started(),
    S = open(Port, "/echo"),
    [Conn] = Started() -- Before,
    {S, fun() ->
            process_info(Conn, current_function) =:= {current_function, {erlang, hibernate, 3}}
        end}.

%% The N of each py_web_transport:active/3 call made while F runs, in order.
trace_active(F) ->
    erlang:trace_pattern({py_web_transport, active, 3}, true, [local]),
    erlang:trace(new_processes, true, [call, {tracer, self()}]),
    try
        F()
    after
        erlang:trace(new_processes, false, [call]),
        erlang:trace_pattern({py_web_transport, active, 3}, false, [local])
    end,
    collect_active([]).

collect_active(Acc) ->
    receive
        {trace, _, call, {py_web_transport, active, [_, _, N]}} -> collect_active([N | Acc])
    after 0 ->
        lists:reverse(Acc)
    end.

%% ws => none: the handshake is a plain HTTP request (Starlette answers it as one).
ws_none(_Config) ->
    with_server(#{ws => none}, fun(Port) ->
        {Status, _} = handshake(Port, "/room_size", [], #{}),
        ?assertEqual(200, Status)
    end).

%% The app raising after accept, and a close code it may not use: close 1011 and an error
%% in the log (metadata py_web => app), as for HTTP.
app_errors_logged(_Config) ->
    ok = logger:add_handler(ws_log, py_web_log_h, #{config => #{pid => self()}, level => error}),
    try
        with_server(#{}, fun(Port) ->
            S = open(Port, "/raises"),
            ok = gen_tcp:send(S, frame(text, true, <<"x">>)),
            ?assertEqual({close, 1011}, recv_frame(S)),
            expect_log("the app failed"),
            S2 = open(Port, "/bad_close_code"),
            ?assertEqual({close, 1011}, recv_frame(S2)),
            expect_log("bad_websocket_close_code"),
            [gen_tcp:close(Sock) || Sock <- [S, S2]]
        end)
    after
        logger:remove_handler(ws_log)
    end.

expect_log(Text) ->
    receive
        {log, #{msg := {Fmt, Args}, meta := #{py_web := app}}} ->
            Msg = lists:flatten(io_lib:format(Fmt, Args)),
            case string:find(Msg, Text) of
                nomatch -> expect_log(Text);
                _ -> ok
            end
    after 5000 ->
        ct:fail({no_log, Text})
    end.

wait_disconnect(Code) ->
    ep_wait(fun() -> ep_one(record, [<<"disconnect">>]) =:= [Code, <<>>] end, 200).

ep_one(F, Args) ->
    case [R || R <- erlang_python_ct:each(?APPS, F, Args), R =/= none] of
        [R] -> R;
        _ -> none
    end.

ep_wait(F, 0) -> ?assert(F());
ep_wait(F, N) ->
    case F() of
        true -> ok;
        false -> timer:sleep(25), ep_wait(F, N - 1)
    end.

%% ---- raw client ----------------------------------------------------------------------

with_server(Opts, F) ->
    {ok, Srv} = py_web_ct:serve(<<"ws_apps:app">>, Opts),
    try F(maps:get(port, Srv)) after py_web_ct:stop(Srv) end.

%% The websocket is closed when F returns: the server's stop then has no websocket waiting
%% for a close frame from a peer that will never send one (its 10 s close timeout).
with_ws(Opts, F) ->
    with_server(Opts, fun(Port) ->
        S = open(Port, "/echo"),
        try F(S) after gen_tcp:close(S) end
    end).

open(Port, Path) ->
    {ok, S} = gen_tcp:connect({127, 0, 0, 1}, Port, [binary, {active, false}], 5000),
    ok = gen_tcp:send(S, request(Path, [])),
    {101, _} = read_head(S),
    S.

handshake(Port, Path, Extra, _Opts) ->
    {ok, S} = gen_tcp:connect({127, 0, 0, 1}, Port, [binary, {active, false}], 5000),
    ok = gen_tcp:send(S, request(Path, Extra)),
    R = read_head(S),
    gen_tcp:close(S),
    R.

request(Path, Extra) ->
    Defaults = [{"Host", "127.0.0.1"}, {"Upgrade", "websocket"}, {"Connection", "Upgrade"},
                {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="},
                {"Sec-WebSocket-Version", "13"}],
    Headers = lists:ukeymerge(1, lists:ukeysort(1, Extra), lists:ukeysort(1, Defaults)),
    ["GET ", Path, " HTTP/1.1\r\n", [[N, ": ", V, "\r\n"] || {N, V} <- Headers], "\r\n"].

%% The response head, read byte by byte (nothing of the frames after it).
read_head(S) -> read_head(S, <<>>).

read_head(S, Acc) ->
    {ok, B} = gen_tcp:recv(S, 1, 5000),
    A = <<Acc/binary, B/binary>>,
    case binary:match(A, <<"\r\n\r\n">>) of
        nomatch -> read_head(S, A);
        _ ->
            <<"HTTP/1.1 ", Code:3/binary, _/binary>> = A,
            {binary_to_integer(Code), A}
    end.

opcode(continuation) -> 0;
opcode(text) -> 1;
opcode(binary) -> 2;
opcode(close) -> 8;
opcode(ping) -> 9;
opcode(pong) -> 10.

frame(Op, Fin, Payload) -> raw_frame(opcode(Op), Fin, Payload, true).

raw_frame(Op, Fin, Payload, Masked) ->
    Len = byte_size(Payload),
    LenBits = if Len < 126 -> <<Len:7>>;
                 Len < 65536 -> <<126:7, Len:16>>;
                 true -> <<127:7, Len:64>>
              end,
    F = case Fin of true -> 1; false -> 0 end,
    case Masked of
        true ->
            Key = <<1, 2, 3, 4>>,
            <<F:1, 0:3, Op:4, 1:1, LenBits/bitstring, Key/binary, (mask(Payload, Key))/binary>>;
        false ->
            <<F:1, 0:3, Op:4, 0:1, LenBits/bitstring, Payload/binary>>
    end.

mask(Payload, <<K1, K2, K3, K4>>) ->
    Keys = {K1, K2, K3, K4},
    << <<(B bxor element(I rem 4 + 1, Keys))>> || {I, B} <- lists:enumerate(0, binary_to_list(Payload)) >>.

%% One unfragmented server frame: {text | binary | pong, Payload} or {close, Code}.
recv_frame(S) ->
    {ok, <<1:1, 0:3, Op:4, 0:1, Len7:7>>} = gen_tcp:recv(S, 2, 5000),
    Len = case Len7 of
              126 -> {ok, <<L:16>>} = gen_tcp:recv(S, 2, 5000), L;
              127 -> {ok, <<L:64>>} = gen_tcp:recv(S, 8, 5000), L;
              _ -> Len7
          end,
    {ok, Payload} = case Len of
                        0 -> {ok, <<>>};
                        _ -> gen_tcp:recv(S, Len, 5000)
                    end,
    case Op of
        1 -> {text, Payload};
        2 -> {binary, Payload};
        9 -> {ping, Payload};
        10 -> {pong, Payload};
        8 -> <<Code:16, _/binary>> = Payload, {close, Code}
    end.

closed(S) ->
    ?assertEqual({error, closed}, gen_tcp:recv(S, 0, 5000)).
