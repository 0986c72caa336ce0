#include "asgi/asgi_native.h"

#include "core/atoms.h"
#include "terms/errors.h"
#include "terms/response.h"

#include <string.h>

/* ---- an awaitable that is already done -------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *value; /* the await result; NULL means None */
} ReadyObject;

static void
ready_dealloc(ReadyObject *self)
{
    PyTypeObject *type = Py_TYPE(self);
    Py_XDECREF(self->value);
    type->tp_free((PyObject *)self);
    Py_DECREF(type);
}

static PyObject *
ready_await(PyObject *self)
{
    return Py_NewRef(self);
}

static PyObject *
ready_next(ReadyObject *self)
{
    if (self->value == NULL) {
        return NULL; /* StopIteration(None) */
    }
    PyObject *stop = PyObject_CallOneArg(PyExc_StopIteration, self->value);
    if (stop != NULL) {
        PyErr_SetObject(PyExc_StopIteration, stop);
        Py_DECREF(stop);
    }
    return NULL;
}

static PyType_Slot ready_slots[] = {
    {Py_tp_doc, "An awaitable whose result is already there."},
    {Py_tp_dealloc, ready_dealloc},
    {Py_am_await, ready_await},
    {Py_tp_iter, PyObject_SelfIter},
    {Py_tp_iternext, ready_next},
    {0, NULL},
};

PyType_Spec asgi_ready_spec = {
    .name = "_erlang.Ready",
    .basicsize = sizeof(ReadyObject),
    .flags = Py_TPFLAGS_DEFAULT,
    .slots = ready_slots,
};

/* Steals `value` (NULL: None). */
static PyObject *
ready(py_state_t *st, PyObject *value)
{
    ReadyObject *r = PyObject_New(ReadyObject, st->ready_type);
    if (r != NULL) {
        r->value = value;
    } else {
        Py_XDECREF(value);
    }
    return (PyObject *)r;
}

/* ---- the exchange ------------------------------------------------------------------- */

/* The runner's response states (hornbeam_asgi_runner.START ...), checked equal to these
 * when the runner is loaded (core/state.c). */
enum { X_START = 0, X_BODY = 1, X_TRAILERS = 2, X_COMPLETE = 3 };

typedef struct {
    PyObject_HEAD
    py_state_t *st;
    PyObject *body;       /* request body (bytes); NULL once received */
    long state;           /* X_START .. X_COMPLETE */
    int accept_trailers;  /* the scope offers http.response.trailers */
    int trailers;         /* the app asked for trailers in its start */
    long status;
    PyObject *headers;    /* validated [(bytes, bytes)] */
    PyObject *chunks;     /* [bytes] */
    PyObject *waiters;    /* futures of receive() calls waiting for the end, or NULL */
    /* A stream's exchange (asgi_native_stream): the events go to the job's owner as they
     * come; NULL for a buffered one (the response is kept for asgi_native_result). */
    job_t *job;           /* kept (a resource reference) while the exchange lives */
    int disconnected;     /* the owner gave the stream up: receive() answers
                             http.disconnect, send() raises ClientDisconnected */
    long in_flight;       /* body bytes sent with more_body, not yet acknowledged */
    PyObject *drained;    /* the future a send() waits on for acknowledgements, or NULL */
} ExchangeObject;

static void
exchange_dealloc(ExchangeObject *self)
{
    PyTypeObject *type = Py_TYPE(self);
    Py_XDECREF(self->body);
    Py_XDECREF(self->headers);
    Py_XDECREF(self->chunks);
    Py_XDECREF(self->waiters);
    Py_XDECREF(self->drained);
    if (self->job != NULL) {
        enif_release_resource(self->job);
    }
    type->tp_free((PyObject *)self);
    Py_DECREF(type);
}

static PyObject *
message_dict(py_state_t *st, PyObject *type, PyObject *body)
{
    PyObject *d = PyDict_New();
    if (d == NULL || PyDict_SetItem(d, st->s_type, type) < 0 ||
        (body != NULL && (PyDict_SetItem(d, st->s_body, body) < 0 ||
                          PyDict_SetItem(d, st->s_more_body, Py_False) < 0))) {
        Py_XDECREF(d);
        return NULL;
    }
    return d;
}

/* receive(): the whole request body once, then (as the runner's Stream does) wait until
 * the response is complete and answer http.disconnect. */
