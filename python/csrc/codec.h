/* _codec: the C half of hornbeam_port, the Python side of erlang_python's processes mode.
 *
 * One worker process, one interpreter: module state is plain static data, set once by
 * init() from the Python classes the worker defines (Atom, Term and the two error types).
 * Every function here runs with the GIL held unless its comment says otherwise.
 */
#ifndef HORNBEAM_CODEC_H
#define HORNBEAM_CODEC_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* Nesting limit, both ways: the same as the NIF's (docs/types.md). */
#define CODEC_MAX_DEPTH 2000

/* Decoding modes (decode.c). */
enum {
    MODE_GENERIC = 0, /* the py:call table: binary -> str (strict UTF-8), {bytes, B} -> bytes */
    MODE_RAW = 1,     /* web heads: binary -> bytes, atom -> str */
    MODE_SCOPE = 2,   /* an ASGI scope map: state/asgi/extensions GENERIC, the rest RAW */
    MODE_ENVIRON = 3, /* a WSGI environ map: binary keys and values -> latin-1 str, other values GENERIC */
    MODE_KWARGS = 4,  /* py:call keyword arguments: names -> str, values GENERIC */
};

typedef struct {
    PyObject *atom_type;     /* hornbeam_port.terms.Atom (a str subclass) */
    PyObject *term_type;     /* hornbeam_port.terms.Term (opaque pid/ref/port/fun) */
    PyObject *badarg;        /* exception: BadArg(kind, term or None) */
    PyObject *unconvertible; /* exception: Unconvertible(what) */
    PyObject *s_raw;         /* "raw": Term's attribute holding its external format */
    PyObject *s_from_bytes, *s_to_bytes, *s_little, *s_bit_length;
} codec_state_t;

extern codec_state_t CODEC;

/* decode.c */
PyObject *codec_decode(PyObject *self, PyObject *const *args, Py_ssize_t nargs);

/* encode.c */
PyObject *codec_encode(PyObject *self, PyObject *const *args, Py_ssize_t nargs);

/* frames.c */
extern PyTypeObject ReaderType;
extern PyTypeObject WriterType;

/* watchdog.c */
PyObject *watchdog_start(PyObject *self, PyObject *unused);
PyObject *watchdog_arm(PyObject *self, PyObject *arg);
PyObject *watchdog_disarm(PyObject *self, PyObject *unused);
PyObject *watchdog_parent_death_kill(PyObject *self, PyObject *unused);

/* dying.c */
PyObject *dying_report_fatal_signals(PyObject *self, PyObject *const *args, Py_ssize_t nargs);

#endif
