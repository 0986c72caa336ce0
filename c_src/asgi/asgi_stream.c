#include "asgi/asgi_stream.h"

#include "asgi/asgi_native.h"
#include "asgi/scope.h"
#include "call/appcache.h"
#include "core/atoms.h"
#include "core/options.h"
#include "core/release.h"
#include "exec/deadline.h"
#include "exec/job.h"
#include "exec/pool.h"
#include "exec/task.h"
#include "terms/errors.h"
#include "terms/response.h"

#include <string.h>

enum { ARG_MODULE, ARG_CALLABLE, ARG_RUNNER, ARG_SCOPE, ARG_BODY, ARG_MORE, ARG_COALESCE, START_ARGC };

/* job->data of a stream job: the runner's Stream (or WebSocketStream) object while the
 * app runs. */
typedef struct {
    PyObject *stream; /* strong; GIL; NULL once the app has finished: the runner's Stream,
                         WebSocketStream, or the C exchange (asgi_native.h) */
    int websocket;    /* a websocket scope: stream_websocket and WebSocketStream */
} stream_state_t;

static void
stream_state_free(job_t *job)
{
    stream_state_t *ss = job->data;
    if (ss->stream != NULL) {
        release_later(job->ip, ss->stream);
    }
    enif_free(ss);
}

/* ---- emit: the runner's events -> {asgi, Stream, Event} messages ------------------ */

/* How one element of an event tuple is made: a constant atom, or one of the runner's
 * arguments converted. */
typedef enum {
    F_NONE,         /* the event has no fields: it is the bare tag */
    F_ATOM,         /* the rule's constant atom; takes no argument */
    F_INT,          /* int -> integer */
    F_BOOL,         /* truth value -> true | false */
    F_BYTES,        /* bytes-like -> binary (response_bytes) */
    F_UTF8,         /* str -> binary of its UTF-8 */
    F_UTF8_OR_NONE, /* str -> binary, None -> undefined */
    F_HEADERS,      /* [(bytes, bytes)] -> [{Name, Value}] (response_raw_headers) */
} field_t;

/* emit(name, *args) -> Tag when the rule has no fields, else {Tag, F1, F2}.  An event
 * takes exactly nargs arguments after its name, or at least that many with at_least
 * ("start" is also given the trailers flag, which its event does not carry). */
typedef struct {
    const char *name;
    ERL_NIF_TERM *tag;
    Py_ssize_t nargs;
    int at_least;
    field_t fields[2];
    ERL_NIF_TERM *constant; /* for an F_ATOM field */
} event_rule_t;

static const event_rule_t EVENT_RULES[] = {
    {"body", &ATOM_body, 2, 0, {F_BYTES, F_BOOL}, NULL},
    {"start", &ATOM_start, 2, 1, {F_INT, F_HEADERS}, NULL},
    {"need_body", &ATOM_need_body, 0, 0, {F_NONE, F_NONE}, NULL},
    {"trailers", &ATOM_trailers, 2, 0, {F_HEADERS, F_BOOL}, NULL},
    /* ("text", str) -> {send, text, Utf8}; ("bytes", bytes) -> {send, binary, Bytes} */
    {"text", &ATOM_send, 1, 0, {F_ATOM, F_UTF8}, &ATOM_text},
    {"bytes", &ATOM_send, 1, 0, {F_ATOM, F_BYTES}, &ATOM_binary},
    /* ("accept", subprotocol | None, headers) -> {accept, Subprotocol | undefined, Headers} */
    {"accept", &ATOM_accept, 2, 0, {F_UTF8_OR_NONE, F_HEADERS}, NULL},
    /* ("close", code, reason) -> {close, Code, Reason} */
    {"close", &ATOM_close, 2, 0, {F_INT, F_UTF8}, NULL},
    {"pause_reading", &ATOM_pause_reading, 0, 0, {F_NONE, F_NONE}, NULL},
    {"resume_reading", &ATOM_resume_reading, 0, 0, {F_NONE, F_NONE}, NULL},
};

/* A str -> a binary of its UTF-8. */
static int
utf8_binary(ErlNifEnv *env, PyObject *obj, ERL_NIF_TERM *out)
{
    Py_ssize_t size;
    const char *text = PyUnicode_Check(obj) ? PyUnicode_AsUTF8AndSize(obj, &size) : NULL;
    if (text == NULL) {
        return -1;
    }
    memcpy(enif_make_new_binary(env, (size_t)size, out), text, (size_t)size);
    return 0;
}

