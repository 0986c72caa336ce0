/* Erlang external term format -> Python objects.
 *
 * decode(data, offset, mode) -> (object, end): reads one term (version byte 131 first)
 * from a buffer.  The GENERIC mode follows the py:call table of docs/types.md exactly,
 * error shapes included: an argument Python cannot take raises BadArg(kind, term) where
 * `term` is a Term holding the offending sub-term's own external format (so Erlang gets
 * the very term back), or BadArg("too_deep", None).  A buffer that is not a well-formed
 * term raises ValueError.
 */
#include "codec.h"

#include <string.h>

enum {
    NEW_FLOAT_EXT = 70, BIT_BINARY_EXT = 77, NEW_PID_EXT = 88, NEW_PORT_EXT = 89,
    NEWER_REFERENCE_EXT = 90, SMALL_INTEGER_EXT = 97, INTEGER_EXT = 98, FLOAT_EXT = 99,
    ATOM_EXT = 100, REFERENCE_EXT = 101, PORT_EXT = 102, PID_EXT = 103,
    SMALL_TUPLE_EXT = 104, LARGE_TUPLE_EXT = 105, NIL_EXT = 106, STRING_EXT = 107,
    LIST_EXT = 108, BINARY_EXT = 109, SMALL_BIG_EXT = 110, LARGE_BIG_EXT = 111,
    NEW_FUN_EXT = 112, EXPORT_EXT = 113, NEW_REFERENCE_EXT = 114, SMALL_ATOM_EXT = 115,
    MAP_EXT = 116, ATOM_UTF8_EXT = 118, SMALL_ATOM_UTF8_EXT = 119, V4_PORT_EXT = 120,
};

typedef struct {
    const unsigned char *p;
    Py_ssize_t n;
    Py_ssize_t i;
} rd_t;

static PyObject *dec(rd_t *r, int depth, int mode);

/* ---- reading ------------------------------------------------------------------------ */

static PyObject *
malformed(const rd_t *r)
{
    PyErr_Format(PyExc_ValueError, "malformed external term at offset %zd", r->i);
    return NULL;
}

static int
need(const rd_t *r, Py_ssize_t k)
{
    return k >= 0 && r->n - r->i >= k;
}

static unsigned
u8(rd_t *r)
{
    return r->p[r->i++];
}

static unsigned
u16(rd_t *r)
{
    unsigned v = ((unsigned)r->p[r->i] << 8) | r->p[r->i + 1];
    r->i += 2;
    return v;
}

static uint32_t
u32(rd_t *r)
{
    const unsigned char *q = r->p + r->i;
    r->i += 4;
    return ((uint32_t)q[0] << 24) | ((uint32_t)q[1] << 16) | ((uint32_t)q[2] << 8) | q[3];
}

/* ---- skipping (spans of opaque terms, lazy checks) ---------------------------------- */

static int skip(rd_t *r, int depth);

static int
skip_n(rd_t *r, Py_ssize_t count, int depth)
{
    for (Py_ssize_t k = 0; k < count; k++) {
        if (skip(r, depth) < 0) {
            return -1;
        }
    }
    return 0;
}

