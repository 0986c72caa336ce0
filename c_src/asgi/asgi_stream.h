/* The streaming ASGI API behind py_asgi:start/5 and friends.
 *
 * A stream is a job living on one worker's loop, running the runner's
 * stream_asgi(app, scope, Stream(emit, body, more_body)).  Its owner (the process that
 * started it, monitored) receives {asgi, Stream, Event}:
 *   {start, Status, Headers}   {body, Chunk, More}   {trailers, Headers, More}
 *   need_body                  done                  {error, Reason}
 * and answers with send_body (request body chunks, when asked with need_body), ack (bytes
 * of response written, for backpressure) and disconnect.  Each of those is a follow-up
 * job queued to the stream's worker, so they reach the app in order. */
#ifndef PY_NIF_ASGI_STREAM_H
#define PY_NIF_ASGI_STREAM_H

#include <erl_nif.h>

/* argv: Module, Callable, Runner, Scope (map or template), Body, MoreBody. */
ERL_NIF_TERM asgi_stream_start(ErlNifEnv *env, const ERL_NIF_TERM argv[]);
/* argv: Stream, Chunk, MoreBody. */
ERL_NIF_TERM asgi_stream_send_body(ErlNifEnv *env, const ERL_NIF_TERM argv[]);
/* argv: Stream, Bytes. */
ERL_NIF_TERM asgi_stream_ack(ErlNifEnv *env, const ERL_NIF_TERM argv[]);
/* argv: Stream. */
ERL_NIF_TERM asgi_stream_disconnect(ErlNifEnv *env, const ERL_NIF_TERM argv[]);

#endif
