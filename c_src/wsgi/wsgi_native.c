#include "wsgi_native.h"

#include "compat.h"

#include <stddef.h>
#include <string.h>

/* The runner's pieces, so that checks and errors read exactly as on the Python path. */
static struct {
    PyObject *check_status;  /* _check_status(status) -> str */
    PyObject *check_headers; /* _check_headers(headers) -> [(str, str)] */
    PyObject *valid_statuses; /* the sets in which they remember what passed */
    PyObject *valid_headers;
    PyObject *file_wrapper;  /* FileWrapper */
    PyObject *s_file_wrapper, *s_close, *s_write;
} N;

/* start_response's state for one call: hornbeam_wsgi_runner._Response, buffered.  The
 * object itself is the start_response callable (vectorcall), so that no bound method is
 * made per request. */
typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *status;   /* str once start_response was called */
    PyObject *headers;  /* [(str, str)] */
    PyObject *chunks;   /* [bytes] */
    int headers_sent;   /* a non-empty chunk went out: exc_info re-raises from now on */
} ResponseObject;

static void
response_dealloc(ResponseObject *self)
{
    Py_XDECREF(self->status);
    Py_XDECREF(self->headers);
    Py_XDECREF(self->chunks);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
response_write(ResponseObject *self, PyObject *data)
{
    if (!PyBytes_Check(data)) {
        PyObject *name = PyType_GetName(Py_TYPE(data));
        if (name != NULL) {
            PyErr_Format(PyExc_TypeError, "WSGI body chunks must be bytes, got %U", name);
            Py_DECREF(name);
        }
        return NULL;
    }
    if (PyBytes_GET_SIZE(data) == 0) {
        Py_RETURN_NONE;
    }
    if (self->status == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "WSGI app produced body data before calling start_response()");
        return NULL;
    }
    self->headers_sent = 1;
    if (PyList_Append(self->chunks, data) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* The runner's validators, skipped for a str status / exact list of exact (str, str)
 * tuples that already passed them (their caches): the common case does no Python call. */
static PyObject *
checked_status(PyObject *status)
{
    if (PyUnicode_CheckExact(status)) {
        int known = PySet_Contains(N.valid_statuses, status);
        if (known != 0) {
            return known > 0 ? Py_NewRef(status) : NULL;
        }
    }
    return PyObject_CallOneArg(N.check_status, status);
}

static PyObject *
checked_headers(PyObject *headers)
{
    if (PyList_CheckExact(headers)) {
        Py_ssize_t n = PyList_GET_SIZE(headers), i;
        for (i = 0; i < n; i++) {
            PyObject *h = PyList_GET_ITEM(headers, i);
            if (!PyTuple_CheckExact(h) || PyTuple_GET_SIZE(h) != 2 ||
                !PyUnicode_CheckExact(PyTuple_GET_ITEM(h, 0)) || !PyUnicode_CheckExact(PyTuple_GET_ITEM(h, 1))) {
                break;
            }
            int known = PySet_Contains(N.valid_headers, h);
            if (known < 0) {
                return NULL;
            }
            if (!known) {
                break;
            }
        }
        if (i == n) {
            return PyList_GetSlice(headers, 0, n); /* as _check_headers: a new list */
        }
    }
    return PyObject_CallOneArg(N.check_headers, headers);
}

static PyObject *
response_start(ResponseObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
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
    PyObject *exc_info = slots[2];
    if (exc_info != Py_None) {
        if (self->headers_sent) {
            /* raise exc_info[1].with_traceback(exc_info[2]) */
            PyObject *value = PySequence_GetItem(exc_info, 1);
            PyObject *tb = value != NULL ? PySequence_GetItem(exc_info, 2) : NULL;
            if (tb != NULL && PyExceptionInstance_Check(value)) {
                PyException_SetTraceback(value, tb == Py_None ? NULL : tb);
                PyErr_SetObject((PyObject *)Py_TYPE(value), value);
            } else if (tb != NULL) {
                PyErr_SetString(PyExc_TypeError, "exc_info must be (type, value, traceback)");
            }
            Py_XDECREF(value);
            Py_XDECREF(tb);
            return NULL;
        }
    } else if (self->status != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "start_response() called a second time without exc_info");
        return NULL;
    }
    PyObject *status = checked_status(slots[0]);
    PyObject *headers = status != NULL ? checked_headers(slots[1]) : NULL;
    if (headers == NULL) {
        Py_XDECREF(status);
        return NULL;
    }
    Py_XSETREF(self->status, status);
    Py_XSETREF(self->headers, headers);
    /* A new bound method each time: keeping one in the object would make a cycle
     * (the type is not GC-tracked). */
    return PyObject_GetAttr((PyObject *)self, N.s_write);
}

static PyMethodDef response_methods[] = {
    {"write", (PyCFunction)response_write, METH_O, "write(data): a body chunk (PEP 3333)."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ResponseType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "_erlang.WSGIResponse",
    .tp_basicsize = sizeof(ResponseObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "start_response(status, headers, exc_info=None) of one buffered WSGI call "
              "(hornbeam_wsgi_runner's), with write(data).",
    .tp_dealloc = (destructor)response_dealloc,
    .tp_vectorcall_offset = offsetof(ResponseObject, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_methods = response_methods,
};

int
wsgi_native_init(void)
{
    if (PyType_Ready(&ResponseType) < 0) {
        return -1;
    }
    PyObject *runner = PyImport_ImportModule("hornbeam_wsgi_runner");
    if (runner == NULL) {
        return -1;
    }
    N.check_status = PyObject_GetAttrString(runner, "_check_status");
    N.check_headers = PyObject_GetAttrString(runner, "_check_headers");
    N.file_wrapper = PyObject_GetAttrString(runner, "FileWrapper");
    N.valid_statuses = PyObject_GetAttrString(runner, "_valid_statuses");
    N.valid_headers = PyObject_GetAttrString(runner, "_valid_headers");
    Py_DECREF(runner);
    N.s_file_wrapper = PyUnicode_InternFromString("wsgi.file_wrapper");
    N.s_close = PyUnicode_InternFromString("close");
    N.s_write = PyUnicode_InternFromString("write");
    return N.check_status != NULL && N.check_headers != NULL && N.file_wrapper != NULL &&
                   N.valid_statuses != NULL && PySet_Check(N.valid_statuses) &&
                   N.valid_headers != NULL && PySet_Check(N.valid_headers) &&
                   N.s_file_wrapper != NULL && N.s_close != NULL && N.s_write != NULL
               ? 0 : -1;
}

static ResponseObject *
response_new(void)
{
    ResponseObject *r = PyObject_New(ResponseObject, &ResponseType);
    if (r == NULL) {
        return NULL;
    }
    r->vectorcall = (vectorcallfunc)response_start;
    r->status = NULL;
    r->headers = NULL;
    r->headers_sent = 0;
    r->chunks = PyList_New(0);
    if (r->chunks == NULL) {
        Py_DECREF(r);
        return NULL;
    }
    return r;
}

/* for chunk in body: write(chunk), then body.close() whatever happened. */
static int
consume(ResponseObject *r, PyObject *body)
{
    int rc = 0;
    if (PyList_CheckExact(body) || PyTuple_CheckExact(body)) {
        for (Py_ssize_t i = 0; rc == 0 && i < PySequence_Fast_GET_SIZE(body); i++) {
            PyObject *w = response_write(r, PySequence_Fast_GET_ITEM(body, i));
            rc = w != NULL ? 0 : -1;
            Py_XDECREF(w);
        }
    } else {
        PyObject *it = PyObject_GetIter(body);
        PyObject *chunk;
        rc = it != NULL ? 0 : -1;
        while (rc == 0 && (chunk = PyIter_Next(it)) != NULL) {
            PyObject *w = response_write(r, chunk);
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
    if (compat_optional_attr(body, N.s_close, &close) < 0) {
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

PyObject *
wsgi_native_run(PyObject *app, PyObject *environ)
{
    if (PyDict_SetDefault(environ, N.s_file_wrapper, N.file_wrapper) == NULL) {
        return NULL;
    }
    ResponseObject *r = response_new();
    if (r == NULL) {
        return NULL;
    }
    PyObject *args[2] = {environ, (PyObject *)r};
    PyObject *body = PyObject_Vectorcall(app, args, 2, NULL);
    PyObject *result = NULL;
    if (body != NULL && consume(r, body) == 0) {
        if (r->status == NULL) {
            PyErr_SetString(PyExc_RuntimeError, "WSGI app returned without calling start_response()");
        } else {
            result = PyTuple_Pack(3, r->status, r->headers, r->chunks);
        }
    }
    Py_XDECREF(body);
    Py_DECREF(r);
    return result;
}
