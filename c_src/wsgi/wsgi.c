#include "wsgi/wsgi.h"

#include "call/appcache.h"
#include "core/atoms.h"
#include "core/options.h"
#include "exec/pool.h"
#include "terms/convert.h"
#include "terms/errors.h"
#include "terms/response.h"
#include "wsgi/environ_tables.h"
#include "wsgi/wsgi_native.h"

#include <string.h>

#define KEY_TEXT(name, text) text,
static const char *const key_text[N_WSGI_KEYS] = {WSGI_KEYS(KEY_TEXT)};
#undef KEY_TEXT

/* Keys with no default: their absence is {bad_environ, Key}. */
#define N_REQUIRED (WSGI_K_INPUT + 1)

#define CONST_TEXT(text) text,
static const char *const const_text[N_WSGI_CONSTS] = {WSGI_CONSTS(CONST_TEXT)};
#undef CONST_TEXT
#define CONST_MAX_LEN 10

/* ---- lookup tables (built at load, read by schedulers: no Python) ----------------- */

/* Open addressing over a power-of-two table (at most a quarter full) of indexes into a
 * text array.  The hash reads the length and four bytes (the texts share prefixes such as
 * "HTTP_"): about 1.1 probes per lookup for the keys, and one memcmp. */
#define SLOTS 256
#define TABLE_MAX 64
typedef struct {
    const char *const *text;
    size_t len[TABLE_MAX];
    signed char slot[SLOTS];   /* an index, or -1 */
} table_t;

static table_t key_table, const_table;

static unsigned
slot_hash(const unsigned char *data, size_t len)
{
    unsigned h = (unsigned)len * 31u;
    if (len > 0) {
        h += data[0] * 7u + data[len / 2] * 3u + data[len - 1] + data[(len * 3) / 4] * 11u;
    }
    return h & (SLOTS - 1);
}

static void
table_build(table_t *t, const char *const *text, int n)
{
    t->text = text;
    memset(t->slot, -1, sizeof(t->slot));
    for (int i = 0; i < n; i++) {
        t->len[i] = strlen(text[i]);
        unsigned h = slot_hash((const unsigned char *)text[i], t->len[i]);
        while (t->slot[h] >= 0) {
            h = (h + 1) & (SLOTS - 1);
        }
        t->slot[h] = (signed char)i;
    }
}

static int
table_find(const table_t *t, const unsigned char *data, size_t len)
{
    for (unsigned h = slot_hash(data, len); t->slot[h] >= 0; h = (h + 1) & (SLOTS - 1)) {
        int i = t->slot[h];
        if (t->len[i] == len && memcmp(t->text[i], data, len) == 0) {
            return i;
        }
    }
    return -1;
}

_Static_assert(N_WSGI_KEYS <= TABLE_MAX && N_WSGI_CONSTS <= TABLE_MAX, "lookup table too small");

void
wsgi_load(void)
{
    table_build(&key_table, key_text, N_WSGI_KEYS);
    table_build(&const_table, const_text, N_WSGI_CONSTS);
}

/* ---- the packed environ (scheduler thread, no Python) ----------------------------- */

/* The map is read on the scheduler into one block, part of the job's allocation: one
 * item per key, then the bytes of every key and text value the tables do not know, and
 * of a request body up to INPUT_INLINE_MAX.  The worker builds the dict from it without
 * reading an Erlang term, except a larger body and non-binary values (copied into the
 * job's env: a large body is a reference-counted binary, not copied). */
enum { V_TEXT, V_TERM, V_INPUT, V_INPUT_BYTES, V_ERRORS };
#define INPUT_INLINE_MAX 1024

typedef struct {
    int key;            /* index in key_text, or -1: key_len bytes at key_off */
    int value;          /* V_TEXT: index in const_text, or -1: val_len bytes at val_off */
    int kind;
    size_t key_off, key_len, val_off, val_len;
    ERL_NIF_TERM term;  /* V_TERM, V_INPUT: the value, in the job's env */
} item_t;                /* V_INPUT_BYTES: the body is val_len bytes at val_off */

