/* Python types for Erlang terms that have no Python equivalent, made per interpreter
 * from these specs (core/state.h):
 *
 *   _erlang.Atom   str subclass; an Erlang atom converts to it and back
 *   _erlang.Term   opaque Erlang term (pid, reference, port, fun): passes through Python
 *                  and converts back to the same term
 */
#ifndef PY_NIF_PYTERM_H
#define PY_NIF_PYTERM_H

#include "core/state.h"

#include <Python.h>
#include <erl_nif.h>

/* New reference to a Term wrapping a copy of `term`, or NULL with an exception set. */
PyObject *pyterm_new(py_state_t *st, ErlNifEnv *env, ERL_NIF_TERM term);

/* If `obj` is a Term, stores a copy of its term in `env` and returns 1; else 0. */
int pyterm_get(py_state_t *st, PyObject *obj, ErlNifEnv *env, ERL_NIF_TERM *out);

#endif
