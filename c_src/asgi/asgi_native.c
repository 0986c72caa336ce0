#include "asgi_native.h"

#include "convert.h"
#include "errors.h"
#include "response.h"
#include "state.h"

#include <string.h>

/* ---- an awaitable that is already done -------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *value; /* the await result; NULL means None */
} ReadyObject;

static void
ready_dealloc(ReadyObject *self)
{
    Py_XDECREF(self->value);
    Py_TYPE(self)->tp_free((PyObject *)self);
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

static PyAsyncMethods ready_async = {.am_await = ready_await};

static PyTypeObject ReadyType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "_erlang.Ready",
    .tp_basicsize = sizeof(ReadyObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "An awaitable whose result is already there.",
    .tp_dealloc = (destructor)ready_dealloc,
    .tp_as_async = &ready_async,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)ready_next,
};

static PyObject *
ready(PyObject *value)
{
    ReadyObject *r = PyObject_New(ReadyObject, &ReadyType);
    if (r != NULL) {
        r->value = value;
    } else {
        Py_XDECREF(value);
    }
    return (PyObject *)r;
}

/* ---- the exchange ------------------------------------------------------------------- */

typedef enum { X_START, X_BODY, X_TRAILERS, X_COMPLETE } xstate_t;

typedef struct {
    PyObject_HEAD
    PyObject *body;       /* request body (bytes); NULL once received */
    xstate_t state;
    int accept_trailers;  /* the scope offers http.response.trailers */
    int trailers;         /* the app asked for trailers in its start */
    long status;
    PyObject *headers;    /* validated [(bytes, bytes)] */
    PyObject *chunks;     /* [bytes] */
    PyObject *waiters;    /* futures of receive() calls waiting for the end, or NULL */
} ExchangeObject;

/* The runner module's validators, so that errors read exactly as on the Python path. */
static struct {
    PyObject *message_type, *flag, *status, *headers, *header, *body, *valid_headers;
    PyObject *get_running_loop, *await_any;
    PyObject *s_type, *s_status, *s_headers, *s_body, *s_more_body, *s_trailers,
        *s_more_trailers, *s_start, *s_response_body, *s_response_trailers, *s_extensions,
        *s_trailers_ext, *s_request, *s_disconnect, *s_create_future, *s_set_result, *s_done;
} N;

