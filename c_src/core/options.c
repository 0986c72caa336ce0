#include "core/options.h"

#include "core/atoms.h"

unsigned py_options = OPT_ALL;

static const struct {
    ERL_NIF_TERM *name;
    py_option_t flag;
} option_names[] = {
    {&ATOM_interned_keys, OPT_INTERNED_KEYS},
    {&ATOM_cached_constants, OPT_CACHED_CONSTANTS},
    {&ATOM_direct_response, OPT_DIRECT_RESPONSE},
    {&ATOM_app_cache, OPT_APP_CACHE},
    {&ATOM_header_cache, OPT_HEADER_CACHE},
    {&ATOM_zero_copy, OPT_ZERO_COPY},
    {&ATOM_native_runner, OPT_NATIVE_RUNNER},
};

#define N_OPTIONS (sizeof(option_names) / sizeof(option_names[0]))

int
options_set(ErlNifEnv *env, ERL_NIF_TERM map)
{
    unsigned value = __atomic_load_n(&py_options, __ATOMIC_RELAXED);
    ErlNifMapIterator it;
    ERL_NIF_TERM k, v;
    if (!enif_map_iterator_create(env, map, &it, ERL_NIF_MAP_ITERATOR_FIRST)) {
        return -1;
    }
    int rc = 0;
    while (rc == 0 && enif_map_iterator_get_pair(env, &it, &k, &v)) {
        size_t i;
        for (i = 0; i < N_OPTIONS && *option_names[i].name != k; i++) {
        }
        if (i == N_OPTIONS || (v != ATOM_true && v != ATOM_false)) {
            rc = -1;
        } else if (v == ATOM_true) {
            value |= option_names[i].flag;
        } else {
            value &= ~(unsigned)option_names[i].flag;
        }
        enif_map_iterator_next(env, &it);
    }
    enif_map_iterator_destroy(env, &it);
    if (rc == 0) {
        __atomic_store_n(&py_options, value, __ATOMIC_RELAXED);
    }
    return rc;
}

ERL_NIF_TERM
options_get(ErlNifEnv *env)
{
    ERL_NIF_TERM keys[N_OPTIONS], values[N_OPTIONS], map;
    for (size_t i = 0; i < N_OPTIONS; i++) {
        keys[i] = *option_names[i].name;
        values[i] = option_on(option_names[i].flag) ? ATOM_true : ATOM_false;
    }
    enif_make_map_from_arrays(env, keys, values, N_OPTIONS, &map);
    return map;
}
