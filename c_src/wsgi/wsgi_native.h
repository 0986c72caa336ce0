/* The default runner's buffered WSGI protocol in C.
 *
 * For py_wsgi:run with hornbeam_wsgi_runner (the default), the NIF runs the app with a C
 * start_response/write pair and iterates the body itself (write(), close() in every case,
 * wsgi.file_wrapper), with the runner's behaviour.  The rules are the runner's: C takes
 * only the common valid case as it is (a first start_response without exc_info whose
 * status and headers are in the runner's caches of values found valid; a non-empty bytes
 * chunk after start_response) and calls the runner's start_response_rules, write_rules
 * and finish_rules for everything else, so that the checks and their errors live in one
 * place.  Streams (py_wsgi:start/4) get the same with their emit (wsgi_native_stream).
 * Custom runners, streams with a body file and the native_runner option switched off go
 * through the Python runner. */
#ifndef PY_NIF_WSGI_NATIVE_H
#define PY_NIF_WSGI_NATIVE_H

#include "core/state.h"

#include <Python.h>

/* (status, headers, body_chunks) for app(environ, start_response), or NULL with the
 * exception set.  GIL held; the runner's rules loaded (state_load_wsgi_runner). */
PyObject *wsgi_native_run(py_state_t *st, PyObject *app, PyObject *environ);

/* The runner's stream_wsgi(app, environ, emit) for an environ without a body file:
 * emit("start", status, headers) just before the first non-empty chunk (or at the end
 * for an empty body), emit("body", chunk) for each.  Returns 0, or -1 with the exception
 * set.  GIL held; the runner's rules loaded. */
int wsgi_native_stream(py_state_t *st, PyObject *app, PyObject *environ, PyObject *emit);

#endif
