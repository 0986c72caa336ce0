/* The worker pool: OS threads owned by the NIF that run Python.
 *
 * Each worker runs an asyncio event loop (loop.run_forever) on its own thread.  An eventfd
 * registered with the loop wakes it when jobs arrive; its callback drains the job queues
 * while the worker holds the GIL, many jobs per wake-up under load.  An idle worker sits in
 * the loop's selector with the GIL released.
 *
 * Two queues feed a worker: the shared queue (new calls, any worker may take them) and the
 * worker's own queue (follow-up messages for work already living on that worker's loop,
 * such as request body chunks for a suspended ASGI app).  Scheduler threads only lock a
 * mutex, link the job and write the eventfd: no Python, no waiting. */
#ifndef PY_NIF_WORKER_H
#define PY_NIF_WORKER_H

#include "deadline.h"
#include "job.h"

#include <Python.h>
#include <erl_nif.h>

typedef struct worker worker_t;

/* Converts the value an awaited coroutine returned (or, when `result` is NULL, the
 * exception set) into the reply term for the job, built in job->env. */
typedef ERL_NIF_TERM (*worker_reply_fn)(job_t *job, PyObject *result);

/* Starts `n` workers.  The interpreter must be initialised.  Returns 0, or -1 with a
 * message in `err`. */
int pool_start(int n, char *err, size_t errlen);

/* Stops the workers, waiting up to `timeout_ms` for each; jobs still queued are answered
 * {error, not_started}.  A worker stuck in Python past the timeout is left to finish on
 * its own and exits when its job returns. */
void pool_stop(unsigned timeout_ms);

/* Queues a job for any worker.  Returns 0, or -1 when the pool is not running. */
int pool_submit(job_t *job);

/* For NIF functions: queues a job just made by job_new, for any worker (index -1) or
 * for worker `index` (a job that lives on that worker's loop), gives it its timeout
 * (DEADLINE_NONE: none; streams have none), and returns {ok, JobResource}, or
 * {error, not_started}.  Drops the creation reference either way.  For a call the handle
 * is only there so that the job's last reference is the caller's, dropped by its
 * garbage collection on a scheduler: a job freed on the worker thread costs a wake-up of
 * the scheduler that allocated it. */
ERL_NIF_TERM pool_submit_new(ErlNifEnv *env, job_t *job, int index, uint64_t timeout_ms);

/* Queues a job for worker `index`.  Returns 0, or -1 when that worker is not running. */
int pool_submit_to(int index, job_t *job);

/* The worker a new stream should live on: the first one not stuck in a long job. */
int pool_pick_worker(void);

/* After job_cancel succeeded: if the job is awaiting a task on a worker's loop, has that
 * worker cancel the task (so a timed-out ASGI app stops running). */
void pool_cancel_task(job_t *job);

int pool_size(void);
unsigned long pool_queued(void);

/* The worker running on this thread, or NULL on other threads. */
worker_t *worker_current(void);
int worker_index(worker_t *w);
PyObject *worker_loop(worker_t *w);
/* The worker's pending timers (id -> callback; borrowed, NULL on memory error) and a
 * fresh timer id.  Worker thread, GIL held. */
PyObject *worker_timers(worker_t *w);
unsigned long worker_next_timer_id(worker_t *w);

/* Makes the worker's loop asyncio's running loop on this thread (running=1) or not (0),
 * as a job needs.  Worker thread, GIL held.  Returns 0, or -1 with an exception. */
int worker_running_loop(worker_t *w, int running);

/* Runs `coro` as an asyncio task on the worker's loop, stepping it immediately (eager
 * start).  If it finishes in that first step the reply is sent at once; otherwise the job
 * is replied to from the task's done callback.  Steals nothing: `coro` stays owned by the
 * caller.  Returns a new reference to the task, or NULL after having replied with the
 * error. */
PyObject *worker_await(worker_t *w, job_t *job, PyObject *coro, worker_reply_fn reply);

#endif
