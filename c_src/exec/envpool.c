#include "exec/envpool.h"

#include <pthread.h>

/* Jobs in flight are about one per waiting caller: up to this many, their environments
 * are reused; past it, they are allocated and freed as without the pool.  An idle pool
 * holds at most this many (each the size of a phony process struct). */
#define ENVPOOL_MAX 256

static struct {
    pthread_mutex_t lock;
    int n;
    ErlNifEnv *envs[ENVPOOL_MAX];
} P = {.lock = PTHREAD_MUTEX_INITIALIZER};

ErlNifEnv *
envpool_get(void)
{
    ErlNifEnv *env = NULL;
    pthread_mutex_lock(&P.lock);
    if (P.n > 0) {
        env = P.envs[--P.n];
    }
    pthread_mutex_unlock(&P.lock);
    return env != NULL ? env : enif_alloc_env();
}

void
envpool_put(ErlNifEnv *env)
{
    enif_clear_env(env);
    pthread_mutex_lock(&P.lock);
    int kept = P.n < ENVPOOL_MAX;
    if (kept) {
        P.envs[P.n++] = env;
    }
    pthread_mutex_unlock(&P.lock);
    if (!kept) {
        enif_free_env(env);
    }
}
