%% py_asgi:start/4 on websocket scopes through the real NIF (ASGI websocket spec 2.4): the
%% scope's fields and types, accept with subprotocol and headers, messages both ways,
%% the close handshake from either side, denials (403 and the websocket.http.response
%% extension), flow control both ways (acks, pause_reading/resume_reading), disconnects
%% (ws_disconnect/3, disconnect/1, the owner's death), the app's protocol errors, a
%% Starlette endpoint, and the refusals (run/5 on a websocket scope, field sets, send_body
%% on a websocket stream).
%%
%% Python side: py_asgi_ws_SUITE_data/ep_asgi_ws_apps.py.
-module(py_asgi_ws_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-compile(nowarn_missing_spec).

-export([all/0, init_per_suite/1, end_per_suite/1, init_per_testcase/2, end_per_testcase/2]).
-export([scope_fields/1, echo_and_peer_close/1, app_close/1, deny/1, deny_with_response/1,
         denial_response_needs_extension/1, send_before_accept/1, text_not_str/1,
         app_raises_after_accept/1, returns_after_accept/1, returns_without_handshake/1,
         disconnect_is_1006/1, owner_death_is_1006/1, send_after_disconnect_ends_quietly/1,
         outbound_backpressure/1, inbound_flow_control/1, starlette_chat/1,
         scope_template/1, refusals/1]).

-define(APPS, ep_asgi_ws_apps).
-define(T, 5000).

all() ->
    [scope_fields, echo_and_peer_close, app_close, deny, deny_with_response,
     denial_response_needs_extension, send_before_accept, text_not_str,
     app_raises_after_accept, returns_after_accept, returns_without_handshake,
     disconnect_is_1006, owner_death_is_1006, send_after_disconnect_ends_quietly,
     outbound_backpressure, inbound_flow_control, starlette_chat, scope_template, refusals].

init_per_suite(Config) ->
    ok = erlang_python_ct:start(Config),
    Config.

end_per_suite(_Config) ->
    erlang_python_ct:stop().

init_per_testcase(_TC, Config) ->
    erlang_python_ct:each(?APPS, reset, []),
    Config.

end_per_testcase(_TC, _Config) ->
    ?assertEqual({messages, []}, process_info(self(), messages)),
    ok.

%% The scope as the spec lists it: no method, scheme ws, subprotocols a list of str, the
%% rest with the HTTP scope's types.
scope_fields(_Config) ->
    {ok, S} = py_asgi:start(?APPS, echo, scope(<<"/ws%20x">>, [<<"chat">>, <<"v2">>]), #{}),
    ?assertEqual({accept, <<"chat">>, [{<<"x-app">>, <<"echo">>}]}, next(S)),
    ok = py_asgi:ws_disconnect(S, 1000, <<>>),
    ?assertEqual(done, next(S)),
    Scope = ep_test_lib:one(?APPS, record, [<<"scope">>]),
    ?assertMatch(#{<<"type">> := <<"websocket">>, <<"scheme">> := <<"ws">>,
                   <<"path">> := <<"/ws x">>, <<"raw_path">> := {bytes, <<"/ws%20x">>},
                   <<"subprotocols">> := [<<"chat">>, <<"v2">>],
                   <<"http_version">> := <<"1.1">>,
                   <<"asgi">> := #{<<"version">> := <<"3.0">>, <<"spec_version">> := <<"2.4">>}},
                 Scope),
    ?assertNot(maps:is_key(<<"method">>, Scope)),
    ?assertEqual(#{<<"type">> => <<"str">>, <<"scheme">> => <<"str">>, <<"path">> => <<"str">>,
                   <<"raw_path">> => <<"bytes">>, <<"query_string">> => <<"bytes">>,
                   <<"root_path">> => <<"str">>, <<"headers">> => <<"list">>,
                   <<"subprotocols">> => <<"list">>, <<"http_version">> => <<"str">>,
                   <<"asgi">> => <<"dict">>, <<"server">> => <<"tuple">>,
                   <<"client">> => <<"tuple">>, <<"state">> => <<"dict">>},
                 ep_test_lib:one(?APPS, record, [<<"types">>])).

%% Text and binary messages echoed in order; the peer's close code and reason reach the app.
echo_and_peer_close(_Config) ->
    {ok, S} = py_asgi:start(?APPS, echo, scope(<<"/echo">>, []), #{}),
    ?assertEqual({accept, undefined, [{<<"x-app">>, <<"echo">>}]}, next(S)),
    Messages = [{text, <<"héllo"/utf8>>}, {binary, <<0, 255, 1>>}, {text, <<>>},
                {binary, <<>>}, {text, binary:copy(<<"ü"/utf8>>, 40000)},
                {binary, crypto:strong_rand_bytes(300000)}],
    [ok = py_asgi:ws_receive(S, M) || M <- Messages],
    [begin
         ?assertEqual({send, Kind, Data}, next(S)),
         ok = py_asgi:ack(S, byte_size(Data))
     end || {Kind, Data} <- Messages],
    ok = py_asgi:ws_disconnect(S, 1001, <<"going away ✓"/utf8>>),
    ?assertEqual(done, next(S)),
    ?assertEqual([1001, <<"going away ✓"/utf8>>], ep_test_lib:one(?APPS, record, [<<"disconnect">>])).

%% The app closes: its code and reason, then it waits for the end of the close handshake.
app_close(_Config) ->
    {ok, S} = py_asgi:start(?APPS, closer, scope(<<"/close">>, []), #{}),
    ?assertEqual({accept, undefined, []}, next(S)),
    ?assertEqual({close, 4001, <<"bye é"/utf8>>}, next(S)),
    ?assertEqual(nothing, next(S, 100)),
    ok = py_asgi:ws_disconnect(S, 4001, <<>>),
    ?assertEqual(done, next(S)),
    ?assertEqual([4001, <<>>], ep_test_lib:one(?APPS, record, [<<"disconnect">>])).

%% A close before accept is a denial (the server answers 403); the app's next receive()
%% is websocket.disconnect 1006, as uvicorn gives.
deny(_Config) ->
    {ok, S} = py_asgi:start(?APPS, deny, scope(<<"/deny">>, []), #{}),
    ?assertEqual([{close, 1000, <<>>}, done], until_done(S)),
    ?assertEqual(#{<<"type">> => <<"websocket.disconnect">>, <<"code">> => 1006,
                   <<"reason">> => <<>>},
                 ep_test_lib:one(?APPS, record, [<<"after_deny">>])).

deny_with_response(_Config) ->
    Scope = (scope(<<"/deny">>, []))#{extensions => #{<<"websocket.http.response">> => #{}}},
    {ok, S} = py_asgi:start(?APPS, deny_with_response, Scope, #{}),
    ?assertEqual([{start, 401, [{<<"content-type">>, <<"text/plain">>}]},
                  {body, <<"who are ">>, true}, {body, <<"you">>, false}, done],
                 until_done(S)).

denial_response_needs_extension(_Config) ->
    {ok, S} = py_asgi:start(?APPS, deny_with_response, scope(<<"/deny">>, []), #{}),
    [{error, {python, <<"RuntimeError">>, Msg, _}}] = until_done(S),
    ?assertMatch({match, _}, re:run(Msg, "but got 'websocket.http.response.start'")).

send_before_accept(_Config) ->
    {ok, S} = py_asgi:start(?APPS, send_before_accept, scope(<<"/early">>, []), #{}),
    [{error, {python, <<"RuntimeError">>, Msg, Tb}}] = until_done(S),
    ?assertEqual(<<"Expected ASGI message 'websocket.accept', 'websocket.close' or "
                   "'websocket.http.response.start' but got 'websocket.send'.">>, Msg),
    ?assertMatch({match, _}, re:run(Tb, "send_before_accept")).

text_not_str(_Config) ->
    {ok, S} = py_asgi:start(?APPS, bytes_as_text, scope(<<"/t">>, []), #{}),
    [{accept, undefined, []}, {error, {python, <<"RuntimeError">>, Msg, _}}] = until_done(S),
    ?assertEqual(<<"ASGI 'websocket.send': 'text' must be a str, got bytes">>, Msg).

app_raises_after_accept(_Config) ->
    {ok, S} = py_asgi:start(?APPS, raises, scope(<<"/r">>, []), #{}),
    ?assertMatch([{accept, undefined, []}, {error, {python, <<"ValueError">>, <<"boom">>, _}}],
                 until_done(S)).

returns_after_accept(_Config) ->
    {ok, S} = py_asgi:start(?APPS, returns_after_accept, scope(<<"/ra">>, []), #{}),
    ?assertEqual([{accept, undefined, []}, done], until_done(S)).

returns_without_handshake(_Config) ->
    {ok, S} = py_asgi:start(?APPS, returns_early, scope(<<"/re">>, []), #{}),
    ?assertMatch([{error, {python, <<"RuntimeError">>,
                           <<"ASGI callable returned without completing the websocket handshake">>,
                           _}}],
                 until_done(S)).

disconnect_is_1006(_Config) ->
    {ok, S} = py_asgi:start(?APPS, echo, scope(<<"/d">>, []), #{}),
    {accept, _, _} = next(S),
    ok = py_asgi:disconnect(S),
    ?assertEqual(done, next(S)),
    ?assertEqual([1006, <<>>], ep_test_lib:one(?APPS, record, [<<"disconnect">>])).

owner_death_is_1006(_Config) ->
    Self = self(),
    {Pid, Mon} = spawn_monitor(
                   fun() ->
                           {ok, S} = py_asgi:start(?APPS, echo, scope(<<"/o">>, []), #{}),
                           {accept, _, _} = next(S),
                           Self ! accepted
                   end),
    receive accepted -> ok after ?T -> ct:fail(no_accept) end,
    receive {'DOWN', Mon, process, Pid, normal} -> ok after ?T -> ct:fail(no_down) end,
    ep_test_lib:wait_until(fun() -> ep_test_lib:one(?APPS, record, [<<"disconnect">>]) =:= [1006, <<>>] end).

%% An app that never reads and keeps sending: after disconnect its send() raises the
%% spec's OSError, which ends it without an error.
send_after_disconnect_ends_quietly(_Config) ->
    {ok, S} = py_asgi:start(?APPS, ignores_disconnect, scope(<<"/i">>, []), #{}),
    {accept, _, _} = next(S),
    {send, binary, _} = next(S),
    ok = py_asgi:disconnect(S),
    ?assertEqual(done, lists:last([E || E <- until_done(S), not is_send(E)])).

%% 32 messages of 64 KiB: without acks the app stops once more than 1 MiB is in flight
%% (17 messages); acks let the rest through.
outbound_backpressure(_Config) ->
    {ok, S} = py_asgi:start(?APPS, firehose, scope(<<"/f">>, []), #{}),
    {accept, _, _} = next(S),
    First = quiet_events(S, 300),
    ?assertEqual(17, length(First)),
    [ok = py_asgi:ack(S, 65536) || _ <- First],
    Rest = until_close(S),
    ?assertEqual([{send, binary, binary:copy(<<I>>, 65536)} || I <- lists:seq(0, 31)],
                 First ++ [E || {send, _, _} = E <- Rest]),
    ?assertEqual({close, 1000, <<>>}, lists:last(Rest)),
    ok = py_asgi:ws_disconnect(S, 1000, <<>>),
    ?assertEqual(done, next(S)).

%% 40 messages fed while the app sleeps: pause_reading at 32 queued, resume_reading once it
%% has taken half; every message reaches it.
inbound_flow_control(_Config) ->
    {ok, S} = py_asgi:start(?APPS, slow_reader, scope(<<"/s">>, []), #{}),
    {accept, _, _} = next(S),
    [ok = py_asgi:ws_receive(S, {text, integer_to_binary(I)}) || I <- lists:seq(1, 40)],
    ?assertEqual(pause_reading, next(S)),
    ?assertEqual(resume_reading, next(S)),
    ok = py_asgi:ws_disconnect(S, 1000, <<>>),
    ?assertEqual(done, next(S)),
    ?assertEqual(40, ep_test_lib:one(?APPS, record, [<<"count">>])).

starlette_chat(_Config) ->
    {ok, S} = py_asgi:start(?APPS, starlette_app, scope(<<"/chat">>, [<<"x">>, <<"chat.v1">>]),
                            #{}),
    ?assertEqual({accept, <<"chat.v1">>, []}, next(S)),
    ok = py_asgi:ws_receive(S, {text, <<"{\"n\": 1}">>}),
    ?assertEqual({send, text, <<"{\"you said\":{\"n\":1},\"path\":\"/chat\"}">>}, next(S)),
    ok = py_asgi:ws_disconnect(S, 1000, <<"done">>),
    ?assertEqual(done, next(S)),
    ?assertEqual([1000, <<"done">>], ep_test_lib:one(?APPS, record, [<<"disconnect">>])).

%% A websocket scope kept as a template runs as a websocket, each time.
scope_template(_Config) ->
    {ok, Ref} = py_asgi:build_scope(scope(<<"/tpl">>, [<<"a">>])),
    [begin
         {ok, S} = py_asgi:start(?APPS, echo, Ref, #{}),
         ?assertEqual({accept, <<"a">>, [{<<"x-app">>, <<"echo">>}]}, next(S)),
         ok = py_asgi:ws_receive(S, {text, <<"hi">>}),
         ?assertEqual({send, text, <<"hi">>}, next(S)),
         ok = py_asgi:ws_disconnect(S, 1000, <<>>),
         ?assertEqual(done, next(S))
     end || _ <- [1, 2]],
    ?assertEqual({error, {bad_scope, type}}, py_asgi:run(?APPS, echo, Ref, <<>>)).

refusals(_Config) ->
    Ws = scope(<<"/x">>, []),
    ?assertEqual({error, {bad_scope, type}}, py_asgi:run(?APPS, echo, Ws, <<>>)),
    ?assertEqual({error, {bad_scope, method}},
                 py_asgi:start(?APPS, echo, Ws#{method => <<"GET">>}, #{})),
    ?assertEqual({error, {bad_scope, subprotocols}},
                 py_asgi:start(?APPS, echo, Ws#{subprotocols => [chat]}, #{})),
    ?assertEqual({error, {bad_scope, subprotocols}},
                 py_asgi:run(?APPS, echo, #{type => <<"http">>, path => <<"/">>,
                                            subprotocols => []}, <<>>)),
    {ok, S} = py_asgi:start(?APPS, echo, Ws, #{}),
    {accept, _, _} = next(S),
    ?assertError(badarg, py_asgi:send_body(S, <<"x">>, false)),
    ?assertError(badarg, py_asgi:ws_receive(S, {json, <<"x">>})),
    ?assertError(badarg, py_asgi:ws_disconnect(S, normal, <<>>)),
    ok = py_asgi:ws_disconnect(S, 1000, <<>>),
    ?assertEqual(done, next(S)),
    {ok, H} = py_asgi:start(?APPS, echo, #{type => <<"http">>, path => <<"/">>}, #{}),
    ?assertError(badarg, py_asgi:ws_receive(H, {text, <<"x">>})),
    ?assertError(badarg, py_asgi:ws_disconnect(H, 1000, <<>>)),
    ?assertMatch([{error, _}], until_done(H)).

%% ---- helpers -------------------------------------------------------------------------

scope(Path, Subprotocols) ->
    #{type => <<"websocket">>, path => Path, subprotocols => Subprotocols,
      headers => [{<<"host">>, <<"localhost">>}, {<<"upgrade">>, <<"websocket">>}],
      server => {<<"127.0.0.1">>, 8000}, client => {<<"127.0.0.1">>, 5000}}.

next(S) ->
    next(S, ?T).

next(S, Timeout) ->
    ep_test_lib:stream_event(S, Timeout).

until_done(S) ->
    ep_test_lib:stream_events(S, ?T).

%% The events up to the app's close, each message acknowledged as it arrives, as a server
%% does once it has written it (acks reach the app in batches of any size: the first
%% acks may let it send again before the last ones arrive; on a loaded machine a quiet
%% spell of a few hundred ms does not mean the app has stopped either).
until_close(S) ->
    case next(S) of
        {close, _, _} = Close -> [Close];
        nothing -> [];
        {send, _, Data} = E -> ok = py_asgi:ack(S, byte_size(Data)), [E | until_close(S)];
        E -> [E | until_close(S)]
    end.

%% The events that arrive until Ms pass without one.
quiet_events(S, Ms) ->
    case next(S, Ms) of
        nothing -> [];
        E -> [E | quiet_events(S, Ms)]
    end.

is_send({send, _, _}) -> true;
is_send(_) -> false.
