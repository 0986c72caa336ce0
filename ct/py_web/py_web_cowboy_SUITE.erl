%% End-to-end suite of py_web_cowboy against the py_web_fake backends.
%% Cowboy and Elli cannot be installed on these machines (no hex.pm, not
%% in Debian): when cowboy_req is not on the code path every case is SKIPPED
%% (reported as such by Common Test), never passed.
-module(py_web_cowboy_SUITE).
-compile(nowarn_missing_spec).
-compile([export_all, nowarn_export_all]).

all() -> [hello, cookies, streaming].

init_per_suite(Config) ->
    case code:which(cowboy_req) of
        non_existing ->
            {skip, "cowboy is not on the code path (cowboy_req non_existing): "
                   "py_web_cowboy is compiled but not exercised"};
        _ ->
            {ok, _} = application:ensure_all_started(cowboy),
            {ok, _} = application:ensure_all_started(inets),
            Config
    end.

end_per_suite(_) -> ok.

start(Name, Interface) ->
    Dispatch = cowboy_router:compile(
                 [{'_', [{"/[...]", py_web_cowboy,
                          #{app => {<<"fake">>, <<"app">>}, interface => Interface,
                            backend => case Interface of
                                           asgi -> py_web_fake_asgi;
                                           wsgi -> py_web_fake_wsgi
                                       end}}]}]),
    {ok, _} = cowboy:start_clear(Name, [{port, 0}], #{env => #{dispatch => Dispatch}}),
    ranch:get_port(Name).

http_get(Port, Path) ->
    {ok, {{_, Code, _}, Hs, Body}} =
        httpc:request(get, {"http://127.0.0.1:" ++ integer_to_list(Port) ++ Path, []},
                      [], [{body_format, binary}]),
    {Code, Hs, Body}.

hello(_) ->
    [begin
         Port = start({py_web_cowboy_hello, I}, I),
         {200, _, <<"Hello, World!">>} = http_get(Port, "/"),
         cowboy:stop_listener({py_web_cowboy_hello, I})
     end || I <- [asgi, wsgi]].

cookies(_) ->
    Port = start(py_web_cowboy_cookies, asgi),
    {200, Hs, _} = http_get(Port, "/cookies"),
    ["a=1; Path=/", "b=2; Path=/"] = lists:sort([V || {"set-cookie", V} <- Hs]),
    cowboy:stop_listener(py_web_cowboy_cookies).

streaming(_) ->
    Port = start(py_web_cowboy_stream, asgi),
    {200, _, <<"chunk 1\nchunk 2\nchunk 3\n">>} = http_get(Port, "/stream?n=3"),
    cowboy:stop_listener(py_web_cowboy_stream).
