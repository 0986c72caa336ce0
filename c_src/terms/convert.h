/* Generic term <-> Python conversion (the py:call path).  The table is docs/types.md.
 * All functions need the GIL of the interpreter whose state `st` is. */
#ifndef PY_NIF_CONVERT_H
#define PY_NIF_CONVERT_H

#include "core/state.h"

#include <Python.h>
#include <erl_nif.h>

/* Nesting deeper than this is refused both ways (C stack safety). */
#define CONVERT_MAX_DEPTH 2000

/* Erlang -> Python.  Returns a new reference.  On failure returns NULL and either sets
 * *badarg to a reason term built in `env` (no Python exception set), or leaves *badarg at 0
 * with a Python exception set (memory errors and the like). */
PyObject *convert_to_py(py_state_t *st, ErlNifEnv *env, ERL_NIF_TERM term, ERL_NIF_TERM *badarg);

/* Python -> Erlang.  Returns 1 and stores the term in *out, or 0 and stores an error
 * reason in *out ({unconvertible, TypeName}, too_deep, or a {python, ...} tuple when a
 * Python exception was raised during the conversion).  The error indicator is clear on
 * return. */
int convert_from_py(py_state_t *st, ErlNifEnv *env, PyObject *obj, ERL_NIF_TERM *out);

/* Erlang binary or atom -> new str reference (UTF-8 / atom text), NULL if neither. */
PyObject *convert_name(ErlNifEnv *env, ERL_NIF_TERM term);

/* bytes -> a new Erlang binary (one copy). */
ERL_NIF_TERM convert_bytes(ErlNifEnv *env, const char *data, size_t len);

#endif
