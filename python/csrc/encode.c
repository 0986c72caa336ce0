/* Python objects -> Erlang external term format.
 *
 * encode(obj, mode=MODE_GENERIC) -> bytes (version byte 131 first).  GENERIC follows the
 * py:call table of docs/types.md: str -> binary (UTF-8), bytes-like -> {bytes, Binary},
 * set -> list, Atom -> atom, Term -> the term it holds.  RAW (web heads) differs in one
 * rule: bytes-like -> a plain binary.  Errors: Unconvertible(what) for a value with no
 * Erlang form (its type's qualname, "Atom", "dict with keys equal in Erlang"),
 * Unconvertible("too_deep") past the nesting limit; a str that cannot be UTF-8 encoded
 * raises UnicodeEncodeError as it would in Python.
 */
#include "codec.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    unsigned char *p;
    size_t len, cap;
} buf_t;

static int
grow(buf_t *b, size_t extra)
{
    if (b->len + extra <= b->cap) {
        return 0;
    }
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra) {
        cap *= 2;
    }
    unsigned char *p = PyMem_Realloc(b->p, cap);
    if (p == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

static int
put(buf_t *b, const void *data, size_t n)
{
    if (grow(b, n) < 0) {
        return -1;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    return 0;
}

static int
put8(buf_t *b, unsigned v)
{
    unsigned char c = (unsigned char)v;
    return put(b, &c, 1);
}

static int
put32(buf_t *b, uint32_t v)
{
    unsigned char q[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 8), (unsigned char)v};
    return put(b, q, 4);
}

static int
fail_unconvertible(const char *what)
{
    PyObject *exc = PyObject_CallFunction(CODEC.unconvertible, "s", what);
    if (exc != NULL) {
        PyErr_SetObject(CODEC.unconvertible, exc);
        Py_DECREF(exc);
    }
    return -1;
}

static int
fail_type(PyObject *o)
{
    PyObject *q = PyObject_GetAttrString((PyObject *)Py_TYPE(o), "__qualname__");
    const char *text = q != NULL && PyUnicode_Check(q) ? PyUnicode_AsUTF8(q) : NULL;
    PyErr_Clear();
    int rc = fail_unconvertible(text != NULL ? text : "?");
    Py_XDECREF(q);
    return rc;
}

/* ---- leaves ------------------------------------------------------------------------- */

static int
put_atom_text(buf_t *b, const char *s, size_t n)
{
    if (n <= 255) {
        return put8(b, 119) < 0 || put8(b, (unsigned)n) < 0 ? -1 : put(b, s, n); /* SMALL_ATOM_UTF8 */
    }
    if (put8(b, 118) < 0 || put8(b, (unsigned)(n >> 8)) < 0 || put8(b, (unsigned)n) < 0) {
        return -1;
    }
    return put(b, s, n);
}

static int
put_binary(buf_t *b, const void *data, size_t n)
{
    if (n > 0xFFFFFFFFu) {
        return fail_unconvertible("bytes");
    }
    if (put8(b, 109) < 0 || put32(b, (uint32_t)n) < 0) {
        return -1;
    }
    return put(b, data, n);
}

static int
put_bigint(buf_t *b, PyObject *o)
{
    int negative = PyObject_RichCompareBool(o, Py_False, Py_LT); /* o < 0 */
    if (negative < 0) {
        return -1;
    }
    PyObject *mag = PyNumber_Absolute(o);
    PyObject *bits = mag != NULL ? PyObject_CallMethodNoArgs(mag, CODEC.s_bit_length) : NULL;
    size_t nbits = bits != NULL ? PyLong_AsSize_t(bits) : (size_t)-1;
    Py_XDECREF(bits);
    if (nbits == (size_t)-1) {
        Py_XDECREF(mag);
        return -1;
    }
    size_t n = (nbits + 7) / 8;
    PyObject *len = PyLong_FromSize_t(n);
    PyObject *digits = len != NULL ? PyObject_CallMethodObjArgs(mag, CODEC.s_to_bytes, len,
                                                                CODEC.s_little, NULL) : NULL;
    Py_XDECREF(len);
    Py_DECREF(mag);
    if (digits == NULL) {
        return -1;
    }
    int rc;
    if (n > 0xFFFFFFFFu) {
        rc = fail_type(o);
    } else if (n <= 255) {
        rc = put8(b, 110) < 0 || put8(b, (unsigned)n) < 0 || put8(b, (unsigned)negative) < 0
                 ? -1 : put(b, PyBytes_AS_STRING(digits), n);
    } else {
        rc = put8(b, 111) < 0 || put32(b, (uint32_t)n) < 0 || put8(b, (unsigned)negative) < 0
                 ? -1 : put(b, PyBytes_AS_STRING(digits), n);
    }
    Py_DECREF(digits);
    return rc;
}

static int
put_int(buf_t *b, PyObject *o)
{
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (overflow != 0) {
        return put_bigint(b, o);
    }
    if (v == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (v >= 0 && v <= 255) {
        return put8(b, 97) < 0 ? -1 : put8(b, (unsigned)v);
    }
    if (v >= INT32_MIN && v <= INT32_MAX) {
        return put8(b, 98) < 0 ? -1 : put32(b, (uint32_t)(int32_t)v);
    }
    unsigned long long mag = v < 0 ? (unsigned long long)(-(v + 1)) + 1ULL : (unsigned long long)v;
    unsigned char digits[8];
    size_t n = 0;
    while (mag > 0) {
        digits[n++] = (unsigned char)(mag & 0xFF);
        mag >>= 8;
    }
    return put8(b, 110) < 0 || put8(b, (unsigned)n) < 0 || put8(b, v < 0) < 0 ? -1 : put(b, digits, n);
}

static int
put_float(buf_t *b, double d)
{
    if (isnan(d)) {
        return put_atom_text(b, "nan", 3);
    }
    if (isinf(d)) {
        return d > 0 ? put_atom_text(b, "inf", 3) : put_atom_text(b, "neg_inf", 7);
    }
    uint64_t bits;
    memcpy(&bits, &d, sizeof bits);
    return put8(b, 70) < 0 || put32(b, (uint32_t)(bits >> 32)) < 0 ? -1 : put32(b, (uint32_t)bits);
}

static int
put_atom(buf_t *b, PyObject *o)
{
    if (PyUnicode_GET_LENGTH(o) > 255) {
        return fail_unconvertible("Atom");
    }
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(o, &n);
    return s == NULL ? -1 : put_atom_text(b, s, (size_t)n);
}

static int
put_str(buf_t *b, PyObject *o)
{
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(o, &n);
    return s == NULL ? -1 : put_binary(b, s, (size_t)n);
}

static int
put_buffer(buf_t *b, PyObject *o, int mode)
{
    Py_buffer view;
    if (PyObject_GetBuffer(o, &view, PyBUF_CONTIG_RO) < 0) {
        return -1;
    }
    int rc = 0;
    if (mode == MODE_GENERIC) { /* {bytes, Binary} */
        rc = put8(b, 104) < 0 || put8(b, 2) < 0 || put_atom_text(b, "bytes", 5) < 0 ? -1 : 0;
    }
    if (rc == 0) {
        rc = put_binary(b, view.buf, (size_t)view.len);
    }
    PyBuffer_Release(&view);
    return rc;
}

static int
put_term(buf_t *b, PyObject *o)
{
    PyObject *raw = PyObject_GetAttr(o, CODEC.s_raw);
    if (raw == NULL) {
        return -1;
    }
    int rc = PyBytes_Check(raw) ? put(b, PyBytes_AS_STRING(raw), (size_t)PyBytes_GET_SIZE(raw))
                                : fail_type(o);
    Py_DECREF(raw);
    return rc;
}

/* ---- containers --------------------------------------------------------------------- */

static int enc(buf_t *b, PyObject *o, int depth, int mode);

static int
put_sequence(buf_t *b, PyObject *o, int depth, int mode, int as_tuple)
{
    PyObject *fast = PySequence_Fast(o, "expected a sequence");
    if (fast == NULL) {
        return -1;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    int rc;
    if (as_tuple) {
        rc = n <= 255 ? (put8(b, 104) < 0 ? -1 : put8(b, (unsigned)n))
                      : (put8(b, 105) < 0 ? -1 : put32(b, (uint32_t)n));
    } else if (n == 0) {
        rc = put8(b, 106);
    } else {
        rc = put8(b, 108) < 0 ? -1 : put32(b, (uint32_t)n);
    }
    PyObject **items = PySequence_Fast_ITEMS(fast);
    for (Py_ssize_t k = 0; rc == 0 && k < n; k++) {
        rc = enc(b, items[k], depth + 1, mode);
    }
    if (rc == 0 && !as_tuple && n > 0) {
        rc = put8(b, 106);
    }
    Py_DECREF(fast);
    return rc;
}

typedef struct {
    size_t off, len;
} span_t;

static int
span_cmp(const void *x, const void *y, void *arg)
{
    const span_t *a = x, *c = y;
    const unsigned char *p = arg;
    if (a->len != c->len) {
        return a->len < c->len ? -1 : 1;
    }
    return memcmp(p + a->off, p + c->off, a->len);
}

/* 1 if two of the encoded keys are the same term. */
static int
has_equal_keys(const buf_t *b, span_t *keys, Py_ssize_t n)
{
    if (n < 2) {
        return 0;
    }
    if (n <= 8) {
        for (Py_ssize_t x = 0; x < n; x++) {
            for (Py_ssize_t y = x + 1; y < n; y++) {
                if (span_cmp(&keys[x], &keys[y], b->p) == 0) {
                    return 1;
                }
            }
        }
        return 0;
    }
    qsort_r(keys, (size_t)n, sizeof(span_t), span_cmp, b->p);
    for (Py_ssize_t x = 1; x < n; x++) {
        if (span_cmp(&keys[x - 1], &keys[x], b->p) == 0) {
            return 1;
        }
    }
    return 0;
}

static int
put_dict(buf_t *b, PyObject *o, int depth, int mode)
{
    Py_ssize_t n = PyDict_GET_SIZE(o);
    span_t local[16];
    span_t *keys = n <= 16 ? local : PyMem_Malloc(sizeof(span_t) * (size_t)n);
    if (keys == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    int rc = put8(b, 116) < 0 || put32(b, (uint32_t)n) < 0 ? -1 : 0;
    Py_ssize_t pos = 0, k = 0;
    PyObject *key, *value;
    while (rc == 0 && k < n && PyDict_Next(o, &pos, &key, &value)) {
        keys[k].off = b->len;
        rc = enc(b, key, depth + 1, mode);
        keys[k].len = b->len - keys[k].off;
        if (rc == 0) {
            rc = enc(b, value, depth + 1, mode);
        }
        k++;
    }
    if (rc == 0 && k != n) {
        PyErr_SetString(PyExc_RuntimeError, "dict changed size during conversion");
        rc = -1;
    }
    if (rc == 0 && has_equal_keys(b, keys, n)) {
        rc = fail_unconvertible("dict with keys equal in Erlang");
    }
    if (keys != local) {
        PyMem_Free(keys);
    }
    return rc;
}

/* ---- one object --------------------------------------------------------------------- */

static int
enc(buf_t *b, PyObject *o, int depth, int mode)
{
    if (depth > CODEC_MAX_DEPTH) {
        return fail_unconvertible("too_deep");
    }
    if (o == Py_None) {
        return put_atom_text(b, "none", 4);
    }
    if (o == Py_True) {
        return put_atom_text(b, "true", 4);
    }
    if (o == Py_False) {
        return put_atom_text(b, "false", 5);
    }
    if (PyLong_Check(o)) {
        return put_int(b, o);
    }
    if (PyFloat_Check(o)) {
        return put_float(b, PyFloat_AS_DOUBLE(o));
    }
    if (PyUnicode_Check(o)) {
        return PyObject_TypeCheck(o, (PyTypeObject *)CODEC.atom_type) ? put_atom(b, o) : put_str(b, o);
    }
    if (PyBytes_Check(o) || PyByteArray_Check(o) || PyMemoryView_Check(o)) {
        return put_buffer(b, o, mode);
    }
    if (PyTuple_Check(o)) {
        return put_sequence(b, o, depth, mode, 1);
    }
    if (PyList_Check(o) || PyAnySet_Check(o)) {
        return put_sequence(b, o, depth, mode, 0);
    }
    if (PyDict_Check(o)) {
        return put_dict(b, o, depth, mode);
    }
    if (Py_TYPE(o) == (PyTypeObject *)CODEC.term_type) {
        return put_term(b, o);
    }
    return fail_type(o);
}

/* encode(obj, mode=MODE_GENERIC) -> bytes */
PyObject *
codec_encode(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "encode(obj, mode=0)");
        return NULL;
    }
    long mode = nargs > 1 ? PyLong_AsLong(args[1]) : MODE_GENERIC;
    if (mode == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (mode != MODE_GENERIC && mode != MODE_RAW) {
        PyErr_SetString(PyExc_ValueError, "encode: mode must be GENERIC or RAW");
        return NULL;
    }
    buf_t b = {NULL, 0, 0};
    PyObject *out = NULL;
    if (put8(&b, 131) == 0 && enc(&b, args[0], 0, (int)mode) == 0) {
        out = PyBytes_FromStringAndSize((const char *)b.p, (Py_ssize_t)b.len);
    }
    PyMem_Free(b.p);
    return out;
}
