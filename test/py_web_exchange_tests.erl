%% EUnit tests of py_web_exchange: the framing rules the embedded server, the
%% Cowboy handler and the Elli handler share, event by event.
-module(py_web_exchange_tests).

-include_lib("eunit/include/eunit.hrl").

-define(T, <<"text/plain">>).

%% An exchange for a request: Opts may set method, version, keepalive,
%% caps (server | elli) and hold (wsgi_hold, ms).
ex(Opts) ->
    Req = py_web_req:new(#{method => maps:get(method, Opts, <<"GET">>),
                           version => maps:get(version, Opts, {1, 1}),
                           keepalive => maps:get(keepalive, Opts, true),
                           raw_path => <<"/">>, qs => <<>>, headers => [],
                           peer => {<<"127.0.0.1">>, 1}, local => {<<"127.0.0.1">>, 2},
                           scheme => <<"http">>}),
    {ok, O} = py_web_opts:validate(#{app => <<"m:a">>,
                                     wsgi_hold => maps:get(hold, Opts, 2),
                                     request_timeout => 1000}),
    Cfg = py_web_opts:cfg(O, #{interface => asgi, backend => none}),
    py_web_exchange:new(Req, Cfg, py_web_exchange:caps(maps:get(caps, Opts, server))).

%% Feed events; all the commands, in order (response bodies as binaries).
run(Events, Ex) ->
    {Cmds, _} = feed(Events, Ex),
    [case C of
         {respond, H, B} -> {respond, H, iolist_to_binary(B)};
         _ -> C
     end || C <- Cmds].

feed(Events, Ex0) ->
    lists:foldl(fun(timeout, {Acc, Ex}) ->
                        {C, Ex1} = py_web_exchange:timed_out(Ex),
                        {Acc ++ C, Ex1};
                   (E, {Acc, Ex}) ->
                        {C, Ex1} = py_web_exchange:event(E, Ex),
                        {Acc ++ C, Ex1}
                end, {[], Ex0}, Events).

start(Status, Headers) -> {start, Status, Headers}.

%% The head's framing and length, from a respond or stream command.
framing([{respond, #{framing := F, length := L}, _} | _]) -> {respond, F, L};
framing([{stream, #{framing := F, length := L}} | _]) -> {stream, F, L};
framing([_ | T]) -> framing(T);
framing([]) -> none.

asgi_one_piece_test() ->
    Cmds = run([start(200, [{<<"content-type">>, ?T}]), {body, <<"hello">>, false}, done],
               ex(#{})),
    ?assertMatch([{respond, #{status := 200, framing := length, length := 5, body := true,
                              close := false, headers := [{<<"content-type">>, ?T}]},
                   <<"hello">>}, done], Cmds).

head_keeps_the_app_length_test() ->
    Cmds = run([start(200, [{<<"Content-Length">>, <<"13">>}]), {body, <<>>, false}, done],
               ex(#{method => <<"HEAD">>})),
    ?assertMatch([{respond, #{framing := length, length := 13, body := false,
                              headers := []}, <<>>}, done], Cmds).

head_without_length_test() ->
    %% nothing known: no Content-Length rather than a wrong one
    ?assertEqual({respond, none, undefined},
                 framing(run([start(200, []), {body, <<>>, false}], ex(#{method => <<"HEAD">>})))),
    %% a body the app produced anyway gives the GET's length
    ?assertEqual({respond, length, 3},
                 framing(run([start(200, []), {body, <<"abc">>, false}],
                             ex(#{method => <<"HEAD">>})))).

asgi_stream_chunked_test() ->
    Cmds = run([start(200, []), {body, <<"a">>, true}, {body, <<"b">>, true},
                {body, <<>>, false}, done], ex(#{})),
    ?assertMatch([{stream, #{framing := chunked, length := undefined}}, {data, <<"a">>},
                  {ack, 1}, {data, <<"b">>}, {ack, 1}, finish, done], Cmds).

asgi_stream_with_app_length_test() ->
    Cmds = run([start(200, [{<<"content-length">>, <<"2">>}]), {body, <<"a">>, true},
                {body, <<"b">>, false}, done], ex(#{})),
    ?assertMatch([{stream, #{framing := length, length := 2}}, {data, <<"a">>}, {ack, 1},
                  {data, <<"b">>}, finish, done], Cmds).

http10_stream_closes_test() ->
    Cmds = run([start(200, []), {body, <<"a">>, true}], ex(#{version => {1, 0}})),
    ?assertMatch([{stream, #{framing := close, close := true}}, {data, <<"a">>}, {ack, 1}],
                 Cmds).

wsgi_one_chunk_gets_a_length_test() ->
    %% the first chunk is held: the app's return makes it a whole response
    Cmds = run([start(<<"200 OK">>, []), {body, <<"hello">>}, done], ex(#{})),
    ?assertMatch([{ack, 5}, {respond, #{framing := length, length := 5, line := <<"200 OK">>},
                  <<"hello">>}, done], Cmds).

wsgi_hold_times_out_test() ->
    {Cmds, Ex} = feed([start(<<"200 OK">>, []), {body, <<"a">>}], ex(#{})),
    ?assertEqual([{ack, 1}], Cmds),
    ?assert(py_web_exchange:holding(Ex)),
    ?assertEqual(2, py_web_exchange:timeout(Ex)),
    ?assertMatch({[{stream, #{framing := chunked}}, {data, <<"a">>}], _},
                 py_web_exchange:timed_out(Ex)).

wsgi_second_chunk_streams_test() ->
    Cmds = run([start(<<"200 OK">>, []), {body, <<"a">>}, {body, <<"b">>}, done], ex(#{})),
    ?assertMatch([{ack, 1}, {stream, #{framing := chunked}}, {data, <<"a">>}, {data, <<"b">>},
                  {ack, 1}, finish, done], Cmds).

wsgi_chunk_of_the_app_length_goes_at_once_test() ->
    Cmds = run([start(<<"200 OK">>, [{<<"Content-Length">>, <<"5">>}]), {body, <<"hello">>}],
               ex(#{})),
    ?assertMatch([{respond, #{framing := length, length := 5}, <<"hello">>}, {ack, 5}], Cmds).

wsgi_without_hold_streams_at_once_test() ->
    ?assertMatch({stream, chunked, undefined},
                 framing(run([start(<<"200 OK">>, []), {body, <<"a">>}], ex(#{hold => 0})))).

no_body_statuses_test() ->
    [?assertMatch([{respond, #{framing := none, body := false}, <<>>}, done],
                  run([start(S, [{<<"content-type">>, ?T}]), {body, <<>>, false}, done], ex(#{})))
     || S <- [204, 304, 101]],
    %% a 304 keeps the app's Content-Length (the GET's), sends no body
    ?assertMatch([{respond, #{framing := length, length := 10, body := false}, <<>>}, done],
                 run([start(304, [{<<"content-length">>, <<"10">>}]), {body, <<>>, false}, done],
                     ex(#{}))).

length_mismatch_is_an_app_error_test() ->
    %% whole body: nothing sent yet, a 500
    ?assertMatch([disconnect, {log, {bad_response, {content_length, 10, 5}}},
                  {respond, #{status := 500, close := true}, _}, done],
                 run([start(200, [{<<"content-length">>, <<"10">>}]), {body, <<"short">>, false}],
                     ex(#{}))),
    %% streamed, too long: cut before the excess
    ?assertMatch([{stream, _}, {data, <<"ab">>}, {ack, 2},
                  {log, {bad_response, {content_length, too_long}}}, disconnect, abort],
                 run([start(200, [{<<"content-length">>, <<"3">>}]), {body, <<"ab">>, true},
                      {body, <<"cd">>, true}], ex(#{}))),
    %% streamed, too short: no clean end
    ?assertMatch([{stream, _}, {data, <<"ab">>}, {ack, 2},
                  {log, {bad_response, {content_length, too_short}}}, disconnect, abort],
                 run([start(200, [{<<"content-length">>, <<"3">>}]), {body, <<"ab">>, true},
                      {body, <<>>, false}], ex(#{}))).

errors_test() ->
    Python = {python, <<"ValueError">>, <<"x">>, []},
    %% before the head: a 500 of our own
    ?assertMatch([{log, Python}, {respond, #{status := 500, close := true}, <<"Internal Server Error">>},
                  done],
                 run([{error, Python}], ex(#{}))),
    ?assertMatch([{log, no_response}, {respond, #{status := 500}, _}, done], run([done], ex(#{}))),
    %% after the head: the response must not look complete
    ?assertMatch([{stream, _}, {data, <<"a">>}, {ack, 1}, {log, Python}, abort],
                 run([start(200, []), {body, <<"a">>, true}, {error, Python}], ex(#{}))),
    %% a broken head: the app may still run, so it is told
    ?assertMatch([disconnect, {log, {bad_response, {headers, _}}}, {respond, #{status := 500}, _},
                  done],
                 run([start(200, [{<<"x">>, <<"a\r\nb: c">>}])], ex(#{}))),
    ?assertMatch([disconnect, {log, {bad_response, {status, 42}}}, {respond, _, _}, done],
                 run([start(42, [])], ex(#{}))),
    %% nothing after the end
    ?assertEqual([{respond, element(2, hd(run([start(200, []), {body, <<>>, false}], ex(#{})))),
                   <<>>}, done],
                 run([start(200, []), {body, <<>>, false}, done, {body, <<"x">>, false}, done],
                     ex(#{}))).

%% The app's worker process died (erlang_python's processes mode): 502 before
%% the head, whatever was held or buffered; after the head, as any app error.
worker_exit_test() ->
    Exit = {worker_exit, 139},
    ?assertMatch([{log, Exit}, {respond, #{status := 502, close := true}, <<"Bad Gateway">>},
                  done],
                 run([{error, Exit}], ex(#{}))),
    ?assertMatch([{log, Exit}, {respond, #{status := 502}, _}, done],
                 run([start(200, []), {error, Exit}], ex(#{}))),
    ?assertMatch([{ack, 4}, {log, Exit}, {respond, #{status := 502}, _}, done],
                 run([start(200, []), {body, <<"held">>}, {error, Exit}], ex(#{hold => 50}))),
    ?assertMatch([{ack, 1}, {log, Exit}, {respond, #{status := 502}, _}, done],
                 run([start(404, []), {body, <<"a">>, true}, {error, Exit}],
                     ex(#{caps => elli}))),
    ?assertMatch([{stream, _}, {data, <<"a">>}, {ack, 1}, {log, Exit}, abort],
                 run([start(200, []), {body, <<"a">>, true}, {error, Exit}], ex(#{}))).

timeouts_test() ->
    Ex = ex(#{}),
    ?assertEqual(1000, py_web_exchange:timeout(Ex)),
    ?assertMatch([disconnect, {log, request_timeout}, {respond, #{status := 504}, _}, done],
                 run([timeout], Ex)),
    %% the response is out, the app has not returned
    ?assertMatch([{respond, _, _}, disconnect, done],
                 run([start(200, []), {body, <<>>, false}, timeout], Ex)),
    {_, Streaming} = feed([start(200, []), {body, <<"a">>, true}], Ex),
    ?assertEqual(infinity, py_web_exchange:timeout(Streaming)).

app_connection_close_test() ->
    ?assertMatch([{respond, #{close := true, headers := [{<<"x">>, <<"1">>}]}, _} | _],
                 run([start(200, [{<<"Connection">>, <<"close">>}, {<<"x">>, <<"1">>},
                                  {<<"Transfer-Encoding">>, <<"chunked">>}]),
                      {body, <<>>, false}], ex(#{}))),
    ?assertMatch([{respond, #{close := true}, _} | _],
                 run([start(200, []), {body, <<>>, false}], ex(#{keepalive => false}))).

%% Elli: only a chunked 200 to HTTP/1.1 streams; the rest is collected.
elli_test_() ->
    Elli = fun(Opts) -> ex(Opts#{caps => elli}) end,
    [?_assertEqual({stream, chunked, undefined},
                   framing(run([start(200, [{<<"content-length">>, <<"2">>}]),
                                {body, <<"a">>, true}], Elli(#{})))),
     ?_assertMatch([{ack, 1}, {ack, 1}, {respond, #{status := 404, framing := length, length := 2},
                                         <<"ab">>}, done],
                   run([start(404, []), {body, <<"a">>, true}, {body, <<"b">>, true},
                        {body, <<>>, false}, done], Elli(#{}))),
     ?_assertMatch([{ack, 1}, {respond, #{framing := length, length := 1}, <<"a">>}, done],
                   run([start(200, []), {body, <<"a">>, true}, {body, <<>>, false}, done],
                       Elli(#{version => {1, 0}}))),
     ?_assertMatch([{ack, 1}, {respond, #{framing := length, length := 1, body := false}, <<>>},
                    done],
                   run([start(200, []), {body, <<"a">>, true}, {body, <<>>, false}, done],
                       Elli(#{method => <<"HEAD">>}))),
     %% the app's length is still checked when Elli streams chunked
     ?_assertMatch([{stream, _}, {data, <<"a">>}, {ack, 1}, {log, _}, disconnect, abort],
                   run([start(200, [{<<"content-length">>, <<"2">>}]), {body, <<"a">>, true},
                        {body, <<>>, false}], Elli(#{})))].
