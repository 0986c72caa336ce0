#include "terms/convert.h"

#include "core/atoms.h"
#include "core/compat.h"
#include "terms/errors.h"
#include "terms/pyterm.h"

#include <math.h>
#include <string.h>

/* External term format tags used for bignums and UTF-8 atoms (OTP 25's NIF API offers no
 * direct access to either). */
#define ETF_VERSION 131
#define ETF_SMALL_BIG 110
#define ETF_LARGE_BIG 111
#define ETF_ATOM_UTF8 118
#define ETF_SMALL_ATOM_UTF8 119

ERL_NIF_TERM
convert_bytes(ErlNifEnv *env, const char *data, size_t len)
{
    ERL_NIF_TERM bin;
    unsigned char *buf = enif_make_new_binary(env, len, &bin);
    if (buf == NULL) {
        return 0;
    }
    if (len > 0) {
        memcpy(buf, data, len);
    }
    return bin;
}

/* ---- Erlang -> Python ------------------------------------------------------------- */

static PyObject *to_py(py_state_t *st, ErlNifEnv *env, ERL_NIF_TERM t, int depth, ERL_NIF_TERM *badarg);

static PyObject *
bignum_to_py(py_state_t *st, ErlNifEnv *env, ERL_NIF_TERM t, ERL_NIF_TERM *badarg)
{
    ErlNifBinary ext;
    if (!enif_term_to_binary(env, t, &ext)) {
        return PyErr_NoMemory();
    }
    PyObject *result = NULL;
    const unsigned char *p = ext.data;
    size_t n, header;
    if (ext.size >= 3 && p[0] == ETF_VERSION && p[1] == ETF_SMALL_BIG) {
        n = p[2];
        header = 4;
    } else if (ext.size >= 6 && p[0] == ETF_VERSION && p[1] == ETF_LARGE_BIG) {
        n = ((size_t)p[2] << 24) | ((size_t)p[3] << 16) | ((size_t)p[4] << 8) | p[5];
        header = 7;
    } else {
        enif_release_binary(&ext);
        *badarg = ATOM_bad_term;
        return NULL;
    }
    if (header + n > ext.size) {
        enif_release_binary(&ext);
        *badarg = ATOM_bad_term;
        return NULL;
    }
    int negative = p[header - 1] != 0;
    PyObject *digits = PyBytes_FromStringAndSize((const char *)p + header, (Py_ssize_t)n);
    enif_release_binary(&ext);
    if (digits == NULL) {
        return NULL;
    }
    PyObject *magnitude = PyObject_CallMethodObjArgs((PyObject *)&PyLong_Type,
                                                     st->s_from_bytes, digits,
                                                     st->s_little, NULL);
    Py_DECREF(digits);
    if (magnitude == NULL) {
        return NULL;
    }
    if (negative) {
        result = PyNumber_Negative(magnitude);
        Py_DECREF(magnitude);
        return result;
    }
    return magnitude;
}

/* Atom text: latin-1 atoms through the NIF API, others (UTF-8 code points above 255)
 * through their external format. */
static PyObject *
atom_text(ErlNifEnv *env, ERL_NIF_TERM t)
{
    unsigned len;
    if (enif_get_atom_length(env, t, &len, ERL_NIF_LATIN1)) {
        char stackbuf[256];
        if (enif_get_atom(env, t, stackbuf, sizeof(stackbuf), ERL_NIF_LATIN1) > 0) {
            return PyUnicode_DecodeLatin1(stackbuf, (Py_ssize_t)len, NULL);
        }
    }
    ErlNifBinary ext;
    if (!enif_term_to_binary(env, t, &ext)) {
        return PyErr_NoMemory();
    }
    PyObject *out = NULL;
    const unsigned char *p = ext.data;
    if (ext.size >= 4 && p[1] == ETF_ATOM_UTF8) {
        size_t n = ((size_t)p[2] << 8) | p[3];
        if (4 + n <= ext.size) {
            out = PyUnicode_DecodeUTF8((const char *)p + 4, (Py_ssize_t)n, "strict");
        }
    } else if (ext.size >= 3 && p[1] == ETF_SMALL_ATOM_UTF8) {
        size_t n = p[2];
        if (3 + n <= ext.size) {
            out = PyUnicode_DecodeUTF8((const char *)p + 3, (Py_ssize_t)n, "strict");
        }
    }
    enif_release_binary(&ext);
    if (out == NULL && !PyErr_Occurred()) {
        PyErr_SetString(PyExc_SystemError, "unexpected atom encoding");
    }
    return out;
}

