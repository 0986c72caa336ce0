#include "terms/response.h"

#include "core/atoms.h"
#include "core/options.h"
#include "core/release.h"
#include "terms/convert.h"

#include <string.h>

static ErlNifResourceType *PYBYTES_RESOURCE = NULL;

typedef struct {
    interp_t *ip;    /* the interpreter `bytes` belongs to */
    PyObject *bytes; /* strong reference, dropped through release_later */
} pybytes_ref_t;

static void
pybytes_dtor(ErlNifEnv *env, void *obj)
{
    pybytes_ref_t *ref = obj;
    if (ref->bytes != NULL) {
        release_later(ref->ip, ref->bytes);
    }
}

int
response_init(ErlNifEnv *env)
{
    ErlNifResourceFlags tried;
    PYBYTES_RESOURCE = enif_open_resource_type(env, NULL, "py_bytes", pybytes_dtor,
                                               ERL_NIF_RT_CREATE | ERL_NIF_RT_TAKEOVER, &tried);
    return PYBYTES_RESOURCE == NULL ? -1 : 0;
}

/* A binary whose memory is the bytes object's buffer (immutable, so sharing is safe). */
static int
zero_copy_bytes(py_state_t *st, ErlNifEnv *env, PyObject *bytes, ERL_NIF_TERM *out)
{
    pybytes_ref_t *ref = enif_alloc_resource(PYBYTES_RESOURCE, sizeof(*ref));
    if (ref == NULL) {
        return -1;
    }
    ref->ip = st->ip;
    ref->bytes = Py_NewRef(bytes);
    *out = enif_make_resource_binary(env, ref, PyBytes_AS_STRING(bytes),
                                     (size_t)PyBytes_GET_SIZE(bytes));
    enif_release_resource(ref);
    return 0;
}

int
response_latin1(ErlNifEnv *env, PyObject *obj, ERL_NIF_TERM *out)
{
    if (!PyUnicode_Check(obj)) {
        return -1;
    }
    if (PyUnicode_KIND(obj) == PyUnicode_1BYTE_KIND) {
        /* One byte per code point: the latin-1 encoding is the str's own storage. */
        *out = convert_bytes(env, (const char *)PyUnicode_1BYTE_DATA(obj),
                             (size_t)PyUnicode_GET_LENGTH(obj));
        return 0;
    }
    return -1;
}

int
response_bytes(py_state_t *st, ErlNifEnv *env, PyObject *obj, ERL_NIF_TERM *out)
{
    if (PyBytes_CheckExact(obj)) {
        if (PyBytes_GET_SIZE(obj) >= ZERO_COPY_MIN && option_on(OPT_ZERO_COPY) &&
            zero_copy_bytes(st, env, obj, out) == 0) {
            return 0;
        }
        *out = convert_bytes(env, PyBytes_AS_STRING(obj), (size_t)PyBytes_GET_SIZE(obj));
        return 0;
    }
    Py_buffer view;
    if (!PyObject_CheckBuffer(obj) || PyObject_GetBuffer(obj, &view, PyBUF_CONTIG_RO) < 0) {
        PyErr_Clear();
        return -1;
    }
    *out = convert_bytes(env, view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    return 0;
}

int
response_body(py_state_t *st, ErlNifEnv *env, PyObject *obj, ERL_NIF_TERM *out)
{
    if (!PyList_Check(obj) && !PyTuple_Check(obj)) {
        return response_bytes(st, env, obj, out);
    }
    PyObject **items = PySequence_Fast_ITEMS(obj);
    Py_ssize_t n = PySequence_Fast_GET_SIZE(obj);
    if (n == 1) {
        return response_bytes(st, env, items[0], out);
    }
    size_t total = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (PyBytes_Check(items[i])) {
            total += (size_t)PyBytes_GET_SIZE(items[i]);
        } else {
            Py_buffer view;
            if (!PyObject_CheckBuffer(items[i]) ||
                PyObject_GetBuffer(items[i], &view, PyBUF_CONTIG_RO) < 0) {
                PyErr_Clear();
                return -1;
            }
            total += (size_t)view.len;
            PyBuffer_Release(&view);
        }
    }
    unsigned char *dst = enif_make_new_binary(env, total, out);
    if (dst == NULL) {
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (PyBytes_Check(items[i])) {
            size_t len = (size_t)PyBytes_GET_SIZE(items[i]);
            memcpy(dst, PyBytes_AS_STRING(items[i]), len);
            dst += len;
        } else {
            Py_buffer view;
            if (PyObject_GetBuffer(items[i], &view, PyBUF_CONTIG_RO) < 0) {
                PyErr_Clear();
                return -1;
            }
            memcpy(dst, view.buf, (size_t)view.len);
            dst += view.len;
            PyBuffer_Release(&view);
        }
    }
    return 0;
}

ERL_NIF_TERM
response_raw_headers(py_state_t *st, ErlNifEnv *env, PyObject *headers, int *ok)
{
    *ok = 0;
    if (!PyList_Check(headers)) {
        return response_error(env, "headers must be a list");
    }
    Py_ssize_t n = PyList_GET_SIZE(headers);
    ERL_NIF_TERM list = enif_make_list(env, 0);
    for (Py_ssize_t i = n - 1; i >= 0; i--) {
        PyObject *pair = PyList_GET_ITEM(headers, i);
        ERL_NIF_TERM name, value;
        if (!(PyTuple_Check(pair) || PyList_Check(pair)) || PySequence_Fast_GET_SIZE(pair) != 2 ||
            response_bytes(st, env, PySequence_Fast_GET_ITEM(pair, 0), &name) < 0 ||
            response_bytes(st, env, PySequence_Fast_GET_ITEM(pair, 1), &value) < 0) {
            return response_error(env, "headers must be (bytes, bytes) pairs");
        }
        list = enif_make_list_cell(env, enif_make_tuple2(env, name, value), list);
    }
    *ok = 1;
    return list;
}

ERL_NIF_TERM
response_error(ErlNifEnv *env, const char *text)
{
    return enif_make_tuple2(env, ATOM_bad_response, convert_bytes(env, text, strlen(text)));
}
