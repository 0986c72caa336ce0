-module(vg_smoke).
-export([main/1]).
main(Dir) ->
    application:load(erlang_python),
    application:set_env(erlang_python, python_path, [Dir]),
    application:set_env(erlang_python, workers, 2),
    {ok, _} = application:ensure_all_started(erlang_python),
    {ok, 4.0} = py:call(math, sqrt, [16.0]),
    {error, {python, _, _, _}} = py:call(math, sqrt, [-1.0]),
    {error, timeout} = py:call(time, sleep, [0.5], #{timeout => 50}),
    {ok, _} = py:call(json, loads, [<<"{\"a\": [1, 2.5, null]}">>]),
    E = #{<<"REQUEST_METHOD">> => <<"GET">>, <<"SCRIPT_NAME">> => <<>>, <<"PATH_INFO">> => <<"/">>,
          <<"SERVER_NAME">> => <<"h">>, <<"SERVER_PORT">> => <<"80">>, <<"SERVER_PROTOCOL">> => <<"HTTP/1.1">>,
          <<"wsgi.url_scheme">> => <<"http">>, <<"wsgi.input">> => <<"x">>},
    {ok, {_, _, _}} = py_wsgi:run(vg_apps, wsgi, E),
    {ok, {200, _, _}} = py_asgi:run(vg_apps, asgi, #{type => <<"http">>, path => <<"/a%20b">>}, <<"body">>),
    {ok, St} = py_asgi:start(vg_apps, asgi, #{type => <<"http">>, path => <<"/">>}, #{}),
    receive {asgi, St, done} -> ok end,
    application:stop(erlang_python),
    io:format("VG_SMOKE_OK~n"),
    halt().
