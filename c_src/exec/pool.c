#include "exec/pool.h"

#include "core/atoms.h"
#include "core/interp.h"
#include "core/log.h"
#include "core/release.h"
#include "exec/deadline.h"
#include "exec/stuck.h"
#include "terms/errors.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

/* Jobs run per wake-up before the worker lets its loop serve other callbacks. */
#define DRAIN_BATCH 256
/* A worker whose current job started less than this long ago is taken to be making
 * progress through the queue, so new jobs do not wake another worker (which would only
 * contend for the GIL).  A job running longer than this (blocked in I/O or sleep, or just
 * slow) lets the monitor wake another worker for what is queued behind it. */
#define STALL_NS 1000000ull
/* An idle drainer keeps polling the queues this long (GIL released, yielding the CPU)
 * before going back to its event loop's selector: under load the next job usually arrives
 * within microseconds, and a wake-up through the eventfd and the loop costs far more.
 * Not when the loop has callbacks ready (tasks the jobs woke up): they go first. */
#define SPIN_NS 50000ull
/* Worker thread stack: Python frames plus CONVERT_MAX_DEPTH-deep conversions. */
#define WORKER_STACK_SIZE (16u * 1024u * 1024u)

static struct {
    pthread_mutex_t lock;
    pthread_cond_t phase_changed;
    int running;
    job_t *head, *tail;
    unsigned long queued;
    int n;                 /* the workers asked for: slots 0..n-1 */
    int slots;             /* n + spare_max: slots n.. are for spares */
    int spare_max;         /* spare workers at most (app env spare_workers) */
    worker_t *workers;     /* [slots] */
    runtime_config_t *cfg; /* a copy, for spares entering a sub-interpreter */
    int spares_failed;     /* a spare failed to start: no more until the next start */
    pool_mode_t mode;      /* of the running workers */
    int next_pick;         /* round-robin start of pool_pick_worker (parallel modes) */
    pthread_t monitor;
    pthread_cond_t monitor_cond;
    int monitor_idle;      /* the monitor waits for work, not on a deadline */
} pool = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .phase_changed = PTHREAD_COND_INITIALIZER,
};

static uint64_t
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int monitor_cond_ready = 0;

int
pool_size(void)
{
    pthread_mutex_lock(&pool.lock);
    int n = pool.running ? pool.n : 0;
    pthread_mutex_unlock(&pool.lock);
    return n;
}

unsigned long
pool_queued(void)
{
    pthread_mutex_lock(&pool.lock);
    unsigned long q = pool.queued;
    pthread_mutex_unlock(&pool.lock);
    return q;
}

/* ---- queues (pool.lock held) ------------------------------------------------------ */

static void
link_job(job_t **head, job_t **tail, job_t *job)
{
    job->next = NULL;
    if (*tail != NULL) {
        (*tail)->next = job;
    } else {
        *head = job;
    }
    *tail = job;
}

static job_t *
unlink_job(job_t **head, job_t **tail)
{
    job_t *job = *head;
    if (job != NULL) {
        *head = job->next;
        if (*head == NULL) {
            *tail = NULL;
        }
        job->next = NULL;
    }
    return job;
}

static void
wake(worker_t *w)
{
    uint64_t one = 1;
    w->signaled = 1;
    w->signaled_at = now_ns();
    while (write(w->efd, &one, sizeof(one)) < 0 && errno == EINTR) {
    }
}

/* Woken less than STALL_NS ago and not draining yet: on its way to the queues.  A
 * worker woken longer ago is not counted on: its loop is held by something else (an app's
 * task that blocks it), and it may not drain for as long as that lasts. */
static int
on_its_way(const worker_t *w, uint64_t now)
{
    return w->signaled && now - w->signaled_at < STALL_NS;
}

/* Some worker will reach the shared queue soon: one is on its way, or one is draining
 * and its current job is fresh. */