static PyObject *
exchange_receive(ExchangeObject *self, PyObject *unused)
{
    py_state_t *st = self->st;
    if (self->disconnected) {
        Py_CLEAR(self->body);
        PyObject *msg = message_dict(st, st->s_http_disconnect, NULL);
        return msg != NULL ? ready(st, msg) : NULL;
    }
    if (self->body != NULL && self->state != X_COMPLETE) {
        PyObject *msg = message_dict(st, st->s_http_request, self->body);
        Py_CLEAR(self->body);
        return msg != NULL ? ready(st, msg) : NULL;
    }
    Py_CLEAR(self->body);
    if (self->state == X_COMPLETE) {
        PyObject *msg = message_dict(st, st->s_http_disconnect, NULL);
        return msg != NULL ? ready(st, msg) : NULL;
    }
    /* Wait until the response is complete (or the exchange ends). */
    PyObject *loop = PyObject_CallNoArgs(st->get_running_loop);
    PyObject *future = loop != NULL ? PyObject_CallMethodNoArgs(loop, st->s_create_future) : NULL;
    Py_XDECREF(loop);
    if (future == NULL) {
        return NULL;
    }
    if ((self->waiters == NULL && (self->waiters = PyList_New(0)) == NULL) ||
        PyList_Append(self->waiters, future) < 0) {
        Py_DECREF(future);
        return NULL;
    }
    return future;
}

/* Resolves the receive() calls waiting for the end with http.disconnect. */
static int
release_waiters(ExchangeObject *self)
{
    py_state_t *st = self->st;
    PyObject *waiters = self->waiters;
    self->waiters = NULL;
    int rc = 0;
    for (Py_ssize_t i = 0; waiters != NULL && i < PyList_GET_SIZE(waiters); i++) {
        PyObject *f = PyList_GET_ITEM(waiters, i);
        PyObject *done = PyObject_CallMethodNoArgs(f, st->s_done);
        int is_done = done == NULL ? -1 : PyObject_IsTrue(done);
        Py_XDECREF(done);
        PyObject *msg = is_done == 0 ? message_dict(st, st->s_http_disconnect, NULL) : NULL;
        PyObject *r = msg != NULL ? PyObject_CallMethodOneArg(f, st->s_set_result, msg) : NULL;
        Py_XDECREF(msg);
        if (is_done != 1 && r == NULL) {
            rc = -1;
            break;
        }
        Py_XDECREF(r);
    }
    Py_XDECREF(waiters);
    return rc;
}

/* The state after a message; releases the waiters when the response is complete. */
static int
set_state(ExchangeObject *self, long state)
{
    self->state = state;
    return state == X_COMPLETE ? release_waiters(self) : 0;
}

/* ---- a stream's events ------------------------------------------------------------- */

/* The start (self->status, self->headers) to the owner (held for the next event while
 * the job coalesces).  Returns 0, or -1 with an exception. */
static int
emit_start(ExchangeObject *self)
{
    ErlNifEnv *env = job_event_env(self->job);
    int ok;
    ERL_NIF_TERM headers = response_raw_headers(self->st, env, self->headers, &ok);
    if (!ok) {
        job_event_flush(self->job);
        PyErr_SetString(PyExc_RuntimeError, "ASGI response headers cannot be sent");
        return -1;
    }
    job_event_start(self->job, enif_make_long(env, self->status), headers);
    return 0;
}

/* {body, Bytes, More} to the owner; body NULL is empty.  Returns 0, or -1 with an
 * exception. */
static int
emit_body(ExchangeObject *self, PyObject *body, int more)
{
    ErlNifEnv *env = job_event_env(self->job);
    ERL_NIF_TERM bin;
    if (body == NULL) {
        enif_make_new_binary(env, 0, &bin);
    } else if (response_bytes(self->st, env, body, &bin) < 0) {
        job_event_flush(self->job);
        PyErr_SetString(PyExc_RuntimeError, "ASGI response body cannot be sent");
        return -1;
    }
    ERL_NIF_TERM event = enif_make_tuple3(env, ATOM_body, bin, more ? ATOM_true : ATOM_false);
    if (more) {
        job_event_send(self->job, event);
    } else {
        job_event_last(self->job, event); /* may be held, see job_event_last */
    }
    if (more && body != NULL) {
        self->in_flight += (long)PyBytes_GET_SIZE(body);
    }
    return 0;
}

/* Resolves the future of a send() waiting for acknowledgements. */
static int
release_drained(ExchangeObject *self)
{
    PyObject *f = self->drained;
    self->drained = NULL;
    if (f == NULL) {
        return 0;
    }
    PyObject *done = PyObject_CallMethodNoArgs(f, self->st->s_done);
    int is_done = done == NULL ? -1 : PyObject_IsTrue(done);
    Py_XDECREF(done);
    PyObject *r = is_done == 0 ? PyObject_CallMethodOneArg(f, self->st->s_set_result, Py_None) : NULL;
    Py_DECREF(f);
    if (is_done != 1 && r == NULL) {
        return -1;
    }
    Py_XDECREF(r);
    return 0;
}

