/* Log records for the Erlang logger: {py_log, Level, Message} sent to the registered
 * py_runtime process, which hands them to `logger`. */
#ifndef PY_NIF_LOG_H
#define PY_NIF_LOG_H

#include <erl_nif.h>
#include <stddef.h>

/* Sends `msg` (UTF-8, `len` bytes) at `level` (ATOM_debug/info/warning/error).  Any
 * thread.  Dropped silently when the py_runtime process is not running.  Returns 0, or
 * -1 when out of memory. */
int log_send(ERL_NIF_TERM level, const char *msg, size_t len);

#endif