static int
drainer_active(uint64_t now)
{
    for (int i = 0; i < pool.slots; i++) {
        worker_t *w = &pool.workers[i];
        if (w->live && (on_its_way(w, now) || (w->busy && now - w->job_started < STALL_NS))) {
            return 1;
        }
    }
    return 0;
}

/* pool.lock held, shared queue non-empty.  Wakes the first idle worker: the first-idle
 * order keeps light load on few threads (warm caches, no GIL hand-offs).  When it wakes
 * nobody, the monitor watches for a stall. */
static int
wake_idle(void)
{
    for (int i = 0; i < pool.slots; i++) {
        worker_t *w = &pool.workers[i];
        if (w->live && w->phase == W_READY && !w->busy && !w->signaled && !w->stop) {
            wake(w);
            return 1;
        }
    }
    return 0;
}

/* Workers on their way to the shared queue, or polling it. */
static unsigned long
coming_count(uint64_t now)
{
    unsigned long k = 0;
    for (int i = 0; i < pool.slots; i++) {
        worker_t *w = &pool.workers[i];
        k += w->live && (on_its_way(w, now) || w->spinning);
    }
    return k;
}

/* pool.lock held.  Whether queued jobs need another worker: under one GIL (gil mode)
 * only when no drainer is active (a second one would only contend for the GIL); when
 * workers run in parallel, whenever more jobs are queued than workers are on their way
 * to the queue. */
static int
needs_worker(uint64_t now)
{
    return pool.mode == POOL_GIL ? !drainer_active(now) : coming_count(now) < pool.queued;
}

/* ---- stuck workers and spares (pool.lock held) ------------------------------------ */

/* Stuck: running a sync call that its caller gave up (pool_abandon).  Such code may
 * never return (time.sleep(3600), a dead socket without a timeout): the worker no longer
 * counts towards the pool's capacity. */
static int
stuck(const worker_t *w)
{
    return w->current != NULL && w->current->sync && job_is_abandoned(w->current);
}

/* Workers that can take jobs now or soon: started (or starting), not stopping, not
 * stuck. */
static int
capable_count(void)
{
    int k = 0;
    for (int i = 0; i < pool.slots; i++) {
        worker_t *w = &pool.workers[i];
        k += w->live && !w->stop && w->phase != W_FAILED && w->phase != W_EXITED && !stuck(w);
    }
    return k;
}

static void
log_line(const char *fmt, int a, int b, int c)
{
    char text[256];
    int len = snprintf(text, sizeof(text), fmt, a, b, c);
    if (len > 0) {
        log_send(ATOM_warning, text, (size_t)len < sizeof(text) ? (size_t)len : sizeof(text) - 1);
    }
}

/* Starts a spare worker in free slot `j`: it takes jobs from the shared queue (and its
 * own, for follow-ups of what runs on it); under sub-interpreters it runs in
 * interpreter j + 1 (created the first time, kept like the others).  Not waited for: in
 * one GIL it waits for the GIL, which the stuck code may hold. */
static void
start_spare(int j)
{
    worker_t *w = &pool.workers[j];
    memset(w, 0, sizeof(*w));
    w->index = j;
    w->interp_index = pool.mode == POOL_SUBINTERPRETERS ? j + 1 : 0;
    w->cfg = pool.cfg;
    w->spare = 1;
    w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, WORKER_STACK_SIZE);
    if (w->efd < 0 || pthread_create(&w->thread, &attr, worker_main, w) != 0) {
        if (w->efd >= 0) {
            close(w->efd);
        }
        pool.spares_failed = 1;
        log_line("erlang_python: spare worker %d could not be started (%d of %d); no more "
                 "spares until the application restarts", j, j - pool.n + 1, pool.slots - pool.n);
    } else {
        w->live = 1;
        log_line("erlang_python: workers are stuck in calls their callers gave up; started "
                 "spare worker %d (%d of at most %d)", j, j - pool.n + 1, pool.slots - pool.n);
    }
    pthread_attr_destroy(&attr);
}

