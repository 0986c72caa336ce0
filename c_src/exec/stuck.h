/* The log record of a stuck worker: one still running a sync call that its caller gave
 * up (its timeout expired, its stream was disconnected, its owner died), with that
 * thread's Python stack.  exec/pool.c decides which workers are stuck and starts spare
 * workers for them. */
#ifndef PY_NIF_STUCK_H
#define PY_NIF_STUCK_H

#include "exec/job.h"

#include <stdint.h>

/* Logs, at warning level, that worker `index` (in interpreter `interp_index`) still runs
 * `job` after `ms` milliseconds, with its Python stack.  The work is done by a detached
 * thread of its own: it waits for the interpreter's GIL, which the stuck code may hold
 * for ever (a loop in C), so the caller (the pool's monitor) never waits.  Once it has
 * the GIL it checks that the worker still runs `job` (pool_running_tstate) and logs
 * nothing otherwise.  `with_stack` 0 (free-threaded builds, where another thread's
 * frames cannot be read while it runs): the record says that no stack is given.  Keeps
 * a reference to `job` until done.  pool.lock may be held.  Returns 0, or -1 when the
 * thread could not be started (nothing logged). */
int stuck_report(int index, int interp_index, job_t *job, uint64_t ms, int with_stack);

#endif