/* Advances r past one term; -1 if malformed. */
static int
skip(rd_t *r, int depth)
{
    if (depth > 4 * CODEC_MAX_DEPTH || !need(r, 1)) {
        return -1;
    }
    Py_ssize_t len;
    switch (u8(r)) {
    case SMALL_INTEGER_EXT: len = 1; break;
    case INTEGER_EXT: len = 4; break;
    case NEW_FLOAT_EXT: len = 8; break;
    case FLOAT_EXT: len = 31; break;
    case ATOM_EXT: case ATOM_UTF8_EXT:
        if (!need(r, 2)) return -1;
        len = u16(r);
        break;
    case SMALL_ATOM_EXT: case SMALL_ATOM_UTF8_EXT:
        if (!need(r, 1)) return -1;
        len = u8(r);
        break;
    case STRING_EXT:
        if (!need(r, 2)) return -1;
        len = u16(r);
        break;
    case BINARY_EXT:
        if (!need(r, 4)) return -1;
        len = u32(r);
        break;
    case BIT_BINARY_EXT:
        if (!need(r, 5)) return -1;
        len = (Py_ssize_t)u32(r) + 1;
        break;
    case SMALL_BIG_EXT:
        if (!need(r, 1)) return -1;
        len = (Py_ssize_t)u8(r) + 1;
        break;
    case LARGE_BIG_EXT:
        if (!need(r, 4)) return -1;
        len = (Py_ssize_t)u32(r) + 1;
        break;
    case NIL_EXT: len = 0; break;
    case SMALL_TUPLE_EXT:
        if (!need(r, 1)) return -1;
        return skip_n(r, u8(r), depth + 1);
    case LARGE_TUPLE_EXT:
        if (!need(r, 4)) return -1;
        return skip_n(r, u32(r), depth + 1);
    case LIST_EXT:
        if (!need(r, 4)) return -1;
        return skip_n(r, (Py_ssize_t)u32(r) + 1, depth + 1);
    case MAP_EXT:
        if (!need(r, 4)) return -1;
        return skip_n(r, 2 * (Py_ssize_t)u32(r), depth + 1);
    case PID_EXT: /* node, id, serial, creation(1) */
        if (skip(r, depth + 1) < 0) return -1;
        len = 9;
        break;
    case NEW_PID_EXT:
        if (skip(r, depth + 1) < 0) return -1;
        len = 12;
        break;
    case PORT_EXT:
        if (skip(r, depth + 1) < 0) return -1;
        len = 5;
        break;
    case NEW_PORT_EXT:
        if (skip(r, depth + 1) < 0) return -1;
        len = 8;
        break;
    case V4_PORT_EXT:
        if (skip(r, depth + 1) < 0) return -1;
        len = 12;
        break;
    case REFERENCE_EXT:
        if (skip(r, depth + 1) < 0) return -1;
        len = 5;
        break;
    case NEW_REFERENCE_EXT:
    case NEWER_REFERENCE_EXT: {
        int newer = r->p[r->i - 1] == NEWER_REFERENCE_EXT;
        if (!need(r, 2)) return -1;
        Py_ssize_t words = u16(r);
        if (skip(r, depth + 1) < 0) return -1;
        len = (newer ? 4 : 1) + 4 * words;
        break;
    }
    case NEW_FUN_EXT:
        if (!need(r, 4)) return -1;
        len = (Py_ssize_t)u32(r) - 4; /* Size counts itself */
        break;
    case EXPORT_EXT:
        return skip_n(r, 3, depth + 1);
    default:
        return -1;
    }
    if (!need(r, len)) {
        return -1;
    }
    r->i += len;
    return 0;
}

/* ---- errors ------------------------------------------------------------------------- */

/* A Term holding bytes [start, end) of the buffer. */
static PyObject *
span_term(const rd_t *r, Py_ssize_t start, Py_ssize_t end)
{
    PyObject *raw = PyBytes_FromStringAndSize((const char *)r->p + start, end - start);
    if (raw == NULL) {
        return NULL;
    }
    PyObject *t = PyObject_CallOneArg(CODEC.term_type, raw);
    Py_DECREF(raw);
    return t;
}

/* Raises BadArg(kind, Term of [start, end)); end < 0: the term starting at start. */
static PyObject *
badarg_span(const rd_t *r, const char *kind, Py_ssize_t start, Py_ssize_t end)
{
    if (end < 0) {
        rd_t s = {r->p, r->n, start};
        if (skip(&s, 0) < 0) {
            return malformed(r);
        }
        end = s.i;
    }
    PyObject *term = span_term(r, start, end);
    if (term == NULL) {
        return NULL;
    }
    PyObject *exc = PyObject_CallFunction(CODEC.badarg, "sN", kind, term);
    if (exc != NULL) {
        PyErr_SetObject(CODEC.badarg, exc);
        Py_DECREF(exc);
    }
    return NULL;
}

static PyObject *
badarg_plain(const char *kind)
{
    PyObject *exc = PyObject_CallFunction(CODEC.badarg, "sO", kind, Py_None);
    if (exc != NULL) {
        PyErr_SetObject(CODEC.badarg, exc);
        Py_DECREF(exc);
    }
    return NULL;
}

static int
is_badarg(void)
{
    return PyErr_ExceptionMatches(CODEC.badarg);
}

/* ---- leaves ------------------------------------------------------------------------- */

