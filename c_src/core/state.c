#include "core/state.h"

#include <string.h>

static const char *const wsgi_key_text[N_WSGI_KEYS] = {
#define KEY_TEXT(name, text) text,
    WSGI_KEYS(KEY_TEXT)
#undef KEY_TEXT
};
static const char *const wsgi_const_text[N_WSGI_CONSTS] = {
#define TEXT(text) text,
    WSGI_CONSTS(TEXT)
};
static const char *const scope_key_text[N_SCOPE_KEYS] = {
#define SCOPE_TEXT(name, atom, text) text,
    SCOPE_KEYS(SCOPE_TEXT)
#undef SCOPE_TEXT
};
static const char *const scope_const_text[N_SCOPE_CONSTS] = {SCOPE_CONSTS(TEXT)};
static const char *const scope_header_text[N_SCOPE_HEADERS] = {SCOPE_HEADERS(TEXT)};
#undef TEXT

static PyObject *
import_attr(const char *module, const char *attr)
{
    PyObject *m = PyImport_ImportModule(module);
    if (m == NULL) {
        return NULL;
    }
    PyObject *a = PyObject_GetAttrString(m, attr);
    Py_DECREF(m);
    return a;
}

static int
intern_all(PyObject **out, const char *const *text, int n)
{
    for (int i = 0; i < n; i++) {
        if ((out[i] = PyUnicode_InternFromString(text[i])) == NULL) {
            return -1;
        }
    }
    return 0;
}

static int
make_type(PyObject *module, PyType_Spec *spec, PyTypeObject *base, PyTypeObject **out)
{
    PyObject *bases = base != NULL ? PyTuple_Pack(1, (PyObject *)base) : NULL;
    if (base != NULL && bases == NULL) {
        return -1;
    }
    PyObject *type = PyType_FromModuleAndSpec(module, spec, bases);
    Py_XDECREF(bases);
    if (type == NULL) {
        return -1;
    }
    *out = (PyTypeObject *)type;
    /* Atom and Term are public (`_erlang.Atom`); the others are named for reprs only. */
    const char *dot = strrchr(spec->name, '.');
    return PyModule_AddObjectRef(module, dot != NULL ? dot + 1 : spec->name, type);
}

int
state_init(py_state_t *st, PyObject *module)
{
    pthread_mutex_init(&st->lock, NULL);
    pthread_mutex_init(&st->runner_lock, NULL);
    st->eager_tasks = PY_VERSION_HEX >= 0x030C0000;

#define INTERN(field, text)                                                        \
    if ((st->field = PyUnicode_InternFromString(text)) == NULL) {                  \
        return -1;                                                                 \
    }
    STATE_STRINGS(INTERN)
#undef INTERN
#define IMPORT(field, module_name, attr)                                           \
    if ((st->field = import_attr(module_name, attr)) == NULL) {                    \
        return -1;                                                                 \
    }
    STATE_IMPORTS(IMPORT)
#undef IMPORT
#define TYPE(field, spec, base)                                                    \
    if (make_type(module, &spec, base, &st->field) < 0) {                          \
        return -1;                                                                 \
    }
    STATE_TYPES(TYPE)
#undef TYPE

    if (intern_all(st->wsgi_keys, wsgi_key_text, N_WSGI_KEYS) < 0 ||
        intern_all(st->wsgi_consts, wsgi_const_text, N_WSGI_CONSTS) < 0 ||
        intern_all(st->scope_keys, scope_key_text, N_SCOPE_KEYS) < 0 ||
        intern_all(st->scope_consts, scope_const_text, N_SCOPE_CONSTS) < 0) {
        return -1;
    }
    for (int i = 0; i < N_SCOPE_HEADERS; i++) {
        st->scope_headers[i] = PyBytes_FromString(scope_header_text[i]);
        if (st->scope_headers[i] == NULL) {
            return -1;
        }
    }
    st->wsgi_version = Py_BuildValue("(ii)", 1, 0);
    st->asgi_version = Py_BuildValue("{s:s,s:s}", "version", "3.0", "spec_version", "2.4");
    st->empty_bytes = PyBytes_FromStringAndSize("", 0);
    return st->wsgi_version != NULL && st->asgi_version != NULL && st->empty_bytes != NULL
        ? 0 : -1;
}

/* ---- the runners' rules, on first need -------------------------------------------- */

/* The fields of one runner table from `module_name`; all or none are set. */
static int
load_fields(const char *module_name, PyObject **fields[], const char *const names[], int n)
{
    PyObject *m = PyImport_ImportModule(module_name);
    if (m == NULL) {
        return -1;
    }
    int i;
    for (i = 0; i < n; i++) {
        if ((*fields[i] = PyObject_GetAttrString(m, names[i])) == NULL) {
            break;
        }
    }
    Py_DECREF(m);
    if (i < n) {
        while (i-- > 0) {
            Py_CLEAR(*fields[i]);
        }
        return -1;
    }
    return 0;
}

#define FIELD_PTR(field, attr) &st->field,
#define FIELD_NAME(field, attr) attr,

