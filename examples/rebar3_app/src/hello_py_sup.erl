%% Two py_web servers: the ASGI app and the WSGI app of priv/py/hello_app.py.
-module(hello_py_sup).
-behaviour(supervisor).

-export([start_link/0, init/1]).

start_link() ->
    supervisor:start_link({local, ?MODULE}, ?MODULE, []).

init([]) ->
    {ok, AsgiPort} = application:get_env(hello_py, asgi_port),
    {ok, WsgiPort} = application:get_env(hello_py, wsgi_port),
    Asgi = py_web:child_spec(#{app => <<"hello_app:app">>, interface => asgi,
                               lifespan => off, port => AsgiPort, name => hello_py_asgi}),
    Wsgi = py_web:child_spec(#{app => <<"hello_app:wsgi_app">>, interface => wsgi,
                               port => WsgiPort, name => hello_py_wsgi}),
    {ok, {#{strategy => one_for_one}, [Asgi, Wsgi]}}.
