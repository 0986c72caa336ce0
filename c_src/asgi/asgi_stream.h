/* The streaming ASGI API behind py_asgi:start/5 and friends.
 *
 * A stream is a job living on one worker's loop, running the runner's
 * stream_asgi(app, scope, Stream(emit, body, more_body)), or for a websocket scope
 * stream_websocket(app, scope, WebSocketStream(emit)).  Its owner (the process that
 * started it, monitored) receives {asgi, Stream, Event}:
 *   {start, Status, Headers}   {body, Chunk, More}   {trailers, Headers, More}
 *   need_body                  done                  {error, Reason}
 * and for a websocket:
 *   {accept, Subprotocol | undefined, Headers}   {send, text | binary, Data}
 *   {close, Code, Reason}      pause_reading      resume_reading
 *   (and {start, ...}, {body, ...} for a denial response)
 * and answers with send_body (request body chunks, when asked with need_body), ws_receive
 * (a websocket message), ack (bytes written, for backpressure), disconnect and
 * ws_disconnect.  Each of those is a follow-up job queued to the stream's worker, so
 * they reach the app in order. */
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
/* argv: Stream (websocket), text | binary, Data. */
ERL_NIF_TERM asgi_stream_ws_receive(ErlNifEnv *env, const ERL_NIF_TERM argv[]);
/* argv: Stream (websocket), Code, Reason. */
ERL_NIF_TERM asgi_stream_ws_disconnect(ErlNifEnv *env, const ERL_NIF_TERM argv[]);

#endif
