/* Per-interpreter state: every PyObject the NIF caches lives here, owned by this struct
 * (one strong reference each), created once the interpreter is up and never released,
 * since the interpreter is never finalised.  Keeping it in one struct makes a later move
 * to one sub-interpreter per worker a change of where the struct lives. */
#ifndef PY_NIF_STATE_H
#define PY_NIF_STATE_H

#include <Python.h>

typedef struct py_state {
    /* _erlang module types */
    PyObject *erlang_module;
    PyTypeObject *atom_type;   /* str subclass: an Erlang atom */
    PyTypeObject *term_type;   /* opaque Erlang term (pid, ref, port, fun) */

    /* stdlib helpers */
    PyObject *format_exception;  /* traceback.format_exception */
    PyObject *new_event_loop;    /* asyncio.new_event_loop */
    PyObject *set_event_loop;    /* asyncio.set_event_loop */
    PyObject *set_running_loop;  /* asyncio.events._set_running_loop */
    PyObject *task_type;         /* asyncio.Task */
    PyObject *iscoroutine;       /* asyncio.iscoroutine */
    PyObject *bytes_io;          /* io.BytesIO */
    int eager_tasks;             /* asyncio.Task accepts eager_start (3.12+) */

    /* interned attribute and method names */
    PyObject *s_add_reader;
    PyObject *s_run_forever;
    PyObject *s_stop;
    PyObject *s_close;
    PyObject *s_done;
    PyObject *s_result;
    PyObject *s_add_done_callback;
    PyObject *s_cancel;
    PyObject *s_eager_start;
    PyObject *s_loop;
    PyObject *s_call_soon;
    PyObject *s_from_bytes;
    PyObject *s_to_bytes;
    PyObject *s_bit_length;
    PyObject *s_little;
    PyObject *s_module;
    PyObject *s_qualname;
    PyObject *s_builtins;
    PyObject *s_empty;
} py_state_t;

extern py_state_t *PY_STATE;

/* Creates the state.  Called once, on the interpreter's main thread, with the GIL held.
 * Returns 0, or -1 with a Python exception set. */
int state_init(void);

#endif
