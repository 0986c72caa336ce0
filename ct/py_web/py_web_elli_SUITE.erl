%% py_web_elli against real Elli: every request of py_web_handler_ct:requests/0
%% must get the status, headers and body the embedded server gives, and no
%% test may log a crash report or an abnormal exit
%% (py_web_handler_ct:watch/0).
%%
%% Framing is compared on its own (framing/1), because Elli's handler
%% contract imposes it: a chunked response is always a 200 to HTTP/1.1 and
%% ends the connection, any other response is one piece that Elli gives a
%% Content-Length (Content-Length: 0 on 204 and 304 too). So a streamed
%% response that is not a 200, or is to HTTP/1.0, arrives whole with its
%% Content-Length, and a streamed 200 is chunked even when the app set a
%% Content-Length.
%%
%% Elli cannot be installed on these machines (no hex.pm, not in Debian):
%% when elli_request is not on the code path every case is SKIPPED (reported
%% as such by Common Test), never passed. To run it, put Elli 3.3 on the
%% code path (ERL_LIBS).
-module(py_web_elli_SUITE).
-compile(nowarn_missing_spec).
-compile([export_all, nowarn_export_all]).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-define(H, py_web_handler_ct).

suite() -> [{timetrap, {seconds, 60}}].

all() -> [{group, asgi}, {group, wsgi}, {group, asgi_python}, {group, wsgi_python}].

groups() ->
    Cases = [same_as_server, framing, one_content_length, head_content_length,
             error_after_start, stream_http10, client_gone, connection_details,
             percent_path, request_timeout, cookies_verbatim, chunked_request],
    [{G, [], Cases} || G <- [asgi, wsgi, asgi_python, wsgi_python]].

init_per_suite(Config) ->
    case code:which(elli_request) of
        non_existing ->
            {skip, "elli is not on the code path (elli_request non_existing): "
                   "py_web_elli is compiled but not exercised"};
        _ ->
            {ok, _} = application:ensure_all_started(elli),
            {ok, _} = application:ensure_all_started(py_web),
            ok = py_web_ct:quiet(),
            Config
    end.

end_per_suite(_) -> ok.

init_per_group(G, Config) -> ?H:init_group(G, Config).

end_per_group(G, _Config) -> ?H:end_group(G).

init_per_testcase(_, Config) -> ?H:init_case(Config).

end_per_testcase(_, _Config) ->
    _ = [catch elli:stop(P) || P <- ellis()],
    erase(ellis),
    ?H:end_case().

ellis() ->
    case get(ellis) of
        undefined -> [];
        L -> L
    end.

%%--------------------------------------------------------------------

%% An Elli server with py_web_elli as its callback; its port.
elli(Config) -> elli(Config, #{}).

elli(Config, Extra) ->
    Args = maps:merge((?H:backends(Config))#{app => ?H:app(Config),
                                             interface => ?config(interface, Config)},
                      Extra),
    Port = ?H:free_port(),
    {ok, P} = elli:start_link([{callback, py_web_elli}, {callback_args, Args},
                               {ip, {127, 0, 0, 1}}, {port, Port}]),
    unlink(P),
    put(ellis, [P | ellis()]),
    Port.

%% What Elli's contract leaves to Elli: framing headers and whether the
%% connection stays open (checked by framing/1).
unframed(incomplete) -> incomplete;
unframed(R = #{headers := Hs}) ->
    maps:remove(kept, R#{headers := [H || {N, _} = H <- Hs,
                                          not lists:member(N, [<<"content-length">>,
                                                               <<"transfer-encoding">>,
                                                               <<"connection">>])]}).

%%--------------------------------------------------------------------

%% The requests Elli can take: not a chunked request body (Elli reads a body
%% by its Content-Length only; see chunked_request/1).
requests() ->
    [R || R = {Name, _, _} <- ?H:requests(), Name =/= echo_chunked].

%% Every request: the same status, headers and body as from the embedded
%% server.
same_as_server(Config) ->
    Server = ?H:server(Config),
    Elli = elli(Config),
    Diffs = [{Name, {server, S}, {elli, E}}
             || {Name, Req, Opts} <- requests(),
                S <- [unframed(?H:normal(?H:ask(Server, Req, Opts)))],
                E <- [unframed(?H:normal(?H:ask(Elli, Req, Opts)))],
                S =/= E],
    ?assertEqual([], Diffs).

%% The framing Elli's contract allows, for every request: what the server
%% sends with a Content-Length has the same one; a streamed 200 to HTTP/1.1
%% is chunked; any other streamed response comes whole with its length.
framing(Config) ->
    Server = ?H:server(Config),
    Elli = elli(Config),
    Bad = [{Name, S, E}
           || {Name, Req, Opts} <- requests(),
              S <- [?H:ask(Server, Req, Opts)],
              E <- [?H:ask(Elli, Req, Opts)],
              not framing_ok(Req, S, E)],
    ?assertEqual([], Bad).