static void
exchange_dealloc(ExchangeObject *self)
{
    Py_XDECREF(self->body);
    Py_XDECREF(self->headers);
    Py_XDECREF(self->chunks);
    Py_XDECREF(self->waiters);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
message_dict(PyObject *type, PyObject *body)
{
    PyObject *d = PyDict_New();
    if (d == NULL || PyDict_SetItem(d, N.s_type, type) < 0 ||
        (body != NULL && (PyDict_SetItem(d, N.s_body, body) < 0 ||
                          PyDict_SetItem(d, N.s_more_body, Py_False) < 0))) {
        Py_XDECREF(d);
        return NULL;
    }
    return d;
}

static PyObject *
exchange_receive(ExchangeObject *self, PyObject *unused)
{
    if (self->body != NULL && self->state != X_COMPLETE) {
        PyObject *msg = message_dict(N.s_request, self->body);
        Py_CLEAR(self->body);
        return msg != NULL ? ready(msg) : NULL;
    }
    Py_CLEAR(self->body);
    if (self->state == X_COMPLETE) {
        PyObject *msg = message_dict(N.s_disconnect, NULL);
        return msg != NULL ? ready(msg) : NULL;
    }
    /* Wait until the response is complete (or the exchange ends). */
    PyObject *loop = PyObject_CallNoArgs(N.get_running_loop);
    PyObject *future = loop != NULL ? PyObject_CallMethodNoArgs(loop, N.s_create_future) : NULL;
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
    PyObject *waiters = self->waiters;
    self->waiters = NULL;
    int rc = 0;
    for (Py_ssize_t i = 0; waiters != NULL && i < PyList_GET_SIZE(waiters); i++) {
        PyObject *f = PyList_GET_ITEM(waiters, i);
        PyObject *done = PyObject_CallMethodNoArgs(f, N.s_done);
        int is_done = done == NULL ? -1 : PyObject_IsTrue(done);
        Py_XDECREF(done);
        PyObject *msg = is_done == 0 ? message_dict(N.s_disconnect, NULL) : NULL;
        PyObject *r = msg != NULL ? PyObject_CallMethodOneArg(f, N.s_set_result, msg) : NULL;
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

static int
complete(ExchangeObject *self)
{
    self->state = X_COMPLETE;
    return release_waiters(self);
}

static PyObject *
runtime_error(const char *fmt, PyObject *kind)
{
    if (kind != NULL) {
        PyErr_Format(PyExc_RuntimeError, fmt, kind);
    } else {
        PyErr_SetString(PyExc_RuntimeError, fmt);
    }
    return NULL;
}

/* A bool field, through the runner's _flag when it is not exactly True/False/absent. */
static int
flag(PyObject *message, PyObject *key)
{
    PyObject *v = PyDict_GetItemWithError(message, key);
    if (v == NULL) {
        return PyErr_Occurred() ? -1 : 0;
    }
    if (v == Py_True || v == Py_False) {
        return v == Py_True;
    }
    PyObject *r = PyObject_CallFunctionObjArgs(N.flag, message, key, NULL);
    int out = r != NULL ? PyObject_IsTrue(r) : -1;
    Py_XDECREF(r);
    return out;
}

/* The headers of a message, each pair validated once (the runner's cache and _header). */
static PyObject *
checked_headers(PyObject *message, PyObject *kind)
{
    PyObject *headers = PyDict_GetItemWithError(message, N.s_headers);
    if (headers == NULL && PyErr_Occurred()) {
        return NULL;
    }
    if (headers == NULL || !(PyList_CheckExact(headers) || PyTuple_CheckExact(headers))) {
        return PyObject_CallOneArg(N.headers, message);
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(headers);
    PyObject *out = PyList_New(n);
    for (Py_ssize_t i = 0; out != NULL && i < n; i++) {
        PyObject *h = PySequence_Fast_GET_ITEM(headers, i);
        PyObject *pair = NULL;
        if (PyTuple_CheckExact(h) && PyTuple_GET_SIZE(h) == 2 &&
            PyBytes_CheckExact(PyTuple_GET_ITEM(h, 0)) && PyBytes_CheckExact(PyTuple_GET_ITEM(h, 1)) &&
            PySet_Contains(N.valid_headers, h) == 1) {
            pair = Py_NewRef(h);
        } else {
            PyErr_Clear();
            pair = PyObject_CallFunctionObjArgs(N.header, kind, h, NULL);
        }
        if (pair == NULL) {
            Py_CLEAR(out);
            break;
        }
        PyList_SET_ITEM(out, i, pair);
    }
    return out;
}

static PyObject *
send_start(ExchangeObject *self, PyObject *message, PyObject *kind)
{
    if (self->state != X_START) {
        return runtime_error("ASGI 'http.response.start' sent twice", NULL);
    }
    PyObject *status = PyDict_GetItemWithError(message, N.s_status);
    long code = -1;
    if (status != NULL && PyLong_CheckExact(status)) {
        code = PyLong_AsLong(status);
    }
    if (code < 100 || code > 599) {
        PyErr_Clear();
        PyObject *r = PyObject_CallOneArg(N.status, message); /* raises with the right text */
        if (r == NULL) {
            return NULL;
        }
        code = PyLong_AsLong(r);
        Py_DECREF(r);
    }
    PyObject *headers = checked_headers(message, kind);
    if (headers == NULL) {
        return NULL;
    }
    int trailers = flag(message, N.s_trailers);
    if (trailers < 0) {
        Py_DECREF(headers);
        return NULL;
    }
    self->trailers = trailers && self->accept_trailers;
    self->status = code;
    Py_XSETREF(self->headers, headers);
    self->state = X_BODY;
    return ready(NULL);
}

static int
end_body(ExchangeObject *self)
{
    if (self->trailers) {
        self->state = X_TRAILERS;
        return 0;
    }
    return complete(self);
}

static PyObject *
send_body(ExchangeObject *self, PyObject *message)
{
    if (self->state == X_START) {
        return runtime_error("ASGI 'http.response.body' sent before 'http.response.start'", NULL);
    }
    if (self->state == X_TRAILERS) {
        return runtime_error("ASGI 'http.response.body' sent after the last body message", NULL);
    }
    PyObject *body = PyDict_GetItemWithError(message, N.s_body);
    PyObject *owned = NULL;
    if (body == NULL && PyErr_Occurred()) {
        return NULL;
    }
    if (body != NULL && !PyBytes_CheckExact(body)) {
        owned = body = PyObject_CallOneArg(N.body, message); /* converts or raises */
        if (body == NULL) {
            return NULL;
        }
    }
    int more = flag(message, N.s_more_body);
    if (more >= 0 && body != NULL && PyBytes_GET_SIZE(body) > 0 && PyList_Append(self->chunks, body) < 0) {
        more = -1;
    }
    Py_XDECREF(owned);
    if (more < 0 || (!more && end_body(self) < 0)) {
        return NULL;
    }
    return ready(NULL);
}

static PyObject *
send_trailers(ExchangeObject *self, PyObject *message, PyObject *kind)
{
    if (!self->trailers) {
        return runtime_error("ASGI 'http.response.trailers' needs the 'http.response.trailers' "
                             "extension and 'trailers': True in 'http.response.start'", NULL);
    }
    if (self->state != X_TRAILERS) {
        return runtime_error("ASGI 'http.response.trailers' sent before the last body message", NULL);
    }
    PyObject *headers = checked_headers(message, kind); /* validated, then dropped */
    if (headers == NULL) {
        return NULL;
    }
    Py_DECREF(headers);
    int more = flag(message, N.s_more_trailers);
    if (more < 0 || (!more && complete(self) < 0)) {
        return NULL;
    }
    return ready(NULL);
}

static PyObject *
exchange_send(ExchangeObject *self, PyObject *message)
{
    PyObject *kind = PyDict_CheckExact(message) ? PyDict_GetItemWithError(message, N.s_type) : NULL;
    if (kind == NULL || !PyUnicode_CheckExact(kind)) {
        PyObject *r = PyObject_CallOneArg(N.message_type, message); /* raises, or a str subclass */
        if (r == NULL) {
            return NULL;
        }
        Py_DECREF(r);
        kind = PyDict_GetItemWithError(message, N.s_type);
        if (kind == NULL) {
            return NULL;
        }
    }
    Py_INCREF(kind);
    PyObject *r;
    if (self->state == X_COMPLETE) {
        r = runtime_error("ASGI %R sent after the response was complete", kind);
    } else if (PyUnicode_Compare(kind, N.s_response_body) == 0) {
        r = send_body(self, message);
    } else if (PyUnicode_Compare(kind, N.s_start) == 0) {
        r = send_start(self, message, kind);
    } else if (PyUnicode_Compare(kind, N.s_response_trailers) == 0) {
        r = send_trailers(self, message, kind);
    } else {
        r = runtime_error("ASGI message type %R is not supported in an HTTP response", kind);
    }
    Py_DECREF(kind);
    return r;
}

static PyMethodDef exchange_methods[] = {
    {"receive", (PyCFunction)exchange_receive, METH_NOARGS, "ASGI receive()."},
    {"send", (PyCFunction)exchange_send, METH_O, "ASGI send(message)."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ExchangeType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "_erlang.ASGIExchange",
    .tp_basicsize = sizeof(ExchangeObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "receive/send of one buffered ASGI request (hornbeam_asgi_runner's protocol).",
    .tp_dealloc = (destructor)exchange_dealloc,
    .tp_methods = exchange_methods,
};

/* ---- public ----------------------------------------------------------------------- */

/* An app may return any awaitable, not only a coroutine: tasks need a coroutine. */
static const char AWAIT_ANY_SRC[] =
    "async def await_any(awaitable):\n"
    "    return await awaitable\n";

#define INTERN(field, text) (N.field = PyUnicode_InternFromString(text)) == NULL

int
asgi_native_init(void)
{
    if (PyType_Ready(&ReadyType) < 0 || PyType_Ready(&ExchangeType) < 0) {
        return -1;
    }
    PyObject *runner = PyImport_ImportModule("hornbeam_asgi_runner");
    if (runner == NULL) {
        return -1;
    }
    N.message_type = PyObject_GetAttrString(runner, "_message_type");
    N.flag = PyObject_GetAttrString(runner, "_flag");
    N.status = PyObject_GetAttrString(runner, "_status");
    N.headers = PyObject_GetAttrString(runner, "_headers");
    N.header = PyObject_GetAttrString(runner, "_header");
    N.body = PyObject_GetAttrString(runner, "_body");
    N.valid_headers = PyObject_GetAttrString(runner, "_valid_headers");
    Py_DECREF(runner);
    PyObject *asyncio = PyImport_ImportModule("asyncio");
    N.get_running_loop = asyncio != NULL ? PyObject_GetAttrString(asyncio, "get_running_loop") : NULL;
    Py_XDECREF(asyncio);
    PyObject *globals = PyDict_New();
    PyObject *r = globals != NULL ? PyRun_String(AWAIT_ANY_SRC, Py_file_input, globals, globals) : NULL;
    Py_XDECREF(r);
    N.await_any = r != NULL ? PyDict_GetItemString(globals, "await_any") : NULL;
    Py_XINCREF(N.await_any);
    Py_XDECREF(globals);
    if (N.get_running_loop == NULL || N.await_any == NULL) {
        return -1;
    }
    if (N.message_type == NULL || N.flag == NULL || N.status == NULL || N.headers == NULL ||
        N.header == NULL || N.body == NULL || N.valid_headers == NULL || !PySet_Check(N.valid_headers)) {
        return -1;
    }
    if (INTERN(s_type, "type") || INTERN(s_status, "status") || INTERN(s_headers, "headers") ||
        INTERN(s_body, "body") || INTERN(s_more_body, "more_body") || INTERN(s_trailers, "trailers") ||
        INTERN(s_more_trailers, "more_trailers") || INTERN(s_start, "http.response.start") ||
        INTERN(s_response_body, "http.response.body") ||
        INTERN(s_response_trailers, "http.response.trailers") || INTERN(s_extensions, "extensions") ||
        INTERN(s_trailers_ext, "http.response.trailers") || INTERN(s_request, "http.request") ||
        INTERN(s_disconnect, "http.disconnect") || INTERN(s_create_future, "create_future") ||
        INTERN(s_set_result, "set_result") || INTERN(s_done, "done")) {
        return -1;
    }
    return 0;
}

PyObject *
asgi_native_exchange(PyObject *scope, PyObject *body)
{
    ExchangeObject *x = PyObject_New(ExchangeObject, &ExchangeType);
    if (x == NULL) {
        return NULL;
    }
    x->body = Py_NewRef(body);
    x->state = X_START;
    x->trailers = 0;
    x->status = 0;
    x->headers = NULL;
    x->waiters = NULL;
    x->chunks = PyList_New(0);
    PyObject *ext = PyDict_GetItemWithError(scope, N.s_extensions);
    x->accept_trailers = ext != NULL && PyDict_Check(ext) && PyDict_Contains(ext, N.s_trailers_ext) == 1;
    if (x->chunks == NULL || PyErr_Occurred()) {
        Py_DECREF(x);
        return NULL;
    }
    return (PyObject *)x;
}

PyObject *
asgi_native_call(PyObject *app, PyObject *scope, PyObject *exchange)
{
    PyObject *receive = PyObject_GetAttrString(exchange, "receive");
    PyObject *send = receive != NULL ? PyObject_GetAttrString(exchange, "send") : NULL;
    PyObject *coro = send != NULL ? PyObject_CallFunctionObjArgs(app, scope, receive, send, NULL) : NULL;
    Py_XDECREF(receive);
    Py_XDECREF(send);
    if (coro != NULL && !PyCoro_CheckExact(coro)) {
        Py_SETREF(coro, PyObject_CallOneArg(N.await_any, coro));
    }
    return coro;
}

ERL_NIF_TERM
asgi_native_result(ErlNifEnv *env, PyObject *exchange_obj, int *ok)
{
    ExchangeObject *x = (ExchangeObject *)exchange_obj;
    *ok = 0;
    if (release_waiters(x) < 0) {
        return errors_take(env);
    }
    if (x->state != X_COMPLETE) {
        PyErr_SetString(PyExc_RuntimeError, "ASGI app returned without completing the response");
        return errors_take(env);
    }
    int hok;
    ERL_NIF_TERM headers = response_raw_headers(env, x->headers, &hok);
    ERL_NIF_TERM body;
    if (!hok) {
        return headers;
    }
    if (response_body(env, x->chunks, &body) < 0) {
        return response_error(env, "body chunks must be bytes");
    }
    *ok = 1;
    return enif_make_tuple3(env, enif_make_long(env, x->status), headers, body);
}
