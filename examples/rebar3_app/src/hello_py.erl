%% What runs where, and a check that everything answers.
-module(hello_py).

-export([urls/0, check/0]).

%% The base URLs of the two servers.
urls() ->
    #{asgi => url(hello_py_asgi), wsgi => url(hello_py_wsgi)}.

%% A Python call and one HTTP request to each server.
check() ->
    #{asgi := Asgi, wsgi := Wsgi} = urls(),
    #{call => py:call(hello_app, greet, [<<"Erlang">>]),
      asgi => http_get(Asgi ++ "/"),
      wsgi => http_get(Wsgi ++ "/")}.

url(Server) ->
    "http://127.0.0.1:" ++ integer_to_list(py_web:port(Server)).

http_get(Url) ->
    case httpc:request(get, {Url, []}, [{timeout, 10000}], [{body_format, binary}]) of
        {ok, {{_, Status, _}, _Headers, Body}} -> {Status, Body};
        {error, _} = Error -> Error
    end.
