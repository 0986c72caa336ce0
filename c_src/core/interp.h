/* The interpreters the NIF runs Python in, and how a thread enters one.
 *
 * Slot 0 is the main interpreter (initialised by core/runtime.c; the workers of the
 * `gil` and `free_threaded` modes run in it).  Slots 1..INTERP_MAX-1 are
 * sub-interpreters (Python 3.12+, `subinterpreters` mode): each created by the worker
 * thread that first needs it, with its own GIL and object allocator, and kept for the
 * VM's life like the main interpreter: a later start of the application attaches new
 * worker threads to the interpreters that exist (module globals survive a restart, as in
 * the main interpreter) and creates the ones missing.
 *
 * Nothing Python crosses interpreters: each has its own `_erlang` module and its own
 * per-interpreter state (core/state.h), and Python references held by Erlang resources
 * remember their interpreter so that they are released under its GIL (core/release.h). */
#ifndef PY_NIF_INTERP_H
#define PY_NIF_INTERP_H

#include "core/runtime.h"
#include "core/state.h"

#include <Python.h>
#include <erl_nif.h>
#include <pthread.h>
#include <stdint.h>

#define INTERP_MAX 257   /* the main interpreter and one per worker (at most 256) */

typedef struct release_node release_node_t;

typedef struct interp {
    int index;                 /* slot: 0 main, 1.. sub-interpreters */
    PyInterpreterState *py;    /* NULL until created */
    int64_t id;                /* CPython's interpreter id */
    PyObject *module;          /* its `_erlang` module (strong, kept for its life) */
    py_state_t *st;            /* the module's state */
    int threads;               /* worker threads in it now (atomic) */
    PyThreadState *keeper;     /* sub-interpreters: see enter_sub */
    pthread_mutex_t release_lock;
    release_node_t *release;   /* references to drop under its GIL (core/release.c) */
} interp_t;

/* A thread's presence in an interpreter, from interp_enter to interp_leave. */
typedef struct {
    interp_t *ip;
    PyThreadState *ts;         /* sub-interpreters: this thread's state */
    PyGILState_STATE gil;      /* the main interpreter */
} interp_thread_t;

/* The slot `index`; NULL when out of range. */
interp_t *interp_slot(int index);

/* Slots in use: 1 + the highest sub-interpreter created. */
int interp_count(void);

/* 1 if this build can run sub-interpreters with their own GIL (3.12+). */
int interp_subinterpreters_supported(void);

/* On the main interpreter's thread, right after initialisation, GIL held: imports
 * `_erlang` into slot 0.  Returns 0, or -1 with a Python exception set. */
int interp_main_init(void);

/* Enters interpreter `index` on the calling thread (creating a sub-interpreter the first
 * time), applies `cfg` to it (sys.path, the venv) and returns holding its GIL.  Returns
 * 0, or -1 with a message in err (the thread then holds no GIL). */
int interp_enter(interp_thread_t *t, int index, const runtime_config_t *cfg, char *err,
                 size_t errlen);

/* Leaves the interpreter entered by interp_enter (GIL held on entry, released on
 * return). */
void interp_leave(interp_thread_t *t);

/* Applies `cfg` to the interpreter whose GIL the caller holds: runs
 * erlang_python_runtime.configure.  Returns 0 (with a note for the log in warn, "" if
 * none), or -1 with a message in err. */
int interp_configure(interp_t *ip, const runtime_config_t *cfg, char *err, size_t errlen,
                     char *warn, size_t warnlen);

/* A module refused to load in a sub-interpreter (an ImportError saying so): records the
 * first such refusal since the last interp_forget_refusal (the application's start) and
 * tells the py_runtime process ({py_refused, {Module, Message}}), so that `auto` mode can
 * fall back to one GIL.  Any thread. */
void interp_note_refusal(const char *module, size_t module_len, const char *message,
                         size_t message_len);

/* The first refusal as {Module, Message} in *out; 0 if none was noted. */
int interp_refusal(ErlNifEnv *env, ERL_NIF_TERM *out);

void interp_forget_refusal(void);

#endif