/* Queued jobs wait and no worker is free: brings the capable workers back up to the
 * number asked for with spares, within the bound. */
static void
add_spares(void)
{
    int capable = capable_count();
    for (int j = pool.n; j < pool.slots && capable < pool.n && !pool.spares_failed; j++) {
        if (!pool.workers[j].live) {
            start_spare(j);
            capable += pool.workers[j].live;
        }
    }
}

/* Joins the spares that have exited (retired, or failed to start).  Returns how many
 * are still on their way out (their thread has not ended yet). */
static int
reap_spares(void)
{
    int leaving = 0;
    for (int j = pool.n; j < pool.slots; j++) {
        worker_t *w = &pool.workers[j];
        if (!w->live || (w->phase != W_EXITED && w->phase != W_FAILED)) {
            continue;
        }
        if (pthread_tryjoin_np(w->thread, NULL) != 0) {
            leaving++;
            continue;
        }
        if (w->phase == W_FAILED) {
            pool.spares_failed = 1;
            char text[400];
            int len = snprintf(text, sizeof(text),
                               "erlang_python: spare worker %d failed to start: %s; no more "
                               "spares until the application restarts", j, w->failure);
            log_send(ATOM_warning, text, (size_t)len < sizeof(text) ? (size_t)len : sizeof(text) - 1);
        }
        close(w->efd);
        w->live = 0;
    }
    return leaving;
}

/* Logs each stuck worker's stack once per stuck call (exec/stuck.h). */
static void
report_stuck(uint64_t now)
{
    for (int i = 0; i < pool.slots; i++) {
        worker_t *w = &pool.workers[i];
        if (w->live && !w->reported && stuck(w)) {
            w->reported = 1;
            stuck_report(i, w->interp_index, w->current, (now - w->job_started) / 1000000ull,
                         pool.mode != POOL_FREE_THREADED);
        }
    }
}

/* A stuck call returned: idle spares look at the queues again, and retire if there are
 * more capable workers than asked for (next_job). */
static void
recall_spares(void)
{
    for (int j = pool.n; j < pool.slots; j++) {
        worker_t *w = &pool.workers[j];
        if (w->live && w->phase == W_READY && !w->busy && !w->signaled && !w->stop) {
            wake(w);
        }
    }
}

/* Wakes a worker for the new job if needed, and has the monitor watch the queue: the
 * worker woken may not come (its loop held by an app's task), and when nobody was woken
 * the workers draining may stall. */
static void
dispatch(uint64_t now)
{
    if (needs_worker(now)) {
        (void)wake_idle();
    }
    if (pool.monitor_idle) {
        pthread_cond_signal(&pool.monitor_cond);
    }
}

/* While jobs are queued, re-checks every STALL_NS that some worker is getting to them,
 * and starts spares when the workers that could are stuck.  Logs stuck workers' stacks
 * and joins retired spares.  Never waits for a GIL. */
static void *
monitor_main(void *arg)
{
    pthread_setname_np(pthread_self(), "py-monitor");
    pthread_mutex_lock(&pool.lock);
    while (pool.running) {
        uint64_t now = now_ns();
        int leaving = reap_spares();
        report_stuck(now);
        if (pool.head == NULL && !leaving) {
            pool.monitor_idle = 1;
            pthread_cond_wait(&pool.monitor_cond, &pool.lock);
            pool.monitor_idle = 0;
            continue;
        }
        if (pool.head != NULL && needs_worker(now) && !wake_idle()) {
            add_spares();
        }
        struct timespec deadline;
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_nsec += (long)STALL_NS;
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&pool.monitor_cond, &pool.lock, &deadline);
    }
    pthread_mutex_unlock(&pool.lock);
    return NULL;
}

int
pool_submit(job_t *job)
{
    pthread_mutex_lock(&pool.lock);
    if (!pool.running) {
        pthread_mutex_unlock(&pool.lock);
        return -1;
    }
    enif_keep_resource(job);
    link_job(&pool.head, &pool.tail, job);
    pool.queued++;
    dispatch(now_ns());
    pthread_mutex_unlock(&pool.lock);
    return 0;
}

