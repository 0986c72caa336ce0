#include "wsgi.h"

#include "appcache.h"
#include "atoms.h"
#include "convert.h"
#include "errors.h"
#include "job.h"
#include "options.h"
#include "response.h"
#include "state.h"
#include "worker.h"
#include "wsgi_native.h"

#include <string.h>

/* Environ keys known to the NIF: interned once, shared by every request.  The first block
 * has meaning to the NIF (required keys, defaults, special values); the rest are common
 * request headers. */
#define WSGI_KEYS(X)                                                               \
    X(REQUEST_METHOD, "REQUEST_METHOD") X(SCRIPT_NAME, "SCRIPT_NAME")              \
    X(PATH_INFO, "PATH_INFO") X(SERVER_NAME, "SERVER_NAME")                        \
    X(SERVER_PORT, "SERVER_PORT") X(SERVER_PROTOCOL, "SERVER_PROTOCOL")            \
    X(URL_SCHEME, "wsgi.url_scheme") X(INPUT, "wsgi.input")                        \
    X(QUERY_STRING, "QUERY_STRING") X(VERSION, "wsgi.version")                     \
    X(ERRORS, "wsgi.errors") X(MULTITHREAD, "wsgi.multithread")                    \
    X(MULTIPROCESS, "wsgi.multiprocess") X(RUN_ONCE, "wsgi.run_once")              \
    X(CONTENT_TYPE, "CONTENT_TYPE") X(CONTENT_LENGTH, "CONTENT_LENGTH")            \
    X(REMOTE_ADDR, "REMOTE_ADDR") X(REMOTE_PORT, "REMOTE_PORT")                    \
    X(REMOTE_HOST, "REMOTE_HOST") X(REQUEST_URI, "REQUEST_URI")                    \
    X(RAW_URI, "RAW_URI") X(H_HOST, "HTTP_HOST") X(H_USER_AGENT, "HTTP_USER_AGENT") \
    X(H_ACCEPT, "HTTP_ACCEPT") X(H_ACCEPT_ENCODING, "HTTP_ACCEPT_ENCODING")        \
    X(H_ACCEPT_LANGUAGE, "HTTP_ACCEPT_LANGUAGE") X(H_CONNECTION, "HTTP_CONNECTION") \
    X(H_COOKIE, "HTTP_COOKIE") X(H_CACHE_CONTROL, "HTTP_CACHE_CONTROL")            \
    X(H_REFERER, "HTTP_REFERER") X(H_AUTHORIZATION, "HTTP_AUTHORIZATION")          \
    X(H_ORIGIN, "HTTP_ORIGIN") X(H_X_FORWARDED_FOR, "HTTP_X_FORWARDED_FOR")        \
    X(H_X_FORWARDED_PROTO, "HTTP_X_FORWARDED_PROTO")                               \
    X(H_X_REQUESTED_WITH, "HTTP_X_REQUESTED_WITH") X(H_PRAGMA, "HTTP_PRAGMA")      \
    X(H_IF_NONE_MATCH, "HTTP_IF_NONE_MATCH")                                       \
    X(H_IF_MODIFIED_SINCE, "HTTP_IF_MODIFIED_SINCE")                               \
    X(H_UPGRADE_INSECURE_REQUESTS, "HTTP_UPGRADE_INSECURE_REQUESTS")

#define KEY_ENUM(name, text) K_##name,
enum { WSGI_KEYS(KEY_ENUM) N_KEYS };
#undef KEY_ENUM

#define KEY_TEXT(name, text) text,
static const char *const key_text[N_KEYS] = {WSGI_KEYS(KEY_TEXT)};
#undef KEY_TEXT

/* Keys with no default: their absence is {bad_environ, Key}. */
#define N_REQUIRED (K_INPUT + 1)

/* Values worth sharing: methods, protocols, schemes, frequent hosts and ports. */
static const char *const const_text[] = {
    "", "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "HTTP/1.0", "HTTP/1.1",
    "HTTP/2", "http", "https", "/", "localhost", "127.0.0.1", "80", "443", "8000", "8080",
    "0", "*/*", "keep-alive", "close",
};
#define N_CONSTS (sizeof(const_text) / sizeof(const_text[0]))
#define CONST_MAX_LEN 10

static struct {
    PyObject *keys[N_KEYS];       /* interned str */
    size_t key_len[N_KEYS];
    PyObject *consts[N_CONSTS];   /* str */
    size_t const_len[N_CONSTS];
    PyObject *version;            /* (1, 0) */
    PyObject *errors;             /* the wsgi.errors stream, shared */
    PyObject *bytes_io;
} W;

