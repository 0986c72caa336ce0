#include "exec/timer.h"

#include "core/atoms.h"
#include "exec/job.h"
#include "exec/pool.h"
#include "exec/worker.h"

PyObject *
timer_schedule(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "schedule_timer(delay_ms, callback)");
        return NULL;
    }
    long delay = PyLong_AsLong(args[0]);
    if (delay == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (delay < 0) {
        delay = 0;
    }
    worker_t *w = worker_current();
    ErlNifPid runtime;
    if (w == NULL || !enif_whereis_pid(NULL, ATOM_py_runtime, &runtime)) {
        PyErr_SetString(PyExc_RuntimeError,
                        "_erlang.schedule_timer needs a worker thread of a running erlang_python");
        return NULL;
    }
    PyObject *timers = worker_timers(w);
    PyObject *id = timers != NULL ? PyLong_FromUnsignedLong(worker_next_timer_id(w)) : NULL;
    if (id == NULL || PyDict_SetItem(timers, id, args[1]) < 0) {
        Py_XDECREF(id);
        return NULL;
    }
    ErlNifEnv *env = enif_alloc_env();
    ERL_NIF_TERM msg = enif_make_tuple4(env, ATOM_py_timer, enif_make_int(env, worker_index(w)),
                                        enif_make_ulong(env, PyLong_AsUnsignedLong(id)),
                                        enif_make_long(env, delay));
    enif_send(NULL, &runtime, env, msg);
    enif_free_env(env);
    return id;
}

PyObject *
timer_cancel(PyObject *self, PyObject *handle)
{
    worker_t *w = worker_current();
    PyObject *timers = w != NULL ? worker_timers(w) : NULL;
    if (timers != NULL && PyDict_Contains(timers, handle) == 1 &&
        PyDict_DelItem(timers, handle) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static void
fire_run(job_t *job, worker_t *w)
{
    unsigned long n;
    enif_get_ulong(job->env, job->argv[0], &n);
    PyObject *timers = worker_timers(w);
    PyObject *id = timers != NULL ? PyLong_FromUnsignedLong(n) : NULL;
    PyObject *callback = id != NULL ? PyDict_GetItemWithError(timers, id) : NULL;
    if (callback != NULL) {
        Py_INCREF(callback);
        PyDict_DelItem(timers, id);
        PyObject *r = PyObject_CallNoArgs(callback);
        if (r == NULL) {
            PyErr_WriteUnraisable(callback);
        }
        Py_XDECREF(r);
        Py_DECREF(callback);
    }
    Py_XDECREF(id);
    PyErr_Clear();
}

ERL_NIF_TERM
timer_fire(ErlNifEnv *env, const ERL_NIF_TERM argv[])
{
    int index;
    unsigned long id;
    if (!enif_get_int(env, argv[0], &index) || !enif_get_ulong(env, argv[1], &id)) {
        return enif_make_badarg(env);
    }
    job_t *job = job_new_followup(fire_run, NULL);
    if (job == NULL) {
        return enif_raise_exception(env, enif_make_atom(env, "enomem"));
    }
    job->argv[0] = enif_make_copy(job->env, argv[1]);
    job->argc = 1;
    pool_submit_to(index, job);
    enif_release_resource(job);
    return ATOM_ok;
}
