#include "state.h"

static py_state_t state_storage;
py_state_t *PY_STATE = NULL;

static PyObject *
import_attr(const char *module, const char *attr)
{
    PyObject *m = PyImport_ImportModule(module);
    if (m == NULL) {
        return NULL;
    }
    PyObject *a = PyObject_GetAttrString(m, attr);
    Py_DECREF(m);
    return a;
}

#define INTERN(field, text)                                      \
    do {                                                         \
        if ((s->field = PyUnicode_InternFromString(text)) == NULL) \
            return -1;                                           \
    } while (0)

#define IMPORT(field, module, attr)                              \
    do {                                                         \
        if ((s->field = import_attr(module, attr)) == NULL)      \
            return -1;                                           \
    } while (0)

int
state_init(void)
{
    py_state_t *s = &state_storage;

    s->erlang_module = PyImport_ImportModule("_erlang");
    if (s->erlang_module == NULL) {
        return -1;
    }
    PyObject *atom = PyObject_GetAttrString(s->erlang_module, "Atom");
    PyObject *term = PyObject_GetAttrString(s->erlang_module, "Term");
    if (atom == NULL || term == NULL) {
        Py_XDECREF(atom);
        Py_XDECREF(term);
        return -1;
    }
    s->atom_type = (PyTypeObject *)atom;
    s->term_type = (PyTypeObject *)term;

    IMPORT(format_exception, "traceback", "format_exception");
    IMPORT(new_event_loop, "asyncio", "new_event_loop");
    IMPORT(set_event_loop, "asyncio", "set_event_loop");
    IMPORT(set_running_loop, "asyncio.events", "_set_running_loop");
    IMPORT(task_type, "asyncio", "Task");
    IMPORT(iscoroutine, "asyncio", "iscoroutine");
    IMPORT(bytes_io, "io", "BytesIO");
    s->eager_tasks = PY_VERSION_HEX >= 0x030C0000;

    INTERN(s_add_reader, "add_reader");
    INTERN(s_run_forever, "run_forever");
    INTERN(s_stop, "stop");
    INTERN(s_close, "close");
    INTERN(s_done, "done");
    INTERN(s_result, "result");
    INTERN(s_add_done_callback, "add_done_callback");
    INTERN(s_cancel, "cancel");
    INTERN(s_eager_start, "eager_start");
    INTERN(s_loop, "loop");
    INTERN(s_call_soon, "call_soon");
    INTERN(s_from_bytes, "from_bytes");
    INTERN(s_to_bytes, "to_bytes");
    INTERN(s_bit_length, "bit_length");
    INTERN(s_little, "little");
    INTERN(s_module, "__module__");
    INTERN(s_qualname, "__qualname__");
    INTERN(s_builtins, "builtins");
    INTERN(s_empty, "");

    PY_STATE = s;
    return 0;
}
