/* NIF entry points: loading, start/stop of the Python runtime, and the function table.
 * Every function here runs on a scheduler thread and never runs Python: it validates,
 * copies and queues.  start/stop wait for threads and run on dirty I/O schedulers. */
#include "asgi/asgi.h"
#include "asgi/asgi_stream.h"
#include "asgi/lifespan.h"
#include "asgi/scope.h"
#include "call/call.h"
#include "core/atoms.h"
#include "core/options.h"
#include "core/runtime.h"
#include "exec/deadline.h"
#include "exec/job.h"
#include "exec/pool.h"
#include "exec/timer.h"
#include "nif/erlmod.h"
#include "terms/response.h"
#include "wsgi/wsgi.h"
#include "wsgi/wsgi_stream.h"

#include <string.h>

#define MAX_WORKERS 256
#define MAX_PATH_LEN 4096

static char load_error[512] = "";

static ERL_NIF_TERM
binary_text(ErlNifEnv *env, const char *text)
{
    ERL_NIF_TERM bin;
    size_t len = strlen(text);
    unsigned char *buf = enif_make_new_binary(env, len, &bin);
    memcpy(buf, text, len);
    return bin;
}

static ERL_NIF_TERM
error2(ErlNifEnv *env, const char *kind, const char *text)
{
    return enif_make_tuple2(env, ATOM_error,
                            enif_make_tuple2(env, enif_make_atom(env, kind), binary_text(env, text)));
}

static char *
binary_to_cstr(ErlNifEnv *env, ERL_NIF_TERM term)
{
    ErlNifBinary bin;
    if (!enif_inspect_binary(env, term, &bin) || bin.size >= MAX_PATH_LEN ||
        memchr(bin.data, 0, bin.size) != NULL) {
        return NULL;
    }
    char *s = enif_alloc(bin.size + 1);
    if (s != NULL) {
        memcpy(s, bin.data, bin.size);
        s[bin.size] = '\0';
    }
    return s;
}

static void
config_free(runtime_config_t *cfg)
{
    for (int i = 0; i < cfg->npaths; i++) {
        enif_free(cfg->paths[i]);
    }
    enif_free(cfg->paths);
    enif_free(cfg->venv);
}

/* #{workers := pos_integer(), paths := [binary()], venv := binary() | undefined} */
static int
config_parse(ErlNifEnv *env, ERL_NIF_TERM map, int *workers, runtime_config_t *cfg)
{
    ERL_NIF_TERM v, head, tail;
    unsigned len;
    memset(cfg, 0, sizeof(*cfg));
    if (!enif_get_map_value(env, map, ATOM_workers, &v) || !enif_get_int(env, v, workers) ||
        *workers < 1 || *workers > MAX_WORKERS) {
        return 0;
    }
    if (!enif_get_map_value(env, map, ATOM_paths, &v) || !enif_get_list_length(env, v, &len)) {
        return 0;
    }
    cfg->paths = enif_alloc(sizeof(char *) * (len + 1));
    tail = v;
    while (enif_get_list_cell(env, tail, &head, &tail)) {
        char *p = binary_to_cstr(env, head);
        if (p == NULL) {
            config_free(cfg);
            return 0;
        }
        cfg->paths[cfg->npaths++] = p;
    }
    if (enif_get_map_value(env, map, ATOM_venv, &v) && v != ATOM_undefined) {
        cfg->venv = binary_to_cstr(env, v);
        if (cfg->venv == NULL) {
            config_free(cfg);
            return 0;
        }
    }
    return 1;
}

static ERL_NIF_TERM
nif_start(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
    if (load_error[0] != '\0') {
        return error2(env, "python_mismatch", load_error);
    }
    int workers;
    runtime_config_t cfg;
    if (!config_parse(env, argv[0], &workers, &cfg)) {
        return enif_make_tuple2(env, ATOM_error, enif_make_tuple2(env, ATOM_badarg, argv[0]));
    }
    char err[512] = "", warning[512] = "";
    int rc = runtime_configure(&cfg, err, sizeof(err), warning, sizeof(warning));
    config_free(&cfg);
    if (rc < 0) {
        return error2(env, "init_failed", err);
    }
    if (pool_start(workers, err, sizeof(err)) < 0) {
        if (strcmp(err, "already started") == 0) {
            return enif_make_tuple2(env, ATOM_error, ATOM_already_started);
        }
        return error2(env, "init_failed", err);
    }
    ERL_NIF_TERM warnings = warning[0] != '\0'
        ? enif_make_list1(env, binary_text(env, warning)) : enif_make_list(env, 0);
    return enif_make_tuple2(env, ATOM_ok, warnings);
}

