/* The `_erlang` built-in module: the Python-side view of the VM.
 *
 *   _erlang.Atom           str subclass; an Erlang atom converts to it and back
 *   _erlang.Term           opaque Erlang term (pid, reference, port, fun): passes through
 *                          Python and converts back to the same term
 *   _erlang.log(level, message)   writes to the Erlang logger (wsgi.errors uses it)
 *   _erlang.schedule_timer(delay_ms, callback) / cancel_timer(handle)
 *                          Erlang timers for erlang_asyncio.sleep (see timer.h)
 *
 * Registered with PyImport_AppendInittab before the interpreter starts. */
#ifndef PY_NIF_ERLMOD_H
#define PY_NIF_ERLMOD_H

#include <Python.h>
#include <erl_nif.h>

/* Registers the module; call before Py_Initialize. Returns 0 or -1. */
int erlmod_register(void);

/* New reference to a Term wrapping a copy of `term`, or NULL with an exception set. */
PyObject *erlmod_term_new(ErlNifEnv *env, ERL_NIF_TERM term);

/* If `obj` is a Term, stores a copy of its term in `env` and returns 1; else returns 0. */
int erlmod_term_get(PyObject *obj, ErlNifEnv *env, ERL_NIF_TERM *out);

#endif
