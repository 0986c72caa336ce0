#include "core/atoms.h"

#define PY_NIF_DEFINE_ATOM(name) ERL_NIF_TERM ATOM_##name;
PY_NIF_ATOMS(PY_NIF_DEFINE_ATOM)
#undef PY_NIF_DEFINE_ATOM

void
atoms_init(ErlNifEnv *env)
{
#define PY_NIF_MAKE_ATOM(name) ATOM_##name = enif_make_atom(env, #name);
    PY_NIF_ATOMS(PY_NIF_MAKE_ATOM)
#undef PY_NIF_MAKE_ATOM
}
