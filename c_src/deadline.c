#include "deadline.h"

#include "atoms.h"
#include "errors.h"
#include "worker.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

/* The thread looks at the heap at least this often, and a new deadline earlier than its
 * next look wakes it at once. */
#define IDLE_NS 1000000000ull

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    job_t **heap;          /* min-heap on job->deadline; job->heap_pos = index + 1 */
    size_t n, cap;
    uint64_t next_look;    /* when the thread wakes up next (monotonic ns) */
    int started;
} D = {.lock = PTHREAD_MUTEX_INITIALIZER};

static uint64_t
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- the heap (D.lock held) -------------------------------------------------------- */

static void
place(size_t i, job_t *job)
{
    D.heap[i] = job;
    __atomic_store_n(&job->heap_pos, i + 1, __ATOMIC_SEQ_CST);
}

static void
sift_up(size_t i)
{
    job_t *job = D.heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (D.heap[parent]->deadline <= job->deadline) {
            break;
        }
        place(i, D.heap[parent]);
        i = parent;
    }
    place(i, job);
}

static void
sift_down(size_t i)
{
    job_t *job = D.heap[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= D.n) {
            break;
        }
        if (child + 1 < D.n && D.heap[child + 1]->deadline < D.heap[child]->deadline) {
            child++;
        }
        if (job->deadline <= D.heap[child]->deadline) {
            break;
        }
        place(i, D.heap[child]);
        i = child;
    }
    place(i, job);
}

static int
heap_push(job_t *job)
{
    if (D.n == D.cap) {
        size_t cap = D.cap == 0 ? 256 : D.cap * 2;
        job_t **heap = realloc(D.heap, cap * sizeof(*heap));
        if (heap == NULL) {
            return -1;
        }
        D.heap = heap;
        D.cap = cap;
    }
    D.heap[D.n++] = job;
    sift_up(D.n - 1);
    return 0;
}

/* Removes the job at heap_pos pos (1-based). */
static void
heap_remove(size_t pos)
{
    size_t i = pos - 1;
    job_t *job = D.heap[i];
    __atomic_store_n(&job->heap_pos, 0, __ATOMIC_SEQ_CST);
    job_t *last = D.heap[--D.n];
    if (i < D.n) {
        D.heap[i] = last;
        if (i > 0 && D.heap[(i - 1) / 2]->deadline > last->deadline) {
            sift_up(i);
        } else {
            sift_down(i);
        }
    }
}

/* ---- expiry (deadline thread, no lock) -------------------------------------------- */

static void
expire(job_t *job)
{
    if (job_cancel(job)) {
        /* The job's reply will never be sent, so job->env stays until the job is freed:
         * the tag is read from it, not moved. */
        ErlNifEnv *env = enif_alloc_env();
        if (env != NULL) {
            ERL_NIF_TERM msg = enif_make_tuple2(env, enif_make_copy(env, job->tag),
                                                errors_tuple(env, ATOM_timeout));
            enif_send(NULL, &job->caller, env, msg);
            enif_free_env(env);
        }
        pool_cancel_task(job);
    }
    enif_release_resource(job);
}

static void
wait_until(uint64_t when)
{
    struct timespec ts = {.tv_sec = (time_t)(when / 1000000000ull), .tv_nsec = (long)(when % 1000000000ull)};
    pthread_cond_timedwait(&D.cond, &D.lock, &ts);
}

static void *
deadline_main(void *arg)
{
    pthread_setname_np(pthread_self(), "py-deadline");
    pthread_mutex_lock(&D.lock);
    for (;;) {
        uint64_t now = now_ns();
        while (D.n > 0 && D.heap[0]->deadline <= now) {
            job_t *job = D.heap[0];
            heap_remove(1);
            pthread_mutex_unlock(&D.lock);
            expire(job);
            pthread_mutex_lock(&D.lock);
        }
        D.next_look = now + IDLE_NS;
        if (D.n > 0 && D.heap[0]->deadline < D.next_look) {
            D.next_look = D.heap[0]->deadline;
        }
        wait_until(D.next_look);
    }
    return NULL;
}

/* ---- API -------------------------------------------------------------------------- */

int
deadline_start(void)
{
    pthread_mutex_lock(&D.lock);
    int rc = 0;
    if (!D.started) {
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&D.cond, &ca);
        pthread_condattr_destroy(&ca);
        pthread_t thread;
        if (pthread_create(&thread, NULL, deadline_main, NULL) == 0) {
            pthread_detach(thread);
            D.started = 1;
        } else {
            rc = -1;
        }
    }
    pthread_mutex_unlock(&D.lock);
    return rc;
}

void
deadline_set(job_t *job, uint64_t timeout_ms)
{
    uint64_t now = now_ns();
    uint64_t ns = timeout_ms > (UINT64_MAX - now) / 1000000ull ? UINT64_MAX - now : timeout_ms * 1000000ull;
    job->deadline = now + ns;
    pthread_mutex_lock(&D.lock);
    int queued = heap_push(job) == 0;
    if (queued) {
        enif_keep_resource(job);
        if (job->deadline < D.next_look) {
            pthread_cond_signal(&D.cond);
        }
    }
    pthread_mutex_unlock(&D.lock);
    if (!queued) {
        /* Out of memory for the heap: time out now rather than never. */
        enif_keep_resource(job);
        expire(job);
        return;
    }
    /* A reply that went out before the push found no heap_pos to clear (job_reply reads
     * heap_pos after its compare-and-swap, this reads the state after the push). */
    if (!job_is_pending(job)) {
        deadline_clear(job);
    }
}

void
deadline_clear(job_t *job)
{
    if (__atomic_load_n(&job->heap_pos, __ATOMIC_SEQ_CST) == 0) {
        return;
    }
    pthread_mutex_lock(&D.lock);
    size_t pos = job->heap_pos;
    if (pos != 0) {
        heap_remove(pos);
    }
    pthread_mutex_unlock(&D.lock);
    if (pos != 0) {
        enif_release_resource(job);
    }
}
