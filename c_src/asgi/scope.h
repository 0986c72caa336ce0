/* ASGI scope: Erlang map (atom keys) -> Python dict with the types of the ASGI spec
 * (HTTP spec_version 2.4): str path (percent-decoded UTF-8), bytes raw_path, query_string
 * and headers (names lower-cased), (host, port) tuples.  Also the scope templates behind
 * py_asgi:build_scope/1,2. */
#ifndef PY_NIF_SCOPE_H
#define PY_NIF_SCOPE_H

#include "core/state.h"

#include <Python.h>
#include <erl_nif.h>

/* The C-side key and value tables; at NIF load, after atoms_init. */
void scope_load(void);
int scope_resource_init(ErlNifEnv *env);

/* Scheduler side, no Python: checks a scope map.  Returns 0, or -1 with *bad the
 * offending field (an atom key, or the scope itself when it is not a map). */
int scope_validate(ErlNifEnv *env, ERL_NIF_TERM scope, ERL_NIF_TERM *bad);

/* For build_scope: validates and wraps a copy of the map in a template resource.
 * Returns {ok, Ref} or {error, {bad_scope, Field}}. */
ERL_NIF_TERM scope_template_new(ErlNifEnv *env, ERL_NIF_TERM scope);

/* 1 if term is a template made by scope_template_new. */
int scope_is_template(ErlNifEnv *env, ERL_NIF_TERM term);

/* Worker side, GIL of `st`'s interpreter held: a new scope dict for one request from a map
 * or a template (a template gives a copy of everything mutable: the dict, headers, state,
 * asgi, extensions).  A `state` that is a lifespan reference gives a shallow copy of the
 * state of that lifespan in this interpreter ({state, Ref} as *badarg when it has none
 * here).  Returns a new reference, or NULL with a Python exception set or *badarg set to
 * a reason. */
PyObject *scope_build(py_state_t *st, ErlNifEnv *env, ERL_NIF_TERM scope, ERL_NIF_TERM *badarg);

#endif
