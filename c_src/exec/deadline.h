/* Call timeouts, kept by the NIF instead of a BEAM timer per call.
 *
 * A job given a timeout is put in a list ordered by deadline.  A thread ("py-deadline")
 * takes each job whose deadline passes while it is still pending: it cancels the job
 * (the same compare-and-swap as a reply, so exactly one of the two reaches the caller),
 * sends the caller {Tag, {error, timeout}} and cancels the job's asyncio task if it has
 * one.  The caller therefore waits with a plain receive.  A job leaves its list when it
 * replies (job_reply) or expires; the list holds a reference to each job in it. */
#ifndef PY_NIF_DEADLINE_H
#define PY_NIF_DEADLINE_H

#include "exec/job.h"

#include <stdint.h>

/* Starts the deadline thread unless it runs already (it then runs as long as the VM, as
 * the interpreter does, so that no pending call is left without its timeout).  Returns 0
 * or -1. */
int deadline_start(void);

/* A call's timeout: milliseconds, or DEADLINE_NONE for infinity. */
#define DEADLINE_NONE UINT64_MAX

/* Reads a timeout argument (`infinity` or a non-negative integer).  Returns 1, or 0 if
 * the term is neither. */
int deadline_get_timeout(ErlNifEnv *env, ERL_NIF_TERM term, uint64_t *timeout_ms);

/* Any thread: `job` (just submitted) times out `timeout_ms` from now unless it has
 * replied by then.  Does nothing if it has replied already. */
void deadline_set(job_t *job, uint64_t timeout_ms);

/* Any thread, after the job's reply went out: takes it out of its list, if it is in one. */
void deadline_clear(job_t *job);

#endif