/* The headers of a start message as they are (a new list) when every pair is an exact
 * (bytes, bytes) tuple the runner already found valid; else NULL, no exception. */
static PyObject *
known_headers(py_state_t *st, PyObject *message)
{
    PyObject *headers = PyDict_GetItemWithError(message, st->s_headers);
    if (headers == NULL || !PyList_CheckExact(headers)) {
        PyErr_Clear();
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(headers);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *h = PyList_GET_ITEM(headers, i);
        if (!PyTuple_CheckExact(h) || PyTuple_GET_SIZE(h) != 2 ||
            PySet_Contains(st->asgi_valid_headers, h) != 1) {
            PyErr_Clear();
            return NULL;
        }
    }
    return PyList_GetSlice(headers, 0, n);
}

/* A start message taken as it is (see send_rules): returns 1 (applied), 0 (not the
 * common shape: the rules decide), -1 (error). */
static int
fast_start(ExchangeObject *self, PyObject *message)
{
    py_state_t *st = self->st;
    PyObject *status = PyDict_GetItemWithError(message, st->s_status);
    if (status == NULL || !PyLong_CheckExact(status) ||
        PySet_Contains(st->asgi_valid_statuses, status) != 1 ||
        PyDict_Contains(message, st->s_trailers) != 0) {
        PyErr_Clear();
        return 0;
    }
    PyObject *headers = known_headers(st, message);
    if (headers == NULL) {
        return 0;
    }
    self->status = PyLong_AsLong(status);
    Py_XSETREF(self->headers, headers);
    if (self->job != NULL && emit_start(self) < 0) {
        return -1;
    }
    return set_state(self, X_BODY) < 0 ? -1 : 1;
}

/* A body message taken as it is: bytes body (or none), bool more_body (or none). */
static int
fast_body(ExchangeObject *self, PyObject *message)
{
    py_state_t *st = self->st;
    PyObject *body = PyDict_GetItemWithError(message, st->s_body);
    PyObject *more = body != NULL || !PyErr_Occurred()
        ? PyDict_GetItemWithError(message, st->s_more_body) : NULL;
    if (PyErr_Occurred() || (body != NULL && !PyBytes_CheckExact(body)) ||
        (more != NULL && more != Py_True && more != Py_False)) {
        PyErr_Clear();
        return 0;
    }
    if (self->job != NULL) {
        if (emit_body(self, body, more == Py_True) < 0) {
            return -1;
        }
    } else if (body != NULL && PyBytes_GET_SIZE(body) > 0 &&
               PyList_Append(self->chunks, body) < 0) {
        return -1;
    }
    if (more != Py_True && set_state(self, X_COMPLETE) < 0) {
        return -1;
    }
    return 1;
}

/* The runner's send_rules(state, trailers, accept_trailers, message) and its event. */
static int
by_rules(ExchangeObject *self, PyObject *message)
{
    py_state_t *st = self->st;
    PyObject *state = PyLong_FromLong(self->state);
    PyObject *r = state != NULL
        ? PyObject_CallFunctionObjArgs(st->asgi_send_rules, state,
                                       self->trailers ? Py_True : Py_False,
                                       self->accept_trailers ? Py_True : Py_False, message,
                                       NULL)
        : NULL;
    Py_XDECREF(state);
    if (r == NULL) {
        return -1;
    }
    PyObject *event;
    long new_state;
    int rc = -1;
    if (!PyTuple_CheckExact(r) || PyTuple_GET_SIZE(r) != 3 ||
        !PyTuple_CheckExact(event = PyTuple_GET_ITEM(r, 2)) || PyTuple_GET_SIZE(event) < 3) {
        PyErr_SetString(PyExc_TypeError, "send_rules must return (state, trailers, event)");
    } else if ((new_state = PyLong_AsLong(PyTuple_GET_ITEM(r, 0))) == -1 && PyErr_Occurred()) {
        /* error set */
    } else {
        PyObject *kind = PyTuple_GET_ITEM(event, 0);
        self->trailers = PyObject_IsTrue(PyTuple_GET_ITEM(r, 1));
        rc = 0;
        if (PyUnicode_CompareWithASCIIString(kind, "start") == 0) {
            self->status = PyLong_AsLong(PyTuple_GET_ITEM(event, 1));
            Py_XSETREF(self->headers, Py_NewRef(PyTuple_GET_ITEM(event, 2)));
            if (self->job != NULL) {
                rc = emit_start(self);
            }
        } else if (PyUnicode_CompareWithASCIIString(kind, "body") == 0 && self->job != NULL) {
            rc = emit_body(self, PyTuple_GET_ITEM(event, 1),
                           PyObject_IsTrue(PyTuple_GET_ITEM(event, 2)) == 1);
        } else if (PyUnicode_CompareWithASCIIString(kind, "body") == 0 &&
                   PyBytes_GET_SIZE(PyTuple_GET_ITEM(event, 1)) > 0) {
            rc = PyList_Append(self->chunks, PyTuple_GET_ITEM(event, 1));
        } /* trailers: checked by the rules, dropped (a buffered response has no place; a
             stream's exchange is only made for a scope without the trailers extension,
             where the rules give no trailers event) */
        if (rc == 0) {
            rc = set_state(self, new_state);
        }
    }
    Py_DECREF(r);
    return rc;
}

