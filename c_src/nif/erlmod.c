#include "nif/erlmod.h"

#include "core/atoms.h"
#include "core/state.h"
#include "exec/timer.h"

#include <erl_nif.h>
#include <string.h>

/* ---- log -------------------------------------------------------------------------- */

/* Sends {py_log, Level, Message} to the registered py_runtime process, which hands it to
 * the Erlang logger.  Dropped silently when the runtime process is not running. */
static PyObject *
erlang_log(PyObject *self, PyObject *args)
{
    const char *level;
    const char *msg;
    Py_ssize_t len;
    if (!PyArg_ParseTuple(args, "ss#:log", &level, &msg, &len)) {
        return NULL;
    }
    ERL_NIF_TERM level_atom;
    if (strcmp(level, "debug") == 0) {
        level_atom = ATOM_debug;
    } else if (strcmp(level, "info") == 0) {
        level_atom = ATOM_info;
    } else if (strcmp(level, "warning") == 0) {
        level_atom = ATOM_warning;
    } else if (strcmp(level, "error") == 0) {
        level_atom = ATOM_error;
    } else {
        PyErr_Format(PyExc_ValueError, "unknown log level %R", PyTuple_GET_ITEM(args, 0));
        return NULL;
    }
    ErlNifPid pid;
    if (enif_whereis_pid(NULL, ATOM_py_runtime, &pid)) {
        ErlNifEnv *env = enif_alloc_env();
        if (env == NULL) {
            return PyErr_NoMemory();
        }
        ERL_NIF_TERM bin;
        unsigned char *buf = enif_make_new_binary(env, (size_t)len, &bin);
        if (buf == NULL) {
            enif_free_env(env);
            return PyErr_NoMemory();
        }
        memcpy(buf, msg, (size_t)len);
        enif_send(NULL, &pid, env, enif_make_tuple3(env, ATOM_py_log, level_atom, bin));
        enif_free_env(env);
    }
    Py_RETURN_NONE;
}

/* os._exit replacement: an app must not end the VM's process. */
static PyObject *
erlang_blocked_exit(PyObject *self, PyObject *args)
{
    PyErr_SetString(PyExc_SystemExit, "os._exit() is disabled inside the Erlang VM");
    return NULL;
}

static PyMethodDef erlang_methods[] = {
    {"log", erlang_log, METH_VARARGS,
     "log(level, message): write to the Erlang logger (debug|info|warning|error)."},
    {"_blocked_exit", erlang_blocked_exit, METH_VARARGS, "Raises SystemExit."},
    {"schedule_timer", (PyCFunction)(void (*)(void))timer_schedule, METH_FASTCALL,
     "schedule_timer(delay_ms, callback) -> handle: call callback on this worker's loop "
     "after delay_ms, timed by an Erlang timer."},
    {"cancel_timer", timer_cancel, METH_O, "cancel_timer(handle): forget a pending timer."},
    {NULL, NULL, 0, NULL},
};

static int
erlang_exec(PyObject *module)
{
    return state_init(PyModule_GetState(module), module);
}

static int
erlang_traverse(PyObject *module, visitproc visit, void *arg)
{
    py_state_t *st = PyModule_GetState(module);
    return st != NULL ? state_traverse(st, visit, arg) : 0;
}

static int
erlang_clear(PyObject *module)
{
    py_state_t *st = PyModule_GetState(module);
    if (st != NULL) {
        state_clear(st);
    }
    return 0;
}

static void
erlang_free(void *module)
{
    erlang_clear(module);
}

static PyModuleDef_Slot erlang_slots[] = {
    {Py_mod_exec, erlang_exec},
#if PY_VERSION_HEX >= 0x030C0000
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
#if PY_VERSION_HEX >= 0x030D0000
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef erlang_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_erlang",
    .m_doc = "The Erlang VM hosting this interpreter (erlang_python NIF).",
    .m_size = sizeof(py_state_t),
    .m_methods = erlang_methods,
    .m_slots = erlang_slots,
    .m_traverse = erlang_traverse,
    .m_clear = erlang_clear,
    .m_free = erlang_free,
};

PyObject *
erlmod_init(void)
{
    return PyModuleDef_Init(&erlang_module);
}
