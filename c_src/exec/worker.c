#include "worker.h"

#include "atoms.h"
#include "deadline.h"
#include "errors.h"
#include "release.h"
#include "state.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
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
 * within microseconds, and a wake-up through the eventfd and the loop costs far more. */
#define SPIN_NS 50000ull
/* Worker thread stack: Python frames plus CONVERT_MAX_DEPTH-deep conversions. */
#define WORKER_STACK_SIZE (16u * 1024u * 1024u)

typedef enum { W_STARTING = 0, W_READY = 1, W_FAILED = 2, W_EXITED = 3 } worker_phase_t;

struct worker {
    int index;
    pthread_t thread;
    int efd;
    /* guarded by pool.lock */
    int signaled;          /* eventfd written, drain not yet started */
    int busy;              /* draining */
    uint64_t job_started;  /* monotonic ns when the current job was taken */
    int stop;
    worker_phase_t phase;
    job_t *head, *tail;    /* this worker's own queue */
    char failure[256];
    /* worker thread only (GIL) */
    PyObject *loop;
    PyObject *timers;      /* timer id -> callback, for _erlang.schedule_timer */
    unsigned long next_timer;
    int loop_running;            /* the loop is asyncio's running loop on this thread */
    PyObject *capture_step;      /* 3.11 eager start, see spawn_task */
    PyObject *captured_step;
    PyObject *captured_context;
};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t phase_changed;
    int running;
    job_t *head, *tail;
    unsigned long queued;
    int n;
    worker_t *workers;
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

static __thread worker_t *current_worker = NULL;
static int monitor_cond_ready = 0;

worker_t *
worker_current(void)
{
    return current_worker;
}

int
worker_index(worker_t *w)
{
    return w->index;
}

PyObject *
worker_loop(worker_t *w)
{
    return w->loop;
}

PyObject *
worker_timers(worker_t *w)
{
    if (w->timers == NULL) {
        w->timers = PyDict_New();
    }
    return w->timers;
}

unsigned long
worker_next_timer_id(worker_t *w)
{
    return ++w->next_timer;
}

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
    while (write(w->efd, &one, sizeof(one)) < 0 && errno == EINTR) {
    }
}

/* Some worker will reach the shared queue soon: one has been woken, or one is draining
 * and its current job is fresh. */
static int
drainer_active(uint64_t now)
{
    for (int i = 0; i < pool.n; i++) {
        worker_t *w = &pool.workers[i];
        if (w->signaled || (w->busy && now - w->job_started < STALL_NS)) {
            return 1;
        }
    }
    return 0;
}

/* pool.lock held, shared queue non-empty.  Wakes the first idle worker unless a drainer
 * is active; the first-idle order keeps light load on few threads (warm caches, no GIL
 * hand-offs).  When it wakes nobody, the monitor watches for a stall. */
static int
wake_idle(void)
{
    for (int i = 0; i < pool.n; i++) {
        worker_t *w = &pool.workers[i];
        if (w->phase == W_READY && !w->busy && !w->signaled && !w->stop) {
            wake(w);
            return 1;
        }
    }
    return 0;
}

static void
dispatch(uint64_t now)
{
    if (!drainer_active(now) && wake_idle()) {
        return;
    }
    if (pool.monitor_idle) {
        pthread_cond_signal(&pool.monitor_cond);
    }
}

