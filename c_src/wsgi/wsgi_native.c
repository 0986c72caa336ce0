#include "wsgi/wsgi_native.h"

#include "core/compat.h"

#include <stddef.h>
#include <string.h>
#include <structmember.h>

/* start_response's state for one call: hornbeam_wsgi_runner._Response, buffered.  The
 * object itself is the start_response callable (vectorcall), so that no bound method is
 * made per request. */
typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    py_state_t *st;
    PyObject *status;   /* str once start_response was called */
    PyObject *headers;  /* [(str, str)] */
    PyObject *chunks;   /* [bytes] */
    int headers_sent;   /* a non-empty chunk went out: exc_info re-raises from now on */
    PyObject *emit;     /* a stream's emit (wsgi_native_stream), NULL when buffered */
} ResponseObject;

static void
response_dealloc(ResponseObject *self)
{
    PyTypeObject *type = Py_TYPE(self);
    Py_XDECREF(self->status);
    Py_XDECREF(self->headers);
    Py_XDECREF(self->chunks);
    Py_XDECREF(self->emit);
    type->tp_free((PyObject *)self);
    Py_DECREF(type);
}

/* A stream's emit("start", status, headers). */
static PyObject *
emit_start(ResponseObject *self)
{
    PyObject *args[3] = {self->st->s_start, self->status, self->headers};
    return PyObject_Vectorcall(self->emit, args, 3, NULL);
}

/* write(data): a non-empty bytes chunk after start_response is kept as it is; anything
 * else is decided by the runner's write_rules (an error, or nothing to send).  `last`:
 * the body's last chunk (a list or tuple body's), emitted as "last" by a stream. */