ERL_NIF_TERM
pool_submit_new(ErlNifEnv *env, job_t *job, int index, uint64_t timeout_ms)
{
    int rc;
    if (index < 0) {
        rc = pool_submit(job);
    } else {
        job->worker = index;
        rc = pool_submit_to(index, job);
    }
    if (rc < 0) {
        enif_release_resource(job);
        return errors_tuple(env, ATOM_not_started);
    }
    if (timeout_ms != DEADLINE_NONE) {
        deadline_set(job, timeout_ms);
    }
    ERL_NIF_TERM handle = enif_make_resource(env, job);
    enif_release_resource(job);
    return enif_make_tuple2(env, ATOM_ok, handle);
}

int
pool_submit_to(int index, job_t *job)
{
    pthread_mutex_lock(&pool.lock);
    if (!pool.running || index < 0 || index >= pool.slots || !pool.workers[index].live ||
        pool.workers[index].phase != W_READY || pool.workers[index].stop) {
        pthread_mutex_unlock(&pool.lock);
        return -1;
    }
    worker_t *w = &pool.workers[index];
    enif_keep_resource(job);
    link_job(&w->head, &w->tail, job);
    if (!w->busy && !w->signaled) {
        wake(w);
    }
    pthread_mutex_unlock(&pool.lock);
    return 0;
}

/* ---- the drain callback (worker thread, GIL held) --------------------------------- */

static job_t *
next_job(worker_t *w, int *stop)
{
    pthread_mutex_lock(&pool.lock);
    job_t *job = NULL;
    *stop = w->stop;
    if (!w->stop) {
        job = unlink_job(&w->head, &w->tail);
        if (job == NULL) {
            job = unlink_job(&pool.head, &pool.tail);
            if (job != NULL) {
                pool.queued--;
            }
        }
    }
    w->busy = job != NULL;
    w->current = job;
    w->reported = 0;
    if (job != NULL) {
        w->job_started = now_ns();
    } else if (w->spare && !w->stop && capable_count() > pool.n) {
        w->stop = *stop = 1; /* retires: the workers asked for can take the jobs again */
    }
    pthread_mutex_unlock(&pool.lock);
    return job;
}

/* The job that next_job gave `w` is done. */
static void
job_done(worker_t *w)
{
    pthread_mutex_lock(&pool.lock);
    int was_stuck = stuck(w);
    w->current = NULL;
    if (was_stuck) {
        recall_spares();
    }
    pthread_mutex_unlock(&pool.lock);
}

/* Polls for a job for up to SPIN_NS with the GIL released.  Counts as draining, so
 * submitters do not wake another worker meanwhile.  Returns 1 when there is work (or a
 * stop request) to look at, 0 when the worker went idle. */
static int
spin_for_job(worker_t *w)
{
    uint64_t start = now_ns();
    pthread_mutex_lock(&pool.lock);
    w->busy = 1;
    w->spinning = 1;
    w->job_started = start;
    pthread_mutex_unlock(&pool.lock);

    int found = 0;
    Py_BEGIN_ALLOW_THREADS
    while (now_ns() - start < SPIN_NS) {
        if (__atomic_load_n(&pool.head, __ATOMIC_RELAXED) != NULL ||
            __atomic_load_n(&w->head, __ATOMIC_RELAXED) != NULL ||
            __atomic_load_n(&w->stop, __ATOMIC_RELAXED)) {
            found = 1;
            break;
        }
        sched_yield();
    }
    Py_END_ALLOW_THREADS

    pthread_mutex_lock(&pool.lock);
    if (!found) {
        found = pool.head != NULL || w->head != NULL || w->stop;
    }
    if (!found && w->spare && capable_count() > pool.n) {
        w->stop = found = 1; /* retires (recall_spares skipped it while it spun) */
    }
    w->busy = found;
    w->spinning = 0;
    pthread_mutex_unlock(&pool.lock);
    return found;
}

