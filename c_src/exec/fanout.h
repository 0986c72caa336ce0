/* A call run once in each of several workers (one per interpreter, or one per lifespan
 * slot) and answered once: the parent job is the caller's (its tag, its deadline); each
 * part is a job of its own on its worker, whose reply goes to the parent instead of a
 * process.  When the last part has replied, `combine` turns the parts' replies into the
 * parent's reply (on the last part's worker thread, with only that interpreter's GIL:
 * it must not touch other interpreters' objects through Python, only move pointers).
 * A timeout cancels the parent and every part's task; the parts' replies then go
 * nowhere. */
#ifndef PY_NIF_FANOUT_H
#define PY_NIF_FANOUT_H

#include "exec/job.h"

#include <erl_nif.h>
#include <pthread.h>
#include <stdint.h>

#define FANOUT_MAX 256

typedef struct fanout {
    pthread_mutex_t lock;
    int n;
    int remaining;
    job_t *parts[FANOUT_MAX];         /* kept until the last part has replied */
    ERL_NIF_TERM replies[FANOUT_MAX]; /* in the parent's env */
    ERL_NIF_TERM (*combine)(job_t *parent, struct fanout *f);
} fanout_t;

/* Makes `part` ready before it is queued (its data); returns 0 or -1. */
typedef int (*fanout_prepare_fn)(job_t *parent, job_t *part, int index);

/* Queues `run` with copies of argv[0..argc) on each of workers[0..n) and returns
 * {ok, Parent} or {error, not_started}; the caller then gets one {Tag, Reply} (Reply from
 * `combine`, or {error, timeout}).  `sync` as job->sync; `prepare` (may be NULL) sets up
 * each part. */
ERL_NIF_TERM fanout_submit(ErlNifEnv *env, ERL_NIF_TERM tag, uint64_t timeout_ms, job_run_fn run,
                           int sync, int argc, const ERL_NIF_TERM argv[], const int *workers,
                           int n, fanout_prepare_fn prepare,
                           ERL_NIF_TERM (*combine)(job_t *parent, fanout_t *f));

/* For job_reply: a part's reply.  Any thread. */
void fanout_part_reply(job_t *part, ERL_NIF_TERM reply);

/* For task_cancel: cancels the parts' tasks. */
void fanout_cancel(job_t *parent);

/* {ok, [Reply, ...]} in part order: a combine for calls run in every interpreter. */
ERL_NIF_TERM fanout_list(job_t *parent, fanout_t *f);

#endif
