#include "exec/job.h"

#include "core/atoms.h"
#include "exec/deadline.h"
#include "exec/envpool.h"
#include "exec/fanout.h"

#include <string.h>

ErlNifResourceType *JOB_RESOURCE = NULL;

static job_t *job_alloc(job_run_fn run, size_t extra);

static void
job_dtor(ErlNifEnv *caller_env, void *obj)
{
    job_t *job = obj;
    if (job->env != NULL) {
        envpool_put(job->env);
        job->env = NULL;
    }
    if (job->event_env != NULL) {
        enif_free_env(job->event_env);
        job->event_env = NULL;
    }
    if (job->data != NULL && job->free_data != NULL) {
        job->free_data(job);
        job->data = NULL;
    }
    if (job->parent != NULL) {
        enif_release_resource(job->parent);
        job->parent = NULL;
    }
}

static void
job_down(ErlNifEnv *env, void *obj, ErlNifPid *pid, ErlNifMonitor *mon)
{
    job_t *job = obj;
    if (job->on_down != NULL) {
        job->on_down(job);
    }
}

int
job_resource_init(ErlNifEnv *env)
{
    ErlNifResourceFlags tried;
    ErlNifResourceTypeInit init = {.dtor = job_dtor, .down = job_down};
    JOB_RESOURCE = enif_open_resource_type_x(env, "py_job", &init,
                                             ERL_NIF_RT_CREATE | ERL_NIF_RT_TAKEOVER, &tried);
    return JOB_RESOURCE == NULL ? -1 : 0;
}

int
job_make_stream(ErlNifEnv *env, job_t *job, ERL_NIF_TERM kind, void (*on_down)(job_t *))
{
    job->kind = kind;
    job->on_down = on_down;
    job->event_env = enif_alloc_env();
    if (job->event_env == NULL) {
        return -1;
    }
    if (enif_monitor_process(env, job, &job->caller, &job->monitor) == 0) {
        job->monitoring = 1;
    }
    return 0;
}

ErlNifEnv *
job_event_env(job_t *job)
{
    return job->event_env;
}

/* {Kind, Job, Event} to the owner; clears the event env. */
static void
event_send_now(job_t *job, ERL_NIF_TERM event)
{
    ErlNifEnv *env = job->event_env;
    ERL_NIF_TERM msg = enif_make_tuple3(env, job->kind, enif_make_resource(env, job), event);
    enif_send(NULL, &job->caller, env, msg);
    enif_clear_env(env);
}

/* `event` (in event_env) with the held event before it, as one event; nothing held
 * after. */
static ERL_NIF_TERM
after_held(job_t *job, ERL_NIF_TERM event)
{
    ErlNifEnv *env = job->event_env;
    switch (job->held) {
    case HELD_START:
        event = enif_make_tuple4(env, ATOM_start, job->held_status, job->held_headers, event);
        break;
    case HELD_LAST:
        event = enif_make_tuple3(env, ATOM_then, job->held_event, event);
        break;
    case HELD_NONE:
        break;
    }
    job->held = HELD_NONE;
    return event;
}

void
job_event_send(job_t *job, ERL_NIF_TERM event)
{
    event_send_now(job, after_held(job, event));
}

void
job_event_start(job_t *job, ERL_NIF_TERM status, ERL_NIF_TERM headers)
{
    if (job->coalesce && job->held == HELD_NONE) {
        job->held = HELD_START;
        job->held_status = status;
        job->held_headers = headers;
        return;
    }
    job_event_send(job, enif_make_tuple3(job->event_env, ATOM_start, status, headers));
}

void
job_event_last(job_t *job, ERL_NIF_TERM event)
{
    if (!job->coalesce) {
        job_event_send(job, event);
        return;
    }
    job->held_event = after_held(job, event);
    job->held = HELD_LAST;
}

/* The held event on its own (0 when nothing is held); nothing held after. */
static ERL_NIF_TERM
held_alone(job_t *job)
{
    ERL_NIF_TERM event = 0;
    if (job->held == HELD_START) {
        event = enif_make_tuple3(job->event_env, ATOM_start, job->held_status,
                                 job->held_headers);
    } else if (job->held == HELD_LAST) {
        event = job->held_event;
    }
    job->held = HELD_NONE;
    return event;
}

void
job_event_flush(job_t *job)
{
    ERL_NIF_TERM event = held_alone(job);
    if (event != 0) {
        event_send_now(job, event);
    } else {
        enif_clear_env(job->event_env);
    }
}

static void
release_target(job_t *job)
{
    enif_release_resource(job->data);
}

job_t *
job_new_followup(job_run_fn run, job_t *target)
{
    job_t *job = job_alloc(run, 0);
    if (job != NULL) {
        job->silent = 1;
    }
    if (job != NULL && target != NULL) {
        enif_keep_resource(target);
        job->data = target;
        job->free_data = release_target;
    }
    return job;
}