static int
make_field(py_state_t *st, ErlNifEnv *env, field_t kind, PyObject *arg, ERL_NIF_TERM *out)
{
    int ok;
    switch (kind) {
    case F_INT: {
        long v = PyLong_Check(arg) ? PyLong_AsLong(arg) : -1;
        if (v == -1 && (!PyLong_Check(arg) || PyErr_Occurred())) {
            return -1;
        }
        *out = enif_make_long(env, v);
        return 0;
    }
    case F_BOOL:
        ok = PyObject_IsTrue(arg);
        *out = ok ? ATOM_true : ATOM_false;
        return ok < 0 ? -1 : 0;
    case F_BYTES:
        return response_bytes(st, env, arg, out);
    case F_UTF8_OR_NONE:
        if (arg == Py_None) {
            *out = ATOM_undefined;
            return 0;
        }
        return utf8_binary(env, arg, out);
    case F_UTF8:
        return utf8_binary(env, arg, out);
    case F_HEADERS:
        *out = response_raw_headers(st, env, arg, &ok);
        return ok ? 0 : -1;
    case F_NONE:
    case F_ATOM:
        break;
    }
    return -1;
}

/* The fields of rule r's event from the runner's arguments (args[0] is the name). */
static int
make_fields(job_t *job, const event_rule_t *r, PyObject *const *args, Py_ssize_t nargs,
            ERL_NIF_TERM elems[2])
{
    if (r->at_least ? nargs - 1 < r->nargs : nargs - 1 != r->nargs) {
        return -1;
    }
    Py_ssize_t next = 1;
    for (int i = 0; i < 2 && r->fields[0] != F_NONE; i++) {
        if (r->fields[i] == F_ATOM) {
            elems[i] = *r->constant;
        } else if (make_field(job->ip->st, job_event_env(job), r->fields[i], args[next++],
                              &elems[i]) < 0) {
            return -1;
        }
    }
    return 0;
}

static PyObject *
emit(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    job_t *job = job_from_capsule(self);
    if (job == NULL) {
        return NULL;
    }
    const char *name = nargs > 0 && PyUnicode_Check(args[0]) ? PyUnicode_AsUTF8(args[0]) : NULL;
    const event_rule_t *r = NULL;
    for (size_t i = 0; name != NULL && i < sizeof(EVENT_RULES) / sizeof(EVENT_RULES[0]); i++) {
        if (strcmp(name, EVENT_RULES[i].name) == 0) {
            r = &EVENT_RULES[i];
            break;
        }
    }
    ERL_NIF_TERM elems[2];
    if (r == NULL || make_fields(job, r, args, nargs, elems) < 0) {
        job_event_flush(job);
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_ValueError, "bad stream event");
        }
        return NULL;
    }
    if (r->fields[0] == F_NONE) {
        job_event_send(job, *r->tag);
    } else if (r->tag == &ATOM_start) {
        job_event_start(job, elems[0], elems[1]); /* may be held, see job_event_start */
    } else if (r->tag == &ATOM_body && elems[1] == ATOM_false) {
        /* the response's last event: may be held, see job_event_last */
        job_event_last(job, enif_make_tuple3(job_event_env(job), ATOM_body, elems[0], elems[1]));
    } else {
        job_event_send(job, enif_make_tuple3(job_event_env(job), *r->tag, elems[0], elems[1]));
    }
    Py_RETURN_NONE;
}

static PyMethodDef emit_def = {"emit", (PyCFunction)(void (*)(void))emit, METH_FASTCALL,
                               "Reports a response event to the Erlang owner of the stream."};


/* ---- the stream job --------------------------------------------------------------- */

static ERL_NIF_TERM
stream_done(py_state_t *st, job_t *job, PyObject *result)
{
    stream_state_t *ss = job->data;
    Py_CLEAR(ss->stream);
    if (result == NULL) {
        return errors_tuple(job->env, errors_take(st, job->env));
    }
    return ATOM_done;
}

/* The end of a stream run by the C exchange. */
static ERL_NIF_TERM
native_stream_done(py_state_t *st, job_t *job, PyObject *result)
{
    stream_state_t *ss = job->data;
    ERL_NIF_TERM reply = result == NULL ? errors_tuple(job->env, errors_take(st, job->env))
                                        : asgi_native_finish(st, job->env, ss->stream);
    Py_CLEAR(ss->stream);
    return reply;
}