typedef struct {
    size_t n;
    unsigned seen;      /* bit i: key i (i < 32) is in the map */
    item_t items[];     /* n of them, then the bytes */
} wsgi_environ_t;

/* A CGI-style key (no dot) must have a binary value. */
static int
is_cgi_key(const ErlNifBinary *key)
{
    return memchr(key->data, '.', key->size) == NULL;
}

/* Reads one pair into *it (offsets and term left unset), *key and *val (the value when
 * it->val_len > 0).  Returns 0, or -1 if the pair is not valid. */
static int
classify(ErlNifEnv *env, ERL_NIF_TERM k, ERL_NIF_TERM v, item_t *it, ErlNifBinary *key,
         ErlNifBinary *val)
{
    if (!enif_inspect_binary(env, k, key)) {
        return -1;
    }
    it->key = table_find(&key_table, key->data, key->size);
    it->key_len = it->key < 0 ? key->size : 0;
    it->value = -1;
    it->val_len = 0;
    switch (it->key) {
    case WSGI_K_VERSION: {
        int arity, a, b;
        const ERL_NIF_TERM *e;
        it->kind = V_TERM;
        return enif_get_tuple(env, v, &arity, &e) && arity == 2 && enif_get_int(env, e[0], &a) &&
                       enif_get_int(env, e[1], &b)
                   ? 0
                   : -1;
    }
    case WSGI_K_MULTITHREAD:
    case WSGI_K_MULTIPROCESS:
    case WSGI_K_RUN_ONCE:
        it->kind = V_TERM;
        return v == ATOM_true || v == ATOM_false ? 0 : -1;
    case WSGI_K_ERRORS:
        it->kind = V_ERRORS; /* any value: the stream is always the logger's */
        return 0;
    case WSGI_K_INPUT:
        if (!enif_inspect_binary(env, v, val)) {
            return -1;
        }
        it->kind = val->size <= INPUT_INLINE_MAX ? V_INPUT_BYTES : V_INPUT;
        it->val_len = it->kind == V_INPUT_BYTES ? val->size : 0;
        return 0;
    default:
        if (enif_inspect_binary(env, v, val)) {
            it->kind = V_TEXT;
            it->value = val->size <= CONST_MAX_LEN ? table_find(&const_table, val->data, val->size) : -1;
            it->val_len = it->value < 0 ? val->size : 0;
            return 0;
        }
        it->kind = V_TERM;
        return it->key < 0 && !is_cgi_key(key) ? 0 : -1;
    }
}

/* One pair as read by scan_environ: its item, and where its bytes and value are in the
 * caller's env (valid during the NIF call). */
typedef struct {
    item_t it;
    const unsigned char *key, *val;
    ERL_NIF_TERM value;
} scan_t;

/* Reads and checks every pair of the map (`count` of them) into scan[], once, and the
 * known keys present into *seen (bit i: key i, i < 32).  Returns the bytes the packed
 * environ needs, or 0 with *bad the offending key. */
static size_t
scan_environ(ErlNifEnv *env, ERL_NIF_TERM environ, size_t count, int need_input, scan_t *scan,
             unsigned *seen_out, ERL_NIF_TERM *bad)
{
    size_t n = 0, bytes = 0;
    unsigned seen = 0;
    ErlNifMapIterator iter;
    ERL_NIF_TERM k, v;
    enif_map_iterator_create(env, environ, &iter, ERL_NIF_MAP_ITERATOR_FIRST);
    while (n < count && enif_map_iterator_get_pair(env, &iter, &k, &v)) {
        scan_t *sc = &scan[n++];
        ErlNifBinary key, val;
        if (classify(env, k, v, &sc->it, &key, &val) < 0) {
            enif_map_iterator_destroy(env, &iter);
            *bad = k;
            return 0;
        }
        if (sc->it.key >= 0 && sc->it.key < 32) {
            seen |= 1u << sc->it.key;
        }
        sc->key = key.data;
        sc->val = sc->it.val_len > 0 ? val.data : NULL;
        sc->value = v;
        bytes += sc->it.key_len + sc->it.val_len;
        enif_map_iterator_next(env, &iter);
    }
    enif_map_iterator_destroy(env, &iter);
    for (int i = 0; i < N_REQUIRED; i++) {
        if (!(seen & (1u << i)) && (i != WSGI_K_INPUT || need_input)) {
            *bad = convert_bytes(env, key_text[i], key_table.len[i]);
            return 0;
        }
    }
    *seen_out = seen;
    return sizeof(wsgi_environ_t) + n * sizeof(item_t) + bytes;
}