framing_ok(_Req, #{incomplete := true}, #{incomplete := true}) ->
    true;
framing_ok(Req, #{status := Code, headers := SH, body := SB}, #{headers := EH, body := EB}) ->
    H10 = binary:match(Req, <<" HTTP/1.0\r\n">>) =/= nomatch,
    Head = binary:match(Req, <<"HEAD ">>) =:= {0, 5},
    SCL = py_web_tc:headers(<<"content-length">>, SH),
    ECL = py_web_tc:headers(<<"content-length">>, EH),
    STE = py_web_tc:header(<<"transfer-encoding">>, SH),
    ETE = py_web_tc:header(<<"transfer-encoding">>, EH),
    SB =:= EB andalso length(ECL) =< 1 andalso
        if
            Code =:= 204; Code =:= 304 -> ECL =:= [<<"0">>] orelse ECL =:= SCL;
            SCL =/= [], STE =:= undefined, Code =:= 200, not H10, not Head ->
                %% a streamed 200 with the app's length: chunked, or whole
                ECL =:= SCL orelse (ETE =:= <<"chunked">> andalso ECL =:= []);
            SCL =/= [] -> ECL =:= SCL;
            Head -> ETE =:= undefined andalso length(ECL) =:= 1;
            Code =:= 200, not H10 -> ETE =:= <<"chunked">> andalso ECL =:= [];
            true -> ECL =:= [integer_to_binary(byte_size(EB))] andalso ETE =:= undefined
        end;
framing_ok(_, _, _) ->
    false.

%% One Content-Length, the app's, even when the app spelled it lower-case.
one_content_length(Config) ->
    Port = elli(Config),
    [begin
         #{status := 200, headers := Hs} = ?H:ask(Port, Req, Opts),
         ?assertEqual([Len], py_web_tc:headers(<<"content-length">>, Hs))
     end || {Req, Opts, Len} <- [{http_get("/"), #{}, <<"13">>},
                                 {http_get("/cl13"), #{}, <<"13">>},
                                 {req("HEAD", "/cl13"), #{head => true}, <<"13">>},
                                 {http_get("/cl1"), #{}, <<"5">>},
                                 {req("HEAD", "/cl1"), #{head => true}, <<"5">>}]].

%% HEAD: the app's Content-Length, and what the server says without one.
head_content_length(Config) ->
    Port = elli(Config),
    #{headers := Hs} = ?H:ask(Port, req("HEAD", "/"), #{head => true}),
    #{headers := Hs2} = ?H:ask(?H:server(Config), req("HEAD", "/"), #{head => true}),
    ?assertEqual(py_web_tc:headers(<<"content-length">>, Hs2),
                 py_web_tc:headers(<<"content-length">>, Hs)).

error_after_start(Config) ->
    Port = elli(Config),
    #{incomplete := true} = ?H:ask(Port, http_get("/error_after_start")).

%% A streamed response to HTTP/1.0 (Elli has no chunked 1.0): whole, framed.
stream_http10(Config) ->
    Port = elli(Config),
    #{status := 200, headers := Hs, body := <<"chunk 1\nchunk 2\nchunk 3\n">>} =
        ?H:ask(Port, <<"GET /stream?n=3 HTTP/1.0\r\n\r\n">>),
    undefined = py_web_tc:header(<<"transfer-encoding">>, Hs),
    [<<"24">>] = py_web_tc:headers(<<"content-length">>, Hs).

%% The client leaves during a streamed response: the app is told.
client_gone(Config) ->
    ?H:observe(),
    Port = elli(Config),
    S = py_web_tc:connect(Port),
    py_web_tc:send(S, http_get("/wait_disconnect")),
    {ok, 200, _, <<>>} = py_web_tc:recv(S, #{head => true}),
    gen_tcp:close(S),
    ?H:event(Config, disconnected, <<"/wait_disconnect">>).

%% Client and server addresses and the HTTP version are the connection's.
connection_details(Config) ->
    Port = elli(Config),
    ok = ?H:connection_details(?config(interface, Config),
                               ?H:scope(Port, <<"GET /scope HTTP/1.0\r\n\r\n">>), Port).

percent_path(Config) ->
    Port = elli(Config),
    ok = ?H:decoded_once(?config(interface, Config),
                         ?H:scope(Port, http_get("/scope/a%2541/%252e%252e/x?q=%41"))).

request_timeout(Config) ->
    ?H:observe(),
    Port = elli(Config, #{request_timeout => 300}),
    #{status := 504} = ?H:ask(Port, http_get("/hang")),
    ?H:event(Config, disconnected, <<"/hang">>).

%% Elli does not read a chunked request body (it would hand the app an
%% empty body, then parse the chunks as the next request): the handler
%% refuses such a request rather than run the app on a body it does not
%% have, and the connection closes.
chunked_request(Config) ->
    Port = elli(Config),
    #{status := 411, headers := Hs, kept := false} =
        ?H:ask(Port, <<"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "5\r\nhello\r\n0\r\n\r\n">>),
    [<<"close">>] = py_web_tc:headers(<<"connection">>, Hs).

cookies_verbatim(Config) ->
    Port = elli(Config),
    #{status := 200, headers := Hs} = ?H:ask(Port, http_get("/cookies2")),
    [<<"msg=\"hello world\"; Path=/; SameSite=lax">>,
     <<"c=3; Expires=Wed, 01 Jan 2031 00:00:00 GMT; HttpOnly; Path=/">>] =
        py_web_tc:headers(<<"set-cookie">>, Hs).

http_get(Path) -> iolist_to_binary(py_web_tc:req("GET", Path, [], <<>>)).

req(Method, Path) -> req(Method, Path, [], <<>>).

req(Method, Path, Headers, Body) -> iolist_to_binary(py_web_tc:req(Method, Path, Headers, Body)).
