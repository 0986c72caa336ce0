#include "wsgi/wsgi_stream.h"

#include "call/appcache.h"
#include "core/atoms.h"
#include "core/interp.h"
#include "exec/deadline.h"
#include "exec/job.h"
#include "exec/pool.h"
#include "terms/errors.h"
#include "terms/response.h"
#include "wsgi/wsgi.h"
#include "wsgi/wsgi_native.h"

#include <pthread.h>
#include <string.h>

/* send() in the app blocks while more than this much response body is unacknowledged. */
#define HIGH_WATER (1u << 20)

enum { ARG_MODULE, ARG_CALLABLE, ARG_RUNNER, ARG_ENVIRON, ARG_BODY, ARG_MORE, ARG_COALESCE };

typedef struct chunk {
    struct chunk *next;
    ErlNifEnv *env;
    ERL_NIF_TERM bin;
} chunk_t;

/* job->data of a WSGI stream: the request body channel and the response window.  The
 * app's thread waits on `cond` (GIL released); schedulers feed and acknowledge. */
typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    chunk_t *head, *tail;
    int more;              /* more request body will come */
    int asked;             /* need_body sent, no chunk since */
    int disconnected;
    size_t in_flight;      /* response bytes sent, not yet acknowledged */
} channel_t;

static void
channel_free(job_t *job)
{
    channel_t *ch = job->data;
    chunk_t *c = ch->head;
    while (c != NULL) {
        chunk_t *next = c->next;
        enif_free_env(c->env);
        enif_free(c);
        c = next;
    }
    pthread_cond_destroy(&ch->cond);
    pthread_mutex_destroy(&ch->lock);
    enif_free(ch);
}

static int
channel_push(channel_t *ch, ErlNifEnv *env, ERL_NIF_TERM bin, int more)
{
    chunk_t *c = enif_alloc(sizeof(*c));
    if (c == NULL) {
        return -1;
    }
    c->env = enif_alloc_env();
    c->bin = enif_make_copy(c->env, bin);
    c->next = NULL;
    pthread_mutex_lock(&ch->lock);
    if (ch->tail != NULL) {
        ch->tail->next = c;
    } else {
        ch->head = c;
    }
    ch->tail = c;
    ch->more = more;
    ch->asked = 0;
    pthread_cond_broadcast(&ch->cond);
    pthread_mutex_unlock(&ch->lock);
    return 0;
}

static void
channel_disconnect(channel_t *ch)
{
    pthread_mutex_lock(&ch->lock);
    ch->disconnected = 1;
    pthread_cond_broadcast(&ch->cond);
    pthread_mutex_unlock(&ch->lock);
}

static PyObject *
disconnected_error(void)
{
    PyErr_SetString(PyExc_ConnectionResetError, "the client disconnected");
    return NULL;
}

/* ---- wsgi.input ------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    job_t *job;            /* kept */
    PyObject *buffer;      /* bytearray of received, unread bytes */
    int eof;
} InputObject;

/* Appends the next chunk to the buffer, asking Erlang for it when none is queued.
 * Returns 1 (appended), 0 (end of body) or -1 (exception set). GIL held on entry/exit. */
static int
input_fill(InputObject *self)
{
    if (self->eof) {
        return 0;
    }
    job_t *job = self->job;
    channel_t *ch = job->data;
    chunk_t *c = NULL;
    int disconnected = 0;
    pthread_mutex_lock(&ch->lock);
    if (ch->head == NULL && ch->more && !ch->disconnected && !ch->asked) {
        ch->asked = 1;
        pthread_mutex_unlock(&ch->lock);
        job_event_send(job, ATOM_need_body);
        pthread_mutex_lock(&ch->lock);
    }
    Py_BEGIN_ALLOW_THREADS
    while (ch->head == NULL && ch->more && !ch->disconnected) {
        pthread_cond_wait(&ch->cond, &ch->lock);
    }
    Py_END_ALLOW_THREADS
    if (ch->head != NULL) {
        c = ch->head;
        ch->head = c->next;
        if (ch->head == NULL) {
            ch->tail = NULL;
        }
    } else {
        disconnected = ch->disconnected;
    }
    pthread_mutex_unlock(&ch->lock);
    if (c == NULL) {
        if (disconnected) {
            disconnected_error();
            return -1;
        }
        self->eof = 1;
        return 0;
    }
    ErlNifBinary bin;
    enif_inspect_binary(c->env, c->bin, &bin);
    Py_ssize_t old = PyByteArray_GET_SIZE(self->buffer);
    int rc = PyByteArray_Resize(self->buffer, old + (Py_ssize_t)bin.size);
    if (rc == 0) {
        memcpy(PyByteArray_AS_STRING(self->buffer) + old, bin.data, bin.size);
    }
    enif_free_env(c->env);
    enif_free(c);
    return rc == 0 ? 1 : -1;
}

