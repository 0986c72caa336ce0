%% Test double for py_wsgi (streaming API); see py_web_fake.
-module(py_web_fake_wsgi).
-compile(nowarn_missing_spec).
-export([start/4, ack/2, send_body/3, disconnect/1,
         lifespan_startup/3, lifespan_shutdown/1]).

start(M, C, Env, Opts) -> py_web_fake:start(wsgi, M, C, Env, Opts).
ack(S, N) -> py_web_fake:ack(S, N).
send_body(S, Chunk, More) -> py_web_fake:send_body(S, Chunk, More).
disconnect(S) -> py_web_fake:disconnect(S).
lifespan_startup(M, C, Opts) -> py_web_fake:lifespan_startup(M, C, Opts).
lifespan_shutdown(L) -> py_web_fake:lifespan_shutdown(L).