static PyObject *
atom_to_py(py_state_t *st, ErlNifEnv *env, ERL_NIF_TERM t)
{
    if (t == ATOM_true) {
        Py_RETURN_TRUE;
    }
    if (t == ATOM_false) {
        Py_RETURN_FALSE;
    }
    if (t == ATOM_none || t == ATOM_undefined || t == ATOM_nil) {
        Py_RETURN_NONE;
    }
    PyObject *text = atom_text(env, t);
    if (text == NULL) {
        return NULL;
    }
    PyObject *atom = PyObject_CallOneArg((PyObject *)st->atom_type, text);
    Py_DECREF(text);
    return atom;
}

static PyObject *
binary_to_py(ErlNifEnv *env, ERL_NIF_TERM t, ERL_NIF_TERM *badarg)
{
    ErlNifBinary bin;
    if (!enif_inspect_binary(env, t, &bin)) {
        *badarg = enif_make_tuple2(env, enif_make_atom(env, "bitstring"), t);
        return NULL;
    }
    PyObject *s = PyUnicode_DecodeUTF8((const char *)bin.data, (Py_ssize_t)bin.size, "strict");
    if (s == NULL && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
        PyErr_Clear();
        *badarg = enif_make_tuple2(env, ATOM_invalid_utf8, t);
    }
    return s;
}

static PyObject *
list_to_py(py_state_t *st, ErlNifEnv *env, ERL_NIF_TERM t, int depth, ERL_NIF_TERM *badarg)
{
    unsigned len;
    if (!enif_get_list_length(env, t, &len)) {
        *badarg = enif_make_tuple2(env, ATOM_improper_list, t);
        return NULL;
    }
    PyObject *list = PyList_New(len);
    if (list == NULL) {
        return NULL;
    }
    ERL_NIF_TERM head, tail = t;
    for (unsigned i = 0; i < len; i++) {
        enif_get_list_cell(env, tail, &head, &tail);
        PyObject *item = to_py(st, env, head, depth + 1, badarg);
        if (item == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, item);
    }
    return list;
}

static PyObject *
tuple_to_py(py_state_t *st, ErlNifEnv *env, ERL_NIF_TERM t, int depth, ERL_NIF_TERM *badarg)
{
    int arity;
    const ERL_NIF_TERM *elems;
    enif_get_tuple(env, t, &arity, &elems);
    /* {bytes, Binary} is the bytes form; any other tuple (including {bytes, NotABinary})
     * is a tuple. */
    ErlNifBinary bin;
    if (arity == 2 && elems[0] == ATOM_bytes && enif_inspect_binary(env, elems[1], &bin)) {
        return PyBytes_FromStringAndSize((const char *)bin.data, (Py_ssize_t)bin.size);
    }
    PyObject *tuple = PyTuple_New(arity);
    if (tuple == NULL) {
        return NULL;
    }
    for (int i = 0; i < arity; i++) {
        PyObject *item = to_py(st, env, elems[i], depth + 1, badarg);
        if (item == NULL) {
            Py_DECREF(tuple);
            return NULL;
        }
        PyTuple_SET_ITEM(tuple, i, item);
    }
    return tuple;
}

