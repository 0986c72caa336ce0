/* CPython API that changed between 3.11 and 3.13, in one place. */
#ifndef PY_NIF_COMPAT_H
#define PY_NIF_COMPAT_H

#include <Python.h>

/* The raised exception, normalised, with its traceback attached (new reference; the error
 * indicator is cleared), or NULL when none is set. */
static inline PyObject *
compat_take_exception(void)
{
#if PY_VERSION_HEX >= 0x030C0000
    return PyErr_GetRaisedException();
#else
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    if (type == NULL) {
        return NULL;
    }
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL && value != NULL) {
        PyException_SetTraceback(value, tb);
    }
    Py_XDECREF(type);
    Py_XDECREF(tb);
    return value;
#endif
}

/* Raises `exc` again (steals the reference). */
static inline void
compat_restore_exception(PyObject *exc)
{
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(exc);
#else
    PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(exc)), exc, PyException_GetTraceback(exc));
#endif
}

/* getattr that treats AttributeError as absence: 1 found (*out new ref), 0 absent, -1
 * error. */
static inline int
compat_optional_attr(PyObject *obj, PyObject *name, PyObject **out)
{
#if PY_VERSION_HEX >= 0x030D0000
    return PyObject_GetOptionalAttr(obj, name, out);
#else
    /* The same function under its pre-3.13 name: for most types it finds out that the
     * attribute is absent without creating (and clearing) an AttributeError. */
    return _PyObject_LookupAttr(obj, name, out);
#endif
}

/* Locks `op` against other threads while a block reads it: free-threaded builds (3.13+)
 * need it for objects other threads may change; elsewhere (the GIL) it is a plain block. */
#ifndef Py_BEGIN_CRITICAL_SECTION
#define Py_BEGIN_CRITICAL_SECTION(op) {
#define Py_END_CRITICAL_SECTION() }
#endif

#endif
