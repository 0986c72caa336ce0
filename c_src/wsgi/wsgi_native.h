/* The default runner's buffered WSGI protocol in C.
 *
 * For py_wsgi:run with hornbeam_wsgi_runner (the default), the NIF runs the app with a C
 * start_response/write pair and iterates the body itself, with the semantics of
 * hornbeam_wsgi_runner.default_wsgi_handler (exc_info, write(), close() in every case,
 * wsgi.file_wrapper) and its validators (_check_status, _check_headers), so errors read
 * the same.  Custom runners, streams and the native_runner option switched off go through
 * the Python runner. */
#ifndef PY_NIF_WSGI_NATIVE_H
#define PY_NIF_WSGI_NATIVE_H

#include <Python.h>

/* Imports what it needs from hornbeam_wsgi_runner.  GIL held.  Returns 0, or -1 with an
 * exception set. */
int wsgi_native_init(void);

/* (status, headers, body_chunks) for app(environ, start_response), or NULL with the
 * exception set.  GIL held. */
PyObject *wsgi_native_run(PyObject *app, PyObject *environ);

#endif
