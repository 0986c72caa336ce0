#include "job.h"

#include <string.h>

ErlNifResourceType *JOB_RESOURCE = NULL;

static void
job_dtor(ErlNifEnv *caller_env, void *obj)
{
    job_t *job = obj;
    if (job->env != NULL) {
        enif_free_env(job->env);
        job->env = NULL;
    }
    if (job->data != NULL && job->free_data != NULL) {
        job->free_data(job->data);
        job->data = NULL;
    }
}

int
job_resource_init(ErlNifEnv *env)
{
    ErlNifResourceFlags tried;
    JOB_RESOURCE = enif_open_resource_type(env, NULL, "py_job", job_dtor,
                                           ERL_NIF_RT_CREATE | ERL_NIF_RT_TAKEOVER, &tried);
    return JOB_RESOURCE == NULL ? -1 : 0;
}

job_t *
job_new(ErlNifEnv *env, job_run_fn run, ERL_NIF_TERM tag, int argc, const ERL_NIF_TERM argv[])
{
    job_t *job = enif_alloc_resource(JOB_RESOURCE, sizeof(job_t));
    if (job == NULL) {
        return NULL;
    }
    memset(job, 0, sizeof(*job));
    job->env = enif_alloc_env();
    if (job->env == NULL) {
        enif_release_resource(job);
        return NULL;
    }
    job->run = run;
    job->state = JOB_PENDING;
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
    if (__atomic_compare_exchange_n(&job->state, &expected, JOB_REPLIED, 0,
                                    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        ERL_NIF_TERM msg = enif_make_tuple2(job->env, job->tag, reply);
        enif_send(NULL, &job->caller, job->env, msg);
    }
    enif_free_env(job->env);
    job->env = NULL;
}

int
job_cancel(job_t *job)
{
    int expected = JOB_PENDING;
    return __atomic_compare_exchange_n(&job->state, &expected, JOB_CANCELLED, 0,
                                       __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

int
job_is_cancelled(job_t *job)
{
    return __atomic_load_n(&job->state, __ATOMIC_ACQUIRE) == JOB_CANCELLED;
}
