#include "exec/stuck.h"

#include "core/atoms.h"
#include "core/interp.h"
#include "core/log.h"
#include "exec/pool.h"

#include <Python.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int index;
    int interp_index;
    job_t *job;            /* a reference, dropped when done */
    uint64_t ms;
    int with_stack;
} report_t;

/* The frames of `frame` and its callers, as traceback.format_stack gives them (a new
 * string), or NULL with an exception.  GIL held. */
static PyObject *
format_stack(PyFrameObject *frame)
{
    if (frame == NULL) {
        return PyUnicode_FromString("  (no Python frame: it runs in C code)\n");
    }
    PyObject *tb = PyImport_ImportModule("traceback");
    PyObject *lines = tb != NULL ? PyObject_CallMethod(tb, "format_stack", "O", frame) : NULL;
    PyObject *empty = lines != NULL ? PyUnicode_FromString("") : NULL;
    PyObject *text = empty != NULL ? PyUnicode_Join(empty, lines) : NULL;
    Py_XDECREF(empty);
    Py_XDECREF(lines);
    Py_XDECREF(tb);
    return text;
}

static void
log_text(const char *text)
{
    log_send(ATOM_warning, text, strlen(text));
}

/* Attached to the worker's interpreter, GIL held. */
static void
log_stack(report_t *r, const char *head)
{
    PyThreadState *ts = pool_running_tstate(r->index, r->job);
    if (ts == NULL) {
        return; /* the call returned meanwhile */
    }
    PyFrameObject *frame = PyThreadState_GetFrame(ts);
    PyObject *stack = format_stack(frame);
    Py_XDECREF(frame);
    Py_ssize_t len = 0;
    const char *utf8 = stack != NULL ? PyUnicode_AsUTF8AndSize(stack, &len) : NULL;
    if (utf8 == NULL) {
        PyErr_Clear();
        utf8 = "  (the stack could not be formatted)\n";
        len = (Py_ssize_t)strlen(utf8);
    }
    size_t head_len = strlen(head);
    char *text = malloc(head_len + (size_t)len);
    if (text != NULL) {
        memcpy(text, head, head_len);
        memcpy(text + head_len, utf8, (size_t)len);
        log_send(ATOM_warning, text, head_len + (size_t)len);
        free(text);
    }
    Py_XDECREF(stack);
}

static void *
report_main(void *arg)
{
    report_t *r = arg;
    pthread_setname_np(pthread_self(), "py-stuck");
    char head[256];
    snprintf(head, sizeof(head),
             "erlang_python: worker %d still runs a call given up by its caller (timeout, "
             "disconnect or owner down) after %llu ms%s",
             r->index, (unsigned long long)r->ms,
             r->with_stack ? "; its Python stack:\n"
                           : " (no stack: another thread's frames cannot be read while it "
                             "runs in a free-threaded build)");
    if (!r->with_stack) {
        log_text(head);
    } else {
        interp_thread_t t;
        if (interp_attach(&t, r->interp_index) == 0) {
            log_stack(r, head);
            interp_detach(&t);
        }
    }
    enif_release_resource(r->job);
    free(r);
    return NULL;
}

int
stuck_report(int index, int interp_index, job_t *job, uint64_t ms, int with_stack)
{
    report_t *r = malloc(sizeof(*r));
    if (r == NULL) {
        return -1;
    }
    *r = (report_t){.index = index, .interp_index = interp_index, .job = job, .ms = ms,
                    .with_stack = with_stack};
    enif_keep_resource(job);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t thread;
    int rc = pthread_create(&thread, &attr, report_main, r);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        enif_release_resource(job);
        free(r);
        return -1;
    }
    return 0;
}
