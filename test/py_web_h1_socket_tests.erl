%% The socket-level fuzzer of the embedded server: seeded PropEr cases
%% (py_web_h1_prop_tests:socket_case/0: valid, faulty and mutated requests,
%% chunked bodies valid and mutated, each followed by whatever the
%% generator put after it) sent over real sockets to running py_web
%% servers, an ASGI and a WSGI one for each set of limits, whose app
%% (py_web_fuzz_app) records every request it sees. For every case and
%% both servers:
%%
%% <ul>
%% <li>no crash (no error event logged while the fuzzer runs) and no hang
%%     (every read has a 5 s bound);</li>
%% <li>the responses are those of a reference connection made of the pure
%%     parsers (ref/3, the rules py_web_conn must apply: pipelining,
%%     keep-alive, Content-Length, chunked, max_body): a 200 for each
%%     complete request, then the parser's 4xx/5xx with `connection: close'
%%     and the close; or the close after a request without keep-alive;
%%     or, when the bytes end inside a request, nothing more (the client
%%     then closes its side and so does the server);</li>
%% <li>the app sees exactly the requests the parsers accept, with their
%%     fields and bodies, and nothing of a request they refuse: a WSGI app
%%     only complete requests (the body is read first), an ASGI app also,
%%     at most, the start of the last one when its body is cut short or
%%     refused, never its end.</li>
%% </ul>
%%
%% The pure property suite (py_web_h1_prop_tests) checks the parsers
%% against an independent model of the grammar; this one checks that the
%% server does what they say, and that nothing it refuses reaches the app.
%%
%% `make test' runs PY_WEB_SOCKET_FUZZ_N cases (default 1000, about 2 s);
%% `make fuzz' 100000. Seeded by PY_WEB_FUZZ_SEED (default 1,2,3), as the pure suite.
-module(py_web_h1_socket_tests).

-define(FORALL(X, RawType, Prop), proper:forall(RawType, fun(X) -> Prop end)).
-include_lib("eunit/include/eunit.hrl").

-define(MAX_BODY, 100000).
-define(RECV_TIMEOUT, 5000).

socket_fuzz_test_() ->
    {timeout, 24 * 3600,
     fun() -> run(py_web_h1_prop_tests:count("PY_WEB_SOCKET_FUZZ_N")) end}.

