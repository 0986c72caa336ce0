#include "runtime.h"

#include "compat.h"
#include "erlmod.h"
#include "state.h"
#include "scope.h"
#include "wsgi.h"
#include "wsgi_stream.h"

#include <Python.h>
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

/* sys.path and venv set-up, run on the interpreter's main thread at every start. */
static const char CONFIGURE_SRC[] =
    "def configure(paths, venv, version):\n"
    "    import os, site, sys\n"
    "    import _erlang\n"
    "    os._exit = _erlang._blocked_exit\n"
    "    for p in reversed(paths):\n"
    "        if p in sys.path:\n"
    "            sys.path.remove(p)\n"
    "        sys.path.insert(0, p)\n"
    "    if not venv:\n"
    "        return ''\n"
    "    sp = os.path.join(venv, 'lib', 'python' + version, 'site-packages')\n"
    "    if not os.path.isdir(sp):\n"
    "        return f'virtualenv {venv} has no {sp}: is it a Python {version} venv?'\n"
    "    if sp in sys.path:\n"
    "        return ''\n"
    "    before = set(sys.path)\n"
    "    site.addsitedir(sp)\n"
    "    added = [p for p in sys.path if p not in before]\n"
    "    for p in added:\n"
    "        sys.path.remove(p)\n"
    "    sys.path[len(paths):len(paths)] = added\n"
    "    return ''\n";

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int thread_started;
    int initialized;              /* 0 not yet, 1 up, -1 failed for good */
    char init_error[512];
    pthread_t thread;
    PyThreadState *main_tstate;
    /* one configuration request at a time */
    const runtime_config_t *request;
    int request_done;
    int request_rc;
    char request_error[512];
    char request_warning[512];
} rt = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .cond = PTHREAD_COND_INITIALIZER,
};

static char running_version[32] = "";
static void *libpython_handle = NULL;

const char *
runtime_build_version(void)
{
    return PY_VERSION;
}

const char *
runtime_version(void)
{
    return running_version;
}

const char *
runtime_libpython(void)
{
    return PY_NIF_LIBPYTHON;
}

int
runtime_free_threaded(void)
{
#ifdef Py_GIL_DISABLED
    return 1;
#else
    return 0;
#endif
}

int
runtime_initialized(void)
{
    pthread_mutex_lock(&rt.lock);
    int up = rt.initialized == 1;
    pthread_mutex_unlock(&rt.lock);
    return up;
}

int
runtime_load_check(char *err, size_t errlen)
{
    if (libpython_handle == NULL) {
        libpython_handle = dlopen(PY_NIF_LIBPYTHON, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);
        if (libpython_handle == NULL) {
            libpython_handle = dlopen(PY_NIF_LIBPYTHON, RTLD_NOW | RTLD_GLOBAL);
        }
        if (libpython_handle == NULL) {
            snprintf(err, errlen, "cannot load %s with global symbols: %s", PY_NIF_LIBPYTHON,
                     dlerror());
            return -1;
        }
    }
    const char *v = Py_GetVersion();
    size_t n = strcspn(v, " ");
    if (n >= sizeof(running_version)) {
        n = sizeof(running_version) - 1;
    }
    memcpy(running_version, v, n);
    running_version[n] = '\0';
    int major = 0, minor = 0;
    if (sscanf(running_version, "%d.%d", &major, &minor) != 2 || major != PY_MAJOR_VERSION ||
        minor != PY_MINOR_VERSION) {
        snprintf(err, errlen,
                 "the NIF was built for Python %s (%s) but the loaded libpython is %s; "
                 "rebuild with `make` for this interpreter",
                 PY_VERSION, PY_NIF_LIBPYTHON, running_version);
        return -1;
    }
    return 0;
}

static int
status_error(PyStatus status, char *err, size_t errlen)
{
    snprintf(err, errlen, "Python initialisation failed: %s%s%s",
             status.func ? status.func : "", status.func ? ": " : "",
             status.err_msg ? status.err_msg : "unknown error");
    return -1;
}

/* Py_InitializeFromConfig with the VM-friendly settings: no signal handlers (the BEAM
 * owns the signals), argv set, the build's prefix as home so the stdlib is found from
 * inside beam.smp. */