/* wsgi.errors: each write goes to the Erlang logger at level error. */
static const char ERRORS_SRC[] =
    "import _erlang\n"
    "class ErrorStream:\n"
    "    '''wsgi.errors: text written here goes to the Erlang logger.'''\n"
    "    def write(self, s):\n"
    "        if not isinstance(s, str):\n"
    "            raise TypeError('wsgi.errors.write() takes str')\n"
    "        if s.strip():\n"
    "            _erlang.log('error', s)\n"
    "    def writelines(self, seq):\n"
    "        for s in seq:\n"
    "            self.write(s)\n"
    "    def flush(self):\n"
    "        pass\n"
    "stream = ErrorStream()\n";

int
wsgi_init(void)
{
    for (int i = 0; i < N_KEYS; i++) {
        W.key_len[i] = strlen(key_text[i]);
        W.keys[i] = PyUnicode_InternFromString(key_text[i]);
        if (W.keys[i] == NULL) {
            return -1;
        }
    }
    for (size_t i = 0; i < N_CONSTS; i++) {
        W.const_len[i] = strlen(const_text[i]);
        W.consts[i] = PyUnicode_InternFromString(const_text[i]);
        if (W.consts[i] == NULL) {
            return -1;
        }
    }
    W.version = Py_BuildValue("(ii)", 1, 0);
    PyObject *globals = PyDict_New();
    PyObject *r = globals != NULL ? PyRun_String(ERRORS_SRC, Py_file_input, globals, globals) : NULL;
    Py_XDECREF(r);
    W.errors = r != NULL ? PyDict_GetItemString(globals, "stream") : NULL;
    Py_XINCREF(W.errors);
    Py_XDECREF(globals);
    W.bytes_io = PY_STATE->bytes_io;
    return W.version != NULL && W.errors != NULL ? 0 : -1;
}

static int
key_index(const unsigned char *data, size_t len)
{
    for (int i = 0; i < N_KEYS; i++) {
        if (W.key_len[i] == len && memcmp(key_text[i], data, len) == 0) {
            return i;
        }
    }
    return -1;
}

/* A CGI-style key (no dot) must have a binary value. */
static int
is_cgi_key(const ErlNifBinary *key)
{
    return memchr(key->data, '.', key->size) == NULL;
}

/* ---- validation (scheduler thread, no Python) ------------------------------------- */

static int
valid_value(ErlNifEnv *env, int index, const ErlNifBinary *key, ERL_NIF_TERM value)
{
    switch (index) {
    case K_VERSION: {
        int arity, a, b;
        const ERL_NIF_TERM *e;
        return enif_get_tuple(env, value, &arity, &e) && arity == 2 && enif_get_int(env, e[0], &a) &&
               enif_get_int(env, e[1], &b);
    }
    case K_MULTITHREAD:
    case K_MULTIPROCESS:
    case K_RUN_ONCE:
        return value == ATOM_true || value == ATOM_false;
    case K_ERRORS:
        return 1; /* any value: the stream is always the logger's */
    default:
        return (index >= 0 || is_cgi_key(key)) ? enif_is_binary(env, value) : 1;
    }
}

int
wsgi_validate_environ(ErlNifEnv *env, ERL_NIF_TERM environ, int need_input, ERL_NIF_TERM *bad)
{
    if (!enif_is_map(env, environ)) {
        *bad = environ;
        return -1;
    }
    unsigned seen = 0;
    ErlNifMapIterator it;
    ERL_NIF_TERM k, v;
    enif_map_iterator_create(env, environ, &it, ERL_NIF_MAP_ITERATOR_FIRST);
    int rc = 0;
    while (enif_map_iterator_get_pair(env, &it, &k, &v)) {
        ErlNifBinary key;
        if (!enif_inspect_binary(env, k, &key)) {
            *bad = k;
            rc = -1;
            break;
        }
        int index = key_index(key.data, key.size);
        if (!valid_value(env, index, &key, v)) {
            *bad = k;
            rc = -1;
            break;
        }
        if (index >= 0 && index < N_REQUIRED) {
            seen |= 1u << index;
        }
        enif_map_iterator_next(env, &it);
    }
    enif_map_iterator_destroy(env, &it);
    if (rc < 0) {
        return -1;
    }
    for (int i = 0; i < N_REQUIRED; i++) {
        if (!(seen & (1u << i)) && (i != K_INPUT || need_input)) {
            *bad = convert_bytes(env, key_text[i], W.key_len[i]);
            return -1;
        }
    }
    return 0;
}

/* ---- environ dict (worker, GIL held) ---------------------------------------------- */

