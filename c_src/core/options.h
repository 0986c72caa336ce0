/* Runtime switches for the web-path optimisations, so that the benchmark can measure each
 * one on and off in the same build.  All are on by default.  Read on worker threads with
 * one relaxed atomic load per request; written by py_nif:set_options/1. */
#ifndef PY_NIF_OPTIONS_H
#define PY_NIF_OPTIONS_H

#include <erl_nif.h>

typedef enum {
    OPT_INTERNED_KEYS = 1u << 0,    /* environ/scope keys are interned str objects */
    OPT_CACHED_CONSTANTS = 1u << 1, /* common values (methods, schemes, ...) are shared */
    OPT_DIRECT_RESPONSE = 1u << 2,  /* response tuple read straight into Erlang terms */
    OPT_APP_CACHE = 1u << 3,        /* app and runner resolved once per (module, app, runner) */
    OPT_HEADER_CACHE = 1u << 4,     /* common header names as shared bytes objects */
    OPT_ZERO_COPY = 1u << 5,        /* large response bodies shared, not copied */
    OPT_NATIVE_RUNNER = 1u << 6,    /* the default ASGI runner's protocol run in C */
    OPT_ALL = (1u << 7) - 1,
} py_option_t;

extern unsigned py_options;

static inline int
option_on(py_option_t opt)
{
    return (__atomic_load_n(&py_options, __ATOMIC_RELAXED) & opt) != 0;
}

/* Applies a map of option => boolean; returns 0, or -1 for an unknown key or bad value. */
int options_set(ErlNifEnv *env, ERL_NIF_TERM map);

/* The current switches as a map of option => boolean. */
ERL_NIF_TERM options_get(ErlNifEnv *env);

#endif
