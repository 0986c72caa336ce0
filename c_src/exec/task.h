/* Async work on a worker's loop: a coroutine run as an asyncio task, started eagerly,
 * whose result becomes the job's reply; and the cancellation of such a task. */
#ifndef PY_NIF_TASK_H
#define PY_NIF_TASK_H

#include "core/state.h"
#include "exec/job.h"
#include "exec/worker.h"

#include <Python.h>
#include <erl_nif.h>

/* Converts the value an awaited coroutine returned (or, when `result` is NULL, the
 * exception set) into the reply term for the job, built in job->env.  Worker thread, GIL
 * of `st`'s interpreter held. */
typedef ERL_NIF_TERM (*task_reply_fn)(py_state_t *st, job_t *job, PyObject *result);

/* Runs `coro` as an asyncio task on the worker's loop, stepping it immediately (eager
 * start).  If it finishes in that first step the reply is sent at once; otherwise the job
 * is replied to from the task's done callback.  Steals nothing: `coro` stays owned by the
 * caller.  Returns a new reference to the task, or NULL after having replied with the
 * error. */
PyObject *task_await(worker_t *w, job_t *job, PyObject *coro, task_reply_fn reply);

/* After job_cancel succeeded: if the job is awaiting a task on a worker's loop, has that
 * worker cancel the task (so a timed-out ASGI app stops running).  Any thread. */
void task_cancel(job_t *job);

/* For exec/worker.c: the worker's stand-in for loop.call_soon used to start tasks eagerly
 * on Python 3.11 (`capsule` holds the worker).  New reference, or NULL. */
PyObject *task_capture_step(worker_t *w, PyObject *capsule);

#endif