static PyObject *
map_to_py(py_state_t *st, ErlNifEnv *env, ERL_NIF_TERM t, int depth, ERL_NIF_TERM *badarg)
{
    PyObject *dict = PyDict_New();
    if (dict == NULL) {
        return NULL;
    }
    ErlNifMapIterator it;
    if (!enif_map_iterator_create(env, t, &it, ERL_NIF_MAP_ITERATOR_FIRST)) {
        Py_DECREF(dict);
        return PyErr_NoMemory();
    }
    ERL_NIF_TERM k, v;
    while (enif_map_iterator_get_pair(env, &it, &k, &v)) {
        PyObject *key = to_py(st, env, k, depth + 1, badarg);
        if (key == NULL) {
            goto fail;
        }
        PyObject *value = to_py(st, env, v, depth + 1, badarg);
        if (value == NULL) {
            Py_DECREF(key);
            goto fail;
        }
        Py_ssize_t before = PyDict_GET_SIZE(dict);
        int rc = PyDict_SetItem(dict, key, value);
        Py_DECREF(key);
        Py_DECREF(value);
        if (rc < 0) {
            if (PyErr_ExceptionMatches(PyExc_TypeError)) {
                PyErr_Clear();
                *badarg = enif_make_tuple2(env, ATOM_unhashable_key, k);
            }
            goto fail;
        }
        if (PyDict_GET_SIZE(dict) == before) {
            /* Two distinct Erlang keys equal in Python (1 and 1.0, true and 1, an atom and
             * the binary of its text): refuse rather than silently drop an entry. */
            *badarg = enif_make_tuple2(env, enif_make_atom(env, "duplicate_key"), k);
            goto fail;
        }
        enif_map_iterator_next(env, &it);
    }
    enif_map_iterator_destroy(env, &it);
    return dict;
fail:
    enif_map_iterator_destroy(env, &it);
    Py_DECREF(dict);
    return NULL;
}

static PyObject *
to_py(py_state_t *st, ErlNifEnv *env, ERL_NIF_TERM t, int depth, ERL_NIF_TERM *badarg)
{
    if (depth > CONVERT_MAX_DEPTH) {
        *badarg = ATOM_too_deep;
        return NULL;
    }
    switch (enif_term_type(env, t)) {
    case ERL_NIF_TERM_TYPE_INTEGER: {
        ErlNifSInt64 i;
        if (enif_get_int64(env, t, &i)) {
            return PyLong_FromLongLong((long long)i);
        }
        ErlNifUInt64 u;
        if (enif_get_uint64(env, t, &u)) {
            return PyLong_FromUnsignedLongLong((unsigned long long)u);
        }
        return bignum_to_py(st, env, t, badarg);
    }
    case ERL_NIF_TERM_TYPE_FLOAT: {
        double d;
        enif_get_double(env, t, &d);
        return PyFloat_FromDouble(d);
    }
    case ERL_NIF_TERM_TYPE_ATOM:
        return atom_to_py(st, env, t);
    case ERL_NIF_TERM_TYPE_BITSTRING:
        return binary_to_py(env, t, badarg);
    case ERL_NIF_TERM_TYPE_LIST:
        return list_to_py(st, env, t, depth, badarg);
    case ERL_NIF_TERM_TYPE_TUPLE:
        return tuple_to_py(st, env, t, depth, badarg);
    case ERL_NIF_TERM_TYPE_MAP:
        return map_to_py(st, env, t, depth, badarg);
    default: /* pid, port, reference, fun */
        return pyterm_new(st, env, t);
    }
}

PyObject *
convert_to_py(py_state_t *st, ErlNifEnv *env, ERL_NIF_TERM term, ERL_NIF_TERM *badarg)
{
    *badarg = 0;
    return to_py(st, env, term, 0, badarg);
}

PyObject *
convert_name(ErlNifEnv *env, ERL_NIF_TERM term)
{
    ErlNifBinary bin;
    if (enif_is_atom(env, term)) {
        return atom_text(env, term);
    }
    if (enif_inspect_binary(env, term, &bin)) {
        return PyUnicode_DecodeUTF8((const char *)bin.data, (Py_ssize_t)bin.size, "strict");
    }
    return NULL;
}