/* The C exchange (asgi/asgi_native.c) numbers the states 0..3 as the runner does. */
static int
check_asgi_states(py_state_t *st)
{
    PyObject *states[] = {st->asgi_start_state, st->asgi_body_state, st->asgi_trailers_state,
                          st->asgi_complete_state};
    for (long i = 0; i < 4; i++) {
        if (!PyLong_CheckExact(states[i]) || PyLong_AsLong(states[i]) != i) {
            PyErr_SetString(PyExc_ImportError,
                            "hornbeam_asgi_runner's response states are not START=0, BODY=1, "
                            "TRAILERS=2, COMPLETE=3 as the NIF expects");
            return -1;
        }
    }
    if (!PyAnySet_Check(st->asgi_valid_statuses) || !PyAnySet_Check(st->asgi_valid_headers)) {
        PyErr_SetString(PyExc_ImportError, "hornbeam_asgi_runner's caches must be sets");
        return -1;
    }
    if (!PyLong_CheckExact(st->asgi_high_water) || PyLong_AsLong(st->asgi_high_water) <= 0) {
        PyErr_SetString(PyExc_ImportError, "hornbeam_asgi_runner's HIGH_WATER must be an int > 0");
        return -1;
    }
    return 0;
}

/* wsgi.errors: hornbeam_wsgi_runner.ErrorStream(_erlang.log). */
static PyObject *
error_stream(py_state_t *st)
{
    PyObject *erlang = PyImport_ImportModule("_erlang");
    PyObject *log = erlang != NULL ? PyObject_GetAttrString(erlang, "log") : NULL;
    Py_XDECREF(erlang);
    PyObject *stream = log != NULL ? PyObject_CallOneArg(st->wsgi_error_stream, log) : NULL;
    Py_XDECREF(log);
    return stream;
}

static int
finish_wsgi(py_state_t *st)
{
    if (!PyAnySet_Check(st->wsgi_valid_statuses) || !PyAnySet_Check(st->wsgi_valid_headers)) {
        PyErr_SetString(PyExc_ImportError, "hornbeam_wsgi_runner's caches must be sets");
        return -1;
    }
    st->wsgi_errors = error_stream(st);
    return st->wsgi_errors != NULL ? 0 : -1;
}

/* Imports the `n` fields of a runner table once; `finish` checks them (and adds what
 * derives from them).  All or none are set. */
static int
load_runner(py_state_t *st, int *loaded, const char *module_name, PyObject **fields[],
            const char *const names[], int n, int (*finish)(py_state_t *))
{
    if (__atomic_load_n(loaded, __ATOMIC_ACQUIRE)) {
        return 0;
    }
    /* Waited for without the GIL: the thread loading them may be inside an import that
     * released the GIL and needs it back to finish. */
    if (pthread_mutex_trylock(&st->runner_lock) != 0) {
        Py_BEGIN_ALLOW_THREADS
        pthread_mutex_lock(&st->runner_lock);
        Py_END_ALLOW_THREADS
    }
    int rc = 0;
    if (!*loaded) {
        rc = load_fields(module_name, fields, names, n);
        if (rc == 0 && finish(st) < 0) {
            for (int i = 0; i < n; i++) {
                Py_CLEAR(*fields[i]);
            }
            rc = -1;
        }
        if (rc == 0) {
            __atomic_store_n(loaded, 1, __ATOMIC_RELEASE);
        }
    }
    pthread_mutex_unlock(&st->runner_lock);
    return rc;
}

int
state_load_asgi_runner(py_state_t *st)
{
    PyObject **fields[] = {STATE_ASGI_RUNNER(FIELD_PTR)};
    static const char *const names[] = {STATE_ASGI_RUNNER(FIELD_NAME)};
    return load_runner(st, &st->asgi_runner_loaded, "hornbeam_asgi_runner", fields, names,
                       (int)(sizeof(names) / sizeof(names[0])), check_asgi_states);
}

int
state_load_wsgi_runner(py_state_t *st)
{
    PyObject **fields[] = {STATE_WSGI_RUNNER(FIELD_PTR)};
    static const char *const names[] = {STATE_WSGI_RUNNER(FIELD_NAME)};
    return load_runner(st, &st->wsgi_runner_loaded, "hornbeam_wsgi_runner", fields, names,
                       (int)(sizeof(names) / sizeof(names[0])), finish_wsgi);
}

#undef FIELD_PTR
#undef FIELD_NAME

/* ---- GC ----------------------------------------------------------------------------- */

int
state_traverse(py_state_t *st, visitproc visit, void *arg)
{
    for (int i = 0; i < N_STATE_OBJECTS; i++) {
        Py_VISIT(st->objects[i]);
    }
    for (int i = 0; i < st->appcache_used; i++) {
        Py_VISIT(st->appcache[i].app);
        Py_VISIT(st->appcache[i].fn);
    }
    return 0;
}

void
state_clear(py_state_t *st)
{
    for (int i = 0; i < N_STATE_OBJECTS; i++) {
        Py_CLEAR(st->objects[i]);
    }
    for (int i = 0; i < st->appcache_used; i++) {
        Py_CLEAR(st->appcache[i].app);
        Py_CLEAR(st->appcache[i].fn);
    }
    st->appcache_used = 0;
    st->asgi_runner_loaded = st->wsgi_runner_loaded = 0;
}