int
pool_drain(worker_t *w)
{
    pthread_mutex_lock(&pool.lock);
    /* Draining from here on (next_job decides): not idle, so not woken again for a job
     * that it is about to take anyway. */
    w->signaled = 0;
    w->busy = 1;
    w->job_started = now_ns();
    pthread_mutex_unlock(&pool.lock);
    release_pending(w->it.ip);

    int stop = 0;
    for (int n = 0; n < DRAIN_BATCH; n++) {
        job_t *job = next_job(w, &stop);
        if (job == NULL) {
            /* Tasks that the jobs woke up run on the loop: back to it at once rather
             * than delay them by a spin. */
            if (stop || worker_has_ready(w) || !spin_for_job(w)) {
                break;
            }
            n--;
            continue;
        }
        if (!job_is_cancelled(job) && worker_running_loop(w, !job->sync) == 0) {
            job->ip = w->it.ip;
            job->worker = w->index;
            job->run(job, w);
            if (PyErr_Occurred()) {
                /* A job's run function must reply and clear what it raised. */
                PyErr_WriteUnraisable(w->loop);
            }
        }
        PyErr_Clear();
        job_done(w);
        enif_release_resource(job);
        if (n + 1 == DRAIN_BATCH) {
            pthread_mutex_lock(&pool.lock);
            w->busy = 0;
            wake(w); /* more may be queued: come back after the loop's other callbacks */
            pthread_mutex_unlock(&pool.lock);
        }
    }
    return stop;
}

/* pool.lock held: how much a new stream on `w` costs, lowest first: 0 awake with nothing
 * to do (polling the queues: no wake-up), 1 idle (a wake-up), 2 running a fresh job or
 * about to (queued behind it), 3 unusable (not ready, stopping, or stalled in a long
 * job). */
static int
pick_cost(const worker_t *w, uint64_t now)
{
    if (w->phase != W_READY || w->stop ||
        (w->busy && !w->spinning && now - w->job_started >= STALL_NS)) {
        return 3;
    }
    if (w->head != NULL || w->signaled || (w->busy && !w->spinning)) {
        return 2;
    }
    return w->spinning ? 0 : 1;
}

int
pool_pick_worker(void)
{
    uint64_t now = now_ns();
    int pick = 0;
    pthread_mutex_lock(&pool.lock);
    if (pool.mode == POOL_GIL || pool.n == 0) {
        /* Under one GIL the first worker that is not stuck (warm caches, no hand-offs). */
        for (int i = 0; i < pool.n; i++) {
            if (pick_cost(&pool.workers[i], now) < 3) {
                pick = i;
                break;
            }
        }
    } else {
        /* In parallel modes the cheapest, from the next one in turn: an awake idle worker
         * takes the stream without a wake-up, an idle one next, and only when all are
         * running does the turn alone decide, so that streams spread over the cores as
         * the load grows but a light load does not wake every worker in turn. */
        int best = 4;
        for (int k = 0; k < pool.n && best > 0; k++) {
            int i = (pool.next_pick + k) % pool.n;
            int cost = pick_cost(&pool.workers[i], now);
            if (cost < best) {
                best = cost;
                pick = i;
            }
        }
        pool.next_pick = pick + 1;
    }
    pthread_mutex_unlock(&pool.lock);
    return pick;
}

int
pool_per_interp(int *workers, int max)
{
    if (pool_mode() != POOL_SUBINTERPRETERS) {
        workers[0] = pool_pick_worker();
        return 1;
    }
    pthread_mutex_lock(&pool.lock);
    int n = pool.n < max ? pool.n : max;
    for (int i = 0; i < n; i++) {
        workers[i] = i;
    }
    pthread_mutex_unlock(&pool.lock);
    return n;
}