/* An HTTP stream whose request body is whole, with the default runner: the C exchange
 * runs the app (the runner's protocol without its Python Stream).  Returns 1 when it
 * took the job (replied or running), 0 when the runner's Stream must serve it (trailers
 * offered, the native_runner option off, the runner's rules not loadable). */
static int
native_stream_run(job_t *job, worker_t *w, PyObject *app, PyObject *scope, PyObject *body)
{
    py_state_t *st = worker_state(w);
    stream_state_t *ss = job->data;
    if (ss->websocket || job->argv[ARG_MORE] != ATOM_false || !option_on(OPT_NATIVE_RUNNER) ||
        !appcache_is_runner(job->env, job->argv[ARG_RUNNER], "hornbeam_asgi_runner")) {
        return 0;
    }
    if (state_load_asgi_runner(st) < 0) {
        PyErr_Clear();
        return 0;
    }
    PyObject *exchange = asgi_native_stream(st, scope, body, job);
    if (exchange == Py_None) {
        Py_DECREF(exchange);
        return 0;
    }
    PyObject *coro = exchange != NULL ? asgi_native_call(st, app, scope, exchange) : NULL;
    if (coro == NULL) {
        Py_XDECREF(exchange);
        job_reply(job, errors_tuple(job->env, errors_take(st, job->env)));
        return 1;
    }
    ss->stream = exchange;
    Py_XDECREF(task_await(w, job, coro, native_stream_done));
    Py_DECREF(coro);
    return 1;
}

static void
stream_run(job_t *job, worker_t *w)
{
    py_state_t *st = worker_state(w);
    ErlNifEnv *env = job->env;
    stream_state_t *ss = job->data;
    PyObject *app = NULL, *fn = NULL, *cls = NULL, *unused = NULL;
    PyObject *emit_fn = NULL, *body = NULL, *scope = NULL, *coro = NULL;
    ERL_NIF_TERM why = 0;

    const char *entry = ss->websocket ? "stream_websocket" : "stream_asgi";
    if (appcache_resolve(st, env, job->argv[ARG_MODULE], job->argv[ARG_CALLABLE],
                         job->argv[ARG_RUNNER], entry, &app, &fn, &why) < 0) {
        job_reply(job, errors_tuple(env, why));
        goto out;
    }
    ErlNifBinary bin;
    enif_inspect_binary(env, job->argv[ARG_BODY], &bin);
    body = PyBytes_FromStringAndSize((const char *)bin.data, (Py_ssize_t)bin.size);
    scope = body != NULL ? scope_build(st, env, job->argv[ARG_SCOPE], &why) : NULL;
    if (scope == NULL) {
        job_reply(job, why != 0 ? errors_tuple(env, enif_make_tuple2(env, ATOM_badarg, why))
                                : errors_tuple(env, errors_take(st, env)));
        goto out;
    }
    if (!native_stream_run(job, w, app, scope, body)) {
        /* the runner's Stream (or WebSocketStream) and its stream_asgi (stream_websocket) */
        const char *class_name = ss->websocket ? "WebSocketStream" : "Stream";
        if (appcache_resolve(st, env, job->argv[ARG_MODULE], job->argv[ARG_CALLABLE],
                             job->argv[ARG_RUNNER], class_name, &unused, &cls, &why) < 0) {
            job_reply(job, errors_tuple(env, why));
            goto out;
        }
        emit_fn = job_callable(job, &emit_def);
        if (emit_fn != NULL && ss->websocket) {
            ss->stream = PyObject_CallOneArg(cls, emit_fn);
        } else if (emit_fn != NULL) {
            ss->stream = PyObject_CallFunctionObjArgs(
                cls, emit_fn, body, job->argv[ARG_MORE] == ATOM_true ? Py_True : Py_False, NULL);
        }
        coro = ss->stream != NULL
            ? PyObject_CallFunctionObjArgs(fn, app, scope, ss->stream, NULL) : NULL;
        if (coro == NULL) {
            Py_CLEAR(ss->stream);
            job_reply(job, errors_tuple(env, errors_take(st, env)));
            goto out;
        }
        Py_XDECREF(task_await(w, job, coro, stream_done));
    }
    /* A start is held during the app's first step only (the start option `coalesce'):
     * sent with the event after it, or now that the app waits for something. */
    job->coalesce = 0;
    job_event_flush(job);
out:
    Py_XDECREF(coro);
    Py_XDECREF(scope);
    Py_XDECREF(body);
    Py_XDECREF(emit_fn);
    Py_XDECREF(cls);
    Py_XDECREF(unused);
    Py_XDECREF(fn);
    Py_XDECREF(app);
    PyErr_Clear();
}

