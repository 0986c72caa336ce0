%% py_web_cowboy against real Cowboy: every request of
%% py_web_handler_ct:requests/0 must get the answer the embedded server
%% gives (status, headers, body, connection kept or closed), and no test may
%% log a crash report or an abnormal exit (py_web_handler_ct:watch/0).
%%
%% Cowboy cannot be installed on these machines (no hex.pm, not in Debian):
%% when cowboy_req is not on the code path every case is SKIPPED (reported as
%% such by Common Test), never passed. To run it, put Cowboy 2.12, Ranch 1.8
%% and Cowlib 2.13 on the code path (ERL_LIBS).
-module(py_web_cowboy_SUITE).
-compile(nowarn_missing_spec).
-compile([export_all, nowarn_export_all]).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-define(H, py_web_handler_ct).

suite() -> [{timetrap, {seconds, 60}}].

all() -> [{group, asgi}, {group, wsgi}, {group, asgi_python}, {group, wsgi_python}].

groups() ->
    Cases = [same_as_server, cookies_verbatim, head_content_length, app_content_length,
             error_after_start, percent_path, client_gone, request_timeout, upload,
             connection_details, max_body],
    [{G, [], Cases} || G <- [asgi, wsgi, asgi_python, wsgi_python]].

init_per_suite(Config) ->
    case code:which(cowboy_req) of
        non_existing ->
            {skip, "cowboy is not on the code path (cowboy_req non_existing): "
                   "py_web_cowboy is compiled but not exercised"};
        _ ->
            {ok, _} = application:ensure_all_started(cowboy),
            {ok, _} = application:ensure_all_started(py_web),
            ok = py_web_ct:quiet(),
            Config
    end.

end_per_suite(_) -> ok.

init_per_group(G, Config) -> ?H:init_group(G, Config).

end_per_group(G, _Config) -> ?H:end_group(G).

init_per_testcase(_, Config) -> ?H:init_case(Config).

end_per_testcase(_, _Config) ->
    _ = [cowboy:stop_listener(Ref) || {{py_web_cowboy_SUITE, _} = Ref, _} <- ranch:info()],
    ?H:end_case().

%%--------------------------------------------------------------------

