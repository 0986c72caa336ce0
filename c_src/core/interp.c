#include "core/interp.h"

#include "core/atoms.h"
#include "core/compat.h"
#include "core/release.h"

#include <stdio.h>
#include <string.h>

/* Slots are filled once and never emptied; `created` orders their publication. */
static interp_t slots[INTERP_MAX];
static int created = 0;   /* 1 + highest slot created (atomic) */
#if PY_VERSION_HEX >= 0x030C0000
static pthread_mutex_t create_lock = PTHREAD_MUTEX_INITIALIZER;
#endif

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

int
interp_subinterpreters_supported(void)
{
    return PY_VERSION_HEX >= 0x030C0000;
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

#if PY_VERSION_HEX >= 0x030C0000 && PY_VERSION_HEX < 0x030D0000
/* CPython 3.12 runs a single-phase extension module's init function in a sub-interpreter
 * before refusing it, and the standard library's _datetime, _decimal and _ctypes then
 * corrupt memory (their init changes objects of the interpreter that imported them first;
 * seen as a free of another allocator's block under ASan).  Imported here first, they are
 * refused in sub-interpreters without running again (datetime and decimal then use their
 * pure-Python versions there).  3.13 made them multi-phase. */
static void
preload_single_phase(void)
{
    static const char *const modules[] = {"_datetime", "_decimal", "_ctypes"};
    for (size_t i = 0; i < sizeof(modules) / sizeof(modules[0]); i++) {
        PyObject *m = PyImport_ImportModule(modules[i]);
        Py_XDECREF(m);
        PyErr_Clear(); /* absent from this build: nothing to protect */
    }
}

/* With the pure-Python datetime, zoneinfo's C part (_zoneinfo, which needs _datetime's C
 * API) fails with an AttributeError where zoneinfo expects an ImportError to fall back on
 * its pure-Python part: a sub-interpreter of 3.12 marks _zoneinfo unavailable.  GIL of the
 * new sub-interpreter held. */
static int
block_datetime_users(void)
{
    PyObject *modules = PyImport_GetModuleDict(); /* borrowed */
    return PyDict_SetItemString(modules, "_zoneinfo", Py_None);
}
#endif

int
interp_main_init(void)
{
    interp_t *ip = interp_slot(0);
    if (load_module(ip) < 0) {
        return -1;
    }
#if PY_VERSION_HEX >= 0x030C0000 && PY_VERSION_HEX < 0x030D0000
    preload_single_phase();
#endif
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

/* Imports `name` with sys.dont_write_bytecode set, then puts the flag back. */
static PyObject *
import_without_bytecode(const char *name)
{
    PyObject *before = PySys_GetObject("dont_write_bytecode"); /* borrowed */
    Py_XINCREF(before);
    PyObject *mod = PySys_SetObject("dont_write_bytecode", Py_True) == 0
                        ? PyImport_ImportModule(name)
                        : NULL;
    PyObject *exc = compat_take_exception();
    if (PySys_SetObject("dont_write_bytecode", before != NULL ? before : Py_False) < 0) {
        Py_XDECREF(exc);
        Py_CLEAR(mod);
        exc = compat_take_exception();
    }
    Py_XDECREF(before);
    if (exc != NULL) {
        compat_restore_exception(exc);
    }
    return mod;
}

/* sys.path gets cfg->paths[0] (the erlang_python package) first if it lacks it, so that
 * erlang_python_runtime imports; configure() then puts every path in its place.  The
 * package directory is the application's priv/python, which must stay as built: this
 * import writes no bytecode there, and configure() makes the package's other imports do
 * the same. */
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
    return import_without_bytecode("erlang_python_runtime");
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

#if PY_VERSION_HEX >= 0x030C0000
/* Creates the sub-interpreter of slot `ip` on the calling thread, which holds no GIL.
 * Returns its thread state, current and holding the new GIL, or NULL. */
static PyThreadState *
create_sub(interp_t *ip, char *err, size_t errlen)
{
    /* Py_NewInterpreterFromConfig wants a current thread state: a temporary one in the
     * main interpreter, deleted once the new interpreter exists.  The new one has its own
     * GIL; the call leaves the main GIL released. */
    PyThreadState *boot = PyThreadState_New(PyInterpreterState_Main());
    PyEval_RestoreThread(boot);
    PyInterpreterConfig config = {
        .use_main_obmalloc = 0,
        .allow_fork = 0,              /* subprocess still works (posix_spawn, vfork) */
        .allow_exec = 0,
        .allow_threads = 1,
        .allow_daemon_threads = 1,    /* interpreters are never finalised */
        .check_multi_interp_extensions = 1,
        .gil = PyInterpreterConfig_OWN_GIL,
    };
    PyThreadState *ts = NULL;
    PyStatus status = Py_NewInterpreterFromConfig(&ts, &config);
    if (!PyStatus_Exception(status) && ts != NULL) {
        /* A thread state that stays in the interpreter's list for its life and never
         * runs: once a restart has deleted the workers' thread states, the next one is
         * then a new one, not the interpreter's initial thread state reused, on which
         * CPython 3.12.1 aborts ("thread state already initialized").  Made while the
         * temporary state is this thread's PyGILState one, so that it does not take
         * that place. */
        ip->keeper = PyThreadState_New(PyThreadState_GetInterpreter(ts));
    }
    if (PyStatus_Exception(status) || ts == NULL) {
        /* On failure the temporary state is current again, with the main GIL. */
        snprintf(err, errlen, "cannot create sub-interpreter %d: %s", ip->index,
                 status.err_msg != NULL ? status.err_msg : "out of memory");
        PyThreadState_Clear(boot);
        PyThreadState_DeleteCurrent();
        return NULL;
    }
    PyEval_SaveThread();
    PyEval_RestoreThread(boot);
    PyThreadState_Clear(boot);
    PyThreadState_DeleteCurrent();
    PyEval_RestoreThread(ts);
    return ts;
}
#endif

/* Enters sub-interpreter slot `ip`, creating it if needed (creations one at a time). */
static int
enter_sub(interp_thread_t *t, interp_t *ip, char *err, size_t errlen)
{
#if PY_VERSION_HEX >= 0x030C0000
    pthread_mutex_lock(&create_lock);
    PyInterpreterState *py = ip->py;
    if (py != NULL) {
        pthread_mutex_unlock(&create_lock);
        t->ts = PyThreadState_New(py);
        PyEval_RestoreThread(t->ts);
        return 0;
    }
    t->ts = create_sub(ip, err, errlen);
#if PY_VERSION_HEX < 0x030D0000
    if (t->ts != NULL && block_datetime_users() < 0) {
        PyErr_Clear();
    }
#endif
    if (t->ts != NULL && load_module(ip) < 0) {
        /* The interpreter stays, unused: ending it could crash on an extension that
         * loaded halfway.  The slot is tried afresh next time. */
        exception_text(err, errlen);
        PyThreadState_Clear(t->ts);
        PyThreadState_DeleteCurrent();
        t->ts = NULL;
    }
    if (t->ts != NULL) {
        mark_created(ip->index);
    }
    pthread_mutex_unlock(&create_lock);
    return t->ts != NULL ? 0 : -1;
#else
    snprintf(err, errlen, "sub-interpreters with their own GIL need Python 3.12 or later");
    return -1;
#endif
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
    if (index == 0) {
        t->gil = PyGILState_Ensure();
    } else if (enter_sub(t, ip, err, errlen) < 0) {
        return -1;
    }
    t->ip = ip;
    char warn[512];
    if (index != 0 && interp_configure(ip, cfg, err, errlen, warn, sizeof(warn)) < 0) {
        detach(t);
        return -1;
    }
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

/* ---- refusals ----------------------------------------------------------------------- */

static struct {
    pthread_mutex_t lock;
    int noted;
    char module[256];
    char message[512];
} refusal = {.lock = PTHREAD_MUTEX_INITIALIZER};

static ERL_NIF_TERM
binary_of(ErlNifEnv *env, const char *text)
{
    ERL_NIF_TERM bin;
    size_t len = strlen(text);
    unsigned char *buf = enif_make_new_binary(env, len, &bin);
    memcpy(buf, text, len);
    return bin;
}

void
interp_note_refusal(const char *module, size_t module_len, const char *message,
                    size_t message_len)
{
    pthread_mutex_lock(&refusal.lock);
    int first = !refusal.noted;
    if (first) {
        refusal.noted = 1;
        snprintf(refusal.module, sizeof(refusal.module), "%.*s", (int)module_len, module);
        snprintf(refusal.message, sizeof(refusal.message), "%.*s", (int)message_len, message);
    }
    pthread_mutex_unlock(&refusal.lock);
    ErlNifPid runtime;
    if (first && enif_whereis_pid(NULL, ATOM_py_runtime, &runtime)) {
        ErlNifEnv *env = enif_alloc_env();
        ERL_NIF_TERM out;
        interp_refusal(env, &out);
        enif_send(NULL, &runtime, env, enif_make_tuple2(env, ATOM_py_refused, out));
        enif_free_env(env);
    }
}

int
interp_refusal(ErlNifEnv *env, ERL_NIF_TERM *out)
{
    pthread_mutex_lock(&refusal.lock);
    int noted = refusal.noted;
    if (noted) {
        *out = enif_make_tuple2(env, binary_of(env, refusal.module),
                                binary_of(env, refusal.message));
    }
    pthread_mutex_unlock(&refusal.lock);
    return noted;
}

void
interp_forget_refusal(void)
{
    pthread_mutex_lock(&refusal.lock);
    refusal.noted = 0;
    pthread_mutex_unlock(&refusal.lock);
}
