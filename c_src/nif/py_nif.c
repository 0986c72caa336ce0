/* NIF entry points: loading and the function table.  Every function here runs on a
 * scheduler thread and never runs Python: it validates, copies and queues (or, for the
 * processes mode, only validates).  start, stop, switch_mode and info are in
 * nif/lifecycle.c (the first three wait for threads and run on dirty I/O schedulers). */
#include "asgi/asgi.h"
#include "asgi/asgi_stream.h"
#include "asgi/lifespan.h"
#include "asgi/scope.h"
#include "call/appcache.h"
#include "call/call.h"
#include "core/atoms.h"
#include "core/options.h"
#include "core/pyhome.h"
#include "core/runtime.h"
#include "exec/deadline.h"
#include "exec/job.h"
#include "exec/pool.h"
#include "exec/timer.h"
#include "nif/erlmod.h"
#include "nif/lifecycle.h"
#include "terms/response.h"
#include "wsgi/wsgi.h"
#include "wsgi/wsgi_stream.h"

#include <string.h>

/* The NIF functions that make a call take (Tag, Timeout, Args...): the job is queued,
 * given its timeout, and the caller waits for {Tag, Reply}. */
typedef ERL_NIF_TERM (*submit_fn)(ErlNifEnv *, ERL_NIF_TERM, uint64_t, const ERL_NIF_TERM[]);

static ERL_NIF_TERM
submit(ErlNifEnv *env, const ERL_NIF_TERM argv[], submit_fn fn)
{
    uint64_t timeout_ms;
    if (!deadline_get_timeout(env, argv[1], &timeout_ms)) {
        return enif_make_badarg(env);
    }
    return fn(env, argv[0], timeout_ms, argv + 2);
}

#define SUBMIT(name, fn)                                                     \
    static ERL_NIF_TERM name(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) \
    {                                                                        \
        return submit(env, argv, fn);                                        \
    }
SUBMIT(nif_call, call_submit)
SUBMIT(nif_call_each, call_each_submit)
SUBMIT(nif_wsgi_run, wsgi_submit)
SUBMIT(nif_asgi_run, asgi_submit)
SUBMIT(nif_lifespan_startup, lifespan_startup)
SUBMIT(nif_lifespan_shutdown, lifespan_shutdown)

static ERL_NIF_TERM
nif_asgi_build_scope(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
    return scope_template_new(env, argv[0]);
}

/* The web paths' argument rules, for the processes mode (py_port), which checks a scope
 * or an environ before sending it to a worker process: one rule, the NIF's (no Python). */
static ERL_NIF_TERM
nif_check_scope(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
    ERL_NIF_TERM bad;
    int kind = scope_check(env, argv[0], &bad);
    if (kind < 0) {
        return enif_make_tuple2(env, ATOM_error, enif_make_tuple2(env, ATOM_bad_scope, bad));
    }
    return enif_make_tuple2(env, ATOM_ok, enif_make_atom(env, kind == SCOPE_WEBSOCKET ? "websocket"
                                                                                     : "http"));
}

/* check_names({Module, Callable, Runner}, Entry): the names as the NIF paths check them,
 * for the processes mode: atoms or binaries (Entry none: the ASGI paths), and for the
 * WSGI paths also the app-cache key's rule (no NUL byte, not too long with the runner
 * entry Entry, run_wsgi or stream_wsgi). */
static ERL_NIF_TERM
nif_check_names(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
    const ERL_NIF_TERM *names;
    int arity;
    char entry[16];
    if (!enif_get_tuple(env, argv[0], &arity, &names) || arity != 3) {
        return enif_make_badarg(env);
    }
    ERL_NIF_TERM err;
    if (argv[1] == ATOM_none) {
        err = appcache_check_names(env, names);
    } else if (enif_get_atom(env, argv[1], entry, sizeof(entry), ERL_NIF_LATIN1) > 0) {
        appcache_key_t key;
        err = appcache_key(env, names, entry, &key);
    } else {
        return enif_make_badarg(env);
    }
    return err == 0 ? ATOM_ok : err;
}

static ERL_NIF_TERM
nif_check_environ(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
    if (argv[1] != ATOM_true && argv[1] != ATOM_false) {
        return enif_make_badarg(env);
    }
    return wsgi_check_environ(env, argv[0], argv[1] == ATOM_true);
}

#define FORWARD(name, fn)                                                    \
    static ERL_NIF_TERM name(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) \
    {                                                                        \
        return fn(env, argv);                                                \
    }