/* While jobs are queued, re-checks every STALL_NS that some worker is getting to them. */
static void *
monitor_main(void *arg)
{
    pthread_setname_np(pthread_self(), "py-monitor");
    pthread_mutex_lock(&pool.lock);
    while (pool.running) {
        if (pool.head == NULL) {
            pool.monitor_idle = 1;
            pthread_cond_wait(&pool.monitor_cond, &pool.lock);
            pool.monitor_idle = 0;
            continue;
        }
        if (!drainer_active(now_ns())) {
            wake_idle();
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
    if (!pool.running || index < 0 || index >= pool.n ||
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
    if (job != NULL) {
        w->job_started = now_ns();
    }
    pthread_mutex_unlock(&pool.lock);
    return job;
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
    w->busy = found;
    pthread_mutex_unlock(&pool.lock);
    return found;
}

int
worker_running_loop(worker_t *w, int running)
{
    if (w->loop_running == running) {
        return 0;
    }
    PyObject *r = PyObject_CallOneArg(PY_STATE->set_running_loop, running ? w->loop : Py_None);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    w->loop_running = running;
    return 0;
}

static PyObject *
drain(PyObject *self, PyObject *unused)
{
    worker_t *w = PyCapsule_GetPointer(self, NULL);
    uint64_t count;
    if (read(w->efd, &count, sizeof(count)) < 0 && errno != EAGAIN) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    pthread_mutex_lock(&pool.lock);
    w->signaled = 0;
    pthread_mutex_unlock(&pool.lock);
    release_pending();

    int stop = 0;
    for (int n = 0; n < DRAIN_BATCH; n++) {
        job_t *job = next_job(w, &stop);
        if (job == NULL) {
            if (stop || !spin_for_job(w)) {
                break;
            }
            n--;
            continue;
        }
        if (!job_is_cancelled(job) && worker_running_loop(w, !job->sync) == 0) {
            job->worker = w->index;
            job->run(job, w);
            if (PyErr_Occurred()) {
                /* A job's run function must reply and clear what it raised. */
                PyErr_WriteUnraisable(self);
            }
        }
        enif_release_resource(job);
        if (n + 1 == DRAIN_BATCH) {
            pthread_mutex_lock(&pool.lock);
            w->busy = 0;
            wake(w); /* more may be queued: come back after the loop's other callbacks */
            pthread_mutex_unlock(&pool.lock);
        }
    }
    if (worker_running_loop(w, 1) < 0) {
        return NULL;
    }
    if (stop) {
        PyObject *r = PyObject_CallMethodNoArgs(w->loop, PY_STATE->s_stop);
        if (r == NULL) {
            return NULL;
        }
        Py_DECREF(r);
    }
    Py_RETURN_NONE;
}

static PyMethodDef drain_def = {"_drain", drain, METH_NOARGS, NULL};

/* ---- awaiting coroutines ---------------------------------------------------------- */

typedef struct {
    job_t *job;              /* kept (enif_keep_resource) until the callback is freed */
    worker_reply_fn reply;
} await_ctx_t;

static void
await_ctx_free(PyObject *capsule)
{
    await_ctx_t *ctx = PyCapsule_GetPointer(capsule, "py_nif.await");
    if (ctx != NULL) {
        enif_release_resource(ctx->job);
        PyMem_Free(ctx);
    }
}

static void
reply_from_task(job_t *job, worker_reply_fn reply, PyObject *task)
{
    Py_CLEAR(job->task);
    PyObject *result = PyObject_CallMethodNoArgs(task, PY_STATE->s_result);
    ERL_NIF_TERM term;
    if (job->env == NULL) {
        Py_XDECREF(result);
        PyErr_Clear();
        return;
    }
    term = reply(job, result);
    Py_XDECREF(result);
    PyErr_Clear();
    job_reply(job, term);
}

static PyObject *
await_done(PyObject *self, PyObject *task)
{
    await_ctx_t *ctx = PyCapsule_GetPointer(self, "py_nif.await");
    if (ctx == NULL) {
        return NULL;
    }
    reply_from_task(ctx->job, ctx->reply, task);
    Py_RETURN_NONE;
}

static PyMethodDef await_done_def = {"_reply", await_done, METH_O, NULL};

/* asyncio.Task(coro, loop=loop[, eager_start=True]) */
static PyObject *
spawn_args(worker_t *w, PyObject *coro, int eager)
{
    PyObject *args = PyTuple_Pack(1, coro);
    PyObject *kwargs = args != NULL ? PyDict_New() : NULL;
    PyObject *task = NULL;
    if (kwargs != NULL && PyDict_SetItem(kwargs, PY_STATE->s_loop, w->loop) == 0 &&
        (!eager || PyDict_SetItem(kwargs, PY_STATE->s_eager_start, Py_True) == 0)) {
        task = PyObject_Call(PY_STATE->task_type, args, kwargs);
    }
    Py_XDECREF(args);
    Py_XDECREF(kwargs);
    return task;
}

/* The stand-in for loop.call_soon while a 3.11 Task is created: keeps the callback and
 * its context in the worker. */
static PyObject *
capture_step(PyObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    worker_t *w = PyCapsule_GetPointer(self, NULL);
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (w == NULL || nargs != 1 || w->captured_step != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "unexpected call_soon during task creation");
        return NULL;
    }
    w->captured_step = Py_NewRef(args[0]);
    if (kwnames != NULL && PyTuple_GET_SIZE(kwnames) == 1) {
        w->captured_context = Py_NewRef(args[1]);
    }
    Py_RETURN_NONE;
}

static PyMethodDef capture_step_def = {"call_soon", (PyCFunction)(void (*)(void))capture_step,
                                       METH_FASTCALL | METH_KEYWORDS, NULL};

static PyObject *
spawn_task(worker_t *w, PyObject *coro)
{
    if (PY_STATE->eager_tasks) {
        return spawn_args(w, coro, 1);
    }
    /* Python 3.11 has no eager tasks.  Its C Task schedules the first step with
     * loop.call_soon(step, context=ctx) from Task.__init__: an instance attribute
     * `call_soon` shadows the method for just that call and hands the step over, which
     * then runs at once in its context, as 3.12's eager_start does (and without the
     * Handle that call_soon would allocate). */
    if (PyObject_SetAttr(w->loop, PY_STATE->s_call_soon, w->capture_step) < 0) {
        return NULL;
    }
    PyObject *task = spawn_args(w, coro, 0);
    if (PyObject_DelAttr(w->loop, PY_STATE->s_call_soon) < 0) {
        Py_XDECREF(task);
        return NULL;
    }
    PyObject *step = w->captured_step, *ctx = w->captured_context;
    w->captured_step = w->captured_context = NULL;
    if (task == NULL || step == NULL) {
        if (task != NULL) {
            PyErr_SetString(PyExc_SystemError, "asyncio.Task did not schedule its first step");
            Py_CLEAR(task);
        }
        Py_XDECREF(step);
        Py_XDECREF(ctx);
        return NULL;
    }
    int entered = ctx != NULL ? PyContext_Enter(ctx) : 0;
    PyObject *r = entered == 0 ? PyObject_CallNoArgs(step) : NULL;
    if (ctx != NULL && entered == 0 && PyContext_Exit(ctx) < 0) {
        Py_CLEAR(r);
    }
    Py_DECREF(step);
    Py_XDECREF(ctx);
    if (r == NULL) {
        Py_DECREF(task);
        return NULL;
    }
    Py_DECREF(r);
    return task;
}

PyObject *
worker_await(worker_t *w, job_t *job, PyObject *coro, worker_reply_fn reply)
{
    PyObject *task = spawn_task(w, coro);
    if (task == NULL) {
        job_reply(job, errors_tuple(job->env, errors_take(job->env)));
        return NULL;
    }
    PyObject *done = PyObject_CallMethodNoArgs(task, PY_STATE->s_done);
    int is_done = done != NULL && PyObject_IsTrue(done);
    Py_XDECREF(done);
    if (is_done) {
        reply_from_task(job, reply, task);
        return task;
    }
    await_ctx_t *ctx = PyMem_Malloc(sizeof(*ctx));
    if (ctx == NULL) {
        PyErr_NoMemory();
        job_reply(job, errors_tuple(job->env, errors_take(job->env)));
        return task;
    }
    ctx->job = job;
    ctx->reply = reply;
    enif_keep_resource(job);
    PyObject *capsule = PyCapsule_New(ctx, "py_nif.await", await_ctx_free);
    if (capsule == NULL) {
        enif_release_resource(job);
        PyMem_Free(ctx);
        job_reply(job, errors_tuple(job->env, errors_take(job->env)));
        return task;
    }
    PyObject *cb = PyCFunction_New(&await_done_def, capsule);
    Py_DECREF(capsule);
    PyObject *r = cb != NULL
        ? PyObject_CallMethodOneArg(task, PY_STATE->s_add_done_callback, cb) : NULL;
    Py_XDECREF(cb);
    if (r == NULL) {
        job_reply(job, errors_tuple(job->env, errors_take(job->env)));
        return task;
    }
    Py_DECREF(r);
    job->task = Py_NewRef(task);
    return task;
}

static void
cancel_task_run(job_t *followup, worker_t *w)
{
    job_t *target = followup->data;
    if (target->task != NULL) {
        PyObject *r = PyObject_CallMethodNoArgs(target->task, PY_STATE->s_cancel);
        Py_XDECREF(r);
        PyErr_Clear();
    }
}

void
pool_cancel_task(job_t *job)
{
    int index = __atomic_load_n(&job->worker, __ATOMIC_ACQUIRE);
    if (index < 0) {
        return; /* not started: the worker skips it */
    }
    job_t *followup = job_new_followup(cancel_task_run, job);
    if (followup != NULL) {
        pool_submit_to(index, followup);
        enif_release_resource(followup);
    }
}

int
pool_pick_worker(void)
{
    uint64_t now = now_ns();
    int pick = 0;
    pthread_mutex_lock(&pool.lock);
    for (int i = 0; i < pool.n; i++) {
        worker_t *w = &pool.workers[i];
        if (w->phase == W_READY && !w->stop && !(w->busy && now - w->job_started >= STALL_NS)) {
            pick = i;
            break;
        }
    }
    pthread_mutex_unlock(&pool.lock);
    return pick;
}

/* ---- worker thread ---------------------------------------------------------------- */

static void
set_phase(worker_t *w, worker_phase_t phase)
{
    pthread_mutex_lock(&pool.lock);
    w->phase = phase;
    pthread_cond_broadcast(&pool.phase_changed);
    pthread_mutex_unlock(&pool.lock);
}

/* Cancels what is still running on the loop, gives it a moment to unwind, closes it. */
static const char TEARDOWN_SRC[] =
    "def teardown(loop):\n"
    "    import asyncio\n"
    "    tasks = asyncio.all_tasks(loop)\n"
    "    for t in tasks:\n"
    "        t.cancel()\n"
    "    if tasks:\n"
    "        loop.run_until_complete(asyncio.wait(tasks, timeout=1.0))\n"
    "    loop.close()\n";

static int
teardown_loop(PyObject *loop)
{
    PyObject *globals = PyDict_New();
    if (globals == NULL) {
        return -1;
    }
    PyObject *r = PyRun_String(TEARDOWN_SRC, Py_file_input, globals, globals);
    if (r == NULL) {
        Py_DECREF(globals);
        return -1;
    }
    Py_DECREF(r);
    PyObject *fn = PyDict_GetItemString(globals, "teardown");
    r = fn != NULL ? PyObject_CallOneArg(fn, loop) : NULL;
    Py_DECREF(globals);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

static int
worker_setup(worker_t *w)
{
    w->loop = PyObject_CallNoArgs(PY_STATE->new_event_loop);
    if (w->loop == NULL) {
        return -1;
    }
    PyObject *r = PyObject_CallOneArg(PY_STATE->set_event_loop, w->loop);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    PyObject *capsule = PyCapsule_New(w, NULL, NULL);
    PyObject *fn = capsule != NULL ? PyCFunction_New(&drain_def, capsule) : NULL;
    w->capture_step = capsule != NULL ? PyCFunction_New(&capture_step_def, capsule) : NULL;
    Py_XDECREF(capsule);
    if (w->capture_step == NULL) {
        Py_XDECREF(fn);
        return -1;
    }
    if (fn == NULL) {
        return -1;
    }
    PyObject *fd = PyLong_FromLong(w->efd);
    r = fd != NULL ? PyObject_CallMethodObjArgs(w->loop, PY_STATE->s_add_reader, fd, fn, NULL)
                   : NULL;
    Py_XDECREF(fd);
    Py_DECREF(fn);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

static void
record_failure(worker_t *w)
{
    ErlNifEnv *env = enif_alloc_env();
    ERL_NIF_TERM reason = errors_take(env);
    enif_snprintf(w->failure, sizeof(w->failure), "%T", reason);
    enif_free_env(env);
}

static void *
worker_main(void *arg)
{
    worker_t *w = arg;
    char name[16];
    snprintf(name, sizeof(name), "py-worker-%d", w->index);
    pthread_setname_np(pthread_self(), name);
    current_worker = w;
    PyGILState_STATE gil = PyGILState_Ensure();
    if (worker_setup(w) < 0) {
        record_failure(w);
        Py_CLEAR(w->loop);
        PyGILState_Release(gil);
        set_phase(w, W_FAILED);
        return NULL;
    }
    w->loop_running = 1; /* from here on drain runs inside run_forever */
    set_phase(w, W_READY);

    /* asyncio re-raises SystemExit and KeyboardInterrupt out of run_forever (the task
     * that raised has its exception set and replies from its done callback on the next
     * iteration): log and carry on until asked to stop. */
    for (;;) {
        PyObject *r = PyObject_CallMethodNoArgs(w->loop, PY_STATE->s_run_forever);
        if (r != NULL) {
            Py_DECREF(r);
        } else {
            PyErr_WriteUnraisable(w->loop);
        }
        pthread_mutex_lock(&pool.lock);
        int stop = w->stop;
        pthread_mutex_unlock(&pool.lock);
        if (stop) {
            break;
        }
    }
    if (teardown_loop(w->loop) < 0) {
        PyErr_WriteUnraisable(w->loop);
    }
    Py_CLEAR(w->loop);
    Py_CLEAR(w->timers);
    Py_CLEAR(w->capture_step);
    PyGILState_Release(gil);
    current_worker = NULL;
    set_phase(w, W_EXITED);
    return NULL;
}

/* ---- start / stop ----------------------------------------------------------------- */

static void
reply_not_started(job_t *job)
{
    if (job->env != NULL) {
        job_reply(job, errors_tuple(job->env, ATOM_not_started));
    }
    enif_release_resource(job);
}

int
pool_start(int n, char *err, size_t errlen)
{
    pthread_mutex_lock(&pool.lock);
    if (pool.running) {
        pthread_mutex_unlock(&pool.lock);
        snprintf(err, errlen, "already started");
        return -1;
    }
    pthread_mutex_unlock(&pool.lock);

    worker_t *workers = calloc((size_t)n, sizeof(worker_t));
    if (workers == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, WORKER_STACK_SIZE);

    int started = 0, failed = 0;
    for (int i = 0; i < n; i++) {
        worker_t *w = &workers[i];
        w->index = i;
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
        started++;
    }
    pthread_attr_destroy(&attr);

    /* Wait until every started worker has its loop running (or failed). */
    pthread_mutex_lock(&pool.lock);
    for (int i = 0; i < started; i++) {
        while (workers[i].phase == W_STARTING) {
            pthread_cond_wait(&pool.phase_changed, &pool.lock);
        }
        if (workers[i].phase == W_FAILED && !failed) {
            snprintf(err, errlen, "worker %d failed to start: %s", i, workers[i].failure);
            failed = 1;
        }
    }
    if (!failed && deadline_start() < 0) {
        snprintf(err, errlen, "pthread_create failed (deadline thread)");
        failed = 1;
    }
    if (!failed) {
        pool.workers = workers;
        pool.n = n;
        pool.running = 1;
        pthread_mutex_unlock(&pool.lock);
        if (!monitor_cond_ready) {
            pthread_condattr_t ca;
            pthread_condattr_init(&ca);
            pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
            pthread_cond_init(&pool.monitor_cond, &ca);
            pthread_condattr_destroy(&ca);
            monitor_cond_ready = 1;
        }
        pthread_create(&pool.monitor, NULL, monitor_main, NULL);
        return 0;
    }
    for (int i = 0; i < started; i++) {
        workers[i].stop = 1;
        if (workers[i].phase == W_READY) {
            wake(&workers[i]);
        }
    }
    pthread_mutex_unlock(&pool.lock);
    for (int i = 0; i < started; i++) {
        pthread_join(workers[i].thread, NULL);
        close(workers[i].efd);
    }
    free(workers);
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
    int n = pool.n;
    for (int i = 0; i < n; i++) {
        workers[i].stop = 1;
        wake(&workers[i]);
    }
    pthread_cond_signal(&pool.monitor_cond);
    pthread_mutex_unlock(&pool.lock);
    pthread_join(pool.monitor, NULL);

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
        if (pthread_timedjoin_np(workers[i].thread, NULL, &deadline) != 0) {
            /* Stuck in Python: it exits when its call returns (stop is set).  Its struct
             * and eventfd stay allocated for it. */
            pthread_detach(workers[i].thread);
            all_joined = 0;
        }
    }

    pthread_mutex_lock(&pool.lock);
    job_t *job;
    while ((job = unlink_job(&pool.head, &pool.tail)) != NULL) {
        pool.queued--;
        reply_not_started(job);
    }
    for (int i = 0; i < n; i++) {
        while ((job = unlink_job(&workers[i].head, &workers[i].tail)) != NULL) {
            reply_not_started(job);
        }
    }
    pool.workers = NULL;
    pool.n = 0;
    pthread_mutex_unlock(&pool.lock);
    if (all_joined) {
        for (int i = 0; i < n; i++) {
            close(workers[i].efd);
        }
        free(workers);
    }
}
