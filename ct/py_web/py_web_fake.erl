%% Test double for py_asgi / py_wsgi: the same streaming API and message
%% protocol, in pure Erlang, so py_web can be tested without Python.
%% py_web_fake_asgi and py_web_fake_wsgi are the backend modules; this
%% module holds the "apps", chosen by request path:
%%
%%   /                 Hello, World! (answered at once, no process)
%%   /scope            body = term_to_binary({ScopeOrEnviron, Opts})
%%   /echo             reads the whole body, answers it (x-body-chunks)
%%   /stream?n=N       N chunks "chunk I\n", each after the previous ack
%%   /chunks_echo      echoes each request body chunk as a response chunk
%%   /error            {error, {python, ...}} event before the response
%%   /start_error      start/4 itself returns {error, ...}
%%   /error_after_start  response started, then an error
%%   /worker_exit      {error, {worker_exit, 139}} before the response (the
%%                     app's worker process died: erlang_python's processes mode)
%%   /hang             never answers; reports disconnect to the observer
%%   /wait_disconnect  starts streaming, then waits for disconnect
%%   /cookies          two set-cookie headers around another header
%%   /status/NNN       that status, body "x" unless 204/304/1xx
%%   /cl               app-set content-length: 5, body in two pieces
%%   /nostart          returns (done) without a response
%%   /badheader        a header value containing CRLF
%%   /sleep?ms=N       answers after N ms
%%   /big?size=N       N bytes in one chunk
%%   /cl13             content-length: 13 and Hello, World! (no body for HEAD,
%%                     as Flask and Starlette answer HEAD)
%%   /cl1              content-length: 5, body in one piece (WSGI: one chunk)
%%   /cl_bad           content-length: 10, body of 5 bytes (an app bug)
%%   /cookies2         Set-Cookie values Cowboy's cookie API cannot express
%%                     (a quoted value with a space, Expires)
%%   /read_error       reads the whole body, then an error
%%
%% Every request an app sees is recorded when a test made the ETS table
%% py_web_fake_requests (record/2). A WSGI body given as a file (body_file)
%% is read from it at start, as the runner opens it; /echo then says
%% x-input-type: BufferedReader, as the Python app does.
%%
%% For ASGI the scope's `path' is given as received (percent-encoded) and
%% py_asgi's NIF decodes it: this double does the same (scope_path/1), so
%% the scope it reports is the one an app would see.
%%
%% As with py_asgi and py_wsgi, the owner's death counts as a disconnect.
%%
%% Tests may register a process as py_web_fake_observer to get
%% {fake, disconnected, Path}, {fake, lifespan_startup, C} and
%% {fake, lifespan_shutdown, L} messages.
-module(py_web_fake).
-compile(nowarn_missing_spec).

-export([start/5, ack/2, send_body/3, disconnect/1,
         lifespan_startup/3, lifespan_shutdown/1]).

-define(HELLO, <<"Hello, World!">>).

