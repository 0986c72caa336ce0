/* A worker: an OS thread owned by the NIF that runs Python in one interpreter.
 *
 * The thread enters its interpreter (core/interp.h), runs an asyncio event loop
 * (loop.run_forever) and registers an eventfd with it; when jobs arrive the pool
 * (exec/pool.h) writes the eventfd and the loop's callback drains the job queues while
 * holding the interpreter's GIL, many jobs per wake-up under load.  An idle worker sits in
 * the loop's selector with the GIL released.
 *
 * A job finds its interpreter through the worker that runs it: job->run(job, w) uses
 * worker_state(w), the state of w's interpreter (core/state.h).
 *
 * The struct's fields are shared by the files of exec/ only; other layers use the
 * functions below. */
#ifndef PY_NIF_WORKER_H
#define PY_NIF_WORKER_H

#include "core/interp.h"
#include "core/runtime.h"
#include "core/state.h"
#include "exec/job.h"

#include <Python.h>
#include <pthread.h>
#include <stdint.h>

typedef enum { W_STARTING = 0, W_READY = 1, W_FAILED = 2, W_EXITED = 3 } worker_phase_t;

typedef struct worker {
    int index;
    int interp_index;            /* the interpreter slot it runs in */
    const runtime_config_t *cfg; /* while starting: the configuration to apply */
    pthread_t thread;
    int efd;
    /* guarded by the pool's lock */
    int signaled;          /* eventfd written, drain not yet started */
    uint64_t signaled_at;  /* monotonic ns of that write (pool.c, on_its_way) */
    int busy;              /* draining */
    int spinning;          /* polling the queues between jobs (pool.c, spin_for_job) */
    uint64_t job_started;  /* monotonic ns when the current job was taken */
    int stop;
    worker_phase_t phase;
    int spare;             /* started for a stuck worker; retires when idle (pool.c) */
    int live;              /* its thread was started and has not been joined */
    job_t *current;        /* the job it runs, NULL between jobs */
    int reported;          /* the current job was reported stuck (exec/stuck.h) */
    PyThreadState *tstate; /* its thread state, set before it turns W_READY */
    job_t *head, *tail;    /* this worker's own queue */
    char failure[256];
    /* the worker's thread only, GIL held */
    interp_thread_t it;    /* it.ip: its interpreter */
    py_state_t *st;        /* it.ip->st */
    PyObject *loop;
    int uvloop;            /* the loop is uvloop's */
    PyObject *ready;       /* the loop's queue of ready callbacks (asyncio's private
                            * loop._ready deque, the same object for the loop's life), or
                            * NULL when it cannot be seen: see worker_has_ready */
    PyObject *timers;      /* timer id -> callback, for _erlang.schedule_timer */
    unsigned long next_timer;
    int loop_running;            /* the loop is asyncio's running loop on this thread */
    PyObject *capture_step;      /* 3.11 eager start, see exec/task.c */
    PyObject *captured_step;
    PyObject *captured_context;
} worker_t;

/* The thread's body (started by the pool). */
void *worker_main(void *arg);

/* How many running workers have an event loop of uvloop's (uvloop 1) or asyncio's (0). */
int worker_loop_count(int uvloop);

/* The worker running on this thread, or NULL on other threads. */
worker_t *worker_current(void);
int worker_index(worker_t *w);
py_state_t *worker_state(worker_t *w);
PyObject *worker_loop(worker_t *w);

/* The worker's pending timers (id -> callback; borrowed, NULL on memory error) and a
 * fresh timer id.  Worker thread, GIL held. */
PyObject *worker_timers(worker_t *w);
unsigned long worker_next_timer_id(worker_t *w);

/* Whether the worker's loop has callbacks ready to run (tasks that jobs woke up): then
 * the drain should return to the loop rather than wait for more jobs.  1 when unknown
 * (uvloop's queue is not visible from Python): a task the jobs woke must not wait for
 * the drain's poll.  Worker thread, GIL held. */
int worker_has_ready(worker_t *w);

/* Makes the worker's loop asyncio's running loop on this thread (running=1) or not (0),
 * as a job needs.  Worker thread, GIL held.  Returns 0, or -1 with an exception. */
int worker_running_loop(worker_t *w, int running);

#endif
