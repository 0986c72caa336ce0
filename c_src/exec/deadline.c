#include "exec/deadline.h"

#include "core/atoms.h"
#include "exec/task.h"
#include "terms/errors.h"

#include <pthread.h>
#include <time.h>

/* The thread looks at the lanes at least this often, and a new deadline earlier than its
 * next look wakes it at once. */
#define IDLE_NS 1000000000ull

/* Pending deadlines are kept in lanes: one per timeout value, so that each lane is in
 * deadline order by appending (now is read under the lock), and insertion and removal
 * cost O(1) whatever the number of pending jobs.  Calls use few distinct timeouts (the
 * default and a handful of others); once every other lane is taken, the last lane takes
 * any timeout and keeps its order by walking back from its tail on insertion. */
#define N_LANES 8

typedef struct {
    uint64_t timeout_ms;   /* its jobs' timeout; the last lane: any */
    job_t *head, *tail;    /* head: the earliest deadline */
} lane_t;

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    lane_t lanes[N_LANES];
    int n_lanes;           /* lanes given a timeout so far */
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

/* ---- the lanes (D.lock held) ------------------------------------------------------- */

static int
lane_for(uint64_t timeout_ms)
{
    for (int i = 0; i < D.n_lanes; i++) {
        if (D.lanes[i].timeout_ms == timeout_ms) {
            return i;
        }
    }
    if (D.n_lanes < N_LANES - 1) {
        D.lanes[D.n_lanes].timeout_ms = timeout_ms;
        return D.n_lanes++;
    }
    return N_LANES - 1;
}

static void
lane_insert(int i, job_t *job)
{
    lane_t *lane = &D.lanes[i];
    job_t *after = lane->tail;
    while (after != NULL && after->deadline > job->deadline) {
        after = after->lane_prev;
    }
    job->lane_prev = after;
    job->lane_next = after != NULL ? after->lane_next : lane->head;
    if (job->lane_next != NULL) {
        job->lane_next->lane_prev = job;
    } else {
        lane->tail = job;
    }
    if (after != NULL) {
        after->lane_next = job;
    } else {
        lane->head = job;
    }
    __atomic_store_n(&job->lane, i + 1, __ATOMIC_SEQ_CST);
}

static void
lane_remove(job_t *job)
{
    lane_t *lane = &D.lanes[job->lane - 1];
    if (job->lane_prev != NULL) {
        job->lane_prev->lane_next = job->lane_next;
    } else {
        lane->head = job->lane_next;
    }
    if (job->lane_next != NULL) {
        job->lane_next->lane_prev = job->lane_prev;
    } else {
        lane->tail = job->lane_prev;
    }
    job->lane_prev = job->lane_next = NULL;
    __atomic_store_n(&job->lane, 0, __ATOMIC_SEQ_CST);
}

/* The pending job with the earliest deadline, or NULL. */
static job_t *
earliest(void)
{
    job_t *first = NULL;
    for (int i = 0; i < N_LANES; i++) {
        job_t *head = D.lanes[i].head;
        if (head != NULL && (first == NULL || head->deadline < first->deadline)) {
            first = head;
        }
    }
    return first;
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
        task_cancel(job);
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
        job_t *job;
        while ((job = earliest()) != NULL && job->deadline <= now) {
            lane_remove(job);
            pthread_mutex_unlock(&D.lock);
            expire(job);
            pthread_mutex_lock(&D.lock);
        }
        D.next_look = now + IDLE_NS;
        if (job != NULL && job->deadline < D.next_look) {
            D.next_look = job->deadline;
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

int
deadline_get_timeout(ErlNifEnv *env, ERL_NIF_TERM term, uint64_t *timeout_ms)
{
    ErlNifUInt64 ms;
    if (term == ATOM_infinity) {
        *timeout_ms = DEADLINE_NONE;
        return 1;
    }
    if (!enif_get_uint64(env, term, &ms)) {
        return 0;
    }
    *timeout_ms = ms;
    return 1;
}

void
deadline_set(job_t *job, uint64_t timeout_ms)
{
    pthread_mutex_lock(&D.lock);
    uint64_t now = now_ns();
    uint64_t ns = timeout_ms > (UINT64_MAX - now) / 1000000ull ? UINT64_MAX - now : timeout_ms * 1000000ull;
    job->deadline = now + ns;
    enif_keep_resource(job);
    lane_insert(lane_for(timeout_ms), job);
    if (job->deadline < D.next_look) {
        pthread_cond_signal(&D.cond);
    }
    pthread_mutex_unlock(&D.lock);
    /* A reply that went out before the insertion found no lane to clear it from
     * (job_reply reads job->lane after its compare-and-swap, this reads the state after
     * the insertion). */
    if (!job_is_pending(job)) {
        deadline_clear(job);
    }
}

void
deadline_clear(job_t *job)
{
    if (__atomic_load_n(&job->lane, __ATOMIC_SEQ_CST) == 0) {
        return;
    }
    pthread_mutex_lock(&D.lock);
    int in_lane = job->lane != 0;
    if (in_lane) {
        lane_remove(job);
    }
    pthread_mutex_unlock(&D.lock);
    if (in_lane) {
        enif_release_resource(job);
    }
}