/* Removes and returns the first n buffered bytes. */
static PyObject *
input_take(InputObject *self, Py_ssize_t n)
{
    PyObject *out = PyBytes_FromStringAndSize(PyByteArray_AS_STRING(self->buffer), n);
    if (out != NULL && PySequence_DelSlice(self->buffer, 0, n) < 0) {
        Py_CLEAR(out);
    }
    return out;
}

static int
size_arg(PyObject *const *args, Py_ssize_t nargs, Py_ssize_t *size)
{
    *size = -1;
    if (nargs == 0 || args[0] == Py_None) {
        return 0;
    }
    *size = PyLong_AsSsize_t(args[0]);
    return *size == -1 && PyErr_Occurred() ? -1 : 0;
}

static PyObject *
input_read(InputObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t size;
    if (size_arg(args, nargs, &size) < 0) {
        return NULL;
    }
    int rc;
    while ((size < 0 || PyByteArray_GET_SIZE(self->buffer) < size) && (rc = input_fill(self)) != 0) {
        if (rc < 0) {
            return NULL;
        }
    }
    Py_ssize_t have = PyByteArray_GET_SIZE(self->buffer);
    return input_take(self, size < 0 || size > have ? have : size);
}

static PyObject *
input_readline(InputObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t size;
    if (size_arg(args, nargs, &size) < 0) {
        return NULL;
    }
    Py_ssize_t scanned = 0;
    for (;;) {
        Py_ssize_t have = PyByteArray_GET_SIZE(self->buffer);
        const char *data = PyByteArray_AS_STRING(self->buffer);
        const char *nl = have > scanned ? memchr(data + scanned, '\n', (size_t)(have - scanned)) : NULL;
        if (nl != NULL) {
            Py_ssize_t n = nl - data + 1;
            return input_take(self, size >= 0 && size < n ? size : n);
        }
        if (size >= 0 && have >= size) {
            return input_take(self, size);
        }
        scanned = have;
        int rc = input_fill(self);
        if (rc < 0) {
            return NULL;
        }
        if (rc == 0) {
            return input_take(self, PyByteArray_GET_SIZE(self->buffer));
        }
    }
}

static PyObject *
input_readlines(InputObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t hint;
    if (size_arg(args, nargs, &hint) < 0) {
        return NULL;
    }
    PyObject *lines = PyList_New(0);
    Py_ssize_t total = 0;
    while (lines != NULL) {
        PyObject *line = input_readline(self, NULL, 0);
        if (line == NULL) {
            Py_CLEAR(lines);
            break;
        }
        if (PyBytes_GET_SIZE(line) == 0) {
            Py_DECREF(line);
            break;
        }
        total += PyBytes_GET_SIZE(line);
        int rc = PyList_Append(lines, line);
        Py_DECREF(line);
        if (rc < 0) {
            Py_CLEAR(lines);
        } else if (hint > 0 && total >= hint) {
            break;
        }
    }
    return lines;
}

static PyObject *
input_next(InputObject *self)
{
    PyObject *line = input_readline(self, NULL, 0);
    if (line != NULL && PyBytes_GET_SIZE(line) == 0) {
        Py_DECREF(line);
        return NULL; /* StopIteration */
    }
    return line;
}

static void
input_dealloc(InputObject *self)
{
    PyTypeObject *type = Py_TYPE(self);
    Py_XDECREF(self->buffer);
    if (self->job != NULL) {
        enif_release_resource(self->job);
    }
    type->tp_free((PyObject *)self);
    Py_DECREF(type);
}