/* Writes the scanned pairs into e (the size scan_environ returned); terms go to job_env. */
static void
pack_environ(const scan_t *scan, size_t n, unsigned seen, ErlNifEnv *job_env, wsgi_environ_t *e)
{
    unsigned char *text = (unsigned char *)&e->items[n];
    size_t pos = 0;
    e->n = n;
    e->seen = seen;
    for (size_t i = 0; i < n; i++) {
        item_t *it = &e->items[i];
        *it = scan[i].it;
        it->key_off = pos;
        memcpy(text + pos, scan[i].key, it->key_len);
        pos += it->key_len;
        it->val_off = pos;
        if (it->val_len > 0) {
            memcpy(text + pos, scan[i].val, it->val_len);
        }
        pos += it->val_len;
        it->term = it->kind == V_TERM || it->kind == V_INPUT ? enif_make_copy(job_env, scan[i].value) : 0;
    }
}

/* ---- environ dict (worker, GIL held) ---------------------------------------------- */

static PyObject *
latin1(const void *data, size_t len)
{
    return PyUnicode_DecodeLatin1((const char *)data, (Py_ssize_t)len, NULL);
}

static PyObject *
item_key(py_state_t *st, const item_t *it, const unsigned char *text)
{
    if (it->key < 0) {
        return latin1(text + it->key_off, it->key_len);
    }
    return option_on(OPT_INTERNED_KEYS) ? Py_NewRef(st->wsgi_keys[it->key])
                                        : latin1(key_text[it->key], key_table.len[it->key]);
}

static PyObject *
input_stream(py_state_t *st, const void *data, size_t size)
{
    PyObject *bytes = PyBytes_FromStringAndSize((const char *)data, (Py_ssize_t)size);
    if (bytes == NULL) {
        return NULL;
    }
    PyObject *stream = PyObject_CallOneArg(st->bytes_io, bytes);
    Py_DECREF(bytes);
    return stream;
}

static PyObject *
item_value(py_state_t *st, ErlNifEnv *env, const item_t *it, const unsigned char *text, ERL_NIF_TERM *badarg)
{
    ErlNifBinary bin;
    switch (it->kind) {
    case V_TEXT:
        if (it->value < 0) {
            return latin1(text + it->val_off, it->val_len);
        }
        return option_on(OPT_CACHED_CONSTANTS)
                   ? Py_NewRef(st->wsgi_consts[it->value])
                   : latin1(const_text[it->value], const_table.len[it->value]);
    case V_INPUT:
        enif_inspect_binary(env, it->term, &bin);
        return input_stream(st, bin.data, bin.size);
    case V_INPUT_BYTES:
        return input_stream(st, text + it->val_off, it->val_len);
    case V_ERRORS:
        return Py_NewRef(st->wsgi_errors);
    default:
        return convert_to_py(st, env, it->term, badarg);
    }
}

static int
set_default(py_state_t *st, PyObject *dict, unsigned seen, int index, PyObject *value)
{
    if (seen & (1u << index)) {
        return 0;
    }
    PyObject *key = option_on(OPT_INTERNED_KEYS) ? Py_NewRef(st->wsgi_keys[index])
                                                 : PyUnicode_FromString(key_text[index]);
    int rc = key != NULL ? PyDict_SetItem(dict, key, value) : -1;
    Py_XDECREF(key);
    return rc;
}

/* Room for the keys set_default may add, and the runner's wsgi.file_wrapper. */
#define N_DEFAULTS 8

