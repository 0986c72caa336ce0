#include "asgi/lifespan.h"

#include "call/appcache.h"
#include "core/atoms.h"
#include "core/release.h"
#include "exec/job.h"
#include "exec/pool.h"
#include "exec/task.h"
#include "terms/errors.h"

#include <string.h>

/* A started lifespan: the runner's Lifespan object and its state dict, on one worker's
 * loop (shutdown must run where startup ran). */
typedef struct {
    interp_t *ip;       /* the interpreter both objects belong to */
    PyObject *lifespan; /* strong, released through release_later */
    PyObject *state;    /* strong, released through release_later */
    int worker;
} lifespan_t;

static ErlNifResourceType *LIFESPAN_RESOURCE = NULL;

static void
lifespan_dtor(ErlNifEnv *env, void *obj)
{
    lifespan_t *l = obj;
    if (l->lifespan != NULL) {
        release_later(l->ip, l->lifespan);
    }
    if (l->state != NULL) {
        release_later(l->ip, l->state);
    }
}

int
lifespan_resource_init(ErlNifEnv *env)
{
    ErlNifResourceFlags tried;
    LIFESPAN_RESOURCE = enif_open_resource_type(env, NULL, "py_asgi_lifespan", lifespan_dtor,
                                                ERL_NIF_RT_CREATE | ERL_NIF_RT_TAKEOVER, &tried);
    return LIFESPAN_RESOURCE == NULL ? -1 : 0;
}

int
lifespan_is_ref(ErlNifEnv *env, ERL_NIF_TERM term)
{
    void *l;
    return enif_get_resource(env, term, LIFESPAN_RESOURCE, &l);
}

PyObject *
lifespan_state(py_state_t *st, ErlNifEnv *env, ERL_NIF_TERM term)
{
    lifespan_t *l;
    if (!enif_get_resource(env, term, LIFESPAN_RESOURCE, (void **)&l) || l->ip != st->ip) {
        return NULL;
    }
    return l->state;
}

/* ---- startup ---------------------------------------------------------------------- */

enum { ARG_MODULE, ARG_CALLABLE, ARG_RUNNER, STARTUP_ARGC };

/* job->data during startup: the Lifespan object until startup() returns. */
typedef struct {
    PyObject *lifespan;
} startup_t;

static void
startup_free(job_t *job)
{
    startup_t *s = job->data;
    if (s->lifespan != NULL) {
        release_later(job->ip, s->lifespan);
    }
    enif_free(s);
}

static int
is_unsupported(void)
{
    PyObject *type = PyErr_Occurred();
    if (type == NULL) {
        return 0;
    }
    PyObject *name = PyObject_GetAttrString(type, "__name__");
    int match = name != NULL && PyUnicode_Check(name) &&
                PyUnicode_CompareWithASCIIString(name, "LifespanUnsupported") == 0;
    Py_XDECREF(name);
    return match;
}

static ERL_NIF_TERM
startup_done(py_state_t *st, job_t *job, PyObject *result)
{
    startup_t *s = job->data;
    PyObject *obj = s->lifespan;
    s->lifespan = NULL;
    if (result == NULL) {
        Py_XDECREF(obj);
        if (is_unsupported()) {
            PyErr_Clear();
            return errors_tuple(job->env, enif_make_atom(job->env, "unsupported"));
        }
        return errors_tuple(job->env, errors_take(st, job->env));
    }
    PyObject *state = PyObject_GetAttr(obj, st->s_state);
    lifespan_t *l = state != NULL ? enif_alloc_resource(LIFESPAN_RESOURCE, sizeof(*l)) : NULL;
    if (l == NULL) {
        Py_XDECREF(state);
        Py_DECREF(obj);
        return errors_tuple(job->env, errors_take(st, job->env));
    }
    l->ip = st->ip;
    l->lifespan = obj;
    l->state = state;
    l->worker = job->worker;
    ERL_NIF_TERM ref = enif_make_resource(job->env, l);
    enif_release_resource(l);
    return enif_make_tuple2(job->env, ATOM_ok, ref);
}

static void
startup_run(job_t *job, worker_t *w)
{
    py_state_t *st = worker_state(w);
    startup_t *s = job->data;
    PyObject *app = NULL, *cls = NULL, *coro = NULL;
    ERL_NIF_TERM why = 0;
    if (appcache_resolve(st, job->env, job->argv[ARG_MODULE], job->argv[ARG_CALLABLE],
                         job->argv[ARG_RUNNER], "Lifespan", &app, &cls, &why) < 0) {
        job_reply(job, errors_tuple(job->env, why));
        return;
    }
    s->lifespan = PyObject_CallOneArg(cls, app);
    coro = s->lifespan != NULL ? PyObject_CallMethodNoArgs(s->lifespan, st->s_startup) : NULL;
    if (coro == NULL) {
        Py_CLEAR(s->lifespan);
        job_reply(job, errors_tuple(job->env, errors_take(st, job->env)));
    } else {
        Py_XDECREF(task_await(w, job, coro, startup_done));
    }
    Py_XDECREF(coro);
    Py_DECREF(cls);
    Py_DECREF(app);
    PyErr_Clear();
}

ERL_NIF_TERM
lifespan_startup(ErlNifEnv *env, ERL_NIF_TERM tag, uint64_t timeout_ms, const ERL_NIF_TERM argv[])
{
    ERL_NIF_TERM err = appcache_check_names(env, argv);
    if (err != 0) {
        return err;
    }
    startup_t *s = enif_alloc(sizeof(*s));
    job_t *job = s != NULL ? job_new(env, startup_run, tag, STARTUP_ARGC, argv) : NULL;
    if (job == NULL) {
        enif_free(s);
        return enif_raise_exception(env, enif_make_atom(env, "enomem"));
    }
    s->lifespan = NULL;
    job->data = s;
    job->free_data = startup_free;
    return pool_submit_new(env, job, pool_pick_worker(), timeout_ms);
}

/* ---- shutdown --------------------------------------------------------------------- */

static ERL_NIF_TERM
shutdown_done(py_state_t *st, job_t *job, PyObject *result)
{
    if (result == NULL) {
        return errors_tuple(job->env, errors_take(st, job->env));
    }
    return ATOM_ok;
}

static void
shutdown_run(job_t *job, worker_t *w)
{
    py_state_t *st = worker_state(w);
    lifespan_t *l;
    enif_get_resource(job->env, job->argv[0], LIFESPAN_RESOURCE, (void **)&l);
    PyObject *coro = PyObject_CallMethodNoArgs(l->lifespan, st->s_shutdown);
    if (coro == NULL) {
        job_reply(job, errors_tuple(job->env, errors_take(st, job->env)));
        return;
    }
    Py_XDECREF(task_await(w, job, coro, shutdown_done));
    Py_DECREF(coro);
    PyErr_Clear();
}

ERL_NIF_TERM
lifespan_shutdown(ErlNifEnv *env, ERL_NIF_TERM tag, uint64_t timeout_ms, const ERL_NIF_TERM argv[])
{
    lifespan_t *l;
    if (!enif_get_resource(env, argv[0], LIFESPAN_RESOURCE, (void **)&l)) {
        return errors_tuple(env, enif_make_tuple2(env, ATOM_badarg, argv[0]));
    }
    job_t *job = job_new(env, shutdown_run, tag, 1, argv);
    if (job == NULL) {
        return enif_raise_exception(env, enif_make_atom(env, "enomem"));
    }
    return pool_submit_new(env, job, l->worker, timeout_ms);
}
