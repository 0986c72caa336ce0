#include "asgi/lifespan.h"

#include "call/appcache.h"
#include "core/atoms.h"
#include "core/release.h"
#include "exec/fanout.h"
#include "exec/job.h"
#include "exec/pool.h"
#include "exec/task.h"
#include "terms/errors.h"

#include <string.h>

/* A started lifespan: in each interpreter the pool runs in, the runner's Lifespan object
 * and its state dict, on the worker whose loop runs the app's lifespan task (shutdown must
 * run where startup ran). */
typedef struct {
    interp_t *ip;       /* the interpreter both objects belong to */
    int worker;
    PyObject *lifespan; /* strong, released through release_later */
    PyObject *state;    /* strong, released through release_later */
} slot_t;

typedef struct {
    int n;
    slot_t slots[];
} lifespan_t;

static ErlNifResourceType *LIFESPAN_RESOURCE = NULL;

static void
lifespan_dtor(ErlNifEnv *env, void *obj)
{
    lifespan_t *l = obj;
    for (int i = 0; i < l->n; i++) {
        if (l->slots[i].lifespan != NULL) {
            release_later(l->slots[i].ip, l->slots[i].lifespan);
        }
        if (l->slots[i].state != NULL) {
            release_later(l->slots[i].ip, l->slots[i].state);
        }
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
    if (!enif_get_resource(env, term, LIFESPAN_RESOURCE, (void **)&l)) {
        return NULL;
    }
    for (int i = 0; i < l->n; i++) {
        if (l->slots[i].ip == st->ip) {
            return l->slots[i].state;
        }
    }
    return NULL;
}

/* ---- startup: one part per interpreter ---------------------------------------------- */

enum { ARG_MODULE, ARG_CALLABLE, ARG_RUNNER, STARTUP_ARGC };

/* A part's data: its interpreter's slot, filled when startup() returns. */
static void
slot_free(job_t *part)
{
    slot_t *s = part->data;
    if (s->lifespan != NULL) {
        release_later(s->ip, s->lifespan);
    }
    if (s->state != NULL) {
        release_later(s->ip, s->state);
    }
    enif_free(s);
}

static int
startup_prepare(job_t *parent, job_t *part, int index)
{
    slot_t *s = enif_alloc(sizeof(*s));
    if (s == NULL) {
        return -1;
    }
    memset(s, 0, sizeof(*s));
    part->data = s;
    part->free_data = slot_free;
    return 0;
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
startup_done(py_state_t *st, job_t *part, PyObject *result)
{
    slot_t *s = part->data;
    if (result == NULL) {
        Py_CLEAR(s->lifespan);
        if (is_unsupported()) {
            PyErr_Clear();
            return errors_tuple(part->env, enif_make_atom(part->env, "unsupported"));
        }
        return errors_tuple(part->env, errors_take(st, part->env));
    }
    s->state = PyObject_GetAttr(s->lifespan, st->s_state);
    if (s->state == NULL) {
        Py_CLEAR(s->lifespan);
        return errors_tuple(part->env, errors_take(st, part->env));
    }
    return ATOM_ok;
}

static void
startup_run(job_t *part, worker_t *w)
{
    py_state_t *st = worker_state(w);
    slot_t *s = part->data;
    PyObject *app = NULL, *cls = NULL, *coro = NULL;
    ERL_NIF_TERM why = 0;
    s->ip = part->ip;
    s->worker = part->worker;
    if (appcache_resolve(st, part->env, part->argv[ARG_MODULE], part->argv[ARG_CALLABLE],
                         part->argv[ARG_RUNNER], "Lifespan", &app, &cls, &why) < 0) {
        job_reply(part, errors_tuple(part->env, why));
        return;
    }
    s->lifespan = PyObject_CallOneArg(cls, app);
    coro = s->lifespan != NULL ? PyObject_CallMethodNoArgs(s->lifespan, st->s_startup) : NULL;
    if (coro == NULL) {
        Py_CLEAR(s->lifespan);
        job_reply(part, errors_tuple(part->env, errors_take(st, part->env)));
    } else {
        Py_XDECREF(task_await(w, part, coro, startup_done));
    }
    Py_XDECREF(coro);
    Py_DECREF(cls);
    Py_DECREF(app);
    PyErr_Clear();
}

static void shutdown_orphans(lifespan_t *l);

/* The parts' slots, moved into a new lifespan resource (pointers only: this runs on one
 * part's thread).  NULL when out of memory. */
static lifespan_t *
collect(fanout_t *f)
{
    lifespan_t *l = enif_alloc_resource(LIFESPAN_RESOURCE,
                                        sizeof(lifespan_t) + (size_t)f->n * sizeof(slot_t));
    if (l == NULL) {
        return NULL;
    }
    l->n = 0;
    for (int i = 0; i < f->n; i++) {
        slot_t *s = f->parts[i]->data;
        if (s->lifespan != NULL) {
            l->slots[l->n++] = *s;
            s->lifespan = s->state = NULL;
        }
    }
    return l;
}

/* Every interpreter started: {ok, Lifespan}.  Else the first failure, in part order, and
 * the interpreters that did start are shut down again. */
static ERL_NIF_TERM
startup_combine(job_t *parent, fanout_t *f)
{
    ErlNifEnv *env = parent->env;
    ERL_NIF_TERM failure = 0;
    for (int i = 0; i < f->n && failure == 0; i++) {
        if (f->replies[i] != ATOM_ok) {
            failure = f->replies[i];
        }
    }
    lifespan_t *l = collect(f);
    if (l == NULL) {
        return enif_raise_exception(env, enif_make_atom(env, "enomem"));
    }
    ERL_NIF_TERM reply;
    if (failure == 0) {
        reply = enif_make_tuple2(env, ATOM_ok, enif_make_resource(env, l));
    } else {
        reply = failure;
        shutdown_orphans(l);
    }
    enif_release_resource(l);
    return reply;
}

ERL_NIF_TERM
lifespan_startup(ErlNifEnv *env, ERL_NIF_TERM tag, uint64_t timeout_ms, const ERL_NIF_TERM argv[])
{
    ERL_NIF_TERM err = appcache_check_names(env, argv);
    if (err != 0) {
        return err;
    }
    int workers[FANOUT_MAX];
    int n = pool_per_interp(workers, FANOUT_MAX);
    return fanout_submit(env, tag, timeout_ms, startup_run, 0, STARTUP_ARGC, argv, workers, n,
                         startup_prepare, startup_combine);
}

/* ---- shutdown: one part per slot ---------------------------------------------------- */

static ERL_NIF_TERM
shutdown_done(py_state_t *st, job_t *part, PyObject *result)
{
    if (result == NULL) {
        return errors_tuple(part->env, errors_take(st, part->env));
    }
    return ATOM_ok;
}

/* Shuts down slot `index` of the lifespan in argv[0] (argv[1]). */
static void
shutdown_run(job_t *part, worker_t *w)
{
    py_state_t *st = worker_state(w);
    lifespan_t *l;
    int index;
    enif_get_resource(part->env, part->argv[0], LIFESPAN_RESOURCE, (void **)&l);
    enif_get_int(part->env, part->argv[1], &index);
    slot_t *s = &l->slots[index];
    if (s->ip != part->ip) {
        /* The pool was restarted in another mode: that interpreter's loop is gone. */
        job_reply(part, errors_tuple(part->env, ATOM_not_started));
        return;
    }
    PyObject *coro = PyObject_CallMethodNoArgs(s->lifespan, st->s_shutdown);
    if (coro == NULL) {
        job_reply(part, errors_tuple(part->env, errors_take(st, part->env)));
        return;
    }
    Py_XDECREF(task_await(w, part, coro, shutdown_done));
    Py_DECREF(coro);
    PyErr_Clear();
}

/* ok, or the first failure in slot order. */
static ERL_NIF_TERM
shutdown_combine(job_t *parent, fanout_t *f)
{
    for (int i = 0; i < f->n; i++) {
        if (f->replies[i] != ATOM_ok) {
            return f->replies[i];
        }
    }
    return ATOM_ok;
}

/* Part `index` shuts down slot `index`: its arguments are the lifespan and the index. */
static int
shutdown_prepare(job_t *parent, job_t *part, int index)
{
    part->argv[1] = enif_make_int(part->env, index);
    part->argc = 2;
    return 0;
}

ERL_NIF_TERM
lifespan_shutdown(ErlNifEnv *env, ERL_NIF_TERM tag, uint64_t timeout_ms, const ERL_NIF_TERM argv[])
{
    lifespan_t *l;
    if (!enif_get_resource(env, argv[0], LIFESPAN_RESOURCE, (void **)&l)) {
        return errors_tuple(env, enif_make_tuple2(env, ATOM_badarg, argv[0]));
    }
    int workers[FANOUT_MAX];
    for (int i = 0; i < l->n; i++) {
        workers[i] = l->slots[i].worker;
    }
    return fanout_submit(env, tag, timeout_ms, shutdown_run, 0, 1, argv, workers, l->n,
                         shutdown_prepare, shutdown_combine);
}

/* After a failed start-up: shuts down the interpreters whose startup succeeded, with no
 * one waiting for the answer (silent jobs holding the lifespan in their arguments). */
static void
shutdown_orphans(lifespan_t *l)
{
    for (int i = 0; i < l->n; i++) {
        job_t *job = job_new_followup(shutdown_run, NULL);
        if (job == NULL) {
            continue; /* out of memory: that app is left started */
        }
        job->argv[0] = enif_make_resource(job->env, l);
        job->argv[1] = enif_make_int(job->env, i);
        job->argc = 2;
        pool_submit_to(l->slots[i].worker, job);
        enif_release_resource(job);
    }
}
