#include "core/log.h"

#include "core/atoms.h"

#include <string.h>

int
log_send(ERL_NIF_TERM level, const char *msg, size_t len)
{
    ErlNifPid pid;
    if (!enif_whereis_pid(NULL, ATOM_py_runtime, &pid)) {
        return 0;
    }
    ErlNifEnv *env = enif_alloc_env();
    if (env == NULL) {
        return -1;
    }
    ERL_NIF_TERM bin;
    unsigned char *buf = enif_make_new_binary(env, len, &bin);
    if (buf == NULL) {
        enif_free_env(env);
        return -1;
    }
    memcpy(buf, msg, len);
    enif_send(NULL, &pid, env, enif_make_tuple3(env, ATOM_py_log, level, bin));
    enif_free_env(env);
    return 0;
}