static PyObject *
int_from_digits(const unsigned char *digits, Py_ssize_t n, int negative)
{
    if (n <= 8) {
        unsigned long long v = 0;
        for (Py_ssize_t k = n - 1; k >= 0; k--) {
            v = (v << 8) | digits[k];
        }
        if (!negative) {
            return PyLong_FromUnsignedLongLong(v);
        }
        if (v <= (unsigned long long)LLONG_MAX + 1ULL) {
            return PyLong_FromLongLong(v == (unsigned long long)LLONG_MAX + 1ULL ? LLONG_MIN : -(long long)v);
        }
    }
    PyObject *bytes = PyBytes_FromStringAndSize((const char *)digits, n);
    PyObject *mag = bytes != NULL ? PyObject_CallMethodObjArgs((PyObject *)&PyLong_Type, CODEC.s_from_bytes,
                                                               bytes, CODEC.s_little, NULL) : NULL;
    Py_XDECREF(bytes);
    if (mag == NULL || !negative) {
        return mag;
    }
    PyObject *neg = PyNumber_Negative(mag);
    Py_DECREF(mag);
    return neg;
}

/* true, false, none/undefined/nil -> Python constants; else NULL without an error. */
static PyObject *
special_atom(const unsigned char *s, Py_ssize_t n)
{
    switch (n) {
    case 3:
        if (memcmp(s, "nil", 3) == 0) Py_RETURN_NONE;
        break;
    case 4:
        if (memcmp(s, "true", 4) == 0) Py_RETURN_TRUE;
        if (memcmp(s, "none", 4) == 0) Py_RETURN_NONE;
        break;
    case 5:
        if (memcmp(s, "false", 5) == 0) Py_RETURN_FALSE;
        break;
    case 9:
        if (memcmp(s, "undefined", 9) == 0) Py_RETURN_NONE;
        break;
    }
    return NULL;
}

static PyObject *
atom_value(rd_t *r, Py_ssize_t n, int utf8, int mode)
{
    if (!need(r, n)) {
        return malformed(r);
    }
    const unsigned char *s = r->p + r->i;
    r->i += n;
    PyObject *special = special_atom(s, n);
    if (special != NULL) {
        return special;
    }
    PyObject *text = utf8 ? PyUnicode_DecodeUTF8((const char *)s, n, "strict")
                          : PyUnicode_DecodeLatin1((const char *)s, n, NULL);
    if (text == NULL || mode != MODE_GENERIC) {
        return text;
    }
    PyObject *atom = PyObject_CallOneArg(CODEC.atom_type, text);
    Py_DECREF(text);
    return atom;
}

static PyObject *
binary_value(rd_t *r, Py_ssize_t start, int mode)
{
    Py_ssize_t n = u32(r);
    if (!need(r, n)) {
        return malformed(r);
    }
    const char *s = (const char *)r->p + r->i;
    r->i += n;
    if (mode == MODE_RAW) {
        return PyBytes_FromStringAndSize(s, n);
    }
    PyObject *str = PyUnicode_DecodeUTF8(s, n, "strict");
    if (str == NULL && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
        PyErr_Clear();
        return badarg_span(r, "invalid_utf8", start, r->i);
    }
    return str;
}

static PyObject *
opaque(rd_t *r, Py_ssize_t start)
{
    r->i = start;
    if (skip(r, 0) < 0) {
        return malformed(r);
    }
    return span_term(r, start, r->i);
}

/* ---- containers --------------------------------------------------------------------- */

/* After a failure inside a list's elements: the list's own improperness wins, as the NIF
 * checks the list before its elements.  `next` is the failing element's start. */
static PyObject *
list_failed(rd_t *r, Py_ssize_t start, Py_ssize_t next, uint32_t left)
{
    if (!is_badarg()) {
        return NULL;
    }
    rd_t s = {r->p, r->n, next};
    if (skip_n(&s, left, 0) < 0 || !need(&s, 1)) {
        return NULL; /* keep the element's error */
    }
    if (s.p[s.i] == NIL_EXT) {
        return NULL;
    }
    PyErr_Clear();
    return badarg_span(r, "improper_list", start, -1);
}

