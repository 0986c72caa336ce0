%% End-to-end suite of py_web_elli against the py_web_fake backends.
%% Cowboy and Elli cannot be installed on these machines (no hex.pm, not
%% in Debian): when elli_request is not on the code path every case is SKIPPED
%% (reported as such by Common Test), never passed.
-module(py_web_elli_SUITE).
-compile(nowarn_missing_spec).
-compile([export_all, nowarn_export_all]).

all() -> [hello, cookies, streaming].

init_per_suite(Config) ->
    case code:which(elli_request) of
        non_existing ->
            {skip, "elli is not on the code path (elli_request non_existing): "
                   "py_web_elli is compiled but not exercised"};
        _ ->
            {ok, _} = application:ensure_all_started(elli),
            {ok, _} = application:ensure_all_started(inets),
            Config
    end.

end_per_suite(_) -> ok.

start(Interface) ->
    {ok, P} = elli:start_link([{callback, py_web_elli},
                               {callback_args,
                                #{app => {<<"fake">>, <<"app">>}, interface => Interface,
                                  backend => case Interface of
                                                 asgi -> py_web_fake_asgi;
                                                 wsgi -> py_web_fake_wsgi
                                             end}},
                               {port, 18765}]),
    P.

http_get(Path) ->
    {ok, {{_, Code, _}, Hs, Body}} =
        httpc:request(get, {"http://127.0.0.1:18765" ++ Path, []}, [], [{body_format, binary}]),
    {Code, Hs, Body}.

hello(_) ->
    [begin
         P = start(I),
         {200, _, <<"Hello, World!">>} = http_get("/"),
         elli:stop(P)
     end || I <- [asgi, wsgi]].

cookies(_) ->
    P = start(asgi),
    {200, Hs, _} = http_get("/cookies"),
    ["a=1; Path=/", "b=2; Path=/"] = [V || {"set-cookie", V} <- Hs],
    elli:stop(P).

streaming(_) ->
    P = start(asgi),
    {200, _, <<"chunk 1\nchunk 2\nchunk 3\n">>} = http_get("/stream?n=3"),
    elli:stop(P).
