/* The libpython loader: a NIF with no Python in it (Erlang module py_libpython).
 *
 * priv/py_nif.so is linked without libpython: no DT_NEEDED entry and no RUNPATH naming
 * the build machine's directories.  Its Python symbols resolve, when the VM dlopens it,
 * against a libpython that this library has loaded beforehand with RTLD_GLOBAL from the
 * path that py_python resolved at run time (see src/py_python.erl for the rule).  Global
 * symbols also serve C extension modules (_json, _ssl, numpy), which are not linked
 * against libpython either.
 *
 * A process holds one libpython: the first one loaded stays for the VM's life (it is never
 * dlclose'd), and a request for another file is refused.  Thread: a dirty I/O scheduler
 * (dlopen reads the file); the lock serialises concurrent calls. */
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <erl_nif.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char loaded[PATH_MAX]; /* realpath of the loaded libpython, "" before */

static ERL_NIF_TERM
error_text(ErlNifEnv *env, const char *fmt, const char *a, const char *b)
{
    char text[PATH_MAX * 2 + 256];
    snprintf(text, sizeof(text), fmt, a, b);
    size_t n = strlen(text);
    ERL_NIF_TERM bin;
    unsigned char *data = enif_make_new_binary(env, n, &bin);
    memcpy(data, text, n);
    return enif_make_tuple2(env, enif_make_atom(env, "error"), bin);
}

/* dlopen_global(Path :: binary()) -> ok | {error, Text :: binary()} */
static ERL_NIF_TERM
load_global(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
    ErlNifBinary bin;
    char path[PATH_MAX];
    if (!enif_inspect_binary(env, argv[0], &bin) || bin.size == 0 ||
        bin.size >= sizeof(path) || memchr(bin.data, '\0', bin.size) != NULL) {
        return enif_make_badarg(env);
    }
    memcpy(path, bin.data, bin.size);
    path[bin.size] = '\0';
    char real[PATH_MAX];
    if (realpath(path, real) == NULL) {
        return error_text(env, "cannot load %s: no such file%s", path, "");
    }
    ERL_NIF_TERM result = enif_make_atom(env, "ok");
    pthread_mutex_lock(&lock);
    if (loaded[0] != '\0') {
        if (strcmp(loaded, real) != 0) {
            result = error_text(env,
                                "%s is loaded in this VM already: one libpython per VM, "
                                "cannot load %s",
                                loaded, real);
        }
    } else if (dlopen(real, RTLD_NOW | RTLD_GLOBAL) == NULL) {
        const char *why = dlerror();
        result = error_text(env, "cannot load libpython: %s%s", why != NULL ? why : real, "");
    } else {
        snprintf(loaded, sizeof(loaded), "%s", real);
    }
    pthread_mutex_unlock(&lock);
    return result;
}

/* A new version of the Erlang module shares this library's state (same handle). */
static int
upgrade(ErlNifEnv *env, void **priv_data, void **old_priv_data, ERL_NIF_TERM load_info)
{
    return 0;
}

static ErlNifFunc funcs[] = {
    {"dlopen_global", 1, load_global, ERL_NIF_DIRTY_JOB_IO_BOUND},
};

ERL_NIF_INIT(py_libpython, funcs, NULL, NULL, upgrade, NULL)