static PyObject *
list_value(rd_t *r, Py_ssize_t start, int depth, int mode)
{
    if (!need(r, 4)) {
        return malformed(r);
    }
    uint32_t len = u32(r);
    if (!need(r, (Py_ssize_t)len)) {
        return malformed(r);
    }
    PyObject *list = PyList_New(len);
    if (list == NULL) {
        return NULL;
    }
    for (uint32_t k = 0; k < len; k++) {
        Py_ssize_t at = r->i;
        PyObject *item = dec(r, depth + 1, mode);
        if (item == NULL) {
            Py_DECREF(list);
            return list_failed(r, start, at, len - k);
        }
        PyList_SET_ITEM(list, k, item);
    }
    if (!need(r, 1)) {
        Py_DECREF(list);
        return malformed(r);
    }
    if (r->p[r->i] != NIL_EXT) {
        Py_DECREF(list);
        return badarg_span(r, "improper_list", start, -1);
    }
    r->i++;
    return list;
}

static PyObject *
string_value(rd_t *r)
{
    if (!need(r, 2)) {
        return malformed(r);
    }
    Py_ssize_t n = u16(r);
    if (!need(r, n)) {
        return malformed(r);
    }
    PyObject *list = PyList_New(n);
    for (Py_ssize_t k = 0; list != NULL && k < n; k++) {
        PyList_SET_ITEM(list, k, PyLong_FromLong(r->p[r->i + k]));
    }
    r->i += n;
    return list;
}

/* At `at`: the atom bytes followed by a binary (not a bitstring): {bytes, Binary}. */
static int
is_bytes_atom(const rd_t *r, Py_ssize_t at)
{
    const unsigned char *q = r->p + at;
    Py_ssize_t left = r->n - at;
    if (left >= 8 && (q[0] == SMALL_ATOM_EXT || q[0] == SMALL_ATOM_UTF8_EXT)) {
        return q[1] == 5 && memcmp(q + 2, "bytes", 5) == 0 && q[7] == BINARY_EXT;
    }
    if (left >= 9 && (q[0] == ATOM_EXT || q[0] == ATOM_UTF8_EXT)) {
        return q[1] == 0 && q[2] == 5 && memcmp(q + 3, "bytes", 5) == 0 && q[8] == BINARY_EXT;
    }
    return 0;
}

static PyObject *
tuple_value(rd_t *r, Py_ssize_t arity, int depth, int mode)
{
    if (mode == MODE_GENERIC && arity == 2 && is_bytes_atom(r, r->i)) {
        /* {bytes, Binary}: the bytes form */
        r->i += r->p[r->i] == SMALL_ATOM_EXT || r->p[r->i] == SMALL_ATOM_UTF8_EXT ? 7 : 8;
        r->i++; /* BINARY_EXT */
        if (!need(r, 4)) {
            return malformed(r);
        }
        Py_ssize_t n = u32(r);
        if (!need(r, n)) {
            return malformed(r);
        }
        PyObject *b = PyBytes_FromStringAndSize((const char *)r->p + r->i, n);
        r->i += n;
        return b;
    }
    if (!need(r, arity)) {
        return malformed(r);
    }
    PyObject *tuple = PyTuple_New(arity);
    if (tuple == NULL) {
        return NULL;
    }
    for (Py_ssize_t k = 0; k < arity; k++) {
        PyObject *item = dec(r, depth + 1, mode);
        if (item == NULL) {
            Py_DECREF(tuple);
            return NULL;
        }
        PyTuple_SET_ITEM(tuple, k, item);
    }
    return tuple;
}

