/* Resolution of (module, callable, runner) to the app object and the runner's entry
 * function, cached per interpreter so that the hot path does no import and no attribute
 * lookup.  The cache holds several entries, so alternating apps each stay cached.  Each
 * interpreter has its own (an app object belongs to the interpreter that imported it).
 * GIL of `st`'s interpreter held for every call taking `st`. */
#ifndef PY_NIF_APPCACHE_H
#define PY_NIF_APPCACHE_H

#include "core/state.h"

#include <Python.h>
#include <erl_nif.h>

/* appcache_key_t (module \0 callable \0 runner \0 entry \0, `len` bytes in all) and the
 * entries live in the interpreter's state (core/state.h). */

/* Stores new references to the app and to runner.<entry> in *app and *fn and returns 0;
 * or returns -1 with *err an error reason built in env:
 *   {python, ...}            importing or resolving raised
 *   {bad_runner, Message}    the runner module has no callable `entry`
 * module, callable, runner: atoms or binaries (validated by the caller).  callable may be
 * dotted ("app.wsgi_app").  With the app_cache option off, resolves every time. */
int appcache_resolve(py_state_t *st, ErlNifEnv *env, ERL_NIF_TERM module, ERL_NIF_TERM callable,
                     ERL_NIF_TERM runner, const char *entry, PyObject **app, PyObject **fn,
                     ERL_NIF_TERM *err);

/* Scheduler side, no GIL: the key of (names[0], names[1], names[2], entry), so that the
 * worker only compares bytes.  Returns 0, or an {error, {badarg, {Which, Name}}} term,
 * Which the atom module, callable or runner: a name that is neither atom nor binary,
 * holds a NUL byte, or makes the names longer than APPCACHE_KEY_MAX together. */
ERL_NIF_TERM appcache_key(ErlNifEnv *env, const ERL_NIF_TERM names[3], const char *entry,
                          appcache_key_t *key);

/* appcache_resolve for a key made by appcache_key. */
int appcache_get(py_state_t *st, ErlNifEnv *env, const appcache_key_t *key, PyObject **app, PyObject **fn,
                 ERL_NIF_TERM *err);

/* Scheduler side: names[0..2] (module, callable, runner) must be atoms or binaries.
 * Returns 0, or an {error, {badarg, {module | callable | runner, Name}}} term. */
ERL_NIF_TERM appcache_check_names(ErlNifEnv *env, const ERL_NIF_TERM names[3]);

/* 1 if `runner` (atom or binary) names the module `name`.  No GIL needed. */
int appcache_is_runner(ErlNifEnv *env, ERL_NIF_TERM runner, const char *name);

#endif
