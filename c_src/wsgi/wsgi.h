/* The WSGI path behind py_wsgi: environ map -> dict with interned keys and native (latin-1)
 * strings, the runner's run_wsgi(app, environ), and (status, headers, body) read straight
 * into Erlang terms. */
#ifndef PY_NIF_WSGI_H
#define PY_NIF_WSGI_H

#include <Python.h>
#include <erl_nif.h>
#include <stdint.h>

#include "core/state.h"
#include "exec/job.h"

/* Builds the key and value lookup tables; at NIF load, before any call (no Python). */
void wsgi_load(void);

/* Scheduler side, no Python: checks argv = [Module, Callable, Runner, Environ] (wsgi.input
 * required only when need_input) and returns a job for `run` carrying all of it, read into
 * C so that the worker touches no Erlang term but wsgi.input and non-binary values.
 * `entry` is the runner's function (run_wsgi, stream_wsgi).  Returns NULL with *err the
 * term to return: {error, {bad_environ, Key}}, {error, {badarg, _}}, or an enomem
 * exception. */
job_t *wsgi_job_new(ErlNifEnv *env, job_run_fn run, ERL_NIF_TERM tag, const ERL_NIF_TERM argv[4],
                    const char *entry, int need_input, ERL_NIF_TERM *err);

/* Worker side, GIL held, for a job made by wsgi_job_new: new references to the app, the
 * runner's entry function and the environ dict (`input`, when not NULL, is the
 * wsgi.input stream to use if the map has none).  Returns 0, or -1 with *why the error
 * reason, built in the job's env (the Python exception taken). */
int wsgi_job_prepare(py_state_t *st, job_t *job, PyObject *input, PyObject **app, PyObject **fn, PyObject **environ,
                     ERL_NIF_TERM *why);

/* 1 when the job's runner is hornbeam_wsgi_runner and the native_runner option is on:
 * the runner's protocol then runs in C (wsgi_native.h). */
int wsgi_job_native(job_t *job);

/* Scheduler side, no Python: the environ checks of wsgi_job_new alone, for the processes
 * mode (py_port), which sends the map to a worker process instead.  Returns ok or
 * {error, {bad_environ, Key}}. */
ERL_NIF_TERM wsgi_check_environ(ErlNifEnv *env, ERL_NIF_TERM environ, int need_input);

/* [(str, str)] -> [{Name, Value}] latin-1 binaries; *ok 0 with a {bad_response, _} reason
 * returned otherwise. */
ERL_NIF_TERM wsgi_headers_term(ErlNifEnv *env, PyObject *headers, int *ok);

/* argv: Module, Callable, Runner, Environ.  Validates the environ on the calling scheduler
 * (no Python) and queues the call.  Returns {ok, Job} | {error, {bad_environ, Key}} |
 * {error, not_started}; the reply {Tag, {ok, {Status, Headers, Body}} | {error, R}}
 * follows as a message. */
ERL_NIF_TERM wsgi_submit(ErlNifEnv *env, ERL_NIF_TERM tag, uint64_t timeout_ms, const ERL_NIF_TERM argv[]);

#endif
