/* Atoms used by the NIF, created once at load (atoms are VM-global and never freed). */
#ifndef PY_NIF_ATOMS_H
#define PY_NIF_ATOMS_H

#include <erl_nif.h>

#define PY_NIF_ATOMS(X) \
    X(ok) X(error) X(true) X(false) X(undefined) X(none) X(nil) \
    X(python) X(badarg) X(unconvertible) X(not_started) X(already_started) \
    X(timeout) X(bytes) X(nan) X(inf) X(neg_inf) \
    X(too_deep) X(improper_list) X(invalid_utf8) X(unhashable_key) X(bad_term) \
    X(workers) X(paths) X(venv) X(python_version) X(build_python_version) \
    X(libpython) X(running) X(mode) X(gil) X(queued) \
    X(module) X(function) X(args) X(kwargs) X(bad_environ) X(bad_scope) \
    X(bad_response) X(start) X(then) X(body) X(done) X(need_body) X(trailers) \
    X(wsgi) X(asgi) \
    X(interned_keys) X(cached_constants) X(direct_response) X(app_cache) \
    X(header_cache) X(zero_copy) X(native_runner) X(infinity) \
    X(debug) X(info) X(warning) \
    X(py_runtime) X(py_log) X(py_timer) X(bad_runner) \
    X(type) X(http_version) X(method) X(scheme) X(path) X(raw_path) X(query_string) \
    X(root_path) X(headers) X(server) X(client) X(state) X(extensions) X(generic) \
    X(subinterpreters) X(free_threaded) X(interpreters) X(refused) X(id) X(main) \
    X(loop) X(loops) X(asyncio) X(uvloop) X(auto) \
    X(threads) X(idle) X(py_refused) X(callable) X(runner) X(subinterpreters_supported) X(free_threaded_build) \
    X(subprotocols) X(accept) X(send) X(text) X(binary) X(close) X(pause_reading) \
    X(resume_reading) X(spare_workers) X(spares_running)

#define PY_NIF_DECLARE_ATOM(name) extern ERL_NIF_TERM ATOM_##name;
PY_NIF_ATOMS(PY_NIF_DECLARE_ATOM)
#undef PY_NIF_DECLARE_ATOM

void atoms_init(ErlNifEnv *env);

#endif
