/* ASGI lifespan behind py_asgi:lifespan_startup/3 and lifespan_shutdown/1: the runner's
 * Lifespan(app) driven on one worker's loop; its state dict is shallow-copied into the
 * scope of every request that passes the lifespan reference as `state`. */
#ifndef PY_NIF_LIFESPAN_H
#define PY_NIF_LIFESPAN_H

#include "core/state.h"

#include <Python.h>
#include <erl_nif.h>
#include <stdint.h>

int lifespan_resource_init(ErlNifEnv *env);

/* argv: Module, Callable, Runner.  {ok, Job}; the reply {Tag, {ok, Lifespan} |
 * {error, unsupported} | {error, Reason}} follows. */
ERL_NIF_TERM lifespan_startup(ErlNifEnv *env, ERL_NIF_TERM tag, uint64_t timeout_ms, const ERL_NIF_TERM argv[]);

/* argv: Lifespan.  {ok, Job}; the reply {Tag, ok | {error, Reason}} follows. */
ERL_NIF_TERM lifespan_shutdown(ErlNifEnv *env, ERL_NIF_TERM tag, uint64_t timeout_ms, const ERL_NIF_TERM argv[]);

/* 1 if term is a lifespan reference (no GIL needed). */
int lifespan_is_ref(ErlNifEnv *env, ERL_NIF_TERM term);

/* The state dict of a lifespan reference in `st`'s interpreter (borrowed; its GIL held),
 * or NULL if `term` is not one or has no state there. */
PyObject *lifespan_state(py_state_t *st, ErlNifEnv *env, ERL_NIF_TERM term);

#endif