/* send(message): the common valid messages as they are, the rest by the runner's rules. */
static PyObject *
exchange_send(ExchangeObject *self, PyObject *message)
{
    py_state_t *st = self->st;
    int rc = 0;
    if (self->disconnected) {
        PyErr_SetString(st->asgi_client_disconnected, "the client disconnected");
        return NULL;
    }
    if (PyDict_CheckExact(message) && !self->trailers) {
        PyObject *kind = PyDict_GetItemWithError(message, st->s_type);
        if (kind == st->s_response_body ||
            (kind != NULL && PyUnicode_CheckExact(kind) &&
             PyUnicode_Compare(kind, st->s_response_body) == 0)) {
            rc = self->state == X_BODY ? fast_body(self, message) : 0;
        } else if (kind == st->s_response_start ||
                   (kind != NULL && PyUnicode_CheckExact(kind) &&
                    PyUnicode_Compare(kind, st->s_response_start) == 0)) {
            rc = self->state == X_START ? fast_start(self, message) : 0;
        }
        PyErr_Clear();
    }
    if (rc == 0) {
        rc = by_rules(self, message);
    }
    if (rc < 0) {
        return NULL;
    }
    if (self->job != NULL && self->in_flight > PyLong_AsLong(st->asgi_high_water) &&
        self->state != X_COMPLETE) {
        /* Too much in flight: wait until the owner has acknowledged down to half. */
        PyObject *loop = PyObject_CallNoArgs(st->get_running_loop);
        PyObject *future = loop != NULL ? PyObject_CallMethodNoArgs(loop, st->s_create_future) : NULL;
        Py_XDECREF(loop);
        if (future != NULL && release_drained(self) == 0) {
            self->drained = Py_NewRef(future);
        }
        return future;
    }
    return ready(st, NULL);
}