/* ---- Python -> Erlang ------------------------------------------------------------- */

static int from_py(py_state_t *st, ErlNifEnv *env, PyObject *o, int depth, ERL_NIF_TERM *out);

static int
fail_unconvertible(py_state_t *st, ErlNifEnv *env, PyObject *o, ERL_NIF_TERM *out)
{
    PyObject *qualname = PyObject_GetAttr((PyObject *)Py_TYPE(o), st->s_qualname);
    if (qualname == NULL) {
        PyErr_Clear();
        *out = enif_make_tuple2(env, ATOM_unconvertible, convert_bytes(env, "?", 1));
        return 0;
    }
    *out = enif_make_tuple2(env, ATOM_unconvertible, errors_text(env, qualname));
    Py_DECREF(qualname);
    return 0;
}

static int
fail_python(py_state_t *st, ErlNifEnv *env, ERL_NIF_TERM *out)
{
    *out = errors_take(st, env);
    return 0;
}

static int
bigint_from_py(py_state_t *st, ErlNifEnv *env, PyObject *o, ERL_NIF_TERM *out)
{
    PyObject *zero = PyLong_FromLong(0);
    int negative = zero != NULL ? PyObject_RichCompareBool(o, zero, Py_LT) : -1;
    Py_XDECREF(zero);
    if (negative < 0) {
        return fail_python(st, env, out);
    }
    PyObject *magnitude = PyNumber_Absolute(o);
    if (magnitude == NULL) {
        return fail_python(st, env, out);
    }
    PyObject *bits = PyObject_CallMethodNoArgs(magnitude, st->s_bit_length);
    size_t nbits = bits != NULL ? PyLong_AsSize_t(bits) : (size_t)-1;
    Py_XDECREF(bits);
    if (nbits == (size_t)-1) {
        Py_DECREF(magnitude);
        return fail_python(st, env, out);
    }
    size_t n = (nbits + 7) / 8;
    PyObject *len = PyLong_FromSize_t(n);
    PyObject *digits = len != NULL
        ? PyObject_CallMethodObjArgs(magnitude, st->s_to_bytes, len, st->s_little, NULL)
        : NULL;
    Py_XDECREF(len);
    Py_DECREF(magnitude);
    if (digits == NULL) {
        return fail_python(st, env, out);
    }
    if (n > 0xFFFFFFFFu) {
        Py_DECREF(digits);
        return fail_unconvertible(st, env, o, out);
    }
    size_t size = 7 + n;
    unsigned char *ext = enif_alloc(size);
    if (ext == NULL) {
        Py_DECREF(digits);
        PyErr_NoMemory();
        return fail_python(st, env, out);
    }
    ext[0] = ETF_VERSION;
    ext[1] = ETF_LARGE_BIG;
    ext[2] = (unsigned char)(n >> 24);
    ext[3] = (unsigned char)(n >> 16);
    ext[4] = (unsigned char)(n >> 8);
    ext[5] = (unsigned char)n;
    ext[6] = (unsigned char)negative;
    memcpy(ext + 7, PyBytes_AS_STRING(digits), n);
    Py_DECREF(digits);
    int ok = enif_binary_to_term(env, ext, size, out, 0) > 0;
    enif_free(ext);
    if (!ok) {
        return fail_unconvertible(st, env, o, out);
    }
    return 1;
}

static int
float_from_py(ErlNifEnv *env, PyObject *o, ERL_NIF_TERM *out)
{
    double d = PyFloat_AS_DOUBLE(o);
    if (isnan(d)) {
        *out = ATOM_nan;
    } else if (isinf(d)) {
        *out = d > 0 ? ATOM_inf : ATOM_neg_inf;
    } else {
        *out = enif_make_double(env, d);
    }
    return 1;
}

