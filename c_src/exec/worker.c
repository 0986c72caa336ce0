#include "exec/worker.h"

#include "core/interp.h"
#include "exec/pool.h"
#include "exec/task.h"
#include "terms/errors.h"

#include <errno.h>
#include <stdio.h>
#include <unistd.h>

static __thread worker_t *current_worker = NULL;
static int loop_counts[2]; /* running workers on asyncio's loop, on uvloop's */

int
worker_loop_count(int uvloop)
{
    return __atomic_load_n(&loop_counts[uvloop != 0], __ATOMIC_RELAXED);
}

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

py_state_t *
worker_state(worker_t *w)
{
    return w->st;
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
worker_has_ready(worker_t *w)
{
    return w->ready == NULL || PyObject_Length(w->ready) > 0;
}

int
worker_running_loop(worker_t *w, int running)
{
    if (w->loop_running == running) {
        return 0;
    }
    PyObject *r = PyObject_CallOneArg(w->st->set_running_loop, running ? w->loop : Py_None);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    w->loop_running = running;
    return 0;
}

/* The eventfd's reader callback on the loop. */
static PyObject *
drain(PyObject *self, PyObject *unused)
{
    worker_t *w = PyCapsule_GetPointer(self, NULL);
    uint64_t count;
    if (read(w->efd, &count, sizeof(count)) < 0 && errno != EAGAIN) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    int stop = pool_drain(w);
    if (worker_running_loop(w, 1) < 0) {
        return NULL;
    }
    if (stop) {
        PyObject *r = PyObject_CallMethodNoArgs(w->loop, w->st->s_stop);
        if (r == NULL) {
            return NULL;
        }
        Py_DECREF(r);
    }
    Py_RETURN_NONE;
}

static PyMethodDef drain_def = {"_drain", drain, METH_NOARGS, NULL};

/* A new event loop of the configured kind (runtime.h, loop_choice_t), or NULL with the
 * exception: for LOOP_UVLOOP in the main interpreter, uvloop's ImportError. */
static PyObject *
new_loop(worker_t *w)
{
    if (w->cfg->loop != LOOP_ASYNCIO) {
        PyObject *m = PyImport_ImportModule("uvloop");
        PyObject *loop = m != NULL ? PyObject_CallMethod(m, "new_event_loop", NULL) : NULL;
        Py_XDECREF(m);
        if (loop != NULL) {
            w->uvloop = 1;
            return loop;
        }
        if (w->cfg->loop == LOOP_UVLOOP && w->interp_index == 0) {
            return NULL;
        }
        PyErr_Clear();
    }
    w->uvloop = 0;
    return PyObject_CallNoArgs(w->st->new_event_loop);
}

/* A new event loop, current on this thread, with the eventfd's reader registered. */
static int
worker_setup(worker_t *w)
{
    py_state_t *st = w->st;
    w->loop = new_loop(w);
    if (w->loop == NULL) {
        return -1;
    }
    PyObject *r = PyObject_CallOneArg(st->set_event_loop, w->loop);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    /* asyncio's BaseEventLoop keeps its ready callbacks in a deque; another loop class
     * may not (uvloop's is not visible from Python): then worker_has_ready is always 1,
     * and the drain goes back to the loop without polling for more jobs (pool.c). */
    w->ready = PyObject_GetAttrString(w->loop, "_ready");
    if (w->ready == NULL || !PySequence_Check(w->ready)) {
        PyErr_Clear();
        Py_CLEAR(w->ready);
    }
    PyObject *capsule = PyCapsule_New(w, NULL, NULL);
    PyObject *fn = capsule != NULL ? PyCFunction_New(&drain_def, capsule) : NULL;
    w->capture_step = capsule != NULL ? task_capture_step(w, capsule) : NULL;
    Py_XDECREF(capsule);
    if (w->capture_step == NULL || fn == NULL) {
        Py_XDECREF(fn);
        return -1;
    }
    PyObject *fd = PyLong_FromLong(w->efd);
    r = fd != NULL ? PyObject_CallMethodObjArgs(w->loop, st->s_add_reader, fd, fn, NULL) : NULL;
    Py_XDECREF(fd);
    Py_DECREF(fn);
    if (r == NULL) {
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

/* erlang_python_runtime.teardown_loop(loop): cancels what still runs, closes the loop. */
static void
teardown_loop(worker_t *w)
{
    PyObject *m = PyImport_ImportModule("erlang_python_runtime");
    PyObject *r = m != NULL ? PyObject_CallMethod(m, "teardown_loop", "O", w->loop) : NULL;
    if (r == NULL) {
        PyErr_WriteUnraisable(w->loop);
    }
    Py_XDECREF(r);
    Py_XDECREF(m);
}

/* The exception that failed the worker's set-up as one line, `Type: message' (what
 * start's {init_failed, Text} says; the traceback of a set-up step is the runner's). */
static void
record_failure(worker_t *w)
{
    ErlNifEnv *env = enif_alloc_env();
    ERL_NIF_TERM reason = errors_take(w->st, env);
    const ERL_NIF_TERM *t;
    int arity;
    ErlNifBinary type, msg;
    if (enif_get_tuple(env, reason, &arity, &t) && arity == 4 &&
        enif_inspect_binary(env, t[1], &type) && enif_inspect_binary(env, t[2], &msg)) {
        snprintf(w->failure, sizeof(w->failure), "%.*s: %.*s", (int)type.size,
                 (const char *)type.data, (int)msg.size, (const char *)msg.data);
    } else {
        enif_snprintf(w->failure, sizeof(w->failure), "%T", reason);
    }
    enif_free_env(env);
}

void *
worker_main(void *arg)
{
    worker_t *w = arg;
    char name[16];
    snprintf(name, sizeof(name), "py-worker-%d", w->index);
    pthread_setname_np(pthread_self(), name);
    if (interp_enter(&w->it, w->interp_index, w->cfg, w->failure, sizeof(w->failure)) < 0) {
        pool_set_phase(w, W_FAILED);
        return NULL;
    }
    current_worker = w;
    w->st = w->it.ip->st;
    w->tstate = PyThreadState_Get();
    if (worker_setup(w) < 0) {
        record_failure(w);
        Py_CLEAR(w->ready);
        Py_CLEAR(w->loop);
        Py_CLEAR(w->capture_step);
        current_worker = NULL;
        interp_leave(&w->it);
        pool_set_phase(w, W_FAILED);
        return NULL;
    }
    w->loop_running = 1; /* from here on drain runs inside run_forever */
    __atomic_add_fetch(&loop_counts[w->uvloop], 1, __ATOMIC_RELAXED);
    pool_set_phase(w, W_READY);

    /* asyncio re-raises SystemExit and KeyboardInterrupt out of run_forever (the task
     * that raised has its exception set and replies from its done callback on the next
     * iteration): log and carry on until asked to stop. */
    for (;;) {
        PyObject *r = PyObject_CallMethodNoArgs(w->loop, w->st->s_run_forever);
        if (r != NULL) {
            Py_DECREF(r);
        } else {
            PyErr_WriteUnraisable(w->loop);
        }
        if (pool_stopping(w)) {
            break;
        }
    }
    __atomic_sub_fetch(&loop_counts[w->uvloop], 1, __ATOMIC_RELAXED);
    teardown_loop(w);
    Py_CLEAR(w->ready);
    Py_CLEAR(w->loop);
    Py_CLEAR(w->timers);
    Py_CLEAR(w->capture_step);
    current_worker = NULL;
    interp_leave(&w->it);
    pool_set_phase(w, W_EXITED);
    return NULL;
}
