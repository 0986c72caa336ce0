/* The generic call path behind py:call/3,4. */
#ifndef PY_NIF_CALL_H
#define PY_NIF_CALL_H

#include <erl_nif.h>
#include <stdint.h>

/* argv: Module, Function (atom or binary), Args (list), Kwargs (map).  Returns
 * {ok, Job} (the reply {Tag, Result} follows as a message) or {error, Reason}. */
ERL_NIF_TERM call_submit(ErlNifEnv *env, ERL_NIF_TERM tag, uint64_t timeout_ms, const ERL_NIF_TERM argv[]);

/* The same call once in each interpreter the pool runs in (all of them in subinterpreters
 * mode, one otherwise); the reply is {ok, [Reply]} with one {ok, Result} | {error, Reason}
 * per interpreter, in order. */
ERL_NIF_TERM call_each_submit(ErlNifEnv *env, ERL_NIF_TERM tag, uint64_t timeout_ms,
                              const ERL_NIF_TERM argv[]);

#endif