/* A zeroed job (its `extra` bytes left as they are) with its own environment, or NULL. */
static job_t *
job_alloc(job_run_fn run, size_t extra)
{
    job_t *job = enif_alloc_resource(JOB_RESOURCE, sizeof(job_t) + extra);
    if (job == NULL) {
        return NULL;
    }
    memset(job, 0, sizeof(*job));
    job->env = envpool_get();
    if (job->env == NULL) {
        enif_release_resource(job);
        return NULL;
    }
    job->run = run;
    job->state = JOB_PENDING;
    job->worker = -1;
    return job;
}

job_t *
job_new(ErlNifEnv *env, job_run_fn run, ERL_NIF_TERM tag, int argc, const ERL_NIF_TERM argv[])
{
    return job_new_extra(env, run, tag, argc, argv, 0);
}

job_t *
job_new_extra(ErlNifEnv *env, job_run_fn run, ERL_NIF_TERM tag, int argc, const ERL_NIF_TERM argv[],
              size_t extra)
{
    job_t *job = job_alloc(run, extra);
    if (job == NULL) {
        return NULL;
    }
    enif_self(env, &job->caller);
    job->tag = enif_make_copy(job->env, tag);
    job->argc = argc;
    for (int i = 0; i < argc; i++) {
        job->argv[i] = enif_make_copy(job->env, argv[i]);
    }
    return job;
}

void
job_reply(job_t *job, ERL_NIF_TERM reply)
{
    int expected = JOB_PENDING;
    if (job->env == NULL) {
        return;
    }
    if (job->parent != NULL) {
        fanout_part_reply(job, reply);
        return;
    }
    int won = __atomic_compare_exchange_n(&job->state, &expected, JOB_REPLIED, 0, __ATOMIC_SEQ_CST,
                                          __ATOMIC_SEQ_CST);
    if (won && !job->silent) {
        if (job->held == HELD_LAST) {
            /* one message: the last event (in event_env) then the end */
            event_send_now(job, after_held(job, enif_make_copy(job->event_env, reply)));
        } else {
            if (job->held == HELD_START) {
                job_event_flush(job); /* a held start goes before the end */
            }
            ERL_NIF_TERM msg = job->kind != 0
                ? enif_make_tuple3(job->env, job->kind, enif_make_resource(job->env, job), reply)
                : enif_make_tuple2(job->env, job->tag, reply);
            enif_send(NULL, &job->caller, job->env, msg);
        }
        deadline_clear(job);
    }
    if (job->monitoring) {
        enif_demonitor_process(NULL, job, &job->monitor);
        job->monitoring = 0;
    }
    if (won) {
        envpool_put(job->env);
        job->env = NULL;
    }
}

int
job_cancel(job_t *job)
{
    int expected = JOB_PENDING;
    return __atomic_compare_exchange_n(&job->state, &expected, JOB_CANCELLED, 0,
                                       __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}

int
job_is_pending(job_t *job)
{
    return __atomic_load_n(&job->state, __ATOMIC_SEQ_CST) == JOB_PENDING;
}

int
job_is_cancelled(job_t *job)
{
    return __atomic_load_n(&job->state, __ATOMIC_ACQUIRE) == JOB_CANCELLED;
}

int
job_is_abandoned(job_t *job)
{
    return __atomic_load_n(&job->abandoned, __ATOMIC_ACQUIRE);
}

static void
release_capsule(PyObject *capsule)
{
    job_t *job = PyCapsule_GetPointer(capsule, "py_nif.job");
    if (job != NULL) {
        enif_release_resource(job);
    }
}

PyObject *
job_callable(job_t *job, PyMethodDef *def)
{
    enif_keep_resource(job);
    PyObject *capsule = PyCapsule_New(job, "py_nif.job", release_capsule);
    if (capsule == NULL) {
        enif_release_resource(job);
        return NULL;
    }
    PyObject *fn = PyCFunction_New(def, capsule);
    Py_DECREF(capsule);
    return fn;
}

job_t *
job_from_capsule(PyObject *capsule)
{
    return PyCapsule_GetPointer(capsule, "py_nif.job");
}

ERL_NIF_TERM
job_check_stream_body(ErlNifEnv *env, ERL_NIF_TERM body, ERL_NIF_TERM more)
{
    ERL_NIF_TERM what = 0;
    if (!enif_is_binary(env, body)) {
        what = enif_make_tuple2(env, ATOM_body, body);
    } else if (more != ATOM_true && more != ATOM_false) {
        what = enif_make_tuple2(env, enif_make_atom(env, "more_body"), more);
    }
    if (what == 0) {
        return 0;
    }
    return enif_make_tuple2(env, ATOM_error, enif_make_tuple2(env, ATOM_badarg, what));
}
