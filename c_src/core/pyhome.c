#define _GNU_SOURCE /* dladdr */
#include "core/pyhome.h"

#include <Python.h>
#include <dlfcn.h>
#include <limits.h>
#include <string.h>

static char home[PATH_MAX];
static char executable[PATH_MAX];

static int
copy_entry(ErlNifEnv *env, ERL_NIF_TERM map, const char *key, char *out, size_t outlen)
{
    ERL_NIF_TERM value;
    ErlNifBinary bin;
    if (out[0] != '\0') {
        return 0; /* set by an earlier load: the interpreter may be reading it */
    }
    if (!enif_get_map_value(env, map, enif_make_atom(env, key), &value)) {
        return 0;
    }
    if (!enif_inspect_binary(env, value, &bin) || bin.size == 0 || bin.size >= outlen ||
        memchr(bin.data, '\0', bin.size) != NULL) {
        return -1;
    }
    memcpy(out, bin.data, bin.size);
    out[bin.size] = '\0';
    return 0;
}

int
pyhome_load(ErlNifEnv *env, ERL_NIF_TERM load_info)
{
    if (!enif_is_map(env, load_info)) {
        return 0;
    }
    if (copy_entry(env, load_info, "home", home, sizeof(home)) < 0 ||
        copy_entry(env, load_info, "executable", executable, sizeof(executable)) < 0) {
        return -1;
    }
    return 0;
}

const char *
pyhome_home(void)
{
    return home[0] != '\0' ? home : NULL;
}

const char *
pyhome_executable(void)
{
    return executable[0] != '\0' ? executable : NULL;
}

const char *
pyhome_libpython(void)
{
    Dl_info info;
    if (dladdr((void *)Py_GetVersion, &info) == 0 || info.dli_fname == NULL) {
        return "";
    }
    return info.dli_fname;
}
