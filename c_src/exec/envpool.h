/* A pool of process-independent environments for jobs.
 *
 * enif_alloc_env allocates and zeroes a whole phony process, and enif_free_env on a
 * thread other than the allocating one hands the memory back through that scheduler's
 * delayed deallocation.  A job's environment is empty again once its reply is sent
 * (enif_send moves the terms into the message), so it is kept here for the next job
 * instead.  Any thread; a mutex guards the pool. */
#ifndef PY_NIF_ENVPOOL_H
#define PY_NIF_ENVPOOL_H

#include <erl_nif.h>

/* An empty environment from the pool, else a new one; NULL when out of memory. */
ErlNifEnv *envpool_get(void);

/* Clears `env` and keeps it for envpool_get, or frees it when the pool is full. */
void envpool_put(ErlNifEnv *env);

#endif