%% Hello fast path: what a trivial app costs (for wrk).
start(asgi, _M, _C, Env = #{path := <<"/">>}, _Opts) ->
    record(asgi, Env),
    S = {fake, asgi, make_ref(), undefined},
    Self = self(),
    Self ! {asgi, S, {start, 200, [{<<"content-type">>, <<"text/plain">>}]}},
    Self ! {asgi, S, {body, ?HELLO, false}},
    Self ! {asgi, S, done},
    {ok, S};
start(wsgi, _M, _C, Env = #{<<"PATH_INFO">> := <<"/">>}, _Opts) ->
    record(wsgi, Env),
    S = {fake, wsgi, make_ref(), undefined},
    Self = self(),
    Self ! {wsgi, S, {start, <<"200 OK">>, [{<<"content-type">>, <<"text/plain">>}]}},
    Self ! {wsgi, S, {body, ?HELLO}},
    Self ! {wsgi, S, done},
    {ok, S};
start(Kind, _M, _C, Env, Opts) ->
    {Path, Qs} = path(Kind, Env),
    record(Kind, Env),
    %% a WSGI body spooled to a file is read as the runner would: the file
    %% is opened when the app starts
    Body = case Opts of
               #{body_file := File} -> {ok, B} = file:read_file(File), B;
               _ -> maps:get(body, Opts, <<>>)
           end,
    More = maps:get(more_body, Opts, false),
    Caller = self(),
    Ref = make_ref(),
    case route(Path) of
        start_error ->
            {error, {python, <<"RuntimeError">>, <<"cannot start">>, [<<"tb">>]}};
        {now, Events} ->
            S = {fake, Kind, Ref, undefined},
            [Caller ! {Kind, S, E2} || E <- Events(Env, Opts),
                                            E2 <- [wsgi_ev(Kind, E)], E2 =/= skip],
            {ok, S};
        {proc, Fun} ->
            Pid = spawn(fun() ->
                                erlang:monitor(process, Caller),
                                receive {go, S} -> ok end,
                                put(path, Path),
                                Fun(#{kind => Kind, s => S, caller => Caller,
                                      qs => Qs, body => Body, more => More,
                                      file => is_map_key(body_file, Opts)})
                        end),
            S = {fake, Kind, Ref, Pid},
            Pid ! {go, S},
            {ok, S}
    end.

ack({fake, _, _, Pid}, N) when is_pid(Pid) -> Pid ! {fake_ack, N}, ok;
ack(_, _) -> ok.

send_body({fake, _, _, Pid}, Chunk, More) when is_pid(Pid) ->
    Pid ! {fake_body, Chunk, More}, ok;
send_body(_, _, _) -> ok.

disconnect({fake, _, _, Pid} = S) ->
    observe({fake, disconnect_called, S}),
    case Pid of
        undefined -> ok;
        _ -> Pid ! fake_disconnect
    end,
    ok.

lifespan_startup(_M, <<"fail_lifespan">>, _Opts) ->
    {error, {python, <<"RuntimeError">>, <<"startup failed">>, [<<"tb">>]}};
lifespan_startup(_M, <<"no_lifespan">>, _Opts) ->
    {error, unsupported};
lifespan_startup(_M, C, _Opts) ->
    observe({fake, lifespan_startup, C}),
    {ok, {fake_lifespan, C}, #{<<"started">> => true}}.

lifespan_shutdown(L) ->
    observe({fake, lifespan_shutdown, L}),
    ok.

%% Every request an app sees, for the tests that check that a request did
%% not reach the app: {Method, RawPath} in the public ETS table
%% py_web_fake_requests when a test made it (requests/0 reads it).
record(Kind, Env) ->
    case ets:whereis(py_web_fake_requests) of
        undefined -> ok;
        _ ->
            {M, P} = case Kind of
                         asgi -> {maps:get(method, Env), maps:get(raw_path, Env)};
                         wsgi -> {maps:get(<<"REQUEST_METHOD">>, Env),
                                  maps:get(<<"PATH_INFO">>, Env)}
                     end,
            ets:insert(py_web_fake_requests, {erlang:unique_integer([monotonic]), M, P}),
            ok
    end.

%%--------------------------------------------------------------------

%% The route path: an ASGI path after its root_path (as Starlette routes).
path(asgi, #{path := P, query_string := Q} = S) ->
    Root = maps:get(root_path, S, <<>>),
    N = byte_size(Root),
    <<Root:N/binary, Route/binary>> = scope_path(P),
    {Route, Q};
path(wsgi, #{<<"PATH_INFO">> := P, <<"QUERY_STRING">> := Q}) -> {P, Q}.

%% What py_asgi's NIF does with the scope's path (c_src/scope.c): %XX decoded.
scope_path(P) -> scope_path(P, <<>>).

scope_path(<<$%, H, L, R/binary>>, Acc) ->
    case {unhex(H), unhex(L)} of
        {Hi, Lo} when is_integer(Hi), is_integer(Lo) -> scope_path(R, <<Acc/binary, (Hi * 16 + Lo)>>);
        _ -> scope_path(<<H, L, R/binary>>, <<Acc/binary, $%>>)
    end;
scope_path(<<C, R/binary>>, Acc) -> scope_path(R, <<Acc/binary, C>>);
scope_path(<<>>, Acc) -> Acc.

unhex(C) when C >= $0, C =< $9 -> C - $0;
unhex(C) when C >= $a, C =< $f -> C - $a + 10;
unhex(C) when C >= $A, C =< $F -> C - $A + 10;
unhex(_) -> error.

method(asgi, Env) -> maps:get(method, Env, <<"GET">>);
method(wsgi, Env) -> maps:get(<<"REQUEST_METHOD">>, Env, <<"GET">>).

%% Events in a neutral form, translated per interface by ev/2:
%% {start, Code, Headers} | {body, Chunk, More} | done | need_body | {error, R}
route(<<"/scope", _/binary>>) ->
    {now, fun(Env, Opts) ->
                  B = term_to_binary({app_view(Env), Opts}),
                  [{start, 200, [{<<"content-type">>, <<"application/x-erlang">>}]},
                   {body, B, false}, done]
          end};
route(<<"/error">>) ->
    {now, fun(_, _) -> [{error, python_error()}] end};
route(<<"/start_error">>) ->
    start_error;
route(<<"/worker_exit">>) ->
    {now, fun(_, _) -> [{error, {worker_exit, 139}}] end};
route(<<"/cookies">>) ->
    {now, fun(_, _) ->
                  [{start, 200, [{<<"set-cookie">>, <<"a=1; Path=/">>},
                                 {<<"content-type">>, <<"text/plain">>},
                                 {<<"set-cookie">>, <<"b=2; Path=/">>}]},
                   {body, <<"cookies">>, false}, done]
          end};
route(<<"/status/", N/binary>>) ->
    Code = binary_to_integer(N),
    {now, fun(_, _) ->
                  B = case Code of
                          204 -> <<>>;
                          304 -> <<>>;
                          _ -> <<"x">>
                      end,
                  [{start, Code, [{<<"content-type">>, <<"text/plain">>}]},
                   {body, B, false}, done]
          end};
route(<<"/cl">>) ->
    {now, fun(_, _) ->
                  [{start, 200, [{<<"content-length">>, <<"5">>}]},
                   {body, <<"hel">>, true}, {body, <<"lo">>, false}, done]
          end};
route(<<"/cl13">>) ->
    {now, fun(Env, _) ->
                  Body = case method(kind(Env), Env) of
                             <<"HEAD">> -> <<>>;
                             _ -> ?HELLO
                         end,
                  [{start, 200, [{<<"content-type">>, <<"text/plain">>},
                                 {<<"content-length">>, <<"13">>}]},
                   {body, Body, false}, done]
          end};
route(<<"/cl1">>) ->
    {now, fun(_, _) ->
                  [{start, 200, [{<<"Content-Length">>, <<"5">>},
                                 {<<"content-type">>, <<"text/plain">>}]},
                   {body, <<"hello">>, false}, done]
          end};
route(<<"/cl_bad">>) ->
    {now, fun(_, _) ->
                  [{start, 200, [{<<"content-length">>, <<"10">>}]},
                   {body, <<"short">>, false}, done]
          end};
route(<<"/cookies2">>) ->
    {now, fun(_, _) ->
                  [{start, 200, [{<<"content-type">>, <<"text/plain">>},
                                 {<<"set-cookie">>, <<"msg=\"hello world\"; Path=/; SameSite=lax">>},
                                 {<<"set-cookie">>,
                                  <<"c=3; Expires=Wed, 01 Jan 2031 00:00:00 GMT; HttpOnly; Path=/">>}]},
                   {body, <<"cookies">>, false}, done]
          end};
route(<<"/nostart">>) ->
    {now, fun(_, _) -> [done] end};
route(<<"/badheader">>) ->
    {now, fun(_, _) ->
                  [{start, 200, [{<<"x-bad">>, <<"a\r\nx-injected: 1">>}]},
                   {body, <<"x">>, false}, done]
          end};
route(<<"/big">>) ->
    {proc, fun(#{qs := Qs} = A) ->
                   N = qs_int(<<"size">>, Qs, 1000),
                   emit(A, {start, 200, [{<<"content-type">>, <<"application/octet-stream">>}]}),
                   emit(A, {body, binary:copy(<<"a">>, N), false}),
                   emit(A, done)
           end};
route(<<"/echo">>) ->
    {proc, fun(A) ->
                   {Body, N} = read_body(A),
                   Input = case A of
                               #{file := true} -> [{<<"x-input-type">>, <<"BufferedReader">>}];
                               _ -> []
                           end,
                   emit(A, {start, 200, [{<<"content-type">>, <<"application/octet-stream">>},
                                         {<<"x-body-chunks">>, integer_to_binary(N)}
                                         | Input]}),
                   emit(A, {body, Body, false}),
                   emit(A, done)
           end};
route(<<"/read_error">>) ->
    {proc, fun(A) ->
                   _ = read_body(A),
                   emit(A, {error, python_error()})
           end};
route(<<"/chunks_echo">>) ->
    {proc, fun(A = #{body := B0, more := M0}) ->
                   emit(A, {start, 200, [{<<"content-type">>, <<"text/plain">>}]}),
                   chunks_echo(A, B0, M0)
           end};
route(<<"/stream">>) ->
    {proc, fun(#{qs := Qs} = A) ->
                   N = qs_int(<<"n">>, Qs, 5),
                   emit(A, {start, 200, [{<<"content-type">>, <<"text/plain">>}]}),
                   lists:foreach(
                     fun(I) ->
                             emit(A, {body, <<"chunk ", (integer_to_binary(I))/binary, "\n">>, true}),
                             wait_ack(A)
                     end, lists:seq(1, N)),
                   emit(A, {body, <<>>, false}),
                   emit(A, done)
           end};
route(<<"/error_after_start">>) ->
    {proc, fun(A) ->
                   emit(A, {start, 200, [{<<"content-type">>, <<"text/plain">>}]}),
                   emit(A, {body, <<"partial">>, true}),
                   wait_ack(A),
                   emit(A, {body, <<"more">>, true}),
                   wait_ack(A),
                   emit(A, {error, python_error()})
           end};
route(<<"/hang">>) ->
    {proc, fun(_A) -> wait_disconnect() end};
route(<<"/wait_disconnect">>) ->
    {proc, fun(A) ->
                   emit(A, {start, 200, [{<<"content-type">>, <<"text/plain">>}]}),
                   emit(A, {body, <<"first\n">>, true}),
                   wait_disconnect()
           end};
route(<<"/start_body">>) ->
    %% what the app got with its start: more_body and the body's size
    {proc, fun(#{more := More, body := Body} = A) ->
                   emit(A, {start, 200, [{<<"content-type">>, <<"text/plain">>}]}),
                   emit(A, {body, iolist_to_binary(io_lib:format("~p ~B", [More, byte_size(Body)])),
                            false}),
                   emit(A, done)
           end};
route(<<"/sleep">>) ->
    {proc, fun(#{qs := Qs} = A) ->
                   timer:sleep(qs_int(<<"ms">>, Qs, 100)),
                   emit(A, {start, 200, [{<<"content-type">>, <<"text/plain">>}]}),
                   emit(A, {body, <<"slept">>, false}),
                   emit(A, done)
           end};
route(_) ->
    {now, fun(_, _) ->
                  [{start, 200, [{<<"content-type">>, <<"text/plain">>}]},
                   {body, ?HELLO, false}, done]
          end}.

kind(#{type := _}) -> asgi;
kind(_) -> wsgi.

app_view(Env = #{path := P}) -> Env#{path := scope_path(P)};
app_view(Env) -> Env.

python_error() ->
    {python, <<"ValueError">>, <<"secret internal detail">>,
     [<<"Traceback (most recent call last):">>,
      <<"  File \"app.py\", line 1, in app">>]}.

%% WSGI: integer status -> "NNN Reason"; {body, C, More} -> {body, C}
%% (the final empty chunk is dropped: `done' ends the body).
emit(#{kind := Kind, s := S, caller := Caller}, E) ->
    case wsgi_ev(Kind, E) of
        skip -> ok;
        E2 -> Caller ! {Kind, S, E2}
    end.

wsgi_ev(asgi, E) -> E;
wsgi_ev(wsgi, {start, Code, H}) -> {start, status(Code), H};
wsgi_ev(wsgi, {body, <<>>, false}) -> skip;
wsgi_ev(wsgi, {body, C, _}) -> {body, C};
wsgi_ev(wsgi, E) -> E.

status(200) -> <<"200 OK">>;
status(N) -> <<(integer_to_binary(N))/binary, " Something">>.

wait_ack(A) ->
    receive
        {fake_ack, _} -> ok;
        fake_disconnect -> gone();
        {'DOWN', _, _, _, _} -> gone()
    after 30000 -> exit(no_ack)
    end,
    A.

read_body(#{body := B0, more := false}) -> {B0, 1};
read_body(A = #{body := B0, more := true}) ->
    read_body(A, [B0], 1).

read_body(A, Acc, N) ->
    emit(A, need_body),
    receive
        {fake_body, C, true} -> read_body(A, [C | Acc], N + 1);
        {fake_body, C, false} -> {iolist_to_binary(lists:reverse([C | Acc])), N + 1};
        fake_disconnect -> gone();
        {'DOWN', _, _, _, _} -> gone()
    after 30000 -> exit(no_body)
    end.

chunks_echo(A, B, More) ->
    case B of
        <<>> -> ok;
        _ -> emit(A, {body, B, true}), wait_ack(A)
    end,
    case More of
        false ->
            emit(A, {body, <<>>, false}),
            emit(A, done);
        true ->
            emit(A, need_body),
            receive
                {fake_body, C, M} -> chunks_echo(A, C, M);
                fake_disconnect -> gone();
                {'DOWN', _, _, _, _} -> gone()
            after 30000 -> exit(no_body)
            end
    end.

wait_disconnect() ->
    receive
        fake_disconnect -> gone();
        {'DOWN', _, _, _, _} -> gone()
    after 60000 -> exit(normal)
    end.

gone() ->
    observe({fake, disconnected, get(path)}),
    exit(normal).

observe(Msg) ->
    case whereis(py_web_fake_observer) of
        undefined -> ok;
        P -> P ! Msg, ok
    end.

qs_int(K, Qs, Default) ->
    Pairs = [list_to_tuple(binary:split(P, <<"=">>)) || P <- binary:split(Qs, <<"&">>, [global]), P =/= <<>>],
    case lists:keyfind(K, 1, Pairs) of
        {K, V} -> binary_to_integer(V);
        _ -> Default
    end.
