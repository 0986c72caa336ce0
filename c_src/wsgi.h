/* The WSGI path behind py_wsgi: environ map -> dict with interned keys and native (latin-1)
 * strings, the runner's run_wsgi(app, environ), and (status, headers, body) read straight
 * into Erlang terms. */
#ifndef PY_NIF_WSGI_H
#define PY_NIF_WSGI_H

#include <Python.h>
#include <erl_nif.h>

/* Interned keys and cached values; GIL held, once. Returns 0 or -1 with an exception. */
int wsgi_init(void);

/* Scheduler side, no Python: checks an environ map (wsgi.input required only when
 * need_input).  Returns 0, or -1 with *bad the offending key. */
int wsgi_validate_environ(ErlNifEnv *env, ERL_NIF_TERM environ, int need_input, ERL_NIF_TERM *bad);

/* Worker side: the environ dict for a validated map; `input`, when not NULL, is the
 * wsgi.input stream to use if the map has none.  Returns a new reference, or NULL with a
 * Python exception set or *badarg set. */
PyObject *wsgi_build_environ(ErlNifEnv *env, ERL_NIF_TERM environ, PyObject *input,
                             ERL_NIF_TERM *badarg);

/* [(str, str)] -> [{Name, Value}] latin-1 binaries; *ok 0 with a {bad_response, _} reason
 * returned otherwise. */
ERL_NIF_TERM wsgi_headers_term(ErlNifEnv *env, PyObject *headers, int *ok);

/* argv: Module, Callable, Runner, Environ.  Validates the environ on the calling scheduler
 * (no Python) and queues the call.  Returns {ok, Job} | {error, {bad_environ, Key}} |
 * {error, not_started}; the reply {Tag, {ok, {Status, Headers, Body}} | {error, R}}
 * follows as a message. */
ERL_NIF_TERM wsgi_submit(ErlNifEnv *env, ERL_NIF_TERM tag, const ERL_NIF_TERM argv[]);

#endif
