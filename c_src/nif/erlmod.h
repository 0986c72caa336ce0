/* The `_erlang` built-in module: the Python-side view of the VM, one instance per
 * interpreter (multi-phase init; its module state is the interpreter's state,
 * core/state.h).
 *
 *   _erlang.Atom, _erlang.Term       see terms/pyterm.h
 *   _erlang.log(level, message)      writes to the Erlang logger (wsgi.errors uses it)
 *   _erlang.schedule_timer(delay_ms, callback) / cancel_timer(handle)
 *                                    Erlang timers for erlang_asyncio.sleep (exec/timer.h)
 *
 * Declares support for sub-interpreters with their own GIL and, on 3.13+, that it does not
 * need the GIL (free-threaded builds). */
#ifndef PY_NIF_ERLMOD_H
#define PY_NIF_ERLMOD_H

#include <Python.h>

/* The module's init function (PyInit), registered before the interpreter starts. */
PyObject *erlmod_init(void);

#endif
