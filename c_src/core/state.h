/* Per-interpreter state: everything the NIF caches for one Python interpreter, in one
 * struct, declared once here from tables.
 *
 * Where it lives: it is the module state of the `_erlang` module (nif/erlmod.c) in that
 * interpreter, so there is exactly one per interpreter (the main one, and each
 * sub-interpreter in `subinterpreters` mode) and nothing in it is ever seen by another
 * interpreter.  state_init, run by the module's exec slot when the interpreter first
 * imports `_erlang`, creates it; core/interp.c keeps the module alive as long as the
 * interpreter (for the VM's life).
 *
 * How code finds it: a job runs on a worker (exec/worker.h), and the worker knows its
 * interpreter (worker->ip->st).  Python-facing C code (types' methods, callbacks) keeps
 * the state it was created with.  There is no global "current state".
 *
 * References: each PyObject field is one strong reference, created under the
 * interpreter's GIL.  The objects are traversed by the module's GC slots (state_traverse).
 *
 * This header includes the data tables of the upper layers (environ and scope keys) and
 * declares their type specs: the struct is the table of what an interpreter caches. */
#ifndef PY_NIF_STATE_H
#define PY_NIF_STATE_H

#include <Python.h>
#include <pthread.h>

#include "asgi/scope_tables.h"
#include "wsgi/environ_tables.h"

struct interp;

/* Interned attribute, method and message-key names: X(field, "text"). */
#define STATE_STRINGS(X)                                                           \
    X(s_add_reader, "add_reader") X(s_run_forever, "run_forever") X(s_stop, "stop") \
    X(s_close, "close") X(s_done, "done") X(s_result, "result")                     \
    X(s_add_done_callback, "add_done_callback") X(s_cancel, "cancel")               \
    X(s_eager_start, "eager_start") X(s_loop, "loop") X(s_call_soon, "call_soon")   \
    X(s_from_bytes, "from_bytes") X(s_to_bytes, "to_bytes")                         \
    X(s_bit_length, "bit_length") X(s_little, "little") X(s_module, "__module__")   \
    X(s_qualname, "__qualname__") X(s_name, "__name__") X(s_builtins, "builtins")   \
    X(s_empty, "") X(s_state, "state") X(s_startup, "startup")                      \
    X(s_shutdown, "shutdown") X(s_feed, "feed") X(s_ack, "ack")                     \
    X(s_disconnect, "disconnect") X(s_receive, "receive") X(s_send, "send")         \
    X(s_write, "write") X(s_create_future, "create_future")                         \
    X(s_set_result, "set_result") X(s_type, "type") X(s_status, "status")           \
    X(s_headers, "headers") X(s_body, "body") X(s_more_body, "more_body")           \
    X(s_start, "start") X(s_last, "last")                                          \
    X(s_trailers, "trailers") X(s_extensions, "extensions")                         \
    X(s_response_start, "http.response.start")                                      \
    X(s_response_body, "http.response.body")                                        \
    X(s_response_trailers, "http.response.trailers")                                \
    X(s_http_request, "http.request") X(s_http_disconnect, "http.disconnect")       \
    X(s_file_wrapper_key, "wsgi.file_wrapper") X(s_message, "message")

/* Standard library objects, imported when the state is created: X(field, module, attr). */
#define STATE_IMPORTS(X)                                                           \
    X(format_exception, "traceback", "format_exception")                           \
    X(new_event_loop, "asyncio", "new_event_loop")                                 \
    X(set_event_loop, "asyncio", "set_event_loop")                                 \
    X(set_running_loop, "asyncio.events", "_set_running_loop")                     \
    X(get_running_loop, "asyncio", "get_running_loop")                             \
    X(task_type, "asyncio", "Task")                                                \
    X(bytes_io, "io", "BytesIO")

/* Types of the `_erlang` module, made per interpreter from their specs:
 * X(field, spec, base or NULL). */
#define STATE_TYPES(X)                                                             \
    X(atom_type, erl_atom_spec, &PyUnicode_Type)                                   \
    X(term_type, erl_term_spec, NULL)                                              \
    X(ready_type, asgi_ready_spec, NULL)                                           \
    X(exchange_type, asgi_exchange_spec, NULL)                                     \
    X(wsgi_response_type, wsgi_response_spec, NULL)                                \
    X(wsgi_input_type, wsgi_input_spec, NULL)

/* The runners' rules and data that the C fast paths defer to, imported on first need
 * (state_load_runner): X(field, attr). */
#define STATE_ASGI_RUNNER(X)                                                       \
    X(asgi_send_rules, "send_rules") X(asgi_valid_statuses, "VALID_STATUSES")      \
    X(asgi_valid_headers, "_valid_headers") X(asgi_await_any, "await_any")         \
    X(asgi_finish_rules, "finish_rules")                                           \
    X(asgi_start_state, "START") X(asgi_body_state, "BODY")                        \
    X(asgi_trailers_state, "TRAILERS") X(asgi_complete_state, "COMPLETE")          \
    X(asgi_high_water, "HIGH_WATER") X(asgi_client_disconnected, "ClientDisconnected")
