/* The WSGI path behind py_wsgi: environ map -> dict with interned keys and native (latin-1)
 * strings, the runner's run_wsgi(app, environ), and (status, headers, body) read straight
 * into Erlang terms. */
#ifndef PY_NIF_WSGI_H
#define PY_NIF_WSGI_H

#include <Python.h>
#include <erl_nif.h>

/* Interned keys and cached values; GIL held, once. Returns 0 or -1 with an exception. */
int wsgi_init(void);

/* argv: Module, Callable, Runner, Environ.  Validates the environ on the calling scheduler
 * (no Python) and queues the call.  Returns {ok, Job} | {error, {bad_environ, Key}} |
 * {error, not_started}; the reply {Tag, {ok, {Status, Headers, Body}} | {error, R}}
 * follows as a message. */
ERL_NIF_TERM wsgi_submit(ErlNifEnv *env, ERL_NIF_TERM tag, const ERL_NIF_TERM argv[]);

#endif
