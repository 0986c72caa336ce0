/* The worker's last words: a frame that tells Erlang its exit status before the process
 * dies, because Erlang cannot always learn it from the port (a port whose write fails
 * with EPIPE, the process being gone, closes without reporting the exit status).
 *
 * report_fatal_signals(fd, op) installs handlers for SIGSEGV, SIGBUS, SIGABRT, SIGFPE and
 * SIGILL that write <<op, status = 128 + signal>> as a frame to fd (write(2) of a buffer
 * prepared now: async-signal-safe), then let the signal take its previous course (the
 * faulthandler's dump, then death).  Python's os._exit is reported by the worker itself.
 */
#include "codec.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

static const int SIGNALS[] = {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL};
#define N_SIGNALS (sizeof(SIGNALS) / sizeof(SIGNALS[0]))

static struct sigaction previous[N_SIGNALS];
static unsigned char frame[4 + 13 + 4];
static int frame_fd = -1;

static void
on_fatal(int sig)
{
    for (size_t i = 0; i < N_SIGNALS; i++) {
        if (SIGNALS[i] == sig) {
            unsigned status = 128u + (unsigned)sig;
            frame[sizeof(frame) - 1] = (unsigned char)status;
            ssize_t unused = write(frame_fd, frame, sizeof(frame));
            (void)unused;
            sigaction(sig, &previous[i], NULL);
            raise(sig); /* delivered when this handler returns */
            return;
        }
    }
}

PyObject *
dying_report_fatal_signals(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "report_fatal_signals(fd, op)");
        return NULL;
    }
    int fd = (int)PyLong_AsLong(args[0]);
    long op = PyLong_AsLong(args[1]);
    if (PyErr_Occurred()) {
        return NULL;
    }
    memset(frame, 0, sizeof(frame));
    frame[3] = 13 + 4;          /* length of what follows */
    frame[4] = (unsigned char)op;
    frame[4 + 1 + 8 + 3] = 4;   /* head length; id 0 */
    frame_fd = fd;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_fatal;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < N_SIGNALS; i++) {
        if (sigaction(SIGNALS[i], &sa, &previous[i]) != 0) {
            return PyErr_SetFromErrno(PyExc_OSError);
        }
    }
    Py_RETURN_NONE;
}
