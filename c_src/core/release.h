/* Python references dropped from threads that may not hold their interpreter's GIL
 * (resource destructors run wherever the Erlang GC runs them).  release_later queues the
 * reference on its interpreter; a worker of that interpreter drops the queued ones under
 * the GIL at its next wake-up (and when it attaches). */
#ifndef PY_NIF_RELEASE_H
#define PY_NIF_RELEASE_H

#include "core/interp.h"

#include <Python.h>

/* Any thread, no GIL needed.  Steals the reference, which belongs to `ip`. */
void release_later(interp_t *ip, PyObject *obj);

/* GIL of `ip` held.  Drops every reference queued on it. */
void release_pending(interp_t *ip);

#endif