/* One key of a top-level map in the SCOPE, ENVIRON and KWARGS modes; sets *value_mode. */
static PyObject *
top_key(rd_t *r, int mode, int *value_mode)
{
    Py_ssize_t start = r->i;
    if (!need(r, 1)) {
        return malformed(r);
    }
    unsigned tag = r->p[r->i];
    if (mode == MODE_ENVIRON) {
        *value_mode = MODE_ENVIRON;
        if (tag != BINARY_EXT || !need(r, 5)) {
            return dec(r, 1, MODE_GENERIC); /* the Erlang side refuses such maps */
        }
        r->i++;
        Py_ssize_t n = u32(r);
        if (!need(r, n)) {
            return malformed(r);
        }
        r->i += n;
        return PyUnicode_DecodeLatin1((const char *)r->p + r->i - n, n, NULL);
    }
    if (mode == MODE_KWARGS) {
        *value_mode = MODE_GENERIC;
        if (tag == BINARY_EXT && need(r, 5)) {
            r->i++;
            Py_ssize_t n = u32(r);
            if (!need(r, n)) {
                return malformed(r);
            }
            r->i += n;
            return PyUnicode_DecodeUTF8((const char *)r->p + r->i - n, n, "strict");
        }
        if (tag == ATOM_EXT || tag == SMALL_ATOM_EXT || tag == ATOM_UTF8_EXT ||
            tag == SMALL_ATOM_UTF8_EXT) {
            r->i++;
            Py_ssize_t n = (tag == ATOM_EXT || tag == ATOM_UTF8_EXT) ? (need(r, 2) ? (Py_ssize_t)u16(r) : -1)
                                                                    : (need(r, 1) ? (Py_ssize_t)u8(r) : -1);
            if (n < 0 || !need(r, n)) {
                return malformed(r);
            }
            r->i += n;
            const char *s = (const char *)r->p + r->i - n;
            return tag == ATOM_UTF8_EXT || tag == SMALL_ATOM_UTF8_EXT
                       ? PyUnicode_DecodeUTF8(s, n, "strict") : PyUnicode_DecodeLatin1(s, n, NULL);
        }
        return badarg_span(r, "kwargs", start, -1);
    }
    /* MODE_SCOPE: atom keys */
    PyObject *key = dec(r, 1, MODE_RAW);
    *value_mode = MODE_RAW;
    if (key != NULL && PyUnicode_Check(key) &&
        (PyUnicode_CompareWithASCIIString(key, "state") == 0 ||
         PyUnicode_CompareWithASCIIString(key, "asgi") == 0 ||
         PyUnicode_CompareWithASCIIString(key, "extensions") == 0)) {
        *value_mode = MODE_GENERIC;
    }
    return key;
}

static PyObject *
top_value(rd_t *r, int value_mode)
{
    if (value_mode == MODE_ENVIRON) {
        if (need(r, 5) && r->p[r->i] == BINARY_EXT) {
            r->i++;
            Py_ssize_t n = u32(r);
            if (!need(r, n)) {
                return malformed(r);
            }
            r->i += n;
            return PyUnicode_DecodeLatin1((const char *)r->p + r->i - n, n, NULL);
        }
        return dec(r, 0, MODE_GENERIC);
    }
    /* A top-level value is converted as a term of its own (depth 0), as the NIF does. */
    return dec(r, 0, value_mode);
}

static PyObject *
map_value(rd_t *r, int depth, int mode)
{
    if (!need(r, 4)) {
        return malformed(r);
    }
    uint32_t arity = u32(r);
    int top = mode == MODE_SCOPE || mode == MODE_ENVIRON || mode == MODE_KWARGS;
    PyObject *dict = PyDict_New();
    if (dict == NULL) {
        return NULL;
    }
    for (uint32_t k = 0; k < arity; k++) {
        Py_ssize_t kstart = r->i;
        int value_mode = mode;
        PyObject *key = top ? top_key(r, mode, &value_mode) : dec(r, depth + 1, mode);
        Py_ssize_t kend = r->i;
        PyObject *value = key != NULL ? (top ? top_value(r, value_mode) : dec(r, depth + 1, mode)) : NULL;
        if (value == NULL) {
            Py_XDECREF(key);
            Py_DECREF(dict);
            return NULL;
        }
        Py_ssize_t before = PyDict_GET_SIZE(dict);
        int rc = PyDict_SetItem(dict, key, value);
        Py_DECREF(key);
        Py_DECREF(value);
        if (rc < 0) {
            Py_DECREF(dict);
            if (PyErr_ExceptionMatches(PyExc_TypeError)) {
                PyErr_Clear();
                return badarg_span(r, "unhashable_key", kstart, kend);
            }
            return NULL;
        }
        if (PyDict_GET_SIZE(dict) == before) {
            /* Two Erlang keys equal in Python (1 and 1.0, an atom and its binary). */
            Py_DECREF(dict);
            return badarg_span(r, "duplicate_key", kstart, kend);
        }
    }
    return dict;
}

/* ---- one term ----------------------------------------------------------------------- */

