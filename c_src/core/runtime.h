/* The embedded interpreter's life: loaded with global symbols at NIF load, initialised once
 * on a dedicated thread (the interpreter's main thread), configured (sys.path, venv) on
 * every start, never finalised (finalising and re-initialising CPython in one process is
 * not safe with extension modules). */
#ifndef PY_NIF_RUNTIME_H
#define PY_NIF_RUNTIME_H

#include <Python.h>
#include <stddef.h>

/* The event loop of each worker thread: asyncio's; uvloop's (in the main interpreter an
 * error where uvloop cannot load, in a sub-interpreter asyncio's: one with its own GIL
 * refuses uvloop, a single-phase-init extension); or uvloop's where it loads and
 * asyncio's elsewhere. */
typedef enum { LOOP_ASYNCIO = 0, LOOP_UVLOOP = 1, LOOP_AUTO = 2 } loop_choice_t;

typedef struct {
    char **paths;      /* prepended to sys.path, in order; the first holds the
                          erlang_python package (erlang_python_runtime) */
    int npaths;
    char *venv;        /* a virtualenv root whose site-packages is added, or NULL */
    loop_choice_t loop;
} runtime_config_t;

/* A built-in module (`_erlang`) to register before the interpreter starts.  At NIF load,
 * no Python called. */
void runtime_builtin_module(const char *name, PyObject *(*init)(void));

/* At NIF load: checks that the libpython loaded (globally, by py_libpython) has the
 * major.minor the NIF was compiled for.  Returns 0, or -1 with a message in err; the NIF
 * still loads and reports the message from start. */
int runtime_load_check(char *err, size_t errlen);

/* Initialises the interpreter if needed, then applies `cfg`.  Blocks until done.  Returns
 * 0, or -1 with a message in err.  `warning` receives a non-fatal note ("" if none). */
int runtime_configure(const runtime_config_t *cfg, char *err, size_t errlen,
                      char *warning, size_t warnlen);

/* "X.Y.Z" of the running interpreter and of the headers the NIF was built with. */
const char *runtime_version(void);
const char *runtime_build_version(void);
const char *runtime_libpython(void);
int runtime_free_threaded(void);
int runtime_initialized(void);

#endif