static PyObject *
native_str(const unsigned char *data, size_t len)
{
    if (len <= CONST_MAX_LEN && option_on(OPT_CACHED_CONSTANTS)) {
        for (size_t i = 0; i < N_CONSTS; i++) {
            if (W.const_len[i] == len && memcmp(const_text[i], data, len) == 0) {
                return Py_NewRef(W.consts[i]);
            }
        }
    }
    return PyUnicode_DecodeLatin1((const char *)data, (Py_ssize_t)len, NULL);
}

static PyObject *
environ_key(int index, const ErlNifBinary *key)
{
    if (index >= 0 && option_on(OPT_INTERNED_KEYS)) {
        return Py_NewRef(W.keys[index]);
    }
    return PyUnicode_DecodeLatin1((const char *)key->data, (Py_ssize_t)key->size, NULL);
}

static PyObject *
input_stream(const ErlNifBinary *body)
{
    PyObject *bytes = PyBytes_FromStringAndSize((const char *)body->data, (Py_ssize_t)body->size);
    if (bytes == NULL) {
        return NULL;
    }
    PyObject *stream = PyObject_CallOneArg(W.bytes_io, bytes);
    Py_DECREF(bytes);
    return stream;
}

static PyObject *
environ_value(ErlNifEnv *env, int index, ERL_NIF_TERM value, ERL_NIF_TERM *badarg)
{
    ErlNifBinary bin;
    switch (index) {
    case K_INPUT:
        enif_inspect_binary(env, value, &bin);
        return input_stream(&bin);
    case K_ERRORS:
        return Py_NewRef(W.errors);
    default:
        if (enif_inspect_binary(env, value, &bin)) {
            return native_str(bin.data, bin.size);
        }
        return convert_to_py(env, value, badarg);
    }
}

static int
set_default(PyObject *dict, unsigned seen, int index, PyObject *value)
{
    if (seen & (1u << index)) {
        return 0;
    }
    PyObject *key = option_on(OPT_INTERNED_KEYS) ? Py_NewRef(W.keys[index])
                                                 : PyUnicode_FromString(key_text[index]);
    int rc = key != NULL ? PyDict_SetItem(dict, key, value) : -1;
    Py_XDECREF(key);
    return rc;
}

PyObject *
wsgi_build_environ(ErlNifEnv *env, ERL_NIF_TERM environ, PyObject *input, ERL_NIF_TERM *badarg)
{
    PyObject *dict = PyDict_New();
    if (dict == NULL) {
        return NULL;
    }
    unsigned seen = 0;
    ErlNifMapIterator it;
    ERL_NIF_TERM k, v;
    enif_map_iterator_create(env, environ, &it, ERL_NIF_MAP_ITERATOR_FIRST);
    while (enif_map_iterator_get_pair(env, &it, &k, &v)) {
        ErlNifBinary key;
        enif_inspect_binary(env, k, &key);
        int index = key_index(key.data, key.size);
        if (index >= 0 && index < 32) {
            seen |= 1u << index;
        }
        PyObject *pykey = environ_key(index, &key);
        PyObject *pyval = pykey != NULL ? environ_value(env, index, v, badarg) : NULL;
        int rc = pyval != NULL ? PyDict_SetItem(dict, pykey, pyval) : -1;
        Py_XDECREF(pykey);
        Py_XDECREF(pyval);
        if (rc < 0) {
            enif_map_iterator_destroy(env, &it);
            Py_DECREF(dict);
            return NULL;
        }
        enif_map_iterator_next(env, &it);
    }
    enif_map_iterator_destroy(env, &it);
    if ((input != NULL && set_default(dict, seen, K_INPUT, input) < 0) ||
        set_default(dict, seen, K_VERSION, W.version) < 0 ||
        set_default(dict, seen, K_ERRORS, W.errors) < 0 ||
        set_default(dict, seen, K_MULTITHREAD, Py_True) < 0 ||
        set_default(dict, seen, K_MULTIPROCESS, Py_True) < 0 ||
        set_default(dict, seen, K_RUN_ONCE, Py_False) < 0 ||
        set_default(dict, seen, K_QUERY_STRING, W.consts[0]) < 0) {
        Py_DECREF(dict);
        return NULL;
    }
    return dict;
}

/* ---- response --------------------------------------------------------------------- */

ERL_NIF_TERM
wsgi_headers_term(ErlNifEnv *env, PyObject *headers, int *ok)
{
    *ok = 0;
    if (!PyList_Check(headers)) {
        return response_error(env, "headers must be a list");
    }
    Py_ssize_t n = PyList_GET_SIZE(headers);
    ERL_NIF_TERM list = enif_make_list(env, 0);
    for (Py_ssize_t i = n - 1; i >= 0; i--) {
        PyObject *pair = PyList_GET_ITEM(headers, i);
        ERL_NIF_TERM name, value;
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2 ||
            response_latin1(env, PyTuple_GET_ITEM(pair, 0), &name) < 0 ||
            response_latin1(env, PyTuple_GET_ITEM(pair, 1), &value) < 0) {
            return response_error(env, "headers must be (str, str) tuples of latin-1 text");
        }
        list = enif_make_list_cell(env, enif_make_tuple2(env, name, value), list);
    }
    *ok = 1;
    return list;
}

