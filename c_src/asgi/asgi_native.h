/* The default runner's buffered ASGI protocol in C.
 *
 * For py_asgi:run with hornbeam_asgi_runner (the default), the NIF calls the app itself
 * with receive/send of an exchange object: receive() gives the request body, then waits
 * for the end of the response (as the runner's Stream does); send() keeps the response.
 * The rules are the runner's: send() takes only the common valid messages as they are (a
 * start whose status is in the runner's VALID_STATUSES and whose headers are all in its
 * cache of pairs found valid, without trailers; a body with bytes and a bool or absent
 * more_body, without trailers) and hands every other message, with the exchange's state,
 * to the runner's send_rules, which checks it, raises the protocol error, or says what
 * to do; finish_rules decides an incomplete response.  The checks and their errors live in
 * one place.  Streams (py_asgi:start/4) whose request body is whole at the start get a
 * stream's exchange (asgi_native_stream) that sends the events as they come.  Custom
 * runners, streams fed body with send_body, scopes offering trailers, websockets and the
 * native_runner option switched off go through the Python runner. */
#ifndef PY_NIF_ASGI_NATIVE_H
#define PY_NIF_ASGI_NATIVE_H

#include "core/state.h"
#include "exec/job.h"

#include <Python.h>
#include <erl_nif.h>

/* All below: GIL of `st`'s interpreter held, the runner's rules loaded
 * (state_load_asgi_runner). */

/* A new exchange for one request (scope dict, body bytes). */
PyObject *asgi_native_exchange(py_state_t *st, PyObject *scope, PyObject *body);

/* The exchange of a stream (py_asgi:start/4) whose request body is whole: `body' is all
 * of it, and the response goes to the owner of `job' as it is sent ({start, ...} through
 * job_event_start, {body, Bytes, More}), with the runner Stream's window (HIGH_WATER) and
 * its ack()/disconnect() (feed() raises: there is no more body).  None when the scope
 * offers the trailers extension (the runner's Stream then serves it). */
PyObject *asgi_native_stream(py_state_t *st, PyObject *scope, PyObject *body, job_t *job);

/* After a stream's app returned: done, or {error, Reason} for an incomplete response
 * (finish_rules' error), unless the owner had disconnected. */
ERL_NIF_TERM asgi_native_finish(py_state_t *st, ErlNifEnv *env, PyObject *exchange);

/* app(scope, exchange.receive, exchange.send) as a coroutine. */
PyObject *asgi_native_call(py_state_t *st, PyObject *app, PyObject *scope, PyObject *exchange);

/* After the app returned: {Status, Headers, Body} with *ok set, or an error reason
 * ({python, ...} for a protocol error, {bad_response, _}). */
ERL_NIF_TERM asgi_native_result(py_state_t *st, ErlNifEnv *env, PyObject *exchange, int *ok);

#endif
