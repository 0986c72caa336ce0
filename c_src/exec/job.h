/* A job: one unit of work handed from a NIF call (scheduler thread) to a Python worker.
 *
 * A job is an Erlang resource.  References: the creating NIF call holds one until it has
 * returned the resource term to the caller (the term keeps the object alive as long as the
 * caller holds it), and the queue holds one from enqueue until the worker is done with it.
 *
 * The job owns `env`, a process-independent environment holding copies of the arguments;
 * the reply is built in that same environment and sent with enif_send, after which the
 * environment, empty again, goes back to the pool of envpool.h.  `state` decides, with one compare-and-swap, whether the reply is
 * sent (worker wins) or dropped (the caller's timeout wins): no late reply ever reaches a
 * caller that gave up waiting. */
#ifndef PY_NIF_JOB_H
#define PY_NIF_JOB_H

#include <Python.h>
#include <erl_nif.h>
#include <stdint.h>

struct worker;
struct interp;

typedef enum { JOB_PENDING = 0, JOB_CANCELLED = 1, JOB_REPLIED = 2 } job_state_t;

#define JOB_MAX_ARGS 8

typedef struct job job_t;
typedef void (*job_run_fn)(job_t *job, struct worker *w);

struct job {
    job_t *next;             /* queue link, owned by the queue */
    job_run_fn run;          /* called on a worker thread with the GIL held */
    int sync;                /* runs plain (blocking) Python: the worker's loop is not
                                the running loop meanwhile, so that the code may run
                                event loops of its own (asyncio.run, async_to_sync) */
    int state;               /* job_state_t, accessed atomically */
    int abandoned;           /* its caller gave it up (timeout, disconnect, owner died)
                                while it may still run: set by pool_abandon, atomic */
    ErlNifEnv *env;          /* arguments, then the reply; NULL once sent */
    ErlNifPid caller;
    ERL_NIF_TERM tag;        /* the caller's reply tag, in env */
    int argc;
    ERL_NIF_TERM argv[JOB_MAX_ARGS];
    void *data;              /* kind-specific state, freed by `free_data(job)` (any
                                thread, no GIL: Python references go through
                                release_later on job->ip) */
    void (*free_data)(job_t *job);
    int worker;              /* index of the worker running it, -1 until it runs */
    struct interp *ip;       /* the interpreter it runs in, NULL until it runs */
    PyObject *task;          /* the asyncio task awaiting it, if any (GIL held) */
    /* Streams: messages are {Kind, Job, Event} with Kind the atom asgi or wsgi (0 for
     * plain calls, whose one reply is {Tag, Reply}).  A stream monitors its owner;
     * `on_down` runs (on a scheduler, no GIL) if the owner dies. */
    ERL_NIF_TERM kind;
    ErlNifEnv *event_env;    /* scratch for events, used by the job's worker only */
    /* Coalescing, while `coalesce' (the app's first step): a start event is held in
     * event_env (job_event_start: HELD_START, its status and headers) and goes out with
     * the next event as {start, Status, Headers, Next}; a response's last event is held
     * (job_event_last: HELD_LAST, held_event) and goes out with what comes next, the
     * stream's end as a rule, as {then, Last, Next}.  One message, one wake-up of the
     * owner, where there would be two. */
    int coalesce;
    enum { HELD_NONE = 0, HELD_START, HELD_LAST } held;
    ERL_NIF_TERM held_status, held_headers, held_event;
    ErlNifMonitor monitor;
    int monitoring;
    void (*on_down)(job_t *job);
    /* deadline.c: when the call times out (monotonic ns), the deadline list the job is
     * in (index + 1; 0 when in none), and its links in that list. */
    uint64_t deadline;
    int lane;
    job_t *lane_prev, *lane_next;
    /* exec/fanout.h: a parent's parts are in its data; a part knows its parent (a
     * reference, kept) and its place among the parts.  `silent`: a job whose reply goes
     * nowhere (follow-ups). */
    struct job *parent;
    int part_index;
    int is_fanout;
    int silent;
    /* job_new_extra's bytes, owned by the job (part of its allocation). */
    _Alignas(8) unsigned char extra[];   /* resources are 8-byte aligned */
};