#define STATE_WSGI_RUNNER(X)                                                       \
    X(wsgi_start_rules, "start_response_rules") X(wsgi_write_rules, "write_rules") \
    X(wsgi_finish_rules, "finish_rules") X(wsgi_valid_statuses, "_valid_statuses") \
    X(wsgi_valid_headers, "_valid_headers") X(wsgi_file_wrapper, "FileWrapper")    \
    X(wsgi_error_stream, "ErrorStream") X(wsgi_input_file_key, "INPUT_FILE")

#define STATE_TYPE_SPEC(field, spec, base) extern PyType_Spec spec;
STATE_TYPES(STATE_TYPE_SPEC)
#undef STATE_TYPE_SPEC

/* Every object field, in order; the struct below is these and nothing else, so that the
 * GC slots can walk them as an array. */
#define STATE_OBJECT_FIELD(field, ...) PyObject *field;
#define STATE_TYPE_FIELD(field, spec, base) PyTypeObject *field;
#define STATE_OBJECTS                                                              \
    STATE_STRINGS(STATE_OBJECT_FIELD)                                              \
    STATE_IMPORTS(STATE_OBJECT_FIELD)                                              \
    STATE_TYPES(STATE_TYPE_FIELD)                                                  \
    STATE_ASGI_RUNNER(STATE_OBJECT_FIELD)                                          \
    STATE_WSGI_RUNNER(STATE_OBJECT_FIELD)                                          \
    PyObject *wsgi_errors;                 /* the wsgi.errors stream, shared */    \
    PyObject *wsgi_version;                /* (1, 0) */                            \
    PyObject *wsgi_keys[N_WSGI_KEYS];      /* interned str */                      \
    PyObject *wsgi_consts[N_WSGI_CONSTS];  /* interned str */                      \
    PyObject *scope_keys[N_SCOPE_KEYS];    /* interned str */                      \
    PyObject *scope_consts[N_SCOPE_CONSTS];   /* interned str */                   \
    PyObject *scope_headers[N_SCOPE_HEADERS]; /* bytes */                          \
    PyObject *asgi_version;    /* {"version": "3.0", "spec_version": "2.4"}, copied */ \
    PyObject *empty_bytes;

#define STATE_COUNT_ONE(...) +1
enum {
    N_STATE_OBJECTS = 0 STATE_STRINGS(STATE_COUNT_ONE) STATE_IMPORTS(STATE_COUNT_ONE)
        STATE_TYPES(STATE_COUNT_ONE) STATE_ASGI_RUNNER(STATE_COUNT_ONE)
        STATE_WSGI_RUNNER(STATE_COUNT_ONE) + 2 + N_WSGI_KEYS + N_WSGI_CONSTS + N_SCOPE_KEYS
        + N_SCOPE_CONSTS + N_SCOPE_HEADERS + 2
};
#undef STATE_COUNT_ONE

/* The app cache (call/appcache.h): (module, callable, runner, entry) -> (app, fn). */
#define APPCACHE_KEY_MAX 512
#define APPCACHE_SIZE 32
typedef struct {
    size_t len;
    char text[APPCACHE_KEY_MAX];   /* module \0 callable \0 runner \0 entry \0 */
} appcache_key_t;

typedef struct {
    appcache_key_t key;
    PyObject *app;   /* strong */
    PyObject *fn;    /* strong */
} appcache_entry_t;

typedef struct py_state {
    struct interp *ip;       /* the interpreter this state belongs to */
    int eager_tasks;         /* asyncio.Task takes eager_start (3.12+) */
    int asgi_runner_loaded;  /* STATE_ASGI_RUNNER fields set */
    int wsgi_runner_loaded;  /* STATE_WSGI_RUNNER fields and wsgi_errors set */
    /* Guards the app cache where several threads share the interpreter without a GIL
     * (free-threaded builds); with a GIL it is never contended.  Held only around code
     * that cannot release the GIL. */
    pthread_mutex_t lock;
    /* Serialises the loading of the runner fields.  Held across an import, which can
     * release the GIL: so it is only ever waited for with the GIL released
     * (load_runner), never while holding it. */
    pthread_mutex_t runner_lock;
    int appcache_used, appcache_next;
    appcache_entry_t appcache[APPCACHE_SIZE];
    union {
        struct { STATE_OBJECTS };
        PyObject *objects[N_STATE_OBJECTS];   /* the same fields as an array */
    };
} py_state_t;

_Static_assert(sizeof(struct { STATE_OBJECTS }) == N_STATE_OBJECTS * sizeof(PyObject *),
               "N_STATE_OBJECTS does not count STATE_OBJECTS");

#undef STATE_OBJECT_FIELD
#undef STATE_TYPE_FIELD

/* The module exec slot's work: creates every object of the STATE_* tables (types from
 * their specs, with `module` as their module) in `st`, zeroed by Python.  GIL held.
 * Returns 0, or -1 with an exception set. */
int state_init(py_state_t *st, PyObject *module);

/* Imports the runner's rules (STATE_ASGI_RUNNER from hornbeam_asgi_runner, or
 * STATE_WSGI_RUNNER from hornbeam_wsgi_runner and the wsgi.errors stream) the first
 * time they are needed.  GIL held.  Returns 0, or -1 with an exception set (the import
 * is tried again next time). */
int state_load_asgi_runner(py_state_t *st);
int state_load_wsgi_runner(py_state_t *st);

/* The module's GC slots. */
int state_traverse(py_state_t *st, visitproc visit, void *arg);
void state_clear(py_state_t *st);

#endif
