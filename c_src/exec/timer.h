/* Erlang timers for Python (erlang_asyncio.sleep): _erlang.schedule_timer(delay_ms, cb)
 * asks the py_runtime process for an erlang:send_after; when it fires, py_nif:timer_fire
 * queues the callback to the worker whose loop scheduled it.  The worker thread never
 * blocks while waiting. */
#ifndef PY_NIF_TIMER_H
#define PY_NIF_TIMER_H

#include <Python.h>
#include <erl_nif.h>

/* _erlang.schedule_timer(delay_ms: int, callback) -> int handle; worker threads only. */
PyObject *timer_schedule(PyObject *self, PyObject *const *args, Py_ssize_t nargs);

/* _erlang.cancel_timer(handle) -> None; a fired or unknown handle is ignored. */
PyObject *timer_cancel(PyObject *self, PyObject *handle);

/* NIF timer_fire(WorkerIndex, TimerId): queues the callback's run on that worker. */
ERL_NIF_TERM timer_fire(ErlNifEnv *env, const ERL_NIF_TERM argv[]);

#endif