%% A Cowboy listener routing everything to py_web_cowboy; its port.
cowboy(Config) -> cowboy(Config, #{}).

cowboy(Config, Extra) ->
    Opts = maps:merge((?H:backends(Config))#{app => ?H:app(Config),
                                             interface => ?config(interface, Config)},
                      Extra),
    Dispatch = cowboy_router:compile([{'_', [{"/[...]", py_web_cowboy, Opts}]}]),
    Name = {py_web_cowboy_SUITE, make_ref()},
    {ok, _} = cowboy:start_clear(Name, [{port, 0}], #{env => #{dispatch => Dispatch}}),
    ranch:get_port(Name).

%%--------------------------------------------------------------------

%% Every request: the same answer from Cowboy as from the embedded server.
same_as_server(Config) ->
    Server = ?H:server(Config),
    Cowboy = cowboy(Config),
    Diffs = [{Name, {server, S}, {cowboy, C}}
             || {Name, Req, Opts} <- ?H:requests(),
                S <- [?H:normal(?H:ask(Server, Req, Opts))],
                C <- [?H:normal(?H:ask(Cowboy, Req, Opts))],
                S =/= C],
    ?assertEqual([], Diffs).

%% Set-Cookie values reach the client as the app wrote them (Cowboy's
%% cookie API refuses a quoted value with a space and drops Expires).
cookies_verbatim(Config) ->
    Port = cowboy(Config),
    #{status := 200, headers := Hs} = ?H:ask(Port, http_get("/cookies2")),
    [<<"msg=\"hello world\"; Path=/; SameSite=lax">>,
     <<"c=3; Expires=Wed, 01 Jan 2031 00:00:00 GMT; HttpOnly; Path=/">>] =
        py_web_tc:headers(<<"set-cookie">>, Hs),
    #{status := 200, headers := Hs2} = ?H:ask(Port, http_get("/cookies")),
    [<<"a=1; Path=/">>, <<"b=2; Path=/">>] = py_web_tc:headers(<<"set-cookie">>, Hs2).

%% HEAD gets the Content-Length the app gave (GET's), not the empty body's.
head_content_length(Config) ->
    Port = cowboy(Config),
    #{status := 200, headers := Hs} = ?H:ask(Port, req("HEAD", "/cl13"), #{head => true}),
    [<<"13">>] = py_web_tc:headers(<<"content-length">>, Hs),
    #{status := 200, headers := Hs2, body := <<"Hello, World!">>} = ?H:ask(Port, http_get("/cl13")),
    [<<"13">>] = py_web_tc:headers(<<"content-length">>, Hs2),
    %% the embedded server's answer to HEAD / (no app Content-Length)
    #{headers := Hs3} = ?H:ask(Port, req("HEAD", "/"), #{head => true}),
    #{headers := Hs4} = ?H:ask(?H:server(Config), req("HEAD", "/"), #{head => true}),
    ?assertEqual(py_web_tc:header(<<"content-length">>, Hs4),
                 py_web_tc:header(<<"content-length">>, Hs3)).

%% The app's Content-Length is the framing (WSGI as well: not chunked).
app_content_length(Config) ->
    Port = cowboy(Config),
    [begin
         #{status := 200, headers := Hs, body := Body} = ?H:ask(Port, http_get(Path)),
         [<<"5">>] = py_web_tc:headers(<<"content-length">>, Hs),
         undefined = py_web_tc:header(<<"transfer-encoding">>, Hs),
         <<"hello">> = Body
     end || Path <- ["/cl1", "/cl"]].

%% An app error after the response started: the client must not see a
%% complete response (no final chunk).
error_after_start(Config) ->
    Port = cowboy(Config),
    #{incomplete := true} = ?H:ask(Port, http_get("/error_after_start")).

%% The path reaches the app percent-decoded exactly once.
percent_path(Config) ->
    Port = cowboy(Config),
    ok = ?H:decoded_once(?config(interface, Config),
                         ?H:scope(Port, http_get("/scope/a%2541/%252e%252e/x?q=%41"))).

%% The client leaves during a streamed response: the app is told.
client_gone(Config) ->
    ?H:observe(),
    Port = cowboy(Config),
    S = py_web_tc:connect(Port),
    py_web_tc:send(S, http_get("/wait_disconnect")),
    {ok, 200, _, <<>>} = py_web_tc:recv(S, #{head => true}),
    gen_tcp:close(S),
    ?H:event(Config, disconnected, <<"/wait_disconnect">>).

%% No response within request_timeout: 504, and the app is told.
request_timeout(Config) ->
    ?H:observe(),
    Port = cowboy(Config, #{request_timeout => 300}),
    #{status := 504} = ?H:ask(Port, http_get("/hang")),
    ?H:event(Config, disconnected, <<"/hang">>).

%% A 3 MB upload reaches the app whole (read from Cowboy as the app asks).
upload(Config) ->
    Port = cowboy(Config),
    Body = crypto:strong_rand_bytes(3 * 1024 * 1024),
    #{status := 200, body := Body} = ?H:ask(Port, req("POST", "/echo", [], Body)).

%% Client and server addresses, scheme and version are the connection's.
connection_details(Config) ->
    Port = cowboy(Config),
    ok = ?H:connection_details(?config(interface, Config),
                               ?H:scope(Port, <<"GET /scope HTTP/1.0\r\n\r\n">>), Port).

%% A body over max_body: 413, before the app runs.
max_body(Config) ->
    Port = cowboy(Config, #{max_body => 10}),
    #{status := 413, kept := false} = ?H:ask(Port, req("POST", "/echo", [], <<"01234567890">>)),
    #{status := 200, body := <<"0123456789">>} =
        ?H:ask(Port, req("POST", "/echo", [], <<"0123456789">>)).

http_get(Path) -> iolist_to_binary(py_web_tc:req("GET", Path, [], <<>>)).

req(Method, Path) -> req(Method, Path, [], <<>>).

req(Method, Path, Headers, Body) -> iolist_to_binary(py_web_tc:req(Method, Path, Headers, Body)).