FORWARD(nif_start, lifecycle_start)
FORWARD(nif_stop, lifecycle_stop)
FORWARD(nif_switch_mode, lifecycle_switch_mode)
FORWARD(nif_timer_fire, timer_fire)
FORWARD(nif_asgi_start, asgi_stream_start)
FORWARD(nif_asgi_send_body, asgi_stream_send_body)
FORWARD(nif_asgi_ack, asgi_stream_ack)
FORWARD(nif_asgi_disconnect, asgi_stream_disconnect)
FORWARD(nif_asgi_ws_receive, asgi_stream_ws_receive)
FORWARD(nif_asgi_ws_disconnect, asgi_stream_ws_disconnect)
FORWARD(nif_wsgi_start, wsgi_stream_start)
FORWARD(nif_wsgi_send_body, wsgi_stream_send_body)
FORWARD(nif_wsgi_ack, wsgi_stream_ack)
FORWARD(nif_wsgi_disconnect, wsgi_stream_disconnect)

static ERL_NIF_TERM
nif_set_options(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
    if (!enif_is_map(env, argv[0]) || options_set(env, argv[0]) < 0) {
        return enif_make_tuple2(env, ATOM_error, enif_make_tuple2(env, ATOM_badarg, argv[0]));
    }
    return ATOM_ok;
}

static ERL_NIF_TERM
nif_get_options(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
    return options_get(env);
}

static ERL_NIF_TERM
nif_info(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
    return lifecycle_info(env);
}

static int
load(ErlNifEnv *env, void **priv_data, ERL_NIF_TERM load_info)
{
    atoms_init(env);
    /* The interpreter's home and executable, resolved at run time by py_python. */
    if (pyhome_load(env, load_info) < 0) {
        return 1;
    }
    wsgi_load();
    scope_load();
    runtime_builtin_module("_erlang", erlmod_init);
    if (job_resource_init(env) < 0 || response_init(env) < 0 || scope_resource_init(env) < 0 ||
        lifespan_resource_init(env) < 0) {
        return 1;
    }
    lifecycle_load(); /* a mismatch is reported by start/1 with the reason */
    return 0;
}

static int
upgrade(ErlNifEnv *env, void **priv_data, void **old_priv_data, ERL_NIF_TERM load_info)
{
    return load(env, priv_data, load_info);
}

static ErlNifFunc nif_funcs[] = {
    {"start", 1, nif_start, ERL_NIF_DIRTY_JOB_IO_BOUND},
    {"stop", 1, nif_stop, ERL_NIF_DIRTY_JOB_IO_BOUND},
    {"switch_mode", 2, nif_switch_mode, ERL_NIF_DIRTY_JOB_IO_BOUND},
    {"call_each", 6, nif_call_each, 0},
    {"call", 6, nif_call, 0},
    {"wsgi_run", 6, nif_wsgi_run, 0},
    {"asgi_run", 7, nif_asgi_run, 0},
    {"asgi_build_scope", 1, nif_asgi_build_scope, 0},
    {"asgi_start", 7, nif_asgi_start, 0},
    {"asgi_send_body", 3, nif_asgi_send_body, 0},
    {"asgi_ack", 2, nif_asgi_ack, 0},
    {"asgi_disconnect", 1, nif_asgi_disconnect, 0},
    {"asgi_ws_receive", 3, nif_asgi_ws_receive, 0},
    {"asgi_ws_disconnect", 3, nif_asgi_ws_disconnect, 0},
    {"lifespan_startup", 5, nif_lifespan_startup, 0},
    {"timer_fire", 2, nif_timer_fire, 0},
    {"lifespan_shutdown", 3, nif_lifespan_shutdown, 0},
    {"wsgi_start", 7, nif_wsgi_start, 0},
    {"wsgi_send_body", 3, nif_wsgi_send_body, 0},
    {"wsgi_ack", 2, nif_wsgi_ack, 0},
    {"wsgi_disconnect", 1, nif_wsgi_disconnect, 0},
    {"set_options", 1, nif_set_options, 0},
    {"get_options", 0, nif_get_options, 0},
    {"info", 0, nif_info, 0},
    {"check_scope", 1, nif_check_scope, 0},
    {"check_environ", 2, nif_check_environ, 0},
    {"check_names", 2, nif_check_names, 0},
};

ERL_NIF_INIT(py_nif, nif_funcs, load, NULL, upgrade, NULL)
