#include "erlmod.h"

#include "atoms.h"
#include "timer.h"

#include <string.h>

/* ---- Atom ------------------------------------------------------------------------- */

static PyObject *
atom_repr(PyObject *self)
{
    PyObject *inner = PyUnicode_Type.tp_repr(self);
    if (inner == NULL) {
        return NULL;
    }
    PyObject *out = PyUnicode_FromFormat("Atom(%U)", inner);
    Py_DECREF(inner);
    return out;
}

static PyTypeObject AtomType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "_erlang.Atom",
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "An Erlang atom: a str that converts back to an atom.",
    .tp_repr = atom_repr,
};

/* ---- Term ------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    ErlNifEnv *env;     /* owned; holds `term` */
    ERL_NIF_TERM term;
} TermObject;

static void
term_dealloc(PyObject *self)
{
    TermObject *t = (TermObject *)self;
    if (t->env != NULL) {
        enif_free_env(t->env);
    }
    Py_TYPE(self)->tp_free(self);
}

static PyObject *
term_repr(PyObject *self)
{
    TermObject *t = (TermObject *)self;
    char buf[256];
    int n = enif_snprintf(buf, sizeof(buf), "%T", t->term);
    if (n < 0) {
        return PyUnicode_FromString("<erlang term>");
    }
    return PyUnicode_FromFormat("<erlang term %s>", buf);
}

static Py_hash_t
term_hash(PyObject *self)
{
    TermObject *t = (TermObject *)self;
    Py_hash_t h = (Py_hash_t)enif_hash(ERL_NIF_PHASH2, t->term, 0);
    return h == -1 ? -2 : h;
}

static PyObject *term_richcompare(PyObject *a, PyObject *b, int op);

static PyTypeObject TermType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "_erlang.Term",
    .tp_basicsize = sizeof(TermObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "An opaque Erlang term (pid, reference, port or fun).",
    .tp_dealloc = term_dealloc,
    .tp_repr = term_repr,
    .tp_hash = term_hash,
    .tp_richcompare = term_richcompare,
};

static PyObject *
term_richcompare(PyObject *a, PyObject *b, int op)
{
    if (!PyObject_TypeCheck(a, &TermType) || !PyObject_TypeCheck(b, &TermType)) {
        Py_RETURN_NOTIMPLEMENTED;
    }
    int c = enif_compare(((TermObject *)a)->term, ((TermObject *)b)->term);
    Py_RETURN_RICHCOMPARE(c, 0, op);
}

PyObject *
erlmod_term_new(ErlNifEnv *env, ERL_NIF_TERM term)
{
    TermObject *t = PyObject_New(TermObject, &TermType);
    if (t == NULL) {
        return NULL;
    }
    t->env = enif_alloc_env();
    if (t->env == NULL) {
        t->term = 0;
        Py_DECREF(t);
        return PyErr_NoMemory();
    }
    t->term = enif_make_copy(t->env, term);
    return (PyObject *)t;
}

int
erlmod_term_get(PyObject *obj, ErlNifEnv *env, ERL_NIF_TERM *out)
{
    if (!PyObject_TypeCheck(obj, &TermType)) {
        return 0;
    }
    *out = enif_make_copy(env, ((TermObject *)obj)->term);
    return 1;
}

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

static struct PyModuleDef erlang_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_erlang",
    .m_doc = "The Erlang VM hosting this interpreter (erlang_python NIF).",
    .m_size = -1,
    .m_methods = erlang_methods,
};

static PyObject *
erlang_module_init(void)
{
    AtomType.tp_base = &PyUnicode_Type;
    if (PyType_Ready(&AtomType) < 0 || PyType_Ready(&TermType) < 0) {
        return NULL;
    }
    PyObject *m = PyModule_Create(&erlang_module);
    if (m == NULL) {
        return NULL;
    }
    Py_INCREF(&AtomType);
    if (PyModule_AddObject(m, "Atom", (PyObject *)&AtomType) < 0) {
        Py_DECREF(&AtomType);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&TermType);
    if (PyModule_AddObject(m, "Term", (PyObject *)&TermType) < 0) {
        Py_DECREF(&TermType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

int
erlmod_register(void)
{
    return PyImport_AppendInittab("_erlang", erlang_module_init);
}
