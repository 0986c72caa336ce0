/* Direct extraction of response parts into Erlang terms (WSGI and ASGI): each function
 * copies the bytes once, into a new binary.  GIL of `st`'s interpreter held. */
#ifndef PY_NIF_RESPONSE_H
#define PY_NIF_RESPONSE_H

#include "core/state.h"

#include <Python.h>
#include <erl_nif.h>

/* Bodies at least this large are returned without a copy when the zero_copy option is on:
 * the binary's memory is the Python bytes object's own buffer, kept alive by a resource
 * that holds the bytes object until the binary is garbage collected. */
#define ZERO_COPY_MIN 4096

/* Opens the resource type behind zero-copy binaries; at NIF load. Returns 0 or -1. */
int response_init(ErlNifEnv *env);

/* A str whose code points are all <= 255 -> its latin-1 bytes.  Returns 0, or -1 when obj
 * is not such a str (no exception left set). */
int response_latin1(ErlNifEnv *env, PyObject *obj, ERL_NIF_TERM *out);

/* A bytes-like object -> a binary (bytes of ZERO_COPY_MIN or more: no copy, see above).
 * Returns 0, or -1 when obj is not bytes-like. */
int response_bytes(py_state_t *st, ErlNifEnv *env, PyObject *obj, ERL_NIF_TERM *out);

/* A bytes-like object, or a list/tuple of them -> one binary (the chunks concatenated with
 * a single copy).  Returns 0, or -1 when obj or a chunk is not bytes-like. */
int response_body(py_state_t *st, ErlNifEnv *env, PyObject *obj, ERL_NIF_TERM *out);

/* A list of (bytes, bytes) pairs (tuples or lists) -> [{Name, Value}].  Sets *ok to 1, or
 * to 0 and returns a {bad_response, _} reason. */
ERL_NIF_TERM response_raw_headers(py_state_t *st, ErlNifEnv *env, PyObject *headers, int *ok);

/* {bad_response, Text} */
ERL_NIF_TERM response_error(ErlNifEnv *env, const char *text);

#endif