static PyObject *
dec(rd_t *r, int depth, int mode)
{
    if (depth > CODEC_MAX_DEPTH) {
        return badarg_plain("too_deep");
    }
    if (!need(r, 1)) {
        return malformed(r);
    }
    Py_ssize_t start = r->i;
    unsigned tag = u8(r);
    if ((mode == MODE_SCOPE || mode == MODE_ENVIRON || mode == MODE_KWARGS) && tag != MAP_EXT) {
        return malformed(r);
    }
    switch (tag) {
    case SMALL_INTEGER_EXT:
        if (!need(r, 1)) return malformed(r);
        return PyLong_FromLong(u8(r));
    case INTEGER_EXT:
        if (!need(r, 4)) return malformed(r);
        return PyLong_FromLong((int32_t)u32(r));
    case SMALL_BIG_EXT:
    case LARGE_BIG_EXT: {
        Py_ssize_t n;
        if (tag == SMALL_BIG_EXT) {
            if (!need(r, 1)) return malformed(r);
            n = u8(r);
        } else {
            if (!need(r, 4)) return malformed(r);
            n = u32(r);
        }
        if (!need(r, n + 1)) return malformed(r);
        int negative = u8(r);
        PyObject *v = int_from_digits(r->p + r->i, n, negative);
        r->i += n;
        return v;
    }
    case NEW_FLOAT_EXT: {
        if (!need(r, 8)) return malformed(r);
        uint64_t bits = ((uint64_t)u32(r) << 32);
        bits |= u32(r);
        double d;
        memcpy(&d, &bits, sizeof d);
        return PyFloat_FromDouble(d);
    }
    case FLOAT_EXT: {
        if (!need(r, 31)) return malformed(r);
        char text[32];
        memcpy(text, r->p + r->i, 31);
        text[31] = '\0';
        r->i += 31;
        return PyFloat_FromDouble(PyOS_string_to_double(text, NULL, NULL));
    }
    case ATOM_EXT:
        if (!need(r, 2)) return malformed(r);
        return atom_value(r, u16(r), 0, mode);
    case SMALL_ATOM_EXT:
        if (!need(r, 1)) return malformed(r);
        return atom_value(r, u8(r), 0, mode);
    case ATOM_UTF8_EXT:
        if (!need(r, 2)) return malformed(r);
        return atom_value(r, u16(r), 1, mode);
    case SMALL_ATOM_UTF8_EXT:
        if (!need(r, 1)) return malformed(r);
        return atom_value(r, u8(r), 1, mode);
    case BINARY_EXT:
        if (!need(r, 4)) return malformed(r);
        return binary_value(r, start, mode);
    case BIT_BINARY_EXT:
        r->i = start;
        return badarg_span(r, "bitstring", start, -1);
    case NIL_EXT:
        return PyList_New(0);
    case STRING_EXT:
        return string_value(r);
    case LIST_EXT:
        return list_value(r, start, depth, mode);
    case SMALL_TUPLE_EXT:
        if (!need(r, 1)) return malformed(r);
        return tuple_value(r, u8(r), depth, mode);
    case LARGE_TUPLE_EXT:
        if (!need(r, 4)) return malformed(r);
        return tuple_value(r, u32(r), depth, mode);
    case MAP_EXT:
        return map_value(r, depth, mode);
    case PID_EXT: case NEW_PID_EXT: case PORT_EXT: case NEW_PORT_EXT: case V4_PORT_EXT:
    case REFERENCE_EXT: case NEW_REFERENCE_EXT: case NEWER_REFERENCE_EXT:
    case NEW_FUN_EXT: case EXPORT_EXT:
        return opaque(r, start);
    default:
        r->i = start;
        return malformed(r);
    }
}

/* decode(data, offset=0, mode=MODE_GENERIC) -> (object, end) */
PyObject *
codec_decode(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 3) {
        PyErr_SetString(PyExc_TypeError, "decode(data, offset=0, mode=0)");
        return NULL;
    }
    Py_ssize_t offset = nargs > 1 ? PyLong_AsSsize_t(args[1]) : 0;
    long mode = nargs > 2 ? PyLong_AsLong(args[2]) : MODE_GENERIC;
    if (PyErr_Occurred()) {
        return NULL;
    }
    if (mode < MODE_GENERIC || mode > MODE_KWARGS) {
        PyErr_SetString(PyExc_ValueError, "unknown decoding mode");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    rd_t r = {view.buf, view.len, offset};
    PyObject *obj = NULL;
    if (offset < 0 || offset >= view.len || r.p[r.i] != 131) {
        malformed(&r);
    } else {
        r.i++;
        obj = dec(&r, 0, (int)mode);
    }
    PyBuffer_Release(&view);
    if (obj == NULL) {
        return NULL;
    }
    return Py_BuildValue("(Nn)", obj, r.i);
}