static int
init_interpreter(char *err, size_t errlen)
{
    if (erlmod_register() < 0) {
        snprintf(err, errlen, "cannot register the _erlang module");
        return -1;
    }
    struct sigaction vm_sigint;
    sigaction(SIGINT, NULL, &vm_sigint);
    PyConfig config;
    PyConfig_InitPythonConfig(&config);
    config.install_signal_handlers = 0;
    config.parse_argv = 0;
    config.safe_path = 1;
    char *argv[] = {"erlang_python"};
    PyStatus status = PyConfig_SetBytesArgv(&config, 1, argv);
    if (!PyStatus_Exception(status)) {
        status = PyConfig_SetBytesString(&config, &config.home, PY_NIF_PREFIX);
    }
    if (!PyStatus_Exception(status)) {
        status = PyConfig_SetBytesString(&config, &config.executable, PY_NIF_EXECUTABLE);
    }
    if (!PyStatus_Exception(status)) {
        status = Py_InitializeFromConfig(&config);
    }
    PyConfig_Clear(&config);
    if (PyStatus_Exception(status)) {
        return status_error(status, err, errlen);
    }
    if (state_init() < 0 || wsgi_init() < 0 || scope_init() < 0 || wsgi_stream_init() < 0) {
        PyErr_Print();
        snprintf(err, errlen, "cannot set up the NIF's Python state (see stderr)");
        return -1;
    }
    /* Importing the signal module (asyncio does) installs Python's SIGINT handler when
     * SIGINT is at its default (erl +B), whatever install_signal_handlers says: give
     * SIGINT back to the VM, in Python's table too. */
    if (vm_sigint.sa_handler == SIG_DFL &&
        PyRun_SimpleString("import signal; signal.signal(signal.SIGINT, signal.SIG_DFL)") < 0) {
        snprintf(err, errlen, "cannot restore the VM's SIGINT disposition");
        return -1;
    }
    return 0;
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

static void
copy_exception_text(char *out, size_t outlen)
{
    PyObject *value = compat_take_exception();
    PyObject *s = value != NULL ? PyObject_Str(value) : NULL;
    const char *text = s != NULL ? PyUnicode_AsUTF8(s) : NULL;
    snprintf(out, outlen, "%s", text != NULL ? text : "unknown Python error");
    Py_XDECREF(s);
    Py_XDECREF(value);
    PyErr_Clear();
}

/* Runs CONFIGURE_SRC's configure(). GIL held. */
static int
apply_config(const runtime_config_t *cfg, char *err, size_t errlen, char *warn, size_t warnlen)
{
    warn[0] = '\0';
    PyObject *globals = PyDict_New();
    PyObject *r = globals != NULL
        ? PyRun_String(CONFIGURE_SRC, Py_file_input, globals, globals) : NULL;
    Py_XDECREF(r);
    PyObject *fn = r != NULL ? PyDict_GetItemString(globals, "configure") : NULL;
    PyObject *paths = fn != NULL ? str_list(cfg->paths, cfg->npaths) : NULL;
    PyObject *venv = NULL;
    if (paths != NULL) {
        venv = cfg->venv != NULL ? PyUnicode_DecodeFSDefault(cfg->venv) : Py_NewRef(Py_None);
    }
    PyObject *version = venv != NULL
        ? PyUnicode_FromFormat("%d.%d", PY_MAJOR_VERSION, PY_MINOR_VERSION) : NULL;
    PyObject *note = version != NULL
        ? PyObject_CallFunctionObjArgs(fn, paths, venv, version, NULL) : NULL;
    int rc = 0;
    if (note == NULL) {
        copy_exception_text(err, errlen);
        rc = -1;
    } else {
        const char *text = PyUnicode_AsUTF8(note);
        snprintf(warn, warnlen, "%s", text != NULL ? text : "");
        PyErr_Clear();
    }
    Py_XDECREF(note);
    Py_XDECREF(version);
    Py_XDECREF(venv);
    Py_XDECREF(paths);
    Py_XDECREF(globals);
    return rc;
}

static void *
main_thread(void *arg)
{
    char err[512] = "";
    pthread_setname_np(pthread_self(), "py-main");
    int rc = init_interpreter(err, sizeof(err));
    PyThreadState *ts = rc == 0 ? PyEval_SaveThread() : NULL;

    pthread_mutex_lock(&rt.lock);
    rt.initialized = rc == 0 ? 1 : -1;
    rt.main_tstate = ts;
    snprintf(rt.init_error, sizeof(rt.init_error), "%s", err);
    pthread_cond_broadcast(&rt.cond);
    while (rt.initialized == 1) {
        while (rt.request == NULL || rt.request_done) {
            pthread_cond_wait(&rt.cond, &rt.lock);
        }
        const runtime_config_t *cfg = rt.request;
        pthread_mutex_unlock(&rt.lock);

        PyEval_RestoreThread(ts);
        char e[512] = "", w[512] = "";
        int r = apply_config(cfg, e, sizeof(e), w, sizeof(w));
        ts = PyEval_SaveThread();

        pthread_mutex_lock(&rt.lock);
        rt.request_rc = r;
        snprintf(rt.request_error, sizeof(rt.request_error), "%s", e);
        snprintf(rt.request_warning, sizeof(rt.request_warning), "%s", w);
        rt.request_done = 1;
        pthread_cond_broadcast(&rt.cond);
    }
    pthread_mutex_unlock(&rt.lock);
    return NULL;
}

int
runtime_configure(const runtime_config_t *cfg, char *err, size_t errlen, char *warning,
                  size_t warnlen)
{
    pthread_mutex_lock(&rt.lock);
    if (!rt.thread_started) {
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 8u * 1024u * 1024u);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int rc = pthread_create(&rt.thread, &attr, main_thread, NULL);
        pthread_attr_destroy(&attr);
        if (rc != 0) {
            pthread_mutex_unlock(&rt.lock);
            snprintf(err, errlen, "cannot create the interpreter thread");
            return -1;
        }
        rt.thread_started = 1;
    }
    while (rt.initialized == 0) {
        pthread_cond_wait(&rt.cond, &rt.lock);
    }
    if (rt.initialized < 0) {
        snprintf(err, errlen, "%s", rt.init_error);
        pthread_mutex_unlock(&rt.lock);
        return -1;
    }
    while (rt.request != NULL && !rt.request_done) {   /* one request at a time */
        pthread_cond_wait(&rt.cond, &rt.lock);
    }
    rt.request = cfg;
    rt.request_done = 0;
    pthread_cond_broadcast(&rt.cond);
    while (!rt.request_done) {
        pthread_cond_wait(&rt.cond, &rt.lock);
    }
    int rc = rt.request_rc;
    snprintf(err, errlen, "%s", rt.request_error);
    snprintf(warning, warnlen, "%s", rt.request_warning);
    rt.request = NULL;
    pthread_mutex_unlock(&rt.lock);
    return rc;
}