run(N) ->
    ok = date_ticker(),
    ok = py_web_ct:quiet(),
    ok = py_web_fuzz_app:table(),
    SpoolDir = spool_dir(),
    put(spool_dir, SpoolDir),
    Servers = maps:from_list([{{I, L}, server(I, L, SpoolDir)}
                              || I <- [asgi, wsgi], L <- [default, small]]),
    ok = logger:add_handler(py_web_fuzz_watch, py_web_fuzz_watch, #{level => error,
                                                                     config => #{pid => self()}}),
    erase(stats),
    _ = rand:seed(exsplus, py_web_h1_prop_tests:seed()),
    T0 = erlang:monotonic_time(millisecond),
    Result = try
                 proper:quickcheck(?FORALL(Case, py_web_h1_prop_tests:socket_case(),
                                           check(Case, Servers)),
                                   [{numtests, N}, {max_size, 40}, {on_output, fun output/2}])
             after
                 logger:remove_handler(py_web_fuzz_watch),
                 [py_web:stop(Pid) || {Pid, _} <- maps:values(Servers)]
             end,
    Ms = erlang:monotonic_time(millisecond) - T0,
    Stats = lists:sort(maps:to_list(case get(stats) of undefined -> #{}; M -> M end)),
    io:format(user, "~nsocket fuzz: ~p cases (x2 servers) in ~p ms~n~p~n", [N, Ms, Stats]),
    Crashes = flush_events(),
    ?assertEqual([], Crashes),
    ?assertEqual(true, Result),
    Left = filelib:wildcard(SpoolDir ++ "/*/*.body"),
    ok = file:del_dir_r(SpoolDir),
    ?assertEqual([], Left).

output(".", []) -> ok;
output(F, A) -> io:format(user, F, A).

count_case(Key, N) ->
    S = case get(stats) of undefined -> #{}; M -> M end,
    put(stats, maps:update_with(Key, fun(V) -> V + N end, N, S)).

flush_events() ->
    receive {py_web_fuzz_watch, E} -> [E | flush_events()]
    after 0 -> []
    end.

%% py_web's Date ticker (the server's only process of its own): its
%% supervisor without the application, so that erlang_python is not started.
date_ticker() ->
    case whereis(py_web_sup) of
        undefined ->
            {ok, P} = py_web_sup:start_link(),
            unlink(P),
            ok;
        _ ->
            ok
    end.

spool_dir() ->
    Dir = filename:join(os:getenv("TMPDIR", "/tmp"),
                        "py_web_fuzz-" ++ os:getpid() ++ "-" ++
                            integer_to_list(erlang:unique_integer([positive]))),
    ok = file:make_dir(Dir),
    Dir.

%% A server with the generators' limits; WSGI bodies over 64 bytes spooled.
server(Interface, Limits, SpoolDir) when is_atom(Limits) ->
    server(Interface, py_web_h1_prop_tests:limits(Limits), SpoolDir);
server(Interface, Limits, SpoolDir) ->
    Opts = maps:merge(Limits,
                      #{app => {<<"fuzz">>, <<"app">>}, interface => Interface, port => 0,
                        lifespan => off, max_body => ?MAX_BODY, acceptors => 2,
                        asgi_backend => py_web_fuzz_app, wsgi_backend => py_web_fuzz_app,
                        spool_threshold => 64, spool_dir => SpoolDir}),
    {ok, Pid} = py_web:start_link(Opts),
    unlink(Pid),
    {Pid, py_web:port(Pid)}.

%%====================================================================
%% One case
%%====================================================================

check({Kind, Bytes, Limits}, Servers) ->
    {Reqs, Ending} = ref(Bytes, Limits, ?MAX_BODY),
    Complete = length([C || {_, {complete, _}} = C <- Reqs]),
    %% per kind of case: how its connection ends, and the requests that
    %% reach the app before (each case runs against two servers)
    count_case({kind(Kind), case Ending of
                                {error, S} -> {rejected, S};
                                _ -> Ending
                            end}, 1),
    count_case({kind(Kind), requests_to_app}, Complete),
    lists:all(fun(I) ->
                      {Port, Stop} = port(I, Limits, Servers),
                      R = run_case(I, Port, Bytes, Reqs, Ending),
                      Stop(),
                      case R of
                          ok -> true;
                          {fail, Why} ->
                              io:format(user, "~n~p server, case ~p~nbytes ~p~nreference ~p~n"
                                        "failure ~p~n", [I, Kind, Bytes, {Reqs, Ending}, Why]),
                              false
                      end
              end, [asgi, wsgi]).

%% The server of these limits: one of those running, or (a fault that
%% needs limits of its own) one for this case.
port(I, Limits, Servers) ->
    Named = [Name || Name <- [default, small],
                     py_web_h1_prop_tests:limits(Name) =:= Limits],
    case Named of
        [Name] ->
            {_, Port} = maps:get({I, Name}, Servers),
            {Port, fun() -> ok end};
        [] ->
            {Pid, Port} = server(I, Limits, get(spool_dir)),
            {Port, fun() -> py_web:stop(Pid) end}
    end.

kind({invalid, _}) -> invalid;
kind(K) -> K.

run_case(I, Port, Bytes, Reqs, Ending) ->
    true = ets:delete_all_objects(py_web_fuzz_app),
    {ok, S} = gen_tcp:connect({127, 0, 0, 1}, Port, [binary, {active, false}, {packet, raw}]),
    try
        ok = gen_tcp:send(S, Bytes),
        Complete = length([C || {_, {complete, _}} = C <- Reqs]),
        case responses(S, Complete, <<>>) of
            {ok, Buf} ->
                case ending(S, Ending, Buf) of
                    ok -> app(I, Reqs, py_web_fuzz_app:seen(I));
                    Fail -> Fail
                end;
            Fail ->
                Fail
        end
    after
        gen_tcp:close(S)
    end.

%% N responses 200 (after any 1xx).
responses(_S, 0, Buf) ->
    {ok, Buf};
responses(S, N, Buf) ->
    case response(S, Buf) of
        {ok, Code, _Hs, Rest} when Code < 200 -> responses(S, N, Rest);
        {ok, 200, _Hs, Rest} -> responses(S, N - 1, Rest);
        Other -> {fail, {expected_200, Other}}
    end.

ending(S, {error, Status}, Buf) ->
    case response(S, Buf) of
        {ok, Code, _Hs, Rest} when Code < 200 -> ending(S, {error, Status}, Rest);
        {ok, Status, Hs, Rest} ->
            case proplists:get_value(<<"connection">>, Hs) of
                <<"close">> -> closed(S, Rest);
                Other -> {fail, {connection_header, Other}}
            end;
        Other -> {fail, {expected, Status, Other}}
    end;
ending(S, closed, Buf) ->
    closed(S, Buf);
ending(S, open, Buf) ->
    %% the server waits for the rest; the client gives up
    ok = gen_tcp:shutdown(S, write),
    closed(S, Buf).

%% Nothing more but the close (a 100 Continue may come first).
closed(S, <<>>) ->
    case gen_tcp:recv(S, 0, ?RECV_TIMEOUT) of
        {error, closed} -> ok;
        {ok, Data} -> closed(S, Data);
        {error, R} -> {fail, {not_closed, R}}
    end;
closed(S, Buf) ->
    case response(S, Buf) of
        {ok, Code, _, Rest} when Code < 200 -> closed(S, Rest);
        Other -> {fail, {unexpected, Other}}
    end.

%% One response: {ok, Code, Headers (lower-cased names), Rest}.
response(S, Buf) ->
    case erlang:decode_packet(http_bin, Buf, []) of
        {ok, {http_response, _, Code, _}, Rest} -> headers(S, Code, Rest, []);
        {more, _} -> more(S, Buf, fun(B) -> response(S, B) end);
        Other -> {bad_response, Other, Buf}
    end.

headers(S, Code, Buf, Acc) ->
    case erlang:decode_packet(httph_bin, Buf, []) of
        {ok, {http_header, _, _, Name, V}, Rest} ->
            headers(S, Code, Rest, [{py_web_h1_field:lower(Name), V} | Acc]);
        {ok, http_eoh, Rest} ->
            Hs = lists:reverse(Acc),
            Len = binary_to_integer(proplists:get_value(<<"content-length">>, Hs, <<"0">>)),
            body(S, Code, Hs, Len, Rest);
        {more, _} -> more(S, Buf, fun(B) -> headers(S, Code, B, Acc) end);
        Other -> {bad_response, Other, Buf}
    end.

body(_S, Code, Hs, Len, Buf) when byte_size(Buf) >= Len ->
    <<_:Len/binary, Rest/binary>> = Buf,
    {ok, Code, Hs, Rest};
body(S, Code, Hs, Len, Buf) ->
    more(S, Buf, fun(B) -> body(S, Code, Hs, Len, B) end).

more(S, Buf, K) ->
    case gen_tcp:recv(S, 0, ?RECV_TIMEOUT) of
        {ok, Data} -> K(<<Buf/binary, Data/binary>>);
        {error, R} -> {recv, R, Buf}
    end.

%% What the app saw against what the parsers accept.
app(wsgi, Reqs, Seen) ->
    Expected = [view(wsgi, H, Body) || {H, {complete, Body}} <- Reqs],
    case [maps:with([method, path, qs, body, complete], R) || R <- Seen] of
        Expected -> ok;
        Got -> {fail, {app_saw, Got, expected, Expected}}
    end;
app(asgi, Reqs, Seen) ->
    Complete = length([C || {_, {complete, _}} = C <- Reqs]),
    case length(Seen) >= Complete andalso length(Seen) =< length(Reqs) andalso
        lists:all(fun({R, {H, B}}) -> asgi_seen(R, H, B) end,
                  lists:zip(Seen, lists:sublist(Reqs, length(Seen)))) of
        true -> ok;
        false -> {fail, {app_saw, Seen}}
    end.

asgi_seen(R, H, {complete, Body}) ->
    maps:with([method, path, qs, headers, body, complete], R) =:= view(asgi, H, Body);
asgi_seen(R = #{complete := false}, H, incomplete) ->
    Keys = [method, path, qs, headers],
    maps:with(Keys, R) =:= maps:with(Keys, view(asgi, H, <<>>));
asgi_seen(_, _, _) ->
    false.

view(asgi, #{method := M, raw_path := P, qs := Q, headers := Hs}, Body) ->
    #{method => M, path => P, qs => Q, headers => Hs, body => Body, complete => true};
view(wsgi, #{method := M, raw_path := P, qs := Q}, Body) ->
    #{method => M, path => py_web_http:percent_decode(P), qs => Q, body => Body,
      complete => true}.

%%====================================================================
%% The reference connection
%%====================================================================

%% What a connection must do with Bytes arriving at once: the requests the
%% app gets (`{Head, {complete, Body}}', or `{Head, incomplete}' for the
%% last one when its body is cut short or refused), and how it ends:
%% `{error, Status}', `closed' (after a request without keep-alive) or
%% `open' (waiting for more bytes).
ref(Bytes, Limits, Max) ->
    ref(Bytes, Limits, Max, []).

ref(Buf, Limits, Max, Acc) ->
    case py_web_h1_request:parse(Buf, Limits) of
        {error, S} ->
            {lists:reverse(Acc), {error, S}};
        {more, _} ->
            {lists:reverse(Acc), open};
        {ok, H, Rest} ->
            case ref_body(H, Rest, Limits, Max) of
                {error, S} ->
                    {lists:reverse([{H, incomplete} | Acc]), {error, S}};
                more ->
                    {lists:reverse([{H, incomplete} | Acc]), open};
                {ok, Body, Rest2} ->
                    Acc2 = [{H, {complete, Body}} | Acc],
                    case maps:get(keepalive, H) of
                        true -> ref(Rest2, Limits, Max, Acc2);
                        false -> {lists:reverse(Acc2), closed}
                    end
            end
    end.

%% A body over Max is 413 (a chunked one once Max + 1 bytes are decoded).
ref_body(#{chunked := true}, Rest, Limits, Max) ->
    case py_web_h1_chunked:decode(Rest, py_web_h1_chunked:init(Limits), Max + 1) of
        {ok, Data, Rest2, St} ->
            Body = iolist_to_binary(Data),
            if
                byte_size(Body) > Max -> {error, 413};
                St =:= done -> {ok, Body, Rest2};
                true -> more
            end;
        {error, S} ->
            {error, S}
    end;
ref_body(#{clen := undefined}, Rest, _Limits, _Max) ->
    {ok, <<>>, Rest};
ref_body(#{clen := N}, _Rest, _Limits, Max) when N > Max ->
    {error, 413};
ref_body(#{clen := N}, Rest, _Limits, _Max) when byte_size(Rest) >= N ->
    <<Body:N/binary, Rest2/binary>> = Rest,
    {ok, Body, Rest2};
ref_body(_, _Rest, _Limits, _Max) ->
    more.