/* ---- follow-ups: body chunks, acks, disconnect ------------------------------------ */

/* The stream's Python object, or NULL once the app has finished. */
static PyObject *
live_stream(job_t *followup)
{
    job_t *target = followup->data;
    stream_state_t *ss = target->data;
    return ss->stream;
}

static void
call_method(PyObject *obj, PyObject *name, PyObject *arg1, PyObject *arg2)
{
    PyObject *r = PyObject_CallMethodObjArgs(obj, name, arg1, arg2, NULL);
    if (r == NULL) {
        PyErr_WriteUnraisable(obj);
    }
    Py_XDECREF(r);
}

static void
feed_run(job_t *f, worker_t *w)
{
    PyObject *stream = live_stream(f);
    if (stream == NULL) {
        return;
    }
    ErlNifBinary bin;
    enif_inspect_binary(f->env, f->argv[0], &bin);
    PyObject *chunk = PyBytes_FromStringAndSize((const char *)bin.data, (Py_ssize_t)bin.size);
    if (chunk == NULL) {
        PyErr_WriteUnraisable(stream);
        return;
    }
    call_method(stream, w->st->s_feed, chunk, f->argv[1] == ATOM_true ? Py_True : Py_False);
    Py_DECREF(chunk);
}

static void
ack_run(job_t *f, worker_t *w)
{
    PyObject *stream = live_stream(f);
    ErlNifUInt64 n;
    if (stream == NULL || !enif_get_uint64(f->env, f->argv[0], &n)) {
        return;
    }
    PyObject *count = PyLong_FromUnsignedLongLong(n);
    if (count != NULL) {
        call_method(stream, w->st->s_ack, count, NULL);
        Py_DECREF(count);
    }
}

static void
disconnect_run(job_t *f, worker_t *w)
{
    PyObject *stream = live_stream(f);
    if (stream != NULL) {
        call_method(stream, w->st->s_disconnect, NULL, NULL);
    }
}

/* argv: text | binary, Data: stream.message(str | bytes) (websocket.receive). */
static void
ws_message_run(job_t *f, worker_t *w)
{
    PyObject *stream = live_stream(f);
    if (stream == NULL) {
        return;
    }
    ErlNifBinary bin;
    enif_inspect_binary(f->env, f->argv[1], &bin);
    PyObject *data = f->argv[0] == ATOM_text
        ? PyUnicode_DecodeUTF8((const char *)bin.data, (Py_ssize_t)bin.size, "replace")
        : PyBytes_FromStringAndSize((const char *)bin.data, (Py_ssize_t)bin.size);
    if (data == NULL) {
        PyErr_WriteUnraisable(stream);
        return;
    }
    call_method(stream, w->st->s_message, data, NULL);
    Py_DECREF(data);
}

/* argv: Code, Reason: stream.disconnect(code, reason) (websocket.disconnect). */
static void
ws_disconnect_run(job_t *f, worker_t *w)
{
    PyObject *stream = live_stream(f);
    ErlNifBinary bin;
    int code;
    if (stream == NULL || !enif_get_int(f->env, f->argv[0], &code) ||
        !enif_inspect_binary(f->env, f->argv[1], &bin)) {
        return;
    }
    PyObject *c = PyLong_FromLong(code);
    PyObject *reason = c != NULL
        ? PyUnicode_DecodeUTF8((const char *)bin.data, (Py_ssize_t)bin.size, "replace") : NULL;
    if (reason == NULL) {
        PyErr_WriteUnraisable(stream);
    } else {
        call_method(stream, w->st->s_disconnect, c, reason);
    }
    Py_XDECREF(reason);
    Py_XDECREF(c);
}

static int
submit_followup(job_t *target, job_run_fn run, ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
    job_t *f = job_new_followup(run, target);
    if (f == NULL) {
        return -1;
    }
    for (int i = 0; i < argc; i++) {
        f->argv[i] = enif_make_copy(f->env, argv[i]);
    }
    f->argc = argc;
    int rc = pool_submit_to(target->worker, f);
    enif_release_resource(f);
    return rc;
}

/* The owner died: the app's receive() returns http.disconnect. */
static void
stream_owner_down(job_t *job)
{
    submit_followup(job, disconnect_run, NULL, 0, NULL);
}