pool_mode_t
pool_mode(void)
{
    pthread_mutex_lock(&pool.lock);
    pool_mode_t mode = pool.mode;
    pthread_mutex_unlock(&pool.lock);
    return mode;
}

/* ---- worker side ------------------------------------------------------------------ */

void
pool_set_phase(worker_t *w, worker_phase_t phase)
{
    pthread_mutex_lock(&pool.lock);
    w->phase = phase;
    pthread_cond_broadcast(&pool.phase_changed);
    if (w->spare && phase != W_READY) {
        pthread_cond_signal(&pool.monitor_cond); /* to be joined */
    }
    pthread_mutex_unlock(&pool.lock);
}

void
pool_abandon(job_t *job)
{
    __atomic_store_n(&job->abandoned, 1, __ATOMIC_RELEASE);
    pthread_mutex_lock(&pool.lock);
    if (pool.running && pool.monitor_idle) {
        pthread_cond_signal(&pool.monitor_cond);
    }
    pthread_mutex_unlock(&pool.lock);
}

PyThreadState *
pool_running_tstate(int index, job_t *job)
{
    pthread_mutex_lock(&pool.lock);
    PyThreadState *ts = NULL;
    if (index >= 0 && index < pool.slots && pool.workers[index].live &&
        pool.workers[index].current == job) {
        ts = pool.workers[index].tstate;
    }
    pthread_mutex_unlock(&pool.lock);
    return ts;
}

int
pool_spares(void)
{
    pthread_mutex_lock(&pool.lock);
    int k = 0;
    for (int j = pool.n; j < pool.slots; j++) {
        k += pool.workers[j].live;
    }
    pthread_mutex_unlock(&pool.lock);
    return k;
}

int
pool_stopping(worker_t *w)
{
    pthread_mutex_lock(&pool.lock);
    int stop = w->stop;
    pthread_mutex_unlock(&pool.lock);
    return stop;
}

/* ---- start / stop ----------------------------------------------------------------- */

static void
config_free(runtime_config_t *cfg)
{
    if (cfg == NULL) {
        return;
    }
    for (int i = 0; i < cfg->npaths; i++) {
        free(cfg->paths[i]);
    }
    free(cfg->paths);
    free(cfg->venv);
    free(cfg);
}

/* A deep copy of `cfg` (malloc'ed), or NULL. */
static runtime_config_t *
config_copy(const runtime_config_t *cfg)
{
    runtime_config_t *c = calloc(1, sizeof(*c));
    if (c == NULL || (c->paths = calloc((size_t)cfg->npaths + 1, sizeof(char *))) == NULL) {
        free(c);
        return NULL;
    }
    for (; c->npaths < cfg->npaths; c->npaths++) {
        if ((c->paths[c->npaths] = strdup(cfg->paths[c->npaths])) == NULL) {
            config_free(c);
            return NULL;
        }
    }
    if (cfg->venv != NULL && (c->venv = strdup(cfg->venv)) == NULL) {
        config_free(c);
        return NULL;
    }
    c->loop = cfg->loop;
    return c;
}

/* Answers {error, not_started} to a list of jobs taken off a queue (linked by `next`),
 * and drops the queue's references.  pool.lock not held: a reply may queue jobs (a
 * lifespan whose start-up failed shuts down the interpreters where it started). */
static void
reply_not_started(job_t *list)
{
    while (list != NULL) {
        job_t *job = list;
        list = job->next;
        job->next = NULL;
        if (job->env != NULL) {
            job_reply(job, errors_tuple(job->env, ATOM_not_started));
        }
        enif_release_resource(job);
    }
}

/* Takes every job of a queue, as a list.  pool.lock held. */
static job_t *
take_all(job_t **head, job_t **tail)
{
    job_t *list = *head;
    *head = *tail = NULL;
    return list;
}

/* Asks `workers` (no longer the pool's) to stop and joins them, waiting up to
 * `timeout_ms`; answers the jobs of their own queues {error, not_started}.  A worker
 * stuck in Python past the timeout is left to finish on its own: it exits when its call
 * returns (stop is set), and its struct and eventfd stay allocated for it.  pool.lock not
 * held. */
