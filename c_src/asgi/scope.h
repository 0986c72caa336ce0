/* ASGI scope: Erlang map (atom keys) -> Python dict with the types of the ASGI spec
 * (HTTP and websocket spec_version 2.4): str path (percent-decoded UTF-8), bytes
 * raw_path, query_string and headers (names lower-cased), (host, port) tuples.  Also the
 * scope templates behind py_asgi:build_scope/1,2. */
#ifndef PY_NIF_SCOPE_H
#define PY_NIF_SCOPE_H

#include "core/state.h"

#include <Python.h>
#include <erl_nif.h>

/* The C-side key and value tables; at NIF load, after atoms_init. */
void scope_load(void);
int scope_resource_init(ErlNifEnv *env);

/* The kinds of scope the NIF tells apart, by `type': <<"websocket">> (ASGI websocket spec:
 * `subprotocols', no `method', scheme "ws" by default), anything else as HTTP. */
enum { SCOPE_HTTP, SCOPE_WEBSOCKET };

/* Scheduler side, no Python: checks a scope map, or takes a template as it is.  Returns
 * its kind, or -1 with *bad the offending field (an atom key, or the scope itself when
 * it is neither a map nor a template). */
int scope_check(ErlNifEnv *env, ERL_NIF_TERM scope, ERL_NIF_TERM *bad);

/* For build_scope: validates and wraps a copy of the map in a template resource.
 * Returns {ok, Ref} or {error, {bad_scope, Field}}. */
ERL_NIF_TERM scope_template_new(ErlNifEnv *env, ERL_NIF_TERM scope);

/* Worker side, GIL of `st`'s interpreter held: a new scope dict for one request from a map
 * or a template (a template gives a copy of everything mutable: the dict, headers, state,
 * asgi, extensions).  A `state` that is a lifespan reference gives a shallow copy of the
 * state of that lifespan in this interpreter ({state, Ref} as *badarg when it has none
 * here).  Returns a new reference, or NULL with a Python exception set or *badarg set to
 * a reason. */
PyObject *scope_build(py_state_t *st, ErlNifEnv *env, ERL_NIF_TERM scope, ERL_NIF_TERM *badarg);

#endif