static ERL_NIF_TERM
nif_stop(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
    unsigned timeout;
    if (!enif_get_uint(env, argv[0], &timeout)) {
        return enif_make_badarg(env);
    }
    pool_stop(timeout);
    return ATOM_ok;
}

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
SUBMIT(nif_wsgi_run, wsgi_submit)
SUBMIT(nif_asgi_run, asgi_submit)
SUBMIT(nif_lifespan_startup, lifespan_startup)
SUBMIT(nif_lifespan_shutdown, lifespan_shutdown)

static ERL_NIF_TERM
nif_asgi_build_scope(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
    return scope_template_new(env, argv[0]);
}

#define FORWARD(name, fn)                                                    \
    static ERL_NIF_TERM name(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[]) \
    {                                                                        \
        return fn(env, argv);                                                \
    }
FORWARD(nif_timer_fire, timer_fire)
FORWARD(nif_asgi_start, asgi_stream_start)
FORWARD(nif_asgi_send_body, asgi_stream_send_body)
FORWARD(nif_asgi_ack, asgi_stream_ack)
FORWARD(nif_asgi_disconnect, asgi_stream_disconnect)
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
    ERL_NIF_TERM keys[] = {ATOM_python_version, ATOM_build_python_version, ATOM_libpython,
                           ATOM_running, ATOM_workers, ATOM_queued, ATOM_mode};
    ERL_NIF_TERM values[] = {
        binary_text(env, runtime_version()),
        binary_text(env, runtime_build_version()),
        binary_text(env, runtime_libpython()),
        pool_size() > 0 ? ATOM_true : ATOM_false,
        enif_make_int(env, pool_size()),
        enif_make_uint64(env, pool_queued()),
        runtime_free_threaded() ? enif_make_atom(env, "free_threaded") : ATOM_gil,
    };
    ERL_NIF_TERM map;
    enif_make_map_from_arrays(env, keys, values, sizeof(keys) / sizeof(keys[0]), &map);
    return map;
}

static int
load(ErlNifEnv *env, void **priv_data, ERL_NIF_TERM load_info)
{
    atoms_init(env);
    wsgi_load();
    scope_load();
    runtime_builtin_module("_erlang", erlmod_init);
    if (job_resource_init(env) < 0 || response_init(env) < 0 || scope_resource_init(env) < 0 ||
        lifespan_resource_init(env) < 0) {
        return 1;
    }
    if (runtime_load_check(load_error, sizeof(load_error)) < 0) {
        return 0; /* reported by start/1 with the reason */
    }
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
    {"call", 6, nif_call, 0},
    {"wsgi_run", 6, nif_wsgi_run, 0},
    {"asgi_run", 7, nif_asgi_run, 0},
    {"asgi_build_scope", 1, nif_asgi_build_scope, 0},
    {"asgi_start", 6, nif_asgi_start, 0},
    {"asgi_send_body", 3, nif_asgi_send_body, 0},
    {"asgi_ack", 2, nif_asgi_ack, 0},
    {"asgi_disconnect", 1, nif_asgi_disconnect, 0},
    {"lifespan_startup", 5, nif_lifespan_startup, 0},
    {"timer_fire", 2, nif_timer_fire, 0},
    {"lifespan_shutdown", 3, nif_lifespan_shutdown, 0},
    {"wsgi_start", 6, nif_wsgi_start, 0},
    {"wsgi_send_body", 3, nif_wsgi_send_body, 0},
    {"wsgi_ack", 2, nif_wsgi_ack, 0},
    {"wsgi_disconnect", 1, nif_wsgi_disconnect, 0},
    {"set_options", 1, nif_set_options, 0},
    {"get_options", 0, nif_get_options, 0},
    {"info", 0, nif_info, 0},
};

ERL_NIF_INIT(py_nif, nif_funcs, load, NULL, upgrade, NULL)
