#include "terms/pyterm.h"

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

static PyType_Slot atom_slots[] = {
    {Py_tp_doc, "An Erlang atom: a str that converts back to an atom."},
    {Py_tp_repr, atom_repr},
    {0, NULL},
};

PyType_Spec erl_atom_spec = {
    .name = "_erlang.Atom",
    .basicsize = 0,   /* str's */
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .slots = atom_slots,
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
    PyTypeObject *type = Py_TYPE(self);
    if (t->env != NULL) {
        enif_free_env(t->env);
    }
    type->tp_free(self);
    Py_DECREF(type);
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

static PyObject *
term_richcompare(PyObject *a, PyObject *b, int op)
{
    if (Py_TYPE(a) != Py_TYPE(b)) {
        Py_RETURN_NOTIMPLEMENTED;
    }
    int c = enif_compare(((TermObject *)a)->term, ((TermObject *)b)->term);
    Py_RETURN_RICHCOMPARE(c, 0, op);
}

static PyType_Slot term_slots[] = {
    {Py_tp_doc, "An opaque Erlang term (pid, reference, port or fun)."},
    {Py_tp_dealloc, term_dealloc},
    {Py_tp_repr, term_repr},
    {Py_tp_hash, term_hash},
    {Py_tp_richcompare, term_richcompare},
    {0, NULL},
};

PyType_Spec erl_term_spec = {
    .name = "_erlang.Term",
    .basicsize = sizeof(TermObject),
    .flags = Py_TPFLAGS_DEFAULT,
    .slots = term_slots,
};

PyObject *
pyterm_new(py_state_t *st, ErlNifEnv *env, ERL_NIF_TERM term)
{
    TermObject *t = PyObject_New(TermObject, st->term_type);
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
pyterm_get(py_state_t *st, PyObject *obj, ErlNifEnv *env, ERL_NIF_TERM *out)
{
    if (Py_TYPE(obj) != st->term_type) {
        return 0;
    }
    *out = enif_make_copy(env, ((TermObject *)obj)->term);
    return 1;
}
