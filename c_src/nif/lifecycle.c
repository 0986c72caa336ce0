#include "nif/lifecycle.h"

#include "core/atoms.h"
#include "core/interp.h"
#include "core/runtime.h"
#include "exec/pool.h"
#include "exec/worker.h"
#include "terms/convert.h"

#include <string.h>

/* workers + spare_workers: one sub-interpreter each (INTERP_MAX - 1) */
#define MAX_WORKERS 256
#define MAX_PATH_LEN 4096

static char load_error[512] = "";

void
lifecycle_load(void)
{
    runtime_load_check(load_error, sizeof(load_error));
}

static ERL_NIF_TERM
binary_text(ErlNifEnv *env, const char *text)
{
    return convert_bytes(env, text, strlen(text));
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

/* #{workers := pos_integer(), spare_workers := non_neg_integer(), paths := [binary()],
 *   venv := binary() | undefined, mode := gil | subinterpreters | free_threaded,
 *   loop => asyncio | uvloop | auto (default asyncio)} */
static int
config_parse(ErlNifEnv *env, ERL_NIF_TERM map, int *workers, int *spares, pool_mode_t *mode,
             runtime_config_t *cfg)
{
    ERL_NIF_TERM v, head, tail;
    unsigned len;
    memset(cfg, 0, sizeof(*cfg));
    if (!enif_get_map_value(env, map, ATOM_workers, &v) || !enif_get_int(env, v, workers) ||
        *workers < 1 || *workers > MAX_WORKERS) {
        return 0;
    }
    if (!enif_get_map_value(env, map, ATOM_spare_workers, &v) || !enif_get_int(env, v, spares) ||
        *spares < 0 || *spares > MAX_WORKERS - *workers) {
        return 0;
    }
    if (!enif_get_map_value(env, map, ATOM_mode, &v)) {
        return 0;
    }
    if (v == ATOM_gil) {
        *mode = POOL_GIL;
    } else if (v == ATOM_subinterpreters) {
        *mode = POOL_SUBINTERPRETERS;
    } else if (v == ATOM_free_threaded) {
        *mode = POOL_FREE_THREADED;
    } else {
        return 0;
    }
    if (!enif_get_map_value(env, map, ATOM_loop, &v) || v == ATOM_asyncio) {
        cfg->loop = LOOP_ASYNCIO;
    } else if (v == ATOM_uvloop) {
        cfg->loop = LOOP_UVLOOP;
    } else if (v == ATOM_auto) {
        cfg->loop = LOOP_AUTO;
    } else {
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

/* The mode's requirements of this build: "" when met, else why not. */
static const char *
mode_unmet(pool_mode_t mode)
{
    if (mode == POOL_SUBINTERPRETERS && !interp_subinterpreters_supported()) {
        return "mode subinterpreters needs Python 3.12 or later (sub-interpreters with their "
               "own GIL)";
    }
    if (mode == POOL_FREE_THREADED && !runtime_free_threaded()) {
        return "mode free_threaded needs a free-threaded CPython build (Py_GIL_DISABLED)";
    }
    if (mode != POOL_FREE_THREADED && runtime_free_threaded()) {
        return "this CPython build is free-threaded: use mode free_threaded";
    }
    return "";
}

ERL_NIF_TERM
lifecycle_start(ErlNifEnv *env, const ERL_NIF_TERM argv[])
{
    if (load_error[0] != '\0') {
        return error2(env, "python_mismatch", load_error);
    }
    int workers, spares;
    pool_mode_t mode;
    runtime_config_t cfg;
    if (!config_parse(env, argv[0], &workers, &spares, &mode, &cfg)) {
        return enif_make_tuple2(env, ATOM_error, enif_make_tuple2(env, ATOM_badarg, argv[0]));
    }
    char err[512] = "", warning[512] = "";
    const char *unmet = mode_unmet(mode);
    int rc = unmet[0] == '\0' ? runtime_configure(&cfg, err, sizeof(err), warning, sizeof(warning))
                              : (snprintf(err, sizeof(err), "%s", unmet), -1);
    if (rc == 0) {
        interp_forget_refusal();
        rc = pool_start(workers, spares, mode, &cfg, err, sizeof(err));
    }
    config_free(&cfg);
    if (rc < 0) {
        if (strcmp(err, "already started") == 0) {
            return enif_make_tuple2(env, ATOM_error, ATOM_already_started);
        }
        return error2(env, "init_failed", err);
    }
    ERL_NIF_TERM warnings = warning[0] != '\0'
        ? enif_make_list1(env, binary_text(env, warning)) : enif_make_list(env, 0);
    return enif_make_tuple2(env, ATOM_ok, warnings);
}

ERL_NIF_TERM
lifecycle_stop(ErlNifEnv *env, const ERL_NIF_TERM argv[])
{
    unsigned timeout;
    if (!enif_get_uint(env, argv[0], &timeout)) {
        return enif_make_badarg(env);
    }
    pool_stop(timeout);
    return ATOM_ok;
}

/* switch_mode(Config, StopTimeoutMs): the running workers replaced by Config's. */
ERL_NIF_TERM
lifecycle_switch_mode(ErlNifEnv *env, const ERL_NIF_TERM argv[])
{
    int workers, spares;
    pool_mode_t mode;
    runtime_config_t cfg;
    unsigned timeout;
    if (!enif_get_uint(env, argv[1], &timeout) ||
        !config_parse(env, argv[0], &workers, &spares, &mode, &cfg)) {
        return enif_make_tuple2(env, ATOM_error, enif_make_tuple2(env, ATOM_badarg, argv[0]));
    }
    char err[512] = "";
    const char *unmet = mode_unmet(mode);
    int rc = unmet[0] == '\0' ? pool_switch(mode, &cfg, timeout, err, sizeof(err))
                              : (snprintf(err, sizeof(err), "%s", unmet), -1);
    config_free(&cfg);
    return rc < 0 ? error2(env, "init_failed", err) : ATOM_ok;
}

static ERL_NIF_TERM
mode_atom(pool_mode_t mode)
{
    return mode == POOL_SUBINTERPRETERS ? ATOM_subinterpreters
         : mode == POOL_FREE_THREADED ? ATOM_free_threaded : ATOM_gil;
}

/* [#{id, main, state, threads}] for each interpreter created. */
static ERL_NIF_TERM
interpreters(ErlNifEnv *env)
{
    ERL_NIF_TERM list = enif_make_list(env, 0);
    for (int i = interp_count() - 1; i >= 0; i--) {
        interp_t *ip = interp_slot(i);
        if (ip->py == NULL) {
            continue;
        }
        int threads = __atomic_load_n(&ip->threads, __ATOMIC_RELAXED);
        ERL_NIF_TERM keys[] = {ATOM_id, ATOM_main, ATOM_state, ATOM_threads};
        ERL_NIF_TERM values[] = {enif_make_int64(env, ip->id), i == 0 ? ATOM_true : ATOM_false,
                                 threads > 0 ? ATOM_running : ATOM_idle,
                                 enif_make_int(env, threads)};
        ERL_NIF_TERM map;
        enif_make_map_from_arrays(env, keys, values, 4, &map);
        list = enif_make_list_cell(env, map, list);
    }
    return list;
}

/* #{asyncio => N, uvloop => M}: the running workers on each kind of event loop. */
static ERL_NIF_TERM
loops(ErlNifEnv *env)
{
    ERL_NIF_TERM keys[] = {ATOM_asyncio, ATOM_uvloop};
    ERL_NIF_TERM values[] = {enif_make_int(env, worker_loop_count(0)),
                             enif_make_int(env, worker_loop_count(1))};
    ERL_NIF_TERM map;
    enif_make_map_from_arrays(env, keys, values, 2, &map);
    return map;
}

ERL_NIF_TERM
lifecycle_info(ErlNifEnv *env)
{
    int n = pool_size();
    ERL_NIF_TERM keys[] = {ATOM_python_version, ATOM_build_python_version, ATOM_libpython,
                           ATOM_running, ATOM_workers, ATOM_spares_running, ATOM_queued, ATOM_mode,
                           ATOM_interpreters, ATOM_subinterpreters_supported, ATOM_free_threaded_build,
                           ATOM_refused, ATOM_loops};
    ERL_NIF_TERM refused;
    if (!interp_refusal(env, &refused)) {
        refused = ATOM_undefined;
    }
    ERL_NIF_TERM values[] = {
        binary_text(env, runtime_version()),
        binary_text(env, runtime_build_version()),
        binary_text(env, runtime_libpython()),
        n > 0 ? ATOM_true : ATOM_false,
        enif_make_int(env, n),
        enif_make_int(env, pool_spares()),
        enif_make_uint64(env, pool_queued()),
        mode_atom(pool_mode()),
        interpreters(env),
        interp_subinterpreters_supported() ? ATOM_true : ATOM_false,
        runtime_free_threaded() ? ATOM_true : ATOM_false,
        refused,
        loops(env),
    };
    ERL_NIF_TERM map;
    enif_make_map_from_arrays(env, keys, values, sizeof(keys) / sizeof(keys[0]), &map);
    return map;
}
