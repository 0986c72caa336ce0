/* The hang watchdog: a thread of its own (no GIL, no Python) that kills the worker
 * process when a synchronous call runs past its deadline.
 *
 * The loop thread arms it before running synchronous Python (a WSGI app, a plain
 * py:call function, the first step of a coroutine) with the request's deadline and
 * disarms it afterwards: two mutex operations, and a wake-up of the watchdog only when
 * the new deadline is earlier than the one it sleeps towards (after an idle period),
 * so a busy worker does not wake it per request.  Past the deadline with the same call
 * still armed (the Erlang caller has had {error, timeout} since then), the process sends itself SIGKILL: Erlang sees it exit, answers the
 * other requests it had with {worker_exit, 137} and starts a new one.  Python code that
 * never returns, C code holding the GIL and blocking system calls are all covered, as
 * the watchdog needs nothing from the interpreter.
 */
#include "codec.h"

#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int started;
    unsigned long long generation; /* of the armed call; 0: none */
    long long deadline_ns;         /* CLOCK_MONOTONIC */
    long long sleeping_until;      /* what the thread waits for; LLONG_MAX: indefinitely */
} W = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, LLONG_MAX};

static long long
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void
kill_self(void)
{
    static const char msg[] =
        "hornbeam_port: a synchronous call ran past its timeout; this worker kills itself "
        "(erlang_python starts another)\n";
    ssize_t unused = write(STDERR_FILENO, msg, sizeof(msg) - 1);
    (void)unused;
    kill(getpid(), SIGKILL);
}

static void *
watchdog_main(void *arg)
{
    pthread_mutex_lock(&W.lock);
    for (;;) {
        if (W.generation == 0) {
            W.sleeping_until = LLONG_MAX;
            pthread_cond_wait(&W.cond, &W.lock);
            continue;
        }
        long long due = W.deadline_ns;
        if (now_ns() >= due) {
            kill_self();
        }
        W.sleeping_until = due;
        struct timespec ts = {(time_t)(due / 1000000000LL), (long)(due % 1000000000LL)};
        pthread_cond_timedwait(&W.cond, &W.lock, &ts);
    }
    return NULL;
}

/* start(): starts the thread (once). */
PyObject *
watchdog_start(PyObject *self, PyObject *unused)
{
    pthread_mutex_lock(&W.lock);
    int start = !W.started;
    W.started = 1;
    pthread_mutex_unlock(&W.lock);
    if (start) {
        pthread_condattr_t attr;
        pthread_condattr_init(&attr);
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        pthread_cond_destroy(&W.cond);
        pthread_cond_init(&W.cond, &attr);
        pthread_condattr_destroy(&attr);
        pthread_t t;
        if (pthread_create(&t, NULL, watchdog_main, NULL) != 0) {
            PyErr_SetString(PyExc_OSError, "cannot start the watchdog thread");
            return NULL;
        }
        pthread_detach(t);
    }
    Py_RETURN_NONE;
}

/* arm(timeout_ms) -> token: the running call must end within timeout_ms. */
PyObject *
watchdog_arm(PyObject *self, PyObject *arg)
{
    long long ms = PyLong_AsLongLong(arg);
    if (ms == -1 && PyErr_Occurred()) {
        return NULL;
    }
    static unsigned long long next = 0;
    long long deadline = now_ns() + (ms < 0 ? 0 : ms) * 1000000LL;
    pthread_mutex_lock(&W.lock);
    unsigned long long token = ++next;
    W.generation = token;
    W.deadline_ns = deadline;
    if (deadline < W.sleeping_until) {
        pthread_cond_signal(&W.cond);
    }
    pthread_mutex_unlock(&W.lock);
    return PyLong_FromUnsignedLongLong(token);
}

/* disarm(token): the call armed with `token` has returned. */
PyObject *
watchdog_disarm(PyObject *self, PyObject *arg)
{
    unsigned long long token = PyLong_AsUnsignedLongLong(arg);
    if (PyErr_Occurred()) {
        return NULL;
    }
    pthread_mutex_lock(&W.lock);
    if (W.generation == token) {
        W.generation = 0;
    }
    pthread_mutex_unlock(&W.lock);
    Py_RETURN_NONE;
}

/* parent_death_kill(): SIGKILL this process when its parent (the VM's port helper) dies,
 * so that a VM killed with -9 leaves no worker behind even if it is stuck. */
PyObject *
watchdog_parent_death_kill(PyObject *self, PyObject *unused)
{
    pid_t parent = getppid();
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    if (getppid() != parent) {
        kill(getpid(), SIGKILL);
    }
    Py_RETURN_NONE;
}
