#include "exec/fanout.h"

#include "core/atoms.h"
#include "exec/deadline.h"
#include "exec/envpool.h"
#include "exec/pool.h"
#include "exec/task.h"
#include "terms/errors.h"

#include <stdlib.h>
#include <string.h>

/* Drops the parent's references to its parts.  f->lock held. */
static void
release_parts(fanout_t *f)
{
    for (int i = 0; i < f->n; i++) {
        if (f->parts[i] != NULL) {
            enif_release_resource(f->parts[i]);
            f->parts[i] = NULL;
        }
    }
}

static void
fanout_free(job_t *parent)
{
    fanout_t *f = parent->data;
    pthread_mutex_lock(&f->lock);
    release_parts(f);
    pthread_mutex_unlock(&f->lock);
    pthread_mutex_destroy(&f->lock);
    free(f);
}

ERL_NIF_TERM
fanout_submit(ErlNifEnv *env, ERL_NIF_TERM tag, uint64_t timeout_ms, job_run_fn run, int sync,
              int argc, const ERL_NIF_TERM argv[], const int *workers, int n,
              fanout_prepare_fn prepare, ERL_NIF_TERM (*combine)(job_t *parent, fanout_t *f))
{
    job_t *parent = n > 0 && n <= FANOUT_MAX ? job_new(env, NULL, tag, 0, NULL) : NULL;
    fanout_t *f = parent != NULL ? calloc(1, sizeof(*f)) : NULL;
    if (f == NULL) {
        if (parent != NULL) {
            enif_release_resource(parent);
        }
        return n > 0 ? enif_raise_exception(env, enif_make_atom(env, "enomem"))
                     : errors_tuple(env, ATOM_not_started);
    }
    pthread_mutex_init(&f->lock, NULL);
    f->combine = combine;
    parent->data = f;
    parent->free_data = fanout_free;
    parent->is_fanout = 1;
    for (int i = 0; i < n; i++) {
        job_t *part = job_new(env, run, tag, argc, argv);
        if (part != NULL) {
            part->sync = sync;
            part->part_index = i;
            enif_keep_resource(parent);
            part->parent = parent;
            f->parts[f->n++] = part;
        }
        if (part == NULL || (prepare != NULL && prepare(parent, part, i) < 0)) {
            release_parts(f); /* they hold the parent: first */
            enif_release_resource(parent);
            return enif_raise_exception(env, enif_make_atom(env, "enomem"));
        }
    }
    f->remaining = n;
    /* Every part queued or answered not_started: the parent replies either way. */
    for (int i = 0; i < n; i++) {
        job_t *part = f->parts[i];
        if (pool_submit_to(workers[i], part) < 0) {
            job_reply(part, errors_tuple(part->env, ATOM_not_started));
        }
    }
    if (timeout_ms != DEADLINE_NONE) {
        deadline_set(parent, timeout_ms);
    }
    ERL_NIF_TERM handle = enif_make_resource(env, parent);
    enif_release_resource(parent);
    return enif_make_tuple2(env, ATOM_ok, handle);
}

void
fanout_part_reply(job_t *part, ERL_NIF_TERM reply)
{
    int expected = JOB_PENDING;
    if (!__atomic_compare_exchange_n(&part->state, &expected, JOB_REPLIED, 0, __ATOMIC_SEQ_CST,
                                     __ATOMIC_SEQ_CST)) {
        return;
    }
    job_t *parent = part->parent;
    fanout_t *f = parent->data;
    pthread_mutex_lock(&f->lock);
    f->replies[part->part_index] = enif_make_copy(parent->env, reply);
    int last = --f->remaining == 0;
    pthread_mutex_unlock(&f->lock);
    envpool_put(part->env);
    part->env = NULL;
    if (!last) {
        return;
    }
    /* Only this thread touches the parent's env from here. */
    ERL_NIF_TERM combined = f->combine(parent, f);
    job_reply(parent, combined);
    pthread_mutex_lock(&f->lock);
    release_parts(f);
    pthread_mutex_unlock(&f->lock);
}

void
fanout_cancel(job_t *parent)
{
    fanout_t *f = parent->data;
    job_t *parts[FANOUT_MAX];
    int n = 0;
    pthread_mutex_lock(&f->lock);
    for (int i = 0; i < f->n; i++) {
        if (f->parts[i] != NULL) {
            enif_keep_resource(f->parts[i]);
            parts[n++] = f->parts[i];
        }
    }
    pthread_mutex_unlock(&f->lock);
    /* Outside the lock: cancelling queues a job (the pool's lock). */
    for (int i = 0; i < n; i++) {
        task_cancel(parts[i]);
        enif_release_resource(parts[i]);
    }
}

ERL_NIF_TERM
fanout_list(job_t *parent, fanout_t *f)
{
    return enif_make_tuple2(parent->env, ATOM_ok,
                            enif_make_list_from_array(parent->env, f->replies, (unsigned)f->n));
}
