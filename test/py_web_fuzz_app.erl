%% The app of the socket-level fuzzer (py_web_h1_socket_tests): a
%% py_web_backend for both interfaces that records every request it sees
%% in the public ETS table py_web_fuzz_app, reads the whole body, and then
%% answers 200 with an empty body. It runs in the connection process
%% itself (its events are messages to self()), so that it costs nothing
%% and what it recorded is there before the response is sent.
%%
%% A record: `{Seq, #{kind, method, path, qs, headers, body, complete,
%% disconnected}}'; `path' is the ASGI raw_path or the WSGI PATH_INFO,
%% `headers' the ASGI scope's (WSGI: []), `complete' whether the app got
%% the end of the body.
-module(py_web_fuzz_app).

-export([start/4, send_body/3, ack/2, disconnect/1, table/0, seen/1]).

-define(T, py_web_fuzz_app).

-spec table() -> ok.
table() ->
    _ = ets:new(?T, [named_table, public, ordered_set]),
    ok.

%% What the app of one interface recorded since the table was cleared, in order.  (A
%% connection of the other interface's server, from the case run before, may still
%% record its request after the table was cleared: seen on a loaded machine.)
-spec seen(asgi | wsgi) -> [map()].
seen(Kind) ->
    [R || {_, R = #{kind := K}} <- ets:tab2list(?T), K =:= Kind].

-spec start(binary(), binary(), map(), map()) -> {ok, term()}.
start(_M, _C, Env, Opts) ->
    Seq = erlang:unique_integer([monotonic]),
    {Kind, Rec} = case Env of
                      #{type := <<"http">>} ->
                          {asgi, #{kind => asgi, method => maps:get(method, Env),
                                   path => maps:get(raw_path, Env),
                                   qs => maps:get(query_string, Env),
                                   headers => maps:get(headers, Env)}};
                      _ ->
                          {wsgi, #{kind => wsgi, method => maps:get(<<"REQUEST_METHOD">>, Env),
                                   path => maps:get(<<"PATH_INFO">>, Env),
                                   qs => maps:get(<<"QUERY_STRING">>, Env),
                                   headers => []}}
                  end,
    Body = case Opts of
               #{body_file := File} -> {ok, B} = file:read_file(File), B;
               #{body := B} -> B
           end,
    More = maps:get(more_body, Opts, false),
    ets:insert(?T, {Seq, Rec#{body => Body, complete => not More, disconnected => false}}),
    S = {?MODULE, Kind, Seq},
    case More of
        true -> self() ! {Kind, S, need_body};
        false -> respond(S)
    end,
    {ok, S}.

-spec send_body(term(), binary(), boolean()) -> ok.
send_body(S = {?MODULE, Kind, Seq}, Chunk, More) ->
    [{_, R = #{body := B}}] = ets:lookup(?T, Seq),
    ets:insert(?T, {Seq, R#{body := <<B/binary, Chunk/binary>>, complete := not More}}),
    case More of
        true -> self() ! {Kind, S, need_body};
        false -> respond(S)
    end,
    ok.

-spec ack(term(), non_neg_integer()) -> ok.
ack(_S, _N) -> ok.

-spec disconnect(term()) -> ok.
disconnect({?MODULE, _Kind, Seq}) ->
    case ets:lookup(?T, Seq) of
        [{_, R}] -> ets:insert(?T, {Seq, R#{disconnected := true}});
        [] -> ok
    end,
    ok.

respond(S = {?MODULE, asgi, _}) ->
    self() ! {asgi, S, {start, 200, []}},
    self() ! {asgi, S, {body, <<>>, false}},
    self() ! {asgi, S, done};
respond(S = {?MODULE, wsgi, _}) ->
    self() ! {wsgi, S, {start, <<"200 OK">>, []}},
    self() ! {wsgi, S, done}.
