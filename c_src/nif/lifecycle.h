/* The NIF functions that start, stop and describe the Python runtime: start/1, stop/1,
 * switch_mode/2, info/0.  start, stop and switch_mode wait for threads and run on dirty
 * I/O schedulers; no Python runs on a scheduler thread. */
#ifndef PY_NIF_LIFECYCLE_H
#define PY_NIF_LIFECYCLE_H

#include <erl_nif.h>

/* At NIF load: checks the libpython (core/runtime.h); a mismatch is reported by start. */
void lifecycle_load(void);

ERL_NIF_TERM lifecycle_start(ErlNifEnv *env, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM lifecycle_stop(ErlNifEnv *env, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM lifecycle_switch_mode(ErlNifEnv *env, const ERL_NIF_TERM argv[]);
ERL_NIF_TERM lifecycle_info(ErlNifEnv *env);

#endif
