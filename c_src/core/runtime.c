#include "core/runtime.h"

#include "core/interp.h"
#include "core/pyhome.h"
#include "core/signals.h"

#include <Python.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

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
static const char *builtin_name = NULL;
static PyObject *(*builtin_init)(void) = NULL;

void
runtime_builtin_module(const char *name, PyObject *(*init)(void))
{
    builtin_name = name;
    builtin_init = init;
}

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

/* issue-14: the libpython actually loaded (py_libpython loaded it from the path the
 * Erlang side resolved), not a path recorded at build time. */
const char *
runtime_libpython(void)
{
    return pyhome_libpython();
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
    /* issue-14: no dlopen here.  This library is not linked against libpython; that it
     * loaded at all means a libpython was already global in the process (py_libpython
     * loads it with RTLD_GLOBAL before erlang:load_nif). */
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
                 "the NIF was built for Python %s but the loaded libpython (%s) is %s; "
                 "rebuild the NIF for this interpreter",
                 PY_VERSION, pyhome_libpython(), running_version);
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

/* signal.signal(signal.SIGINT, signal.SIG_DFL).  GIL held. */
static int
restore_sigint(void)
{
    PyObject *signal = PyImport_ImportModule("signal");
    PyObject *dfl = signal != NULL ? PyObject_GetAttrString(signal, "SIG_DFL") : NULL;
    PyObject *r = dfl != NULL ? PyObject_CallMethod(signal, "signal", "iO", SIGINT, dfl) : NULL;
    Py_XDECREF(dfl);
    Py_XDECREF(signal);
    Py_XDECREF(r);
    return r != NULL ? 0 : -1;
}

/* Py_InitializeFromConfig with the VM-friendly settings: no signal handlers (the BEAM
 * owns the signals), argv set, and (issue-14) the home and executable of the interpreter
 * resolved at run time (pyhome.h), so that the stdlib is found from inside beam.smp. */
static int
init_interpreter(char *err, size_t errlen)
{
    if (builtin_init != NULL && PyImport_AppendInittab(builtin_name, builtin_init) < 0) {
        snprintf(err, errlen, "cannot register the %s module", builtin_name);
        return -1;
    }
    signals_guard();
    struct sigaction vm_sigint;
    sigaction(SIGINT, NULL, &vm_sigint);
    PyConfig config;
    PyConfig_InitPythonConfig(&config);
    config.install_signal_handlers = 0;
    config.parse_argv = 0;
    config.safe_path = 1;
    char *argv[] = {"erlang_python"};
    PyStatus status = PyConfig_SetBytesArgv(&config, 1, argv);
    if (!PyStatus_Exception(status) && pyhome_home() != NULL) {
        status = PyConfig_SetBytesString(&config, &config.home, pyhome_home());
    }
    if (!PyStatus_Exception(status) && pyhome_executable() != NULL) {
        status = PyConfig_SetBytesString(&config, &config.executable, pyhome_executable());
    }
    if (!PyStatus_Exception(status)) {
        status = Py_InitializeFromConfig(&config);
    }
    PyConfig_Clear(&config);
    if (PyStatus_Exception(status)) {
        return status_error(status, err, errlen);
    }
    if (interp_main_init() < 0) {
        PyErr_Print();
        snprintf(err, errlen, "cannot set up the NIF's Python state (see stderr)");
        return -1;
    }
    /* Importing the signal module (asyncio does) installs Python's SIGINT handler when
     * SIGINT is at its default (erl +B), whatever install_signal_handlers says: give
     * SIGINT back to the VM, in Python's table too. */
    if (vm_sigint.sa_handler == SIG_DFL && restore_sigint() < 0) {
        PyErr_Print();
        snprintf(err, errlen, "cannot restore the VM's SIGINT disposition");
        return -1;
    }
    return 0;
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
        int r = interp_configure(interp_slot(0), cfg, e, sizeof(e), w, sizeof(w));
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
