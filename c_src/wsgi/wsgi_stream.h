/* The streaming WSGI API behind py_wsgi:start/4 and friends.
 *
 * A stream runs the runner's stream_wsgi(app, environ, emit) on one worker thread (a
 * WSGI app occupies its thread).  wsgi.input reads the request body as the owner feeds
 * it: when the buffer runs dry the owner gets `need_body` and the app's thread waits,
 * GIL released, for send_body.  The owner (monitored) receives {wsgi, Stream, Event}:
 *   {start, Status, Headers}   {body, Chunk}   need_body   done   {error, Reason}
 * and acknowledges written bytes with ack: the app's write/yield blocks while more than
 * 1 MiB is unacknowledged.  After disconnect, reads and writes in the app raise
 * ConnectionResetError. */
#ifndef PY_NIF_WSGI_STREAM_H
#define PY_NIF_WSGI_STREAM_H

#include <erl_nif.h>

/* argv: Module, Callable, Runner, Environ, Body, MoreBody. */
ERL_NIF_TERM wsgi_stream_start(ErlNifEnv *env, const ERL_NIF_TERM argv[]);
/* argv: Stream, Chunk, MoreBody. */
ERL_NIF_TERM wsgi_stream_send_body(ErlNifEnv *env, const ERL_NIF_TERM argv[]);
/* argv: Stream, Bytes. */
ERL_NIF_TERM wsgi_stream_ack(ErlNifEnv *env, const ERL_NIF_TERM argv[]);
/* argv: Stream. */
ERL_NIF_TERM wsgi_stream_disconnect(ErlNifEnv *env, const ERL_NIF_TERM argv[]);

#endif
