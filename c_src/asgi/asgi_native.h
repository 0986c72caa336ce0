/* The default runner's buffered ASGI protocol in C.
 *
 * For py_asgi:run with hornbeam_asgi_runner (the default), the NIF calls the app itself
 * with receive/send of an exchange object: receive() gives the request body, then waits
 * for the end of the response; send() checks each message and keeps the response.  The
 * states, checks and error messages are those of hornbeam_asgi_runner.Stream: cases off
 * the common path call the runner's own validators (_status, _headers, _header, _body,
 * _flag, _message_type), so errors read the same on both paths.  Custom runners, streams
 * and the native_runner option switched off go through the Python runner. */
#ifndef PY_NIF_ASGI_NATIVE_H
#define PY_NIF_ASGI_NATIVE_H

#include <Python.h>
#include <erl_nif.h>

/* Imports what the exchange needs from hornbeam_asgi_runner.  GIL held.  Returns 0, or
 * -1 with an exception set. */
int asgi_native_init(void);

/* A new exchange for one request (scope dict, body bytes).  GIL held. */
PyObject *asgi_native_exchange(PyObject *scope, PyObject *body);

/* app(scope, exchange.receive, exchange.send) as a coroutine.  GIL held. */
PyObject *asgi_native_call(PyObject *app, PyObject *scope, PyObject *exchange);

/* After the app returned: {Status, Headers, Body} with *ok set, or an error reason
 * ({python, ...} for a protocol error, {bad_response, _}).  GIL held. */
ERL_NIF_TERM asgi_native_result(ErlNifEnv *env, PyObject *exchange, int *ok);

#endif