/* (status, headers, body) -> {ok, {Status, Headers, Body}} | {error, {bad_response, _}} */
static ERL_NIF_TERM
wsgi_response(ErlNifEnv *env, PyObject *result)
{
    if (!option_on(OPT_DIRECT_RESPONSE)) {
        /* Ablation baseline: the generic converter; py_wsgi normalises {generic, Term}. */
        ERL_NIF_TERM term;
        if (!convert_from_py(env, result, &term)) {
            return errors_tuple(env, term);
        }
        return enif_make_tuple2(env, ATOM_ok, enif_make_tuple2(env, enif_make_atom(env, "generic"), term));
    }
    if (!PyTuple_Check(result) || PyTuple_GET_SIZE(result) != 3) {
        return errors_tuple(env, response_error(env, "run_wsgi must return (status, headers, body)"));
    }
    ERL_NIF_TERM status, body;
    if (response_latin1(env, PyTuple_GET_ITEM(result, 0), &status) < 0) {
        return errors_tuple(env, response_error(env, "status must be a latin-1 str"));
    }
    int ok;
    ERL_NIF_TERM headers = wsgi_headers_term(env, PyTuple_GET_ITEM(result, 1), &ok);
    if (!ok) {
        return errors_tuple(env, headers);
    }
    if (response_body(env, PyTuple_GET_ITEM(result, 2), &body) < 0) {
        return errors_tuple(env, response_error(env, "body must be bytes or a list of bytes"));
    }
    return enif_make_tuple2(env, ATOM_ok, enif_make_tuple3(env, status, headers, body));
}

/* ---- the job ---------------------------------------------------------------------- */

enum { ARG_MODULE, ARG_CALLABLE, ARG_RUNNER, ARG_ENVIRON, WSGI_ARGC };

/* 1 once the native start_response is ready; 0 while the runner cannot be imported (the
 * Python runner is used then, and reports the import error itself). */
static int
native_ready(void)
{
    static int ready = 0;
    if (!ready) {
        ready = wsgi_native_init() == 0;
        PyErr_Clear();
    }
    return ready;
}

static void
wsgi_run(job_t *job, worker_t *w)
{
    ErlNifEnv *env = job->env;
    PyObject *app = NULL, *fn = NULL, *environ = NULL, *result = NULL;
    ERL_NIF_TERM reply, why = 0;

    if (appcache_resolve(env, job->argv[ARG_MODULE], job->argv[ARG_CALLABLE], job->argv[ARG_RUNNER],
                         "run_wsgi", &app, &fn, &why) < 0) {
        job_reply(job, errors_tuple(env, why));
        return;
    }
    environ = wsgi_build_environ(env, job->argv[ARG_ENVIRON], NULL, &why);
    if (environ == NULL) {
        reply = why != 0 ? errors_tuple(env, enif_make_tuple2(env, ATOM_badarg, why))
                         : errors_tuple(env, errors_take(env));
    } else {
        result = option_on(OPT_NATIVE_RUNNER) && appcache_is_runner(env, job->argv[ARG_RUNNER], "hornbeam_wsgi_runner") &&
                         native_ready()
                     ? wsgi_native_run(app, environ)
                     : PyObject_CallFunctionObjArgs(fn, app, environ, NULL);
        reply = result != NULL ? wsgi_response(env, result) : errors_tuple(env, errors_take(env));
    }
    job_reply(job, reply);
    Py_XDECREF(result);
    Py_XDECREF(environ);
    Py_DECREF(fn);
    Py_DECREF(app);
    PyErr_Clear();
}

ERL_NIF_TERM
wsgi_submit(ErlNifEnv *env, ERL_NIF_TERM tag, const ERL_NIF_TERM argv[])
{
    ERL_NIF_TERM err = appcache_check_names(env, argv);
    if (err != 0) {
        return err;
    }
    ERL_NIF_TERM bad;
    if (wsgi_validate_environ(env, argv[ARG_ENVIRON], 1, &bad) < 0) {
        return errors_tuple(env, enif_make_tuple2(env, ATOM_bad_environ, bad));
    }
    job_t *job = job_new(env, wsgi_run, tag, WSGI_ARGC, argv);
    if (job == NULL) {
        return enif_raise_exception(env, enif_make_atom(env, "enomem"));
    }
    job->sync = 1;
    return pool_submit_new(env, job);
}