static int
atom_from_py(py_state_t *st, ErlNifEnv *env, PyObject *o, ERL_NIF_TERM *out)
{
    Py_ssize_t len;
    const char *utf8 = PyUnicode_AsUTF8AndSize(o, &len);
    if (utf8 == NULL) {
        return fail_python(st, env, out);
    }
    if (PyUnicode_GET_LENGTH(o) > 255) {
        *out = enif_make_tuple2(env, ATOM_unconvertible, convert_bytes(env, "Atom", 4));
        return 0;
    }
    if (PyUnicode_KIND(o) == PyUnicode_1BYTE_KIND) {
        *out = enif_make_atom_len(env, (const char *)PyUnicode_1BYTE_DATA(o),
                                  (size_t)PyUnicode_GET_LENGTH(o));
        return 1;
    }
    /* Code points above 255: build SMALL_ATOM_UTF8_EXT, or ATOM_UTF8_EXT when the UTF-8
     * text is longer than 255 bytes (up to 255 code points of up to 4 bytes each). */
    unsigned char ext[4 + 255 * 4];
    size_t header;
    ext[0] = ETF_VERSION;
    if (len <= 255) {
        ext[1] = ETF_SMALL_ATOM_UTF8;
        ext[2] = (unsigned char)len;
        header = 3;
    } else {
        ext[1] = ETF_ATOM_UTF8;
        ext[2] = (unsigned char)(len >> 8);
        ext[3] = (unsigned char)len;
        header = 4;
    }
    memcpy(ext + header, utf8, (size_t)len);
    if (enif_binary_to_term(env, ext, header + (size_t)len, out, 0) == 0) {
        *out = enif_make_tuple2(env, ATOM_unconvertible, convert_bytes(env, "Atom", 4));
        return 0;
    }
    return 1;
}

static int
str_from_py(py_state_t *st, ErlNifEnv *env, PyObject *o, ERL_NIF_TERM *out)
{
    Py_ssize_t len;
    const char *utf8 = PyUnicode_AsUTF8AndSize(o, &len);
    if (utf8 == NULL) {
        return fail_python(st, env, out);
    }
    *out = convert_bytes(env, utf8, (size_t)len);
    return 1;
}

static int
buffer_from_py(py_state_t *st, ErlNifEnv *env, PyObject *o, ERL_NIF_TERM *out)
{
    Py_buffer view;
    if (PyObject_GetBuffer(o, &view, PyBUF_CONTIG_RO) < 0) {
        return fail_python(st, env, out);
    }
    ERL_NIF_TERM bin = convert_bytes(env, view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    *out = enif_make_tuple2(env, ATOM_bytes, bin);
    return 1;
}

static int
seq_items_from_py(py_state_t *st, ErlNifEnv *env, PyObject **items, Py_ssize_t n, int depth,
                  ERL_NIF_TERM *terms, ERL_NIF_TERM *out)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!from_py(st, env, items[i], depth + 1, &terms[i])) {
            *out = terms[i];
            return 0;
        }
    }
    return 1;
}

/* The items of a list/tuple/set (its size read with them: another thread may change a
 * shared list meanwhile in a free-threaded build). */
static int
sequence_items(py_state_t *st, ErlNifEnv *env, PyObject *fast, int depth, int as_tuple,
               ERL_NIF_TERM *out)
{
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    ERL_NIF_TERM stackbuf[16];
    ERL_NIF_TERM *terms = n <= 16 ? stackbuf : enif_alloc(sizeof(ERL_NIF_TERM) * (size_t)n);
    if (terms == NULL) {
        PyErr_NoMemory();
        return fail_python(st, env, out);
    }
    int ok = seq_items_from_py(st, env, PySequence_Fast_ITEMS(fast), n, depth, terms, out);
    if (ok) {
        *out = as_tuple ? enif_make_tuple_from_array(env, terms, (unsigned)n)
                        : enif_make_list_from_array(env, terms, (unsigned)n);
    }
    if (terms != stackbuf) {
        enif_free(terms);
    }
    return ok;
}