static void
stop_workers(worker_t *workers, int n, runtime_config_t *cfg, unsigned timeout_ms)
{
    pthread_mutex_lock(&pool.lock);
    for (int i = 0; i < n; i++) {
        if (workers[i].live) {
            workers[i].stop = 1;
            wake(&workers[i]);
        }
    }
    pthread_mutex_unlock(&pool.lock);

    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    int all_joined = 1;
    for (int i = 0; i < n; i++) {
        if (!workers[i].live) {
            continue;
        }
        if (pthread_timedjoin_np(workers[i].thread, NULL, &deadline) != 0) {
            pthread_detach(workers[i].thread);
            all_joined = 0;
        }
    }
    for (int i = 0; i < n; i++) {
        pthread_mutex_lock(&pool.lock);
        job_t *list = take_all(&workers[i].head, &workers[i].tail);
        pthread_mutex_unlock(&pool.lock);
        reply_not_started(list);
    }
    if (all_joined) {
        for (int i = 0; i < n; i++) {
            if (workers[i].live) {
                close(workers[i].efd);
            }
        }
        free(workers);
        config_free(cfg); /* a spare still starting may read it */
    }
}

/* Starts `n` workers for `mode` (each entering its interpreter and applying `cfg`) in
 * an array of `slots` (the rest for spares) and waits until each runs its loop.  Returns
 * them, or NULL with a message in err (the ones that started are stopped again).
 * pool.lock not held. */
static worker_t *
start_workers(int n, int slots, pool_mode_t mode, const runtime_config_t *cfg, char *err,
              size_t errlen)
{
    worker_t *workers = calloc((size_t)slots, sizeof(worker_t));
    if (workers == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, WORKER_STACK_SIZE);

    int started = 0, failed = 0;
    for (int i = 0; i < n; i++) {
        worker_t *w = &workers[i];
        w->index = i;
        w->interp_index = mode == POOL_SUBINTERPRETERS ? i + 1 : 0;
        w->cfg = cfg;
        w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (w->efd < 0) {
            snprintf(err, errlen, "eventfd: %s", strerror(errno));
            failed = 1;
            break;
        }
        if (pthread_create(&w->thread, &attr, worker_main, w) != 0) {
            close(w->efd);
            snprintf(err, errlen, "pthread_create failed");
            failed = 1;
            break;
        }
        w->live = 1;
        started++;
    }
    pthread_attr_destroy(&attr);

    /* Wait until every started worker has its loop running (or failed). */
    pthread_mutex_lock(&pool.lock);
    for (int i = 0; i < started; i++) {
        while (workers[i].phase == W_STARTING) {
            pthread_cond_wait(&pool.phase_changed, &pool.lock);
        }
        workers[i].cfg = NULL;
        if (workers[i].phase == W_FAILED && !failed) {
            snprintf(err, errlen, "worker %d failed to start: %s", i, workers[i].failure);
            failed = 1;
        }
    }
    pthread_mutex_unlock(&pool.lock);
    if (!failed) {
        return workers;
    }
    pthread_mutex_lock(&pool.lock);
    for (int i = 0; i < started; i++) {
        workers[i].stop = 1;
        if (workers[i].phase == W_READY) {
            wake(&workers[i]);
        }
    }
    pthread_mutex_unlock(&pool.lock);
    for (int i = 0; i < started; i++) {
        pthread_join(workers[i].thread, NULL); /* a failed one has returned already */
        close(workers[i].efd);
    }
    free(workers);
    return NULL;
}

/* Makes `workers` (n started, room for spares) and `cfg` the pool's and wakes them for
 * what is queued.  pool.lock held. */