static PyMethodDef input_methods[] = {
    {"read", (PyCFunction)(void (*)(void))input_read, METH_FASTCALL, "read(size=-1) -> bytes"},
    {"readline", (PyCFunction)(void (*)(void))input_readline, METH_FASTCALL, "readline(size=-1) -> bytes"},
    {"readlines", (PyCFunction)(void (*)(void))input_readlines, METH_FASTCALL, "readlines(hint=-1) -> list"},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot input_slots[] = {
    {Py_tp_doc, "wsgi.input over a request body streamed from Erlang."},
    {Py_tp_dealloc, input_dealloc},
    {Py_tp_iter, PyObject_SelfIter},
    {Py_tp_iternext, input_next},
    {Py_tp_methods, input_methods},
    {0, NULL},
};

PyType_Spec wsgi_input_spec = {
    .name = "_erlang.WSGIInput",
    .basicsize = sizeof(InputObject),
    .flags = Py_TPFLAGS_DEFAULT,
    .slots = input_slots,
};

static PyObject *
input_new(py_state_t *st, job_t *job)
{
    InputObject *self = PyObject_New(InputObject, st->wsgi_input_type);
    if (self == NULL) {
        return NULL;
    }
    self->eof = 0;
    self->job = NULL;
    self->buffer = PyByteArray_FromStringAndSize("", 0);
    if (self->buffer == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    enif_keep_resource(job);
    self->job = job;
    return (PyObject *)self;
}

/* ---- emit: start and body events, with the response window ------------------------ */

static PyObject *
emit(PyObject *capsule, PyObject *const *args, Py_ssize_t nargs)
{
    job_t *job = job_from_capsule(capsule);
    if (job == NULL) {
        return NULL;
    }
    channel_t *ch = job->data;
    py_state_t *st = job->ip->st;
    ErlNifEnv *env = job_event_env(job);
    const char *name = nargs > 0 && PyUnicode_Check(args[0]) ? PyUnicode_AsUTF8(args[0]) : NULL;
    ERL_NIF_TERM event;
    size_t sent = 0;
    /* "last": the body's last chunk; nothing is written after it, so it may be held
     * for the stream's end (job_event_last) and nothing waits for the window */
    int last = name != NULL && strcmp(name, "last") == 0;
    if (name != NULL && (last || strcmp(name, "body") == 0) && nargs == 2) {
        ERL_NIF_TERM body;
        if (response_bytes(st, env, args[1], &body) < 0) {
            PyErr_SetString(PyExc_TypeError, "WSGI body chunks must be bytes");
            return NULL;
        }
        sent = (size_t)PyBytes_Size(args[1]);
        event = enif_make_tuple2(env, ATOM_body, body);
    } else if (name != NULL && strcmp(name, "start") == 0 && nargs == 3) {
        ERL_NIF_TERM status, headers;
        int ok;
        if (response_latin1(env, args[1], &status) < 0) {
            job_event_flush(job);
            PyErr_SetString(PyExc_ValueError, "WSGI status must be a latin-1 str");
            return NULL;
        }
        headers = wsgi_headers_term(env, args[2], &ok);
        if (!ok) {
            job_event_flush(job);
            PyErr_SetString(PyExc_ValueError, "WSGI headers must be (str, str) latin-1 pairs");
            return NULL;
        }
        event = 0;
        job_event_start(job, status, headers);
    } else {
        PyErr_SetString(PyExc_ValueError, "bad stream event");
        return NULL;
    }

    pthread_mutex_lock(&ch->lock);
    int disconnected = ch->disconnected;
    ch->in_flight += sent;
    pthread_mutex_unlock(&ch->lock);
    if (disconnected) {
        job_event_flush(job);
        return disconnected_error();
    }
    if (event != 0 && last) {
        job_event_last(job, event);
        Py_RETURN_NONE;
    }
    if (event != 0) {
        job_event_send(job, event);
    }

    pthread_mutex_lock(&ch->lock);
    Py_BEGIN_ALLOW_THREADS
    while (ch->in_flight > HIGH_WATER && !ch->disconnected) {
        pthread_cond_wait(&ch->cond, &ch->lock);
    }
    Py_END_ALLOW_THREADS
    disconnected = ch->disconnected;
    pthread_mutex_unlock(&ch->lock);
    if (disconnected && sent > 0) {
        return disconnected_error();
    }
    Py_RETURN_NONE;
}

static PyMethodDef emit_def = {"emit", (PyCFunction)(void (*)(void))emit, METH_FASTCALL,
                               "Reports a WSGI response event to the Erlang owner."};


/* ---- the stream job (runs the whole app on its worker thread) --------------------- */

/* 1 if the owner gave the stream up (disconnect/1, or it died). */
static int
channel_is_disconnected(channel_t *ch)
{
    pthread_mutex_lock(&ch->lock);
    int disconnected = ch->disconnected;
    pthread_mutex_unlock(&ch->lock);
    return disconnected;
}

static void
stream_run(job_t *job, worker_t *w)
{
    py_state_t *st = worker_state(w);
    ErlNifEnv *env = job->env;
    PyObject *app = NULL, *fn = NULL, *input = NULL, *environ = NULL, *emit_fn = NULL;
    PyObject *result = NULL;
    ERL_NIF_TERM why = 0;

    /* Given up while it waited for a worker (a server's request timeout answered the
     * client already): the app never starts. */
    if (channel_is_disconnected(job->data)) {
        job_reply(job, errors_tuple(env, ATOM_not_started));
        return;
    }

    input = input_new(st, job);
    if (input == NULL) {
        why = errors_take(st, env);
    } else if (wsgi_job_prepare(st, job, input, &app, &fn, &environ, &why) == 0) {
        emit_fn = job_callable(job, &emit_def);
    }
    if (emit_fn != NULL && wsgi_job_native(job) &&
        PyDict_GetItemWithError(environ, st->wsgi_input_file_key) == NULL && !PyErr_Occurred()) {
        /* the default runner's stream_wsgi in C (no body file to open) */
        result = wsgi_native_stream(st, app, environ, emit_fn) == 0 ? Py_NewRef(Py_None) : NULL;
    } else if (emit_fn != NULL) {
        result = PyObject_CallFunctionObjArgs(fn, app, environ, emit_fn, NULL);
    }
    job_reply(job, result != NULL ? ATOM_done
                                  : errors_tuple(env, why != 0 ? why : errors_take(st, env)));
    Py_XDECREF(result);
    Py_XDECREF(emit_fn);
    Py_XDECREF(environ);
    Py_XDECREF(input);
    Py_XDECREF(fn);
    Py_XDECREF(app);
    PyErr_Clear();
}

static void
stream_owner_down(job_t *job)
{
    channel_disconnect(job->data);
    pool_abandon(job);
}

/* ---- NIFs ------------------------------------------------------------------------- */

ERL_NIF_TERM
wsgi_stream_start(ErlNifEnv *env, const ERL_NIF_TERM argv[])
{
    ERL_NIF_TERM err = appcache_check_names(env, argv);
    if (err == 0) {
        err = job_check_stream_body(env, argv[ARG_BODY], argv[ARG_MORE]);
    }
    if (err != 0) {
        return err;
    }
    job_t *job = wsgi_job_new(env, stream_run, ATOM_wsgi, argv, "stream_wsgi", 0, &err);
    if (job == NULL) {
        return err;
    }
    channel_t *ch = enif_alloc(sizeof(*ch));
    if (ch == NULL) {
        enif_release_resource(job);
        return enif_raise_exception(env, enif_make_atom(env, "enomem"));
    }
    job->sync = 1;
    job->coalesce = argv[ARG_COALESCE] == ATOM_true;
    memset(ch, 0, sizeof(*ch));
    pthread_mutex_init(&ch->lock, NULL);
    pthread_cond_init(&ch->cond, NULL);
    job->data = ch;
    job->free_data = channel_free;
    if (job_make_stream(env, job, ATOM_wsgi, stream_owner_down) < 0) {
        enif_release_resource(job);
        return enif_raise_exception(env, enif_make_atom(env, "enomem"));
    }
    ch->more = 1; /* until the initial body is queued with its own flag */
    channel_push(ch, env, argv[ARG_BODY], argv[ARG_MORE] == ATOM_true);
    return pool_submit_new(env, job, -1, DEADLINE_NONE);
}

static channel_t *
stream_channel(ErlNifEnv *env, ERL_NIF_TERM term)
{
    job_t *job;
    if (!enif_get_resource(env, term, JOB_RESOURCE, (void **)&job) || job->kind != ATOM_wsgi) {
        return NULL;
    }
    return job->data;
}

ERL_NIF_TERM
wsgi_stream_send_body(ErlNifEnv *env, const ERL_NIF_TERM argv[])
{
    channel_t *ch = stream_channel(env, argv[0]);
    if (ch == NULL || !enif_is_binary(env, argv[1]) ||
        (argv[2] != ATOM_true && argv[2] != ATOM_false)) {
        return enif_make_badarg(env);
    }
    if (channel_push(ch, env, argv[1], argv[2] == ATOM_true) < 0) {
        return enif_raise_exception(env, enif_make_atom(env, "enomem"));
    }
    return ATOM_ok;
}

ERL_NIF_TERM
wsgi_stream_ack(ErlNifEnv *env, const ERL_NIF_TERM argv[])
{
    channel_t *ch = stream_channel(env, argv[0]);
    ErlNifUInt64 n;
    if (ch == NULL || !enif_get_uint64(env, argv[1], &n)) {
        return enif_make_badarg(env);
    }
    pthread_mutex_lock(&ch->lock);
    ch->in_flight = n >= ch->in_flight ? 0 : ch->in_flight - (size_t)n;
    if (ch->in_flight <= HIGH_WATER / 2) {
        pthread_cond_broadcast(&ch->cond);
    }
    pthread_mutex_unlock(&ch->lock);
    return ATOM_ok;
}

ERL_NIF_TERM
wsgi_stream_disconnect(ErlNifEnv *env, const ERL_NIF_TERM argv[])
{
    job_t *job;
    if (!enif_get_resource(env, argv[0], JOB_RESOURCE, (void **)&job) || job->kind != ATOM_wsgi) {
        return enif_make_badarg(env);
    }
    channel_disconnect(job->data);
    pool_abandon(job); /* the app may still run: its worker is then stuck */
    return ATOM_ok;
}
