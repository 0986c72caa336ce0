#include "core/interp.h"

#include "core/compat.h"
#include "core/release.h"

#include <stdio.h>
#include <string.h>

/* Slots are filled once and never emptied; `created` orders their publication. */
static interp_t slots[INTERP_MAX];
static int created = 0;   /* 1 + highest slot created (atomic) */

static void
init_once(void)
{
    for (int i = 0; i < INTERP_MAX; i++) {
        slots[i].index = i;
        pthread_mutex_init(&slots[i].release_lock, NULL);
    }
}

static void
init_slots(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, init_once);
}

interp_t *
interp_slot(int index)
{
    init_slots();
    return index >= 0 && index < INTERP_MAX ? &slots[index] : NULL;
}

int
interp_count(void)
{
    return __atomic_load_n(&created, __ATOMIC_ACQUIRE);
}

static void
mark_created(int index)
{
    int n = __atomic_load_n(&created, __ATOMIC_ACQUIRE);
    while (n < index + 1 &&
           !__atomic_compare_exchange_n(&created, &n, index + 1, 0, __ATOMIC_RELEASE,
                                        __ATOMIC_ACQUIRE)) {
    }
}

/* Imports `_erlang` (whose exec slot creates the interpreter's state) into slot `ip`.
 * The interpreter's GIL is held.  Returns 0 or -1 with an exception set. */
static int
load_module(interp_t *ip)
{
    PyObject *m = PyImport_ImportModule("_erlang");
    if (m == NULL) {
        return -1;
    }
    py_state_t *st = PyModule_GetState(m);
    if (st == NULL) {
        Py_DECREF(m);
        return -1;
    }
    ip->module = m;
    ip->st = st;
    st->ip = ip;
    ip->py = PyInterpreterState_Get();
    ip->id = PyInterpreterState_GetID(ip->py);
    return 0;
}

int
interp_main_init(void)
{
    interp_t *ip = interp_slot(0);
    if (load_module(ip) < 0) {
        return -1;
    }
    mark_created(0);
    return 0;
}

static void
exception_text(char *out, size_t outlen)
{
    PyObject *value = compat_take_exception();
    PyObject *s = value != NULL ? PyObject_Str(value) : NULL;
    const char *text = s != NULL ? PyUnicode_AsUTF8(s) : NULL;
    snprintf(out, outlen, "%s", text != NULL ? text : "unknown Python error");
    Py_XDECREF(s);
    Py_XDECREF(value);
    PyErr_Clear();
}

static PyObject *
str_list(char **items, int n)
{
    PyObject *list = PyList_New(n);
    for (int i = 0; list != NULL && i < n; i++) {
        PyObject *s = PyUnicode_DecodeFSDefault(items[i]);
        if (s == NULL) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, i, s);
    }
    return list;
}

/* sys.path gets cfg->paths[0] (the erlang_python package) first if it lacks it, so that
 * erlang_python_runtime imports; configure() then puts every path in its place. */
static PyObject *
runtime_module(const runtime_config_t *cfg)
{
    PyObject *sys_path = PySys_GetObject("path"); /* borrowed */
    if (cfg->npaths > 0 && sys_path != NULL && PyList_Check(sys_path)) {
        PyObject *first = PyUnicode_DecodeFSDefault(cfg->paths[0]);
        int present = first != NULL ? PySequence_Contains(sys_path, first) : -1;
        int rc = present == 0 ? PyList_Insert(sys_path, 0, first) : present;
        Py_XDECREF(first);
        if (rc < 0) {
            return NULL;
        }
    }
    return PyImport_ImportModule("erlang_python_runtime");
}

int
interp_configure(interp_t *ip, const runtime_config_t *cfg, char *err, size_t errlen,
                 char *warn, size_t warnlen)
{
    warn[0] = '\0';
    PyObject *mod = runtime_module(cfg);
    PyObject *paths = mod != NULL ? str_list(cfg->paths, cfg->npaths) : NULL;
    PyObject *venv = NULL, *version = NULL, *exit_fn = NULL, *note = NULL;
    if (paths != NULL) {
        venv = cfg->venv != NULL ? PyUnicode_DecodeFSDefault(cfg->venv) : Py_NewRef(Py_None);
    }
    if (venv != NULL) {
        version = PyUnicode_FromFormat("%d.%d", PY_MAJOR_VERSION, PY_MINOR_VERSION);
    }
    if (version != NULL) {
        exit_fn = PyObject_GetAttrString(ip->module, "_blocked_exit");
    }
    if (exit_fn != NULL) {
        note = PyObject_CallMethod(mod, "configure", "OOOO", paths, venv, version, exit_fn);
    }
    int rc = 0;
    if (note == NULL) {
        exception_text(err, errlen);
        rc = -1;
    } else {
        const char *text = PyUnicode_AsUTF8(note);
        snprintf(warn, warnlen, "%s", text != NULL ? text : "");
        PyErr_Clear();
    }
    Py_XDECREF(note);
    Py_XDECREF(exit_fn);
    Py_XDECREF(version);
    Py_XDECREF(venv);
    Py_XDECREF(paths);
    Py_XDECREF(mod);
    return rc;
}

static void detach(interp_thread_t *t);

int
interp_enter(interp_thread_t *t, int index, const runtime_config_t *cfg, char *err,
             size_t errlen)
{
    interp_t *ip = interp_slot(index);
    memset(t, 0, sizeof(*t));
    if (ip == NULL) {
        snprintf(err, errlen, "no interpreter slot %d", index);
        return -1;
    }
    if (index != 0) {
        snprintf(err, errlen, "no sub-interpreters in this build");
        return -1;
    }
    t->gil = PyGILState_Ensure();
    t->ip = ip;
    release_pending(ip);
    __atomic_add_fetch(&ip->threads, 1, __ATOMIC_RELAXED);
    return 0;
}

void
interp_leave(interp_thread_t *t)
{
    if (t->ip != NULL) {
        __atomic_sub_fetch(&t->ip->threads, 1, __ATOMIC_RELAXED);
        detach(t);
    }
}

static void
detach(interp_thread_t *t)
{
    if (t->ts == NULL) {
        PyGILState_Release(t->gil);
    } else {
        PyThreadState_Clear(t->ts);
        PyThreadState_DeleteCurrent();
    }
    t->ts = NULL;
    t->ip = NULL;
}
