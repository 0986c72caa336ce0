/* Python references dropped from threads that may not hold the GIL (resource destructors
 * run wherever the Erlang GC runs them).  release_later queues the reference; a worker
 * drops the queued ones under the GIL at its next wake-up. */
#ifndef PY_NIF_RELEASE_H
#define PY_NIF_RELEASE_H

#include <Python.h>

/* Any thread, GIL not needed.  Steals the reference. */
void release_later(PyObject *obj);

/* GIL held.  Drops every queued reference. */
void release_pending(void);

#endif