static PyObject *
wsgi_build_environ(py_state_t *st, ErlNifEnv *env, const wsgi_environ_t *e, PyObject *input, ERL_NIF_TERM *badarg)
{
    PyObject *dict = _PyDict_NewPresized((Py_ssize_t)(e->n + N_DEFAULTS));
    if (dict == NULL) {
        return NULL;
    }
    const unsigned char *text = (const unsigned char *)&e->items[e->n];
    for (size_t i = 0; i < e->n; i++) {
        PyObject *key = item_key(st, &e->items[i], text);
        PyObject *value = key != NULL ? item_value(st, env, &e->items[i], text, badarg) : NULL;
        int rc = value != NULL ? PyDict_SetItem(dict, key, value) : -1;
        Py_XDECREF(key);
        Py_XDECREF(value);
        if (rc < 0) {
            Py_DECREF(dict);
            return NULL;
        }
    }
    unsigned seen = e->seen;
    if ((input != NULL && set_default(st, dict, seen, WSGI_K_INPUT, input) < 0) ||
        set_default(st, dict, seen, WSGI_K_VERSION, st->wsgi_version) < 0 ||
        set_default(st, dict, seen, WSGI_K_ERRORS, st->wsgi_errors) < 0 ||
        set_default(st, dict, seen, WSGI_K_MULTITHREAD, Py_True) < 0 ||
        set_default(st, dict, seen, WSGI_K_MULTIPROCESS, Py_True) < 0 ||
        set_default(st, dict, seen, WSGI_K_RUN_ONCE, Py_False) < 0 ||
        set_default(st, dict, seen, WSGI_K_QUERY_STRING, st->wsgi_consts[0]) < 0) {
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
wsgi_response(py_state_t *st, ErlNifEnv *env, PyObject *result)
{
    if (!option_on(OPT_DIRECT_RESPONSE)) {
        /* Ablation baseline: the generic converter; py_wsgi normalises {generic, Term}. */
        ERL_NIF_TERM term;
        if (!convert_from_py(st, env, result, &term)) {
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
    if (response_body(st, env, PyTuple_GET_ITEM(result, 2), &body) < 0) {
        return errors_tuple(env, response_error(env, "body must be bytes or a list of bytes"));
    }
    return enif_make_tuple2(env, ATOM_ok, enif_make_tuple3(env, status, headers, body));
}

/* ---- the job ---------------------------------------------------------------------- */

enum { ARG_MODULE, ARG_CALLABLE, ARG_RUNNER, ARG_ENVIRON };

/* Pairs scanned into a stack array up to this many (more: one allocation). */
#define SCAN_LOCAL 32

/* job->extra of a WSGI job: everything the worker needs, read on the scheduler. */
typedef struct {
    int native;                 /* the runner is hornbeam_wsgi_runner */
    appcache_key_t app;
    _Alignas(8) unsigned char environ[];   /* wsgi_environ_t */
} request_t;

job_t *
wsgi_job_new(ErlNifEnv *env, job_run_fn run, ERL_NIF_TERM tag, const ERL_NIF_TERM argv[4],
             const char *entry, int need_input, ERL_NIF_TERM *err)
{
    appcache_key_t key;
    *err = appcache_key(env, argv, entry, &key);
    if (*err != 0) {
        return NULL;
    }
    ERL_NIF_TERM environ = argv[ARG_ENVIRON], bad = environ;
    size_t count = 0;
    if (!enif_get_map_size(env, environ, &count)) {
        *err = errors_tuple(env, enif_make_tuple2(env, ATOM_bad_environ, bad));
        return NULL;
    }
    scan_t local[SCAN_LOCAL];
    scan_t *scan = count <= SCAN_LOCAL ? local : enif_alloc(count * sizeof(scan_t));
    unsigned seen = 0;
    size_t size = scan != NULL ? scan_environ(env, environ, count, need_input, scan, &seen, &bad) : 0;
    job_t *job = size != 0 ? job_new_extra(env, run, tag, 0, NULL, sizeof(request_t) + size) : NULL;
    if (job != NULL) {
        request_t *req = (request_t *)job->extra;
        req->native = appcache_is_runner(env, argv[ARG_RUNNER], "hornbeam_wsgi_runner");
        memcpy(req->app.text, key.text, key.len);
        req->app.len = key.len;
        pack_environ(scan, count, seen, job->env, (wsgi_environ_t *)req->environ);
    }
    if (scan != local) {
        enif_free(scan);
    }
    if (job == NULL) {
        *err = size == 0 && scan != NULL ? errors_tuple(env, enif_make_tuple2(env, ATOM_bad_environ, bad))
                                         : enif_raise_exception(env, enif_make_atom(env, "enomem"));
    }
    return job;
}

ERL_NIF_TERM
wsgi_check_environ(ErlNifEnv *env, ERL_NIF_TERM environ, int need_input)
{
    ERL_NIF_TERM bad = environ;
    size_t count = 0, size = 0;
    if (enif_get_map_size(env, environ, &count)) {
        scan_t local[SCAN_LOCAL];
        scan_t *scan = count <= SCAN_LOCAL ? local : enif_alloc(count * sizeof(scan_t));
        if (scan == NULL) {
            return enif_raise_exception(env, enif_make_atom(env, "enomem"));
        }
        unsigned seen = 0;
        size = scan_environ(env, environ, count, need_input, scan, &seen, &bad);
        if (scan != local) {
            enif_free(scan);
        }
    }
    return size != 0 ? ATOM_ok : errors_tuple(env, enif_make_tuple2(env, ATOM_bad_environ, bad));
}

int
wsgi_job_native(job_t *job)
{
    return option_on(OPT_NATIVE_RUNNER) && ((request_t *)job->extra)->native;
}

int
wsgi_job_prepare(py_state_t *st, job_t *job, PyObject *input, PyObject **app, PyObject **fn, PyObject **environ,
                 ERL_NIF_TERM *why)
{
    ErlNifEnv *env = job->env;
    request_t *req = (request_t *)job->extra;
    ERL_NIF_TERM badarg = 0;
    if (state_load_wsgi_runner(st) < 0) {
        *why = errors_take(st, env);
        return -1;
    }
    if (appcache_get(st, env, &req->app, app, fn, why) < 0) {
        return -1;
    }
    *environ = wsgi_build_environ(st, env, (const wsgi_environ_t *)req->environ, input, &badarg);
    if (*environ == NULL) {
        *why = badarg != 0 ? enif_make_tuple2(env, ATOM_badarg, badarg) : errors_take(st, env);
        Py_CLEAR(*app);
        Py_CLEAR(*fn);
        return -1;
    }
    return 0;
}

static void
wsgi_run(job_t *job, worker_t *w)
{
    py_state_t *st = worker_state(w);
    ErlNifEnv *env = job->env;
    PyObject *app, *fn, *environ, *result;
    ERL_NIF_TERM why;

    if (wsgi_job_prepare(st, job, NULL, &app, &fn, &environ, &why) < 0) {
        job_reply(job, errors_tuple(env, why));
        PyErr_Clear();
        return;
    }
    result = wsgi_job_native(job)
                 ? wsgi_native_run(st, app, environ)
                 : PyObject_CallFunctionObjArgs(fn, app, environ, NULL);
    job_reply(job, result != NULL ? wsgi_response(st, env, result)
                                  : errors_tuple(env, errors_take(st, env)));
    Py_XDECREF(result);
    Py_DECREF(environ);
    Py_DECREF(fn);
    Py_DECREF(app);
    PyErr_Clear();
}

ERL_NIF_TERM
wsgi_submit(ErlNifEnv *env, ERL_NIF_TERM tag, uint64_t timeout_ms, const ERL_NIF_TERM argv[])
{
    ERL_NIF_TERM err;
    job_t *job = wsgi_job_new(env, wsgi_run, tag, argv, "run_wsgi", 1, &err);
    if (job == NULL) {
        return err;
    }
    job->sync = 1;
    return pool_submit_new(env, job, -1, timeout_ms);
}
