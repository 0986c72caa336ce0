/* Which Python the NIF embeds, as the Erlang side resolved it at run time (py_python):
 * the interpreter's home (sys.base_prefix, or $PYTHONHOME) and executable, given in
 * erlang:load_nif/2's load_info, and the libpython file actually loaded.  Nothing here
 * comes from the build machine. */
#ifndef PY_NIF_PYHOME_H
#define PY_NIF_PYHOME_H

#include <erl_nif.h>

/* At NIF load, on the loading scheduler: copies `home' and `executable' (binaries) from
 * the load_info map (the first load that gives them wins: the values are read by the
 * interpreter's initialisation, once per VM).  A load_info that is not a map leaves both unset.  Returns 0, or -1
 * when a value is not a binary of a sane length. */
int pyhome_load(ErlNifEnv *env, ERL_NIF_TERM load_info);

/* NUL-terminated, or NULL when not given (Python then computes its paths itself, from
 * the prefix compiled into libpython). */
const char *pyhome_home(void);
const char *pyhome_executable(void);

/* The path of the libpython that provides the Python API to this process ("" if unknown). */
const char *pyhome_libpython(void);

#endif