static int
sequence_from_py(py_state_t *st, ErlNifEnv *env, PyObject *o, int depth, int as_tuple, ERL_NIF_TERM *out)
{
    PyObject *fast = PySequence_Fast(o, "expected a sequence");
    if (fast == NULL) {
        return fail_python(st, env, out);
    }
    int ok;
    Py_BEGIN_CRITICAL_SECTION(fast);
    ok = sequence_items(st, env, fast, depth, as_tuple, out);
    Py_END_CRITICAL_SECTION();
    Py_DECREF(fast);
    return ok;
}

static int
dict_items(py_state_t *st, ErlNifEnv *env, PyObject *o, int depth, ERL_NIF_TERM *out)
{
    Py_ssize_t n = PyDict_GET_SIZE(o);
    ERL_NIF_TERM *keys = enif_alloc(sizeof(ERL_NIF_TERM) * (size_t)(n > 0 ? 2 * n : 1));
    if (keys == NULL) {
        PyErr_NoMemory();
        return fail_python(st, env, out);
    }
    ERL_NIF_TERM *values = keys + n;
    Py_ssize_t pos = 0, i = 0;
    PyObject *k, *v;
    int ok = 1;
    while (ok && i < n && PyDict_Next(o, &pos, &k, &v)) {
        if (!from_py(st, env, k, depth + 1, &keys[i])) {
            *out = keys[i];
            ok = 0;
        } else if (!from_py(st, env, v, depth + 1, &values[i])) {
            *out = values[i];
            ok = 0;
        }
        i++;
    }
    if (ok && !enif_make_map_from_arrays(env, keys, values, (size_t)i, out)) {
        *out = enif_make_tuple2(env, ATOM_unconvertible,
                                convert_bytes(env, "dict with keys equal in Erlang", 30));
        ok = 0;
    }
    enif_free(keys);
    return ok;
}

static int
dict_from_py(py_state_t *st, ErlNifEnv *env, PyObject *o, int depth, ERL_NIF_TERM *out)
{
    int ok;
    Py_BEGIN_CRITICAL_SECTION(o);
    ok = dict_items(st, env, o, depth, out);
    Py_END_CRITICAL_SECTION();
    return ok;
}

static int
from_py(py_state_t *st, ErlNifEnv *env, PyObject *o, int depth, ERL_NIF_TERM *out)
{
    if (depth > CONVERT_MAX_DEPTH) {
        *out = ATOM_too_deep;
        return 0;
    }
    if (o == Py_None) {
        *out = ATOM_none;
        return 1;
    }
    if (o == Py_True) {
        *out = ATOM_true;
        return 1;
    }
    if (o == Py_False) {
        *out = ATOM_false;
        return 1;
    }
    if (PyLong_Check(o)) {
        int overflow;
        long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
        if (overflow == 0) {
            if (v == -1 && PyErr_Occurred()) {
                return fail_python(st, env, out);
            }
            *out = enif_make_int64(env, (ErlNifSInt64)v);
            return 1;
        }
        return bigint_from_py(st, env, o, out);
    }
    if (PyFloat_Check(o)) {
        return float_from_py(env, o, out);
    }
    if (PyUnicode_Check(o)) {
        if (PyObject_TypeCheck(o, st->atom_type)) {
            return atom_from_py(st, env, o, out);
        }
        return str_from_py(st, env, o, out);
    }
    if (PyBytes_Check(o) || PyByteArray_Check(o) || PyMemoryView_Check(o)) {
        return buffer_from_py(st, env, o, out);
    }
    if (PyTuple_Check(o)) {
        return sequence_from_py(st, env, o, depth, 1, out);
    }
    if (PyList_Check(o) || PyAnySet_Check(o)) {
        return sequence_from_py(st, env, o, depth, 0, out);
    }
    if (PyDict_Check(o)) {
        return dict_from_py(st, env, o, depth, out);
    }
    if (pyterm_get(st, o, env, out)) {
        return 1;
    }
    return fail_unconvertible(st, env, o, out);
}

int
convert_from_py(py_state_t *st, ErlNifEnv *env, PyObject *obj, ERL_NIF_TERM *out)
{
    return from_py(st, env, obj, 0, out);
}
