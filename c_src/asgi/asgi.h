/* The ASGI path behind py_asgi:run/4,5: the scope built from a map or a template, the
 * runner's `async run_asgi(app, scope, body)` started as an eager task on the worker's
 * loop (no loop round trip when the app never suspends), and (status, headers, body) read
 * straight into Erlang terms. */
#ifndef PY_NIF_ASGI_H
#define PY_NIF_ASGI_H

#include <erl_nif.h>
#include <stdint.h>

/* argv: Module, Callable, Runner, Scope (map or template), Body.  Returns {ok, Job} |
 * {error, {bad_scope, Field}} | {error, {badarg, What}} | {error, not_started}; the reply
 * {Tag, {ok, {Status, Headers, Body}} | {error, Reason}} follows as a message. */
ERL_NIF_TERM asgi_submit(ErlNifEnv *env, ERL_NIF_TERM tag, uint64_t timeout_ms, const ERL_NIF_TERM argv[]);

#endif
