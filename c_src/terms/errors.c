#include "terms/errors.h"

#include "core/atoms.h"
#include "core/compat.h"
#include "core/interp.h"

#include <string.h>

static ERL_NIF_TERM
binary_from(ErlNifEnv *env, const char *data, size_t len)
{
    ERL_NIF_TERM bin;
    unsigned char *buf = enif_make_new_binary(env, len, &bin);
    if (buf == NULL) {
        return enif_make_atom(env, "enomem");
    }
    memcpy(buf, data, len);
    return bin;
}

ERL_NIF_TERM
errors_text(ErlNifEnv *env, PyObject *obj)
{
    PyObject *s = PyUnicode_Check(obj) ? Py_NewRef(obj) : PyObject_Str(obj);
    if (s == NULL) {
        PyErr_Clear();
        return binary_from(env, "<unprintable>", 13);
    }
    PyObject *b = PyUnicode_AsEncodedString(s, "utf-8", "backslashreplace");
    Py_DECREF(s);
    if (b == NULL) {
        PyErr_Clear();
        return binary_from(env, "<unprintable>", 13);
    }
    ERL_NIF_TERM out = binary_from(env, PyBytes_AS_STRING(b), (size_t)PyBytes_GET_SIZE(b));
    Py_DECREF(b);
    return out;
}

static ERL_NIF_TERM
type_name(py_state_t *st, ErlNifEnv *env, PyObject *type)
{
    PyObject *module = PyObject_GetAttr(type, st->s_module);
    PyObject *qualname = PyObject_GetAttr(type, st->s_qualname);
    PyObject *name = NULL;
    if (qualname != NULL && module != NULL && PyUnicode_Check(module) &&
        PyUnicode_Compare(module, st->s_builtins) != 0) {
        name = PyUnicode_FromFormat("%U.%U", module, qualname);
    } else if (qualname != NULL) {
        name = Py_NewRef(qualname);
    }
    Py_XDECREF(module);
    Py_XDECREF(qualname);
    if (name == NULL) {
        PyErr_Clear();
        return binary_from(env, "<unknown>", 9);
    }
    ERL_NIF_TERM out = errors_text(env, name);
    Py_DECREF(name);
    return out;
}

/* One binary per line of the formatted traceback. */
static ERL_NIF_TERM
traceback_lines(py_state_t *st, ErlNifEnv *env, PyObject *exc)
{
    PyObject *type = (PyObject *)Py_TYPE(exc);
    PyObject *tb = PyException_GetTraceback(exc);
    PyObject *parts = PyObject_CallFunctionObjArgs(st->format_exception, type, exc,
                                                   tb != NULL ? tb : Py_None, NULL);
    Py_XDECREF(tb);
    if (parts == NULL) {
        PyErr_Clear();
        return enif_make_list(env, 0);
    }
    PyObject *joined = PyUnicode_Join(st->s_empty, parts);
    Py_DECREF(parts);
    if (joined == NULL) {
        PyErr_Clear();
        return enif_make_list(env, 0);
    }
    PyObject *lines = PyUnicode_Splitlines(joined, 0);
    Py_DECREF(joined);
    if (lines == NULL) {
        PyErr_Clear();
        return enif_make_list(env, 0);
    }
    Py_ssize_t n = PyList_GET_SIZE(lines);
    ERL_NIF_TERM list = enif_make_list(env, 0);
    for (Py_ssize_t i = n - 1; i >= 0; i--) {
        list = enif_make_list_cell(env, errors_text(env, PyList_GET_ITEM(lines, i)), list);
    }
    Py_DECREF(lines);
    return list;
}

/* The module named by the innermost frame of `exc`'s traceback (the one whose import
 * failed), as a new str, or NULL (no exception left set). */
static PyObject *
innermost_module(PyObject *exc)
{
    PyObject *tb = PyException_GetTraceback(exc);
    PyObject *next = NULL;
    while (tb != NULL && (next = PyObject_GetAttrString(tb, "tb_next")) != NULL && next != Py_None) {
        Py_SETREF(tb, next);
    }
    Py_XDECREF(next);
    PyObject *frame = tb != NULL ? PyObject_GetAttrString(tb, "tb_frame") : NULL;
    Py_XDECREF(tb);
    PyObject *globals = frame != NULL ? PyFrame_GetGlobals((PyFrameObject *)frame) : NULL;
    Py_XDECREF(frame);
    PyObject *name = globals != NULL ? PyDict_GetItemString(globals, "__name__") : NULL;
    Py_XINCREF(name);
    Py_XDECREF(globals);
    PyErr_Clear();
    return name != NULL && PyUnicode_Check(name) ? name : (Py_XDECREF(name), NULL);
}

/* An ImportError of a module that refuses sub-interpreters: CPython's check of extension
 * modules ("module X does not support loading in subinterpreters") or PyO3's ("PyO3
 * modules do not yet support subinterpreters").  Noted for `auto` mode, with the module:
 * X, or the module whose import failed. */
static void
note_refusal(PyObject *exc)
{
    if (!PyErr_GivenExceptionMatches(exc, PyExc_ImportError)) {
        return;
    }
    PyObject *text = PyObject_Str(exc);
    const char *msg = text != NULL ? PyUnicode_AsUTF8(text) : NULL;
    if (msg != NULL && strstr(msg, "subinterpreters") != NULL) {
        const char *module = NULL;
        size_t len = 0;
        PyObject *name = NULL;
        if (strncmp(msg, "module ", 7) == 0) {
            module = msg + 7;
            len = strcspn(module, " ");
        } else if ((name = innermost_module(exc)) != NULL) {
            Py_ssize_t n;
            module = PyUnicode_AsUTF8AndSize(name, &n);
            len = module != NULL ? (size_t)n : 0;
        }
        interp_note_refusal(module != NULL ? module : "?", module != NULL ? len : 1, msg,
                            strlen(msg));
        Py_XDECREF(name);
    }
    Py_XDECREF(text);
    PyErr_Clear();
}

ERL_NIF_TERM
errors_from_exception(py_state_t *st, ErlNifEnv *env, PyObject *exc)
{
    if (st->ip->index != 0) {
        note_refusal(exc);
    }
    return enif_make_tuple4(env, ATOM_python, type_name(st, env, (PyObject *)Py_TYPE(exc)),
                            errors_text(env, exc), traceback_lines(st, env, exc));
}

ERL_NIF_TERM
errors_take(py_state_t *st, ErlNifEnv *env)
{
    PyObject *exc = compat_take_exception();
    if (exc == NULL) {
        return enif_make_tuple4(env, ATOM_python, binary_from(env, "SystemError", 11),
                                binary_from(env, "error without exception", 23),
                                enif_make_list(env, 0));
    }
    ERL_NIF_TERM out = errors_from_exception(st, env, exc);
    Py_DECREF(exc);
    return out;
}

ERL_NIF_TERM
errors_tuple(ErlNifEnv *env, ERL_NIF_TERM reason)
{
    return enif_make_tuple2(env, ATOM_error, reason);
}
