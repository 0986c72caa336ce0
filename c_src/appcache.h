/* Resolution of (module, callable, runner) to the app object and the runner's entry
 * function, cached per interpreter so that the hot path does no import and no attribute
 * lookup.  The cache holds several entries, so alternating apps each stay cached.
 * GIL held for every call. */
#ifndef PY_NIF_APPCACHE_H
#define PY_NIF_APPCACHE_H

#include <Python.h>
#include <erl_nif.h>

/* Stores new references to the app and to runner.<entry> in *app and *fn and returns 0;
 * or returns -1 with *err an error reason built in env:
 *   {python, ...}            importing or resolving raised
 *   {bad_runner, Message}    the runner module has no callable `entry`
 * module, callable, runner: atoms or binaries (validated by the caller).  callable may be
 * dotted ("app.wsgi_app").  With the app_cache option off, resolves every time. */
int appcache_resolve(ErlNifEnv *env, ERL_NIF_TERM module, ERL_NIF_TERM callable,
                     ERL_NIF_TERM runner, const char *entry, PyObject **app, PyObject **fn,
                     ERL_NIF_TERM *err);

/* Scheduler side: names[0..2] (module, callable, runner) must be atoms or binaries.
 * Returns 0, or an {error, {badarg, Name}} term. */
ERL_NIF_TERM appcache_check_names(ErlNifEnv *env, const ERL_NIF_TERM names[3]);

/* 1 if `runner` (atom or binary) names the module `name`.  No GIL needed. */
int appcache_is_runner(ErlNifEnv *env, ERL_NIF_TERM runner, const char *name);

#endif
