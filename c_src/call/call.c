/* The generic path: py:call(Module, Function, Args, Kwargs). */
#include "call/call.h"

#include "core/atoms.h"
#include "exec/fanout.h"
#include "exec/pool.h"
#include "exec/task.h"
#include "terms/convert.h"
#include "terms/errors.h"

enum { ARG_MODULE, ARG_FUNCTION, ARG_ARGS, ARG_KWARGS, CALL_ARGC };

static int
is_name(ErlNifEnv *env, ERL_NIF_TERM term)
{
    return enif_is_atom(env, term) || enif_is_binary(env, term);
}

static ERL_NIF_TERM
badarg(job_t *job, ERL_NIF_TERM what)
{
    return errors_tuple(job->env, enif_make_tuple2(job->env, ATOM_badarg, what));
}

/* sys.modules first (a dict lookup), the import machinery otherwise. */
static PyObject *
import_module(PyObject *name)
{
    PyObject *m = PyImport_GetModule(name);
    if (m != NULL || PyErr_Occurred()) {
        return m;
    }
    return PyImport_Import(name);
}

/* Function names may be dotted: "Class.method" resolves attribute by attribute. */
static PyObject *
resolve(PyObject *module, PyObject *dotted)
{
    PyObject *sep = PyUnicode_FromString(".");
    if (sep == NULL) {
        return NULL;
    }
    PyObject *parts = PyUnicode_Split(dotted, sep, -1);
    Py_DECREF(sep);
    if (parts == NULL) {
        return NULL;
    }
    PyObject *obj = Py_NewRef(module);
    for (Py_ssize_t i = 0; obj != NULL && i < PyList_GET_SIZE(parts); i++) {
        PyObject *next = PyObject_GetAttr(obj, PyList_GET_ITEM(parts, i));
        Py_DECREF(obj);
        obj = next;
    }
    Py_DECREF(parts);
    return obj;
}

static PyObject *
kwargs_to_py(py_state_t *st, job_t *job, ERL_NIF_TERM map, ERL_NIF_TERM *err)
{
    size_t size;
    enif_get_map_size(job->env, map, &size);
    if (size == 0) {
        return NULL;
    }
    PyObject *dict = PyDict_New();
    if (dict == NULL) {
        return NULL;
    }
    ErlNifMapIterator it;
    enif_map_iterator_create(job->env, map, &it, ERL_NIF_MAP_ITERATOR_FIRST);
    ERL_NIF_TERM k, v;
    while (enif_map_iterator_get_pair(job->env, &it, &k, &v)) {
        PyObject *key = convert_name(job->env, k);
        PyObject *value = NULL;
        if (key == NULL) {
            if (!PyErr_Occurred()) {
                *err = badarg(job, enif_make_tuple2(job->env, ATOM_kwargs, k));
            }
        } else {
            ERL_NIF_TERM why;
            value = convert_to_py(st, job->env, v, &why);
            if (value == NULL && why != 0) {
                *err = badarg(job, why);
            }
        }
        if (value != NULL && PyDict_Contains(dict, key) == 1) {
            *err = badarg(job, enif_make_tuple2(job->env, enif_make_atom(job->env, "duplicate_key"), k));
            Py_CLEAR(value);
        }
        if (value == NULL || PyDict_SetItem(dict, key, value) < 0) {
            Py_XDECREF(key);
            Py_XDECREF(value);
            Py_DECREF(dict);
            enif_map_iterator_destroy(job->env, &it);
            return NULL;
        }
        Py_DECREF(key);
        Py_DECREF(value);
        enif_map_iterator_next(job->env, &it);
    }
    enif_map_iterator_destroy(job->env, &it);
    return dict;
}

static ERL_NIF_TERM
call_reply(py_state_t *st, job_t *job, PyObject *result)
{
    if (result == NULL) {
        return errors_tuple(job->env, errors_take(st, job->env));
    }
    ERL_NIF_TERM term;
    if (!convert_from_py(st, job->env, result, &term)) {
        return errors_tuple(job->env, term);
    }
    return enif_make_tuple2(job->env, ATOM_ok, term);
}