extern ErlNifResourceType *JOB_RESOURCE;

int job_resource_init(ErlNifEnv *env);

/* Allocates a job whose arguments are copies of argv[0..argc) and whose reply goes to the
 * calling process tagged with `tag`.  Returns NULL on allocation failure. */
job_t *job_new(ErlNifEnv *env, job_run_fn run, ERL_NIF_TERM tag, int argc,
               const ERL_NIF_TERM argv[]);

/* job_new with `extra` more bytes at job->extra, uninitialised, for a request packed on
 * the scheduler (no second allocation). */
job_t *job_new_extra(ErlNifEnv *env, job_run_fn run, ERL_NIF_TERM tag, int argc,
                     const ERL_NIF_TERM argv[], size_t extra);

/* Makes the job a stream of kind `kind` (asgi | wsgi) that monitors its owner (the
 * calling process of `env`).  Returns 0 or -1. */
int job_make_stream(ErlNifEnv *env, job_t *job, ERL_NIF_TERM kind, void (*on_down)(job_t *));

/* Scheduler side, for stream starts: body a binary and more_body a boolean.  Returns 0,
 * or an {error, {badarg, {body | more_body, Term}}} term. */
ERL_NIF_TERM job_check_stream_body(ErlNifEnv *env, ERL_NIF_TERM body, ERL_NIF_TERM more);

/* A stream event: build the term in job_event_env(job), then job_event_send sends
 * {Kind, Job, Event} and clears the env (a held event goes with it: {Kind, Job, {start,
 * Status, Headers, Event}} or {Kind, Job, {then, Last, Event}}).  The job's worker thread
 * only. */
ErlNifEnv *job_event_env(job_t *job);
void job_event_send(job_t *job, ERL_NIF_TERM event);

/* The start event {start, Status, Headers} (terms in job_event_env(job)): sent now, or,
 * while job->coalesce, held for the next event. */
void job_event_start(job_t *job, ERL_NIF_TERM status, ERL_NIF_TERM headers);

/* The last event of a response (its final body): sent now, or, while job->coalesce,
 * held for what comes next, the stream's end (job_reply) as a rule. */
void job_event_last(job_t *job, ERL_NIF_TERM event);

/* Sends a held event on its own (when holding ends); clears the event env either way.
 * Every path that clears the event env must call this instead. */
void job_event_flush(job_t *job);

/* A Python builtin bound to the job (kept alive by it): `def`'s function receives a
 * capsule named "py_nif.job" whose pointer is the job (job_from_capsule).  GIL held. */
PyObject *job_callable(job_t *job, PyMethodDef *def);
job_t *job_from_capsule(PyObject *capsule);

/* A job that answers nobody (follow-ups such as a stream's body chunks): it holds a
 * reference to `target` (may be NULL) in `data` for its run function, released with the
 * job. */
job_t *job_new_followup(job_run_fn run, job_t *target);

/* Sends {Tag, Reply} (streams: {Kind, Job, Reply}, after a held start, or as {Kind,
 * Job, {then, Last, Reply}} with a held last event) to the caller unless the job was
 * cancelled, then frees job->env (a cancelled job keeps it until it is freed: the
 * canceller may still read the tag).  `reply` must live in job->env.  Safe to call once
 * per job; later calls do nothing. */
void job_reply(job_t *job, ERL_NIF_TERM reply);

/* Marks the job cancelled.  Returns 1 if it was still pending (no reply will be sent),
 * 0 if the reply was already sent or is being sent. */
int job_cancel(job_t *job);

int job_is_cancelled(job_t *job);

/* 1 once pool_abandon (exec/pool.h) marked the job given up by its caller. */
int job_is_abandoned(job_t *job);

/* 1 while neither a reply nor a cancellation has happened. */
int job_is_pending(job_t *job);

#endif