/* ---- NIFs ------------------------------------------------------------------------- */

ERL_NIF_TERM
asgi_stream_start(ErlNifEnv *env, const ERL_NIF_TERM argv[])
{
    ERL_NIF_TERM err = appcache_check_names(env, argv);
    if (err == 0) {
        err = job_check_stream_body(env, argv[ARG_BODY], argv[ARG_MORE]);
    }
    if (err != 0) {
        return err;
    }
    ERL_NIF_TERM bad;
    int kind = scope_check(env, argv[ARG_SCOPE], &bad);
    if (kind < 0) {
        return errors_tuple(env, enif_make_tuple2(env, ATOM_bad_scope, bad));
    }
    stream_state_t *ss = enif_alloc(sizeof(*ss));
    job_t *job = ss != NULL ? job_new(env, stream_run, ATOM_asgi, START_ARGC, argv) : NULL;
    if (job == NULL) {
        enif_free(ss);
        return enif_raise_exception(env, enif_make_atom(env, "enomem"));
    }
    ss->stream = NULL;
    ss->websocket = kind == SCOPE_WEBSOCKET;
    job->coalesce = argv[ARG_COALESCE] == ATOM_true;
    job->data = ss;
    job->free_data = stream_state_free;
    if (job_make_stream(env, job, ATOM_asgi, stream_owner_down) < 0) {
        enif_release_resource(job);
        return enif_raise_exception(env, enif_make_atom(env, "enomem"));
    }
    /* A stream lives on one worker's loop: chosen now, so that follow-ups sent before
     * the app starts are queued behind the start. */
    return pool_submit_new(env, job, pool_pick_worker(), DEADLINE_NONE);
}

/* The stream job behind term, of the kind asked (websocket 0 or 1; -1: either), or NULL. */
static job_t *
stream_job(ErlNifEnv *env, ERL_NIF_TERM term, int websocket)
{
    job_t *job;
    if (!enif_get_resource(env, term, JOB_RESOURCE, (void **)&job) || job->kind != ATOM_asgi ||
        (websocket >= 0 && ((stream_state_t *)job->data)->websocket != websocket)) {
        return NULL;
    }
    return job;
}

ERL_NIF_TERM
asgi_stream_send_body(ErlNifEnv *env, const ERL_NIF_TERM argv[])
{
    job_t *job = stream_job(env, argv[0], 0);
    if (job == NULL || !enif_is_binary(env, argv[1]) ||
        (argv[2] != ATOM_true && argv[2] != ATOM_false)) {
        return enif_make_badarg(env);
    }
    submit_followup(job, feed_run, env, 2, argv + 1);
    return ATOM_ok;
}

ERL_NIF_TERM
asgi_stream_ack(ErlNifEnv *env, const ERL_NIF_TERM argv[])
{
    job_t *job = stream_job(env, argv[0], -1);
    ErlNifUInt64 n;
    if (job == NULL || !enif_get_uint64(env, argv[1], &n)) {
        return enif_make_badarg(env);
    }
    submit_followup(job, ack_run, env, 1, argv + 1);
    return ATOM_ok;
}

ERL_NIF_TERM
asgi_stream_disconnect(ErlNifEnv *env, const ERL_NIF_TERM argv[])
{
    job_t *job = stream_job(env, argv[0], -1);
    if (job == NULL) {
        return enif_make_badarg(env);
    }
    submit_followup(job, disconnect_run, env, 0, NULL);
    return ATOM_ok;
}

ERL_NIF_TERM
asgi_stream_ws_receive(ErlNifEnv *env, const ERL_NIF_TERM argv[])
{
    job_t *job = stream_job(env, argv[0], 1);
    if (job == NULL || (argv[1] != ATOM_text && argv[1] != ATOM_binary) ||
        !enif_is_binary(env, argv[2])) {
        return enif_make_badarg(env);
    }
    submit_followup(job, ws_message_run, env, 2, argv + 1);
    return ATOM_ok;
}

ERL_NIF_TERM
asgi_stream_ws_disconnect(ErlNifEnv *env, const ERL_NIF_TERM argv[])
{
    job_t *job = stream_job(env, argv[0], 1);
    int code;
    if (job == NULL || !enif_get_int(env, argv[1], &code) || !enif_is_binary(env, argv[2])) {
        return enif_make_badarg(env);
    }
    submit_followup(job, ws_disconnect_run, env, 2, argv + 1);
    return ATOM_ok;
}
