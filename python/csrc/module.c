/* hornbeam_port._codec: the term codec, the frame reader and writer, and the watchdog of
 * an erlang_python worker process.  init(Atom, Term, BadArg, Unconvertible) must be
 * called once before decode/encode. */
#include "codec.h"

codec_state_t CODEC;

static PyObject *
codec_init(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4 || !PyType_Check(args[0]) || !PyType_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "init(Atom, Term, BadArg, Unconvertible)");
        return NULL;
    }
    Py_XSETREF(CODEC.atom_type, Py_NewRef(args[0]));
    Py_XSETREF(CODEC.term_type, Py_NewRef(args[1]));
    Py_XSETREF(CODEC.badarg, Py_NewRef(args[2]));
    Py_XSETREF(CODEC.unconvertible, Py_NewRef(args[3]));
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"init", (PyCFunction)(void (*)(void))codec_init, METH_FASTCALL,
     "init(Atom, Term, BadArg, Unconvertible): the classes the codec creates and raises."},
    {"decode", (PyCFunction)(void (*)(void))codec_decode, METH_FASTCALL,
     "decode(data, offset=0, mode=0) -> (object, end): one external term."},
    {"encode", (PyCFunction)(void (*)(void))codec_encode, METH_FASTCALL,
     "encode(obj, mode=0) -> bytes: the external term format of obj."},
    {"watchdog_start", watchdog_start, METH_NOARGS, "watchdog_start(): starts the watchdog thread"},
    {"watchdog_arm", watchdog_arm, METH_O, "watchdog_arm(timeout_ms) -> token"},
    {"watchdog_disarm", watchdog_disarm, METH_O, "watchdog_disarm(token)"},
    {"parent_death_kill", watchdog_parent_death_kill, METH_NOARGS,
     "parent_death_kill(): die with the parent process"},
    {"report_fatal_signals", (PyCFunction)(void (*)(void))dying_report_fatal_signals, METH_FASTCALL,
     "report_fatal_signals(fd, op): a frame with 128 + signal before a fatal signal kills us"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "hornbeam_port._codec",
    .m_doc = "Erlang term codec, port frames and hang watchdog of an erlang_python worker.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__codec(void)
{
    if (PyType_Ready(&ReaderType) < 0 || PyType_Ready(&WriterType) < 0) {
        return NULL;
    }
    CODEC.s_raw = PyUnicode_InternFromString("raw");
    CODEC.s_from_bytes = PyUnicode_InternFromString("from_bytes");
    CODEC.s_to_bytes = PyUnicode_InternFromString("to_bytes");
    CODEC.s_little = PyUnicode_InternFromString("little");
    CODEC.s_bit_length = PyUnicode_InternFromString("bit_length");
    if (CODEC.s_raw == NULL || CODEC.s_from_bytes == NULL || CODEC.s_to_bytes == NULL ||
        CODEC.s_little == NULL || CODEC.s_bit_length == NULL) {
        return NULL;
    }
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) {
        return NULL;
    }
    if (PyModule_AddIntConstant(m, "GENERIC", MODE_GENERIC) < 0 ||
        PyModule_AddIntConstant(m, "RAW", MODE_RAW) < 0 ||
        PyModule_AddIntConstant(m, "SCOPE", MODE_SCOPE) < 0 ||
        PyModule_AddIntConstant(m, "ENVIRON", MODE_ENVIRON) < 0 ||
        PyModule_AddIntConstant(m, "KWARGS", MODE_KWARGS) < 0 ||
        PyModule_AddObjectRef(m, "Reader", (PyObject *)&ReaderType) < 0 ||
        PyModule_AddObjectRef(m, "Writer", (PyObject *)&WriterType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