/* ack(n): the owner has written n more bytes of the response. */
static PyObject *
exchange_ack(ExchangeObject *self, PyObject *n)
{
    long count = PyLong_AsLong(n);
    if (count == -1 && PyErr_Occurred()) {
        return NULL;
    }
    self->in_flight = count >= self->in_flight ? 0 : self->in_flight - count;
    if (self->in_flight <= PyLong_AsLong(self->st->asgi_high_water) / 2 &&
        release_drained(self) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* disconnect(): the owner gave the stream up (the client went away). */
static PyObject *
exchange_disconnect(ExchangeObject *self, PyObject *unused)
{
    self->disconnected = 1;
    if (release_waiters(self) < 0 || release_drained(self) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* feed(chunk, more_body): a stream's exchange has the whole request body from the start. */
static PyObject *
exchange_feed(ExchangeObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyErr_SetString(PyExc_RuntimeError, "Stream.feed() called after the last request body chunk");
    return NULL;
}

static PyMethodDef exchange_methods[] = {
    {"receive", (PyCFunction)exchange_receive, METH_NOARGS, "ASGI receive()."},
    {"send", (PyCFunction)exchange_send, METH_O, "ASGI send(message)."},
    {"ack", (PyCFunction)exchange_ack, METH_O, "A stream's: n more response bytes written."},
    {"disconnect", (PyCFunction)exchange_disconnect, METH_NOARGS,
     "A stream's: the client went away."},
    {"feed", (PyCFunction)(void (*)(void))exchange_feed, METH_FASTCALL,
     "A stream's: more request body (never: the body is whole)."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot exchange_slots[] = {
    {Py_tp_doc, "receive/send of one buffered ASGI request (hornbeam_asgi_runner's protocol)."},
    {Py_tp_dealloc, exchange_dealloc},
    {Py_tp_methods, exchange_methods},
    {0, NULL},
};

PyType_Spec asgi_exchange_spec = {
    .name = "_erlang.ASGIExchange",
    .basicsize = sizeof(ExchangeObject),
    .flags = Py_TPFLAGS_DEFAULT,
    .slots = exchange_slots,
};

/* ---- public ----------------------------------------------------------------------- */

PyObject *
asgi_native_exchange(py_state_t *st, PyObject *scope, PyObject *body)
{
    ExchangeObject *x = PyObject_New(ExchangeObject, st->exchange_type);
    if (x == NULL) {
        return NULL;
    }
    x->st = st;
    x->body = Py_NewRef(body);
    x->state = X_START;
    x->trailers = 0;
    x->status = 0;
    x->headers = NULL;
    x->waiters = NULL;
    x->job = NULL;
    x->disconnected = 0;
    x->in_flight = 0;
    x->drained = NULL;
    x->chunks = PyList_New(0);
    PyObject *ext = PyDict_GetItemWithError(scope, st->s_extensions);
    x->accept_trailers = ext != NULL && PyDict_Check(ext) &&
                         PyDict_Contains(ext, st->s_response_trailers) == 1;
    if (x->chunks == NULL || PyErr_Occurred()) {
        Py_DECREF(x);
        return NULL;
    }
    return (PyObject *)x;
}

PyObject *
asgi_native_stream(py_state_t *st, PyObject *scope, PyObject *body, job_t *job)
{
    ExchangeObject *x = (ExchangeObject *)asgi_native_exchange(st, scope, body);
    if (x == NULL) {
        return NULL;
    }
    if (x->accept_trailers) {
        Py_DECREF(x);
        return Py_NewRef(Py_None);
    }
    enif_keep_resource(job);
    x->job = job;
    return (PyObject *)x;
}

/* The app returned before its response was complete: sets the runner's error for that
 * (its finish_rules, the one owner of the message). */
static void
raise_incomplete(py_state_t *st, ExchangeObject *x)
{
    PyObject *state = PyLong_FromLong(x->state);
    PyObject *r = state != NULL ? PyObject_CallOneArg(st->asgi_finish_rules, state) : NULL;
    Py_XDECREF(state);
    if (r != NULL) {
        Py_DECREF(r);
        PyErr_SetString(PyExc_SystemError, "finish_rules accepted an incomplete response");
    }
}

ERL_NIF_TERM
asgi_native_finish(py_state_t *st, ErlNifEnv *env, PyObject *exchange_obj)
{
    ExchangeObject *x = (ExchangeObject *)exchange_obj;
    if (release_waiters(x) < 0 || release_drained(x) < 0) {
        return errors_tuple(env, errors_take(st, env));
    }
    if (x->disconnected || x->state == X_COMPLETE) {
        return ATOM_done;
    }
    raise_incomplete(st, x);
    return errors_tuple(env, errors_take(st, env));
}

PyObject *
asgi_native_call(py_state_t *st, PyObject *app, PyObject *scope, PyObject *exchange)
{
    PyObject *receive = PyObject_GetAttr(exchange, st->s_receive);
    PyObject *send = receive != NULL ? PyObject_GetAttr(exchange, st->s_send) : NULL;
    PyObject *coro = send != NULL ? PyObject_CallFunctionObjArgs(app, scope, receive, send, NULL) : NULL;
    Py_XDECREF(receive);
    Py_XDECREF(send);
    if (coro != NULL && !PyCoro_CheckExact(coro)) {
        Py_SETREF(coro, PyObject_CallOneArg(st->asgi_await_any, coro));
    }
    return coro;
}

ERL_NIF_TERM
asgi_native_result(py_state_t *st, ErlNifEnv *env, PyObject *exchange_obj, int *ok)
{
    ExchangeObject *x = (ExchangeObject *)exchange_obj;
    *ok = 0;
    if (release_waiters(x) < 0) {
        return errors_take(st, env);
    }
    if (x->state != X_COMPLETE) {
        raise_incomplete(st, x);
        return errors_take(st, env);
    }
    int hok;
    ERL_NIF_TERM headers = response_raw_headers(st, env, x->headers, &hok);
    ERL_NIF_TERM body;
    if (!hok) {
        return headers;
    }
    if (response_body(st, env, x->chunks, &body) < 0) {
        return response_error(env, "body chunks must be bytes");
    }
    *ok = 1;
    return enif_make_tuple3(env, enif_make_long(env, x->status), headers, body);
}
