#include "asgi/asgi.h"

#include "asgi/asgi_native.h"
#include "asgi/scope.h"
#include "call/appcache.h"
#include "core/atoms.h"
#include "core/options.h"
#include "core/release.h"
#include "exec/pool.h"
#include "exec/task.h"
#include "terms/convert.h"
#include "terms/errors.h"
#include "terms/response.h"

#include <string.h>

enum { ARG_MODULE, ARG_CALLABLE, ARG_RUNNER, ARG_SCOPE, ARG_BODY, ASGI_ARGC };

/* (status, headers, body) -> {ok, {Status, Headers, Body}} */
static ERL_NIF_TERM
asgi_reply(py_state_t *st, job_t *job, PyObject *result)
{
    ErlNifEnv *env = job->env;
    if (result == NULL) {
        return errors_tuple(env, errors_take(st, env));
    }
    if (!option_on(OPT_DIRECT_RESPONSE)) {
        ERL_NIF_TERM term;
        if (!convert_from_py(st, env, result, &term)) {
            return errors_tuple(env, term);
        }
        return enif_make_tuple2(env, ATOM_ok, enif_make_tuple2(env, ATOM_generic, term));
    }
    if (!PyTuple_Check(result) || PyTuple_GET_SIZE(result) != 3) {
        return errors_tuple(env, response_error(env, "run_asgi must return (status, headers, body)"));
    }
    int overflow;
    long status = PyLong_Check(PyTuple_GET_ITEM(result, 0))
        ? PyLong_AsLongAndOverflow(PyTuple_GET_ITEM(result, 0), &overflow) : -1;
    if (status < 100 || status > 999) {
        PyErr_Clear();
        return errors_tuple(env, response_error(env, "status must be an int from 100 to 999"));
    }
    int ok;
    ERL_NIF_TERM headers = response_raw_headers(st, env, PyTuple_GET_ITEM(result, 1), &ok);
    if (!ok) {
        return errors_tuple(env, headers);
    }
    ERL_NIF_TERM body;
    if (response_body(st, env, PyTuple_GET_ITEM(result, 2), &body) < 0) {
        return errors_tuple(env, response_error(env, "body must be bytes or a list of bytes"));
    }
    return enif_make_tuple2(env, ATOM_ok,
                            enif_make_tuple3(env, enif_make_int(env, (int)status), headers, body));
}

/* ---- the default runner's protocol in C (asgi_native.c) ---------------------------- */

static void
release_exchange(job_t *job)
{
    release_later(job->ip, job->data);
}

static ERL_NIF_TERM
native_reply(py_state_t *st, job_t *job, PyObject *result)
{
    ErlNifEnv *env = job->env;
    PyObject *exchange = job->data;
    ERL_NIF_TERM reply;
    if (result == NULL) {
        reply = errors_tuple(env, errors_take(st, env));
    } else {
        int ok;
        ERL_NIF_TERM term = asgi_native_result(st, env, exchange, &ok);
        reply = ok ? enif_make_tuple2(env, ATOM_ok, term) : errors_tuple(env, term);
    }
    job->data = NULL;
    job->free_data = NULL;
    Py_DECREF(exchange);
    return reply;
}

/* Runs app(scope, receive, send) with the C exchange; returns 0, or -1 (nothing done). */
static void
native_run(job_t *job, worker_t *w, PyObject *app, PyObject *scope, PyObject *body)
{
    py_state_t *st = worker_state(w);
    PyObject *exchange = asgi_native_exchange(st, scope, body);
    PyObject *coro = exchange != NULL ? asgi_native_call(st, app, scope, exchange) : NULL;
    if (coro == NULL) {
        Py_XDECREF(exchange);
        job_reply(job, errors_tuple(job->env, errors_take(st, job->env)));
        return;
    }
    job->data = exchange;
    job->free_data = release_exchange;
    Py_XDECREF(task_await(w, job, coro, native_reply));
    Py_DECREF(coro);
}

static void
asgi_run(job_t *job, worker_t *w)
{
    py_state_t *st = worker_state(w);
    ErlNifEnv *env = job->env;
    PyObject *app = NULL, *fn = NULL, *scope = NULL, *body = NULL, *coro = NULL;
    ERL_NIF_TERM why = 0;

    if (appcache_resolve(st, env, job->argv[ARG_MODULE], job->argv[ARG_CALLABLE],
                         job->argv[ARG_RUNNER], "run_asgi", &app, &fn, &why) < 0) {
        job_reply(job, errors_tuple(env, why));
        return;
    }
    scope = scope_build(st, env, job->argv[ARG_SCOPE], &why);
    if (scope != NULL) {
        ErlNifBinary bin;
        enif_inspect_binary(env, job->argv[ARG_BODY], &bin);
        body = PyBytes_FromStringAndSize((const char *)bin.data, (Py_ssize_t)bin.size);
    }
    /* The default runner's protocol in C, unless switched off or its rules cannot be
     * loaded (the Python runner then reports the import error itself). */
    int native = body != NULL && option_on(OPT_NATIVE_RUNNER) &&
                 appcache_is_runner(env, job->argv[ARG_RUNNER], "hornbeam_asgi_runner");
    if (native && state_load_asgi_runner(st) < 0) {
        PyErr_Clear();
        native = 0;
    }
    if (native) {
        native_run(job, w, app, scope, body);
        goto out;
    }
    if (body != NULL) {
        coro = PyObject_CallFunctionObjArgs(fn, app, scope, body, NULL);
    }
    if (coro == NULL) {
        job_reply(job, why != 0 ? errors_tuple(env, enif_make_tuple2(env, ATOM_badarg, why))
                                : errors_tuple(env, errors_take(st, env)));
    } else if (!PyCoro_CheckExact(coro)) {
        job_reply(job, errors_tuple(env, enif_make_tuple2(env, ATOM_bad_runner,
            convert_bytes(env, "run_asgi must be an async function", 34))));
    } else {
        Py_XDECREF(task_await(w, job, coro, asgi_reply));
    }
out:
    Py_XDECREF(coro);
    Py_XDECREF(body);
    Py_XDECREF(scope);
    Py_DECREF(fn);
    Py_DECREF(app);
    PyErr_Clear();
}

ERL_NIF_TERM
asgi_submit(ErlNifEnv *env, ERL_NIF_TERM tag, uint64_t timeout_ms, const ERL_NIF_TERM argv[])
{
    ERL_NIF_TERM err = appcache_check_names(env, argv);
    if (err != 0) {
        return err;
    }
    if (!enif_is_binary(env, argv[ARG_BODY])) {
        return errors_tuple(env, enif_make_tuple2(env, ATOM_badarg,
                                                  enif_make_tuple2(env, ATOM_body, argv[ARG_BODY])));
    }
    ERL_NIF_TERM bad;
    int kind = scope_check(env, argv[ARG_SCOPE], &bad);
    if (kind < 0 || kind == SCOPE_WEBSOCKET) { /* a websocket needs a stream */
        return errors_tuple(env, enif_make_tuple2(env, ATOM_bad_scope, kind < 0 ? bad : ATOM_type));
    }
    job_t *job = job_new(env, asgi_run, tag, ASGI_ARGC, argv);
    if (job == NULL) {
        return enif_raise_exception(env, enif_make_atom(env, "enomem"));
    }
    return pool_submit_new(env, job, -1, timeout_ms);
}
