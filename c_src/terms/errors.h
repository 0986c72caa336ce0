/* Python exceptions as Erlang terms. */
#ifndef PY_NIF_ERRORS_H
#define PY_NIF_ERRORS_H

#include "core/state.h"

#include <Python.h>
#include <erl_nif.h>

/* Takes the current Python exception (clearing it) and returns
 * {python, Type, Message, Traceback}: Type the qualified class name (binary; builtins
 * unqualified), Message str(exc) (binary), Traceback a list of binaries, one per line of
 * traceback.format_exception.  Must be called with an exception set and the GIL of the
 * interpreter whose state is `st` held. */
ERL_NIF_TERM errors_take(py_state_t *st, ErlNifEnv *env);

/* The same for an exception object (does not touch the error indicator's state). */
ERL_NIF_TERM errors_from_exception(py_state_t *st, ErlNifEnv *env, PyObject *exc);

/* {error, Reason} */
ERL_NIF_TERM errors_tuple(ErlNifEnv *env, ERL_NIF_TERM reason);

/* A binary copy of a str (UTF-8, surrogates escaped) or, for other objects, of str(obj). */
ERL_NIF_TERM errors_text(ErlNifEnv *env, PyObject *obj);

#endif