static void
install(worker_t *workers, int n, runtime_config_t *cfg, pool_mode_t mode)
{
    pool.workers = workers;
    pool.n = n;
    pool.slots = n + pool.spare_max;
    pool.cfg = cfg;
    pool.spares_failed = 0;
    pool.mode = mode;
    pool.running = 1;
    if (pool.head != NULL) {
        dispatch(now_ns());
    }
}

int
pool_start(int n, int spares, pool_mode_t mode, const runtime_config_t *cfg, char *err,
           size_t errlen)
{
    pthread_mutex_lock(&pool.lock);
    if (pool.running) {
        pthread_mutex_unlock(&pool.lock);
        snprintf(err, errlen, "already started");
        return -1;
    }
    pool.spare_max = spares;
    pthread_mutex_unlock(&pool.lock);
    if (deadline_start() < 0) {
        snprintf(err, errlen, "pthread_create failed (deadline thread)");
        return -1;
    }
    runtime_config_t *copy = config_copy(cfg);
    if (copy == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    worker_t *workers = start_workers(n, n + spares, mode, cfg, err, errlen);
    if (workers == NULL) {
        config_free(copy);
        return -1;
    }
    if (!monitor_cond_ready) {
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&pool.monitor_cond, &ca);
        pthread_condattr_destroy(&ca);
        monitor_cond_ready = 1;
    }
    pthread_mutex_lock(&pool.lock);
    install(workers, n, copy, mode);
    pthread_mutex_unlock(&pool.lock);
    pthread_create(&pool.monitor, NULL, monitor_main, NULL);
    return 0;
}

int
pool_switch(pool_mode_t mode, const runtime_config_t *cfg, unsigned timeout_ms, char *err,
            size_t errlen)
{
    pthread_mutex_lock(&pool.lock);
    if (!pool.running) {
        pthread_mutex_unlock(&pool.lock);
        snprintf(err, errlen, "not started");
        return -1;
    }
    /* New calls queue meanwhile (no worker to wake); follow-ups for the old workers'
     * loops are refused (that work ends with its workers). */
    worker_t *old = pool.workers;
    int n = pool.n, slots = pool.slots;
    runtime_config_t *old_cfg = pool.cfg;
    pool.workers = NULL;
    pool.cfg = NULL;
    pool.n = pool.slots = 0;
    pthread_mutex_unlock(&pool.lock);
    stop_workers(old, slots, old_cfg, timeout_ms);

    runtime_config_t *copy = config_copy(cfg);
    worker_t *workers = copy != NULL ? start_workers(n, slots, mode, cfg, err, errlen)
                                     : (snprintf(err, errlen, "out of memory"), NULL);
    pthread_mutex_lock(&pool.lock);
    if (workers != NULL) {
        install(workers, n, copy, mode);
        pthread_mutex_unlock(&pool.lock);
        return 0;
    }
    config_free(copy);
    pool.running = 0;
    pthread_cond_signal(&pool.monitor_cond);
    job_t *list = take_all(&pool.head, &pool.tail);
    pool.queued = 0;
    pthread_mutex_unlock(&pool.lock);
    pthread_join(pool.monitor, NULL);
    reply_not_started(list);
    return -1;
}

void
pool_stop(unsigned timeout_ms)
{
    pthread_mutex_lock(&pool.lock);
    if (!pool.running) {
        pthread_mutex_unlock(&pool.lock);
        return;
    }
    pool.running = 0;
    worker_t *workers = pool.workers;
    int slots = pool.slots;
    runtime_config_t *cfg = pool.cfg;
    pool.workers = NULL;
    pool.cfg = NULL;
    pool.n = pool.slots = 0;
    pthread_cond_signal(&pool.monitor_cond);
    pthread_mutex_unlock(&pool.lock);
    pthread_join(pool.monitor, NULL);

    stop_workers(workers, slots, cfg, timeout_ms);

    pthread_mutex_lock(&pool.lock);
    job_t *list = take_all(&pool.head, &pool.tail);
    pool.queued = 0;
    pthread_mutex_unlock(&pool.lock);
    reply_not_started(list);
}
