#include "exec/task.h"

#include "exec/fanout.h"
#include "exec/pool.h"
#include "terms/errors.h"

typedef struct {
    job_t *job;              /* kept (enif_keep_resource) until the callback is freed */
    py_state_t *st;
    task_reply_fn reply;
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
reply_from_task(py_state_t *st, job_t *job, task_reply_fn reply, PyObject *task)
{
    Py_CLEAR(job->task);
    PyObject *result = PyObject_CallMethodNoArgs(task, st->s_result);
    ERL_NIF_TERM term;
    if (job->env == NULL) {
        Py_XDECREF(result);
        PyErr_Clear();
        return;
    }
    term = reply(st, job, result);
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
    reply_from_task(ctx->st, ctx->job, ctx->reply, task);
    Py_RETURN_NONE;
}

static PyMethodDef await_done_def = {"_reply", await_done, METH_O, NULL};

/* asyncio.Task(coro, loop=loop[, eager_start=True]) */
static PyObject *
spawn_args(worker_t *w, PyObject *coro, int eager)
{
    py_state_t *st = w->st;
    PyObject *args = PyTuple_Pack(1, coro);
    PyObject *kwargs = args != NULL ? PyDict_New() : NULL;
    PyObject *task = NULL;
    if (kwargs != NULL && PyDict_SetItem(kwargs, st->s_loop, w->loop) == 0 &&
        (!eager || PyDict_SetItem(kwargs, st->s_eager_start, Py_True) == 0)) {
        task = PyObject_Call(st->task_type, args, kwargs);
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
    py_state_t *st = w->st;
    if (st->eager_tasks) {
        return spawn_args(w, coro, 1);
    }
    /* Python 3.11 has no eager tasks.  Its C Task schedules the first step with
     * loop.call_soon(step, context=ctx) from Task.__init__: an instance attribute
     * `call_soon` shadows the method for just that call and hands the step over, which
     * then runs at once in its context, as 3.12's eager_start does (and without the
     * Handle that call_soon would allocate). */
    if (PyObject_SetAttr(w->loop, st->s_call_soon, w->capture_step) < 0) {
        return NULL;
    }
    PyObject *task = spawn_args(w, coro, 0);
    if (PyObject_DelAttr(w->loop, st->s_call_soon) < 0) {
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
task_await(worker_t *w, job_t *job, PyObject *coro, task_reply_fn reply)
{
    py_state_t *st = w->st;
    PyObject *task = spawn_task(w, coro);
    if (task == NULL) {
        job_reply(job, errors_tuple(job->env, errors_take(st, job->env)));
        return NULL;
    }
    PyObject *done = PyObject_CallMethodNoArgs(task, st->s_done);
    int is_done = done != NULL && PyObject_IsTrue(done);
    Py_XDECREF(done);
    if (is_done) {
        reply_from_task(st, job, reply, task);
        return task;
    }
    await_ctx_t *ctx = PyMem_Malloc(sizeof(*ctx));
    if (ctx == NULL) {
        PyErr_NoMemory();
        job_reply(job, errors_tuple(job->env, errors_take(st, job->env)));
        return task;
    }
    ctx->job = job;
    ctx->st = st;
    ctx->reply = reply;
    enif_keep_resource(job);
    PyObject *capsule = PyCapsule_New(ctx, "py_nif.await", await_ctx_free);
    if (capsule == NULL) {
        enif_release_resource(job);
        PyMem_Free(ctx);
        job_reply(job, errors_tuple(job->env, errors_take(st, job->env)));
        return task;
    }
    PyObject *cb = PyCFunction_New(&await_done_def, capsule);
    Py_DECREF(capsule);
    PyObject *r = cb != NULL
        ? PyObject_CallMethodOneArg(task, st->s_add_done_callback, cb) : NULL;
    Py_XDECREF(cb);
    if (r == NULL) {
        job_reply(job, errors_tuple(job->env, errors_take(st, job->env)));
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
        PyObject *r = PyObject_CallMethodNoArgs(target->task, w->st->s_cancel);
        Py_XDECREF(r);
        PyErr_Clear();
    }
}

void
task_cancel(job_t *job)
{
    if (job->is_fanout) {
        fanout_cancel(job);
        return;
    }
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

PyObject *
task_capture_step(worker_t *w, PyObject *capsule)
{
    return PyCFunction_New(&capture_step_def, capsule);
}