static void
call_run(job_t *job, worker_t *w)
{
    py_state_t *st = worker_state(w);
    ErlNifEnv *env = job->env;
    ERL_NIF_TERM reply = 0, why;
    PyObject *module = NULL, *func = NULL, *args = NULL, *kwargs = NULL, *result = NULL;

    PyObject *name = convert_name(env, job->argv[ARG_MODULE]);
    if (name != NULL) {
        module = import_module(name);
        Py_DECREF(name);
    }
    if (module == NULL) {
        goto done;
    }
    name = convert_name(env, job->argv[ARG_FUNCTION]);
    if (name != NULL) {
        func = resolve(module, name);
        Py_DECREF(name);
    }
    if (func == NULL) {
        goto done;
    }
    PyObject *list = convert_to_py(st, env, job->argv[ARG_ARGS], &why);
    if (list == NULL) {
        if (why != 0) {
            reply = badarg(job, why);
        }
        goto done;
    }
    args = PyList_AsTuple(list);
    Py_DECREF(list);
    if (args == NULL) {
        goto done;
    }
    kwargs = kwargs_to_py(st, job, job->argv[ARG_KWARGS], &reply);
    if (kwargs == NULL && (reply != 0 || PyErr_Occurred())) {
        goto done;
    }
    result = PyObject_Call(func, args, kwargs);
    if (result != NULL && PyCoro_CheckExact(result) && worker_running_loop(w, 1) == 0) {
        /* An async function: await it on this worker's loop, reply when it returns. */
        PyObject *task = task_await(w, job, result, call_reply);
        Py_XDECREF(task);
        goto cleanup;
    }
done:
    if (reply == 0) {
        reply = call_reply(st, job, result);
    }
    job_reply(job, reply);
cleanup:
    Py_XDECREF(result);
    Py_XDECREF(kwargs);
    Py_XDECREF(args);
    Py_XDECREF(func);
    Py_XDECREF(module);
    PyErr_Clear();
}

/* Scheduler side: the arguments' types.  Returns 0 or an {error, {badarg, _}} term. */
static ERL_NIF_TERM
check_args(ErlNifEnv *env, const ERL_NIF_TERM argv[])
{
    static const struct {
        int (*ok)(ErlNifEnv *, ERL_NIF_TERM);
        ERL_NIF_TERM *name;
    } checks[CALL_ARGC] = {{is_name, &ATOM_module}, {is_name, &ATOM_function},
                           {enif_is_list, &ATOM_args}, {enif_is_map, &ATOM_kwargs}};
    for (int i = 0; i < CALL_ARGC; i++) {
        if (!checks[i].ok(env, argv[i])) {
            return errors_tuple(env, enif_make_tuple2(env, ATOM_badarg,
                                                      enif_make_tuple2(env, *checks[i].name, argv[i])));
        }
    }
    return 0;
}

ERL_NIF_TERM
call_submit(ErlNifEnv *env, ERL_NIF_TERM tag, uint64_t timeout_ms, const ERL_NIF_TERM argv[])
{
    ERL_NIF_TERM err = check_args(env, argv);
    if (err != 0) {
        return err;
    }
    job_t *job = job_new(env, call_run, tag, CALL_ARGC, argv);
    if (job == NULL) {
        return enif_raise_exception(env, enif_make_atom(env, "enomem"));
    }
    job->sync = 1;
    return pool_submit_new(env, job, -1, timeout_ms);
}

ERL_NIF_TERM
call_each_submit(ErlNifEnv *env, ERL_NIF_TERM tag, uint64_t timeout_ms, const ERL_NIF_TERM argv[])
{
    ERL_NIF_TERM err = check_args(env, argv);
    if (err != 0) {
        return err;
    }
    int workers[FANOUT_MAX];
    int n = pool_per_interp(workers, FANOUT_MAX);
    return fanout_submit(env, tag, timeout_ms, call_run, 1, CALL_ARGC, argv, workers, n, NULL,
                         fanout_list);
}