static PyObject *
write_chunk(ResponseObject *self, PyObject *data, int last)
{
    PyObject *chunk = data;
    PyObject *owned = NULL;
    if (!PyBytes_CheckExact(data) || PyBytes_GET_SIZE(data) == 0 || self->status == NULL) {
        owned = PyObject_CallFunctionObjArgs(self->st->wsgi_write_rules,
                                             self->status != NULL ? self->status : Py_None,
                                             data, NULL);
        if (owned == NULL) {
            return NULL;
        }
        if (owned == Py_None) {
            Py_DECREF(owned);
            Py_RETURN_NONE;
        }
        chunk = owned;
    }
    if (self->emit != NULL) {
        /* a stream: the start just before the first chunk, then each chunk */
        PyObject *r = self->headers_sent ? Py_NewRef(Py_None) : emit_start(self);
        self->headers_sent = 1;
        PyObject *args[2] = {last ? self->st->s_last : self->st->s_body, chunk};
        Py_XSETREF(r, r != NULL ? PyObject_Vectorcall(self->emit, args, 2, NULL) : NULL);
        Py_XDECREF(owned);
        return r;
    }
    self->headers_sent = 1;
    int rc = PyList_Append(self->chunks, chunk);
    Py_XDECREF(owned);
    if (rc < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
response_write(ResponseObject *self, PyObject *data)
{
    return write_chunk(self, data, 0);
}

/* The headers as they are (a new list, as _check_headers returns) when they are an exact
 * list of exact (str, str) tuples the runner already found valid; else NULL, no
 * exception. */
static PyObject *
known_headers(py_state_t *st, PyObject *headers)
{
    if (!PyList_CheckExact(headers)) {
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(headers);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *h = PyList_GET_ITEM(headers, i);
        if (!PyTuple_CheckExact(h) || PyTuple_GET_SIZE(h) != 2 ||
            !PyUnicode_CheckExact(PyTuple_GET_ITEM(h, 0)) ||
            !PyUnicode_CheckExact(PyTuple_GET_ITEM(h, 1)) ||
            PySet_Contains(st->wsgi_valid_headers, h) != 1) {
            PyErr_Clear();
            return NULL;
        }
    }
    return PyList_GetSlice(headers, 0, n);
}

/* start_response(status, headers, exc_info=None).  A first call without exc_info whose
 * status and headers are all known valid is taken as it is; any other call goes to the
 * runner's start_response_rules, which checks it or raises. */
static PyObject *
response_start(ResponseObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    py_state_t *st = self->st;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    static const char *const names[] = {"status", "headers", "exc_info"};
    PyObject *slots[3] = {NULL, NULL, Py_None};
    Py_ssize_t nkw = kwnames != NULL ? PyTuple_GET_SIZE(kwnames) : 0;
    if (nargs + nkw < 2 || nargs > 3) {
        PyErr_SetString(PyExc_TypeError, "start_response(status, headers, exc_info=None)");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nargs; i++) {
        slots[i] = args[i];
    }
    for (Py_ssize_t k = 0; k < nkw; k++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, k);
        int found = 0;
        for (int i = 0; i < 3; i++) {
            if (PyUnicode_CompareWithASCIIString(key, names[i]) == 0) {
                slots[i] = args[nargs + k];
                found = 1;
            }
        }
        if (!found) {
            PyErr_Format(PyExc_TypeError, "start_response() got an unexpected keyword argument %R", key);
            return NULL;
        }
    }
    PyObject *status = NULL, *headers = NULL;
    if (slots[2] == Py_None && self->status == NULL && PyUnicode_CheckExact(slots[0]) &&
        PySet_Contains(st->wsgi_valid_statuses, slots[0]) == 1) {
        headers = known_headers(st, slots[1]);
        status = headers != NULL ? Py_NewRef(slots[0]) : NULL;
    }
    if (status == NULL) {
        PyErr_Clear();
        PyObject *checked = PyObject_CallFunctionObjArgs(
            st->wsgi_start_rules, self->status != NULL ? self->status : Py_None,
            self->headers_sent ? Py_True : Py_False, slots[0], slots[1], slots[2], NULL);
        if (checked == NULL) {
            return NULL;
        }
        if (!PyTuple_CheckExact(checked) || PyTuple_GET_SIZE(checked) != 2) {
            Py_DECREF(checked);
            PyErr_SetString(PyExc_TypeError, "start_response_rules must return (status, headers)");
            return NULL;
        }
        status = Py_NewRef(PyTuple_GET_ITEM(checked, 0));
        headers = Py_NewRef(PyTuple_GET_ITEM(checked, 1));
        Py_DECREF(checked);
    }
    Py_XSETREF(self->status, status);
    Py_XSETREF(self->headers, headers);
    /* A new bound method each time: keeping one in the object would make a cycle
     * (the type is not GC-tracked). */
    return PyObject_GetAttr((PyObject *)self, st->s_write);
}

static PyMethodDef response_methods[] = {
    {"write", (PyCFunction)response_write, METH_O, "write(data): a body chunk (PEP 3333)."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef response_members[] = {
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(ResponseObject, vectorcall), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot response_slots[] = {
    {Py_tp_doc, "start_response(status, headers, exc_info=None) of one buffered WSGI call "
                "(hornbeam_wsgi_runner's), with write(data)."},
    {Py_tp_dealloc, response_dealloc},
    {Py_tp_call, PyVectorcall_Call},
    {Py_tp_methods, response_methods},
    {Py_tp_members, response_members},
    {0, NULL},
};

PyType_Spec wsgi_response_spec = {
    .name = "_erlang.WSGIResponse",
    .basicsize = sizeof(ResponseObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL,
    .slots = response_slots,
};

static ResponseObject *
response_new(py_state_t *st)
{
    ResponseObject *r = PyObject_New(ResponseObject, st->wsgi_response_type);
    if (r == NULL) {
        return NULL;
    }
    r->vectorcall = (vectorcallfunc)response_start;
    r->st = st;
    r->status = NULL;
    r->headers = NULL;
    r->headers_sent = 0;
    r->emit = NULL;
    r->chunks = PyList_New(0);
    if (r->chunks == NULL) {
        Py_DECREF(r);
        return NULL;
    }
    return r;
}

/* for chunk in body: write(chunk), then body.close() whatever happened.  A list or tuple
 * body's last item is known to be the last chunk. */
static int
consume(ResponseObject *r, PyObject *body)
{
    int rc = 0;
    if (PyList_CheckExact(body) || PyTuple_CheckExact(body)) {
        for (Py_ssize_t i = 0; rc == 0 && i < PySequence_Fast_GET_SIZE(body); i++) {
            PyObject *w = write_chunk(r, PySequence_Fast_GET_ITEM(body, i),
                                      i == PySequence_Fast_GET_SIZE(body) - 1);
            rc = w != NULL ? 0 : -1;
            Py_XDECREF(w);
        }
    } else {
        PyObject *it = PyObject_GetIter(body);
        PyObject *chunk;
        rc = it != NULL ? 0 : -1;
        while (rc == 0 && (chunk = PyIter_Next(it)) != NULL) {
            PyObject *w = write_chunk(r, chunk, 0);
            Py_DECREF(chunk);
            rc = w != NULL ? 0 : -1;
            Py_XDECREF(w);
        }
        if (rc == 0 && PyErr_Occurred()) {
            rc = -1;
        }
        Py_XDECREF(it);
    }
    /* finally: close(), keeping the first exception if both raise as Python would chain */
    PyObject *close = NULL;
    PyObject *exc = rc < 0 ? compat_take_exception() : NULL;
    if (compat_optional_attr(body, r->st->s_close, &close) < 0) {
        rc = -1;
    } else if (close != NULL) {
        PyObject *res = PyObject_CallNoArgs(close);
        Py_DECREF(close);
        if (res == NULL) {
            rc = -1;
        }
        Py_XDECREF(res);
    }
    if (exc != NULL) {
        if (PyErr_Occurred()) {
            /* close() raised too: Python's finally would raise close()'s, with the first as
             * its __context__ */
            PyObject *second = compat_take_exception();
            PyException_SetContext(second, exc);
            compat_restore_exception(second);
        } else {
            compat_restore_exception(exc);
        }
    }
    return rc;
}

int
wsgi_native_stream(py_state_t *st, PyObject *app, PyObject *environ, PyObject *emit)
{
    if (PyDict_SetDefault(environ, st->s_file_wrapper_key, st->wsgi_file_wrapper) == NULL) {
        return -1;
    }
    ResponseObject *r = response_new(st);
    if (r == NULL) {
        return -1;
    }
    r->emit = Py_NewRef(emit);
    PyObject *args[2] = {environ, (PyObject *)r};
    PyObject *body = PyObject_Vectorcall(app, args, 2, NULL);
    int rc = body != NULL ? consume(r, body) : -1;
    if (rc == 0) {
        /* finish: the runner's finish_rules (no start_response: its error), then the start
         * of an empty body */
        PyObject *ok = PyObject_CallOneArg(st->wsgi_finish_rules,
                                           r->status != NULL ? r->status : Py_None);
        if (ok != NULL && !r->headers_sent) {
            Py_SETREF(ok, emit_start(r));
        }
        rc = ok != NULL ? 0 : -1;
        Py_XDECREF(ok);
    }
    Py_XDECREF(body);
    Py_DECREF(r);
    return rc;
}

PyObject *
wsgi_native_run(py_state_t *st, PyObject *app, PyObject *environ)
{
    if (PyDict_SetDefault(environ, st->s_file_wrapper_key, st->wsgi_file_wrapper) == NULL) {
        return NULL;
    }
    ResponseObject *r = response_new(st);
    if (r == NULL) {
        return NULL;
    }
    PyObject *args[2] = {environ, (PyObject *)r};
    PyObject *body = PyObject_Vectorcall(app, args, 2, NULL);
    PyObject *result = NULL;
    if (body != NULL && consume(r, body) == 0) {
        if (r->status != NULL) {
            result = PyTuple_Pack(3, r->status, r->headers, r->chunks);
        } else {
            /* No start_response: the runner's finish_rules raises the error. */
            PyObject *ok = PyObject_CallOneArg(st->wsgi_finish_rules, Py_None);
            Py_XDECREF(ok);
            if (ok != NULL) {
                PyErr_SetString(PyExc_SystemError, "finish_rules accepted a missing start_response");
            }
        }
    }
    Py_XDECREF(body);
    Py_DECREF(r);
    return result;
}
