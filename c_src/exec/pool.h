/* The worker pool: the job queues and the workers (exec/worker.h) that drain them.
 *
 * Two queues feed a worker: the shared queue (new calls, any worker may take them) and the
 * worker's own queue (follow-ups for work already living on that worker's loop, such as
 * request body chunks for a suspended ASGI app, a timer firing, a cancellation).
 * Scheduler threads only lock a mutex, link the job and write an eventfd: no Python, no
 * waiting. */
#ifndef PY_NIF_POOL_H
#define PY_NIF_POOL_H

#include "core/runtime.h"
#include "exec/job.h"
#include "exec/worker.h"

#include <erl_nif.h>
#include <stdint.h>

/* Where the workers run Python:
 *   POOL_GIL              threads in the main interpreter, one GIL: one drains at a time
 *   POOL_SUBINTERPRETERS  worker i alone in sub-interpreter i + 1, with its own GIL
 *   POOL_FREE_THREADED    threads in the main interpreter of a Py_GIL_DISABLED build */
typedef enum { POOL_GIL = 0, POOL_SUBINTERPRETERS = 1, POOL_FREE_THREADED = 2 } pool_mode_t;

/* Starts `n` workers in `mode`; each enters its interpreter and, for a sub-interpreter,
 * applies `cfg` (core/runtime.c configures the main one).  Returns 0, or -1 with a
 * message in `err`.
 *
 * Spare workers, `spares` at most: a worker running a sync call that its caller gave up
 * (pool_abandon) is stuck: such code may never return.  While jobs wait in the shared
 * queue and fewer than `n` workers are free of stuck calls, the monitor starts spares
 * to make up the difference (under sub-interpreters, spare slot j runs in interpreter
 * j + 1, created the first time: it has none of the lifespan state an ASGI app set up
 * in the others, and takes no new stream or lifespan, see pool_pick_worker) and logs
 * each stuck worker's Python stack (exec/stuck.h).  When the stuck calls return, the
 * spares retire as soon as they are idle: the `n` workers keep their slots,
 * interpreters and what lives on their loops. */
int pool_start(int n, int spares, pool_mode_t mode, const runtime_config_t *cfg, char *err,
               size_t errlen);

/* Stops the workers, waiting up to `timeout_ms` for each; jobs still queued are answered
 * {error, not_started}.  A worker stuck in Python past the timeout is left to finish on
 * its own and exits when its job returns. */
void pool_stop(unsigned timeout_ms);

/* Replaces the running workers by as many in `mode` (and as many spares at most) (auto mode's fall back from
 * sub-interpreters to one GIL).  Calls queued meanwhile wait for the new workers; what
 * lives on the old workers' loops (streams, lifespans) ends with them.  Returns 0, or -1
 * with a message (the pool is then stopped). */
int pool_switch(pool_mode_t mode, const runtime_config_t *cfg, unsigned timeout_ms, char *err,
                size_t errlen);

/* The mode of the running workers (of the last ones when stopped). */
pool_mode_t pool_mode(void);

/* Queues a job for any worker.  Returns 0, or -1 when the pool is not running. */
int pool_submit(job_t *job);

/* Queues a job for worker `index`.  Returns 0, or -1 when that worker is not running. */
int pool_submit_to(int index, job_t *job);

/* For NIF functions: queues a job just made by job_new, for any worker (index -1) or
 * for worker `index` (a job that lives on that worker's loop), gives it its timeout
 * (DEADLINE_NONE: none; streams have none), and returns {ok, JobResource}, or
 * {error, not_started}.  Drops the creation reference either way.  For a call the handle
 * is only there so that the job's last reference is the caller's, dropped by its
 * garbage collection on a scheduler: a job freed on the worker thread costs a wake-up of
 * the scheduler that allocated it. */
ERL_NIF_TERM pool_submit_new(ErlNifEnv *env, job_t *job, int index, uint64_t timeout_ms);

/* The worker a new stream or lifespan should live on: one not stuck in a long job (the
 * first under one GIL; in the parallel modes the cheapest from the next in turn: awake
 * and idle, then idle, then running), never a spare. */
int pool_pick_worker(void);

/* One worker per interpreter the pool runs in (all of them with sub-interpreters, one
 * otherwise), at most `max`, into workers[].  Returns how many. */
int pool_per_interp(int *workers, int max);

int pool_size(void);
unsigned long pool_queued(void);

/* The spare workers running now. */
int pool_spares(void);

/* Marks `job` given up by its caller (its timeout expired, its stream was disconnected,
 * its owner died) so that a worker still running it counts as stuck.  Any thread. */
void pool_abandon(job_t *job);

/* The thread state of worker `index` if it still runs `job`, else NULL.  For
 * exec/stuck.c, holding that worker's interpreter's GIL. */
PyThreadState *pool_running_tstate(int index, job_t *job);

/* ---- for exec/worker.c -------------------------------------------------------------- */

/* The drain callback's work on worker `w` (its thread, GIL held): runs queued jobs, up to
 * a batch.  Returns 1 when the worker is asked to stop. */
int pool_drain(worker_t *w);

/* The worker's start-up result (W_READY or W_FAILED) or its exit (W_EXITED). */
void pool_set_phase(worker_t *w, worker_phase_t phase);

/* 1 once the worker is asked to stop. */
int pool_stopping(worker_t *w);

#endif
