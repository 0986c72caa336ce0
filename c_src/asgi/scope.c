#include "asgi/scope.h"

#include "asgi/lifespan.h"
#include "asgi/scope_tables.h"
#include "core/atoms.h"
#include "core/options.h"
#include "core/release.h"
#include "terms/convert.h"

#include <string.h>

/* Short names for the table's indexes (S_TYPE, S_PATH, ...). */
#define SHORT_NAME(name, atom, text) S_##name = SCOPE_K_##name,
enum { SCOPE_KEYS(SHORT_NAME) };
#undef SHORT_NAME

#define KEY_TEXT(name, atom, text) text,
static const char *const key_text[N_SCOPE_KEYS] = {SCOPE_KEYS(KEY_TEXT)};
#undef KEY_TEXT
#define TEXT(text) text,
static const char *const const_text[N_SCOPE_CONSTS] = {SCOPE_CONSTS(TEXT)};
static const char *const header_text[N_SCOPE_HEADERS] = {SCOPE_HEADERS(TEXT)};
#undef TEXT
#define CONST_MAX_LEN 9

/* C-side tables (no Python), filled at NIF load. */
static struct {
    ERL_NIF_TERM atoms[N_SCOPE_KEYS];
    size_t const_len[N_SCOPE_CONSTS];
    size_t header_len[N_SCOPE_HEADERS];
} S;

void
scope_load(void)
{
#define KEY_ATOM(name, atom, text) S.atoms[S_##name] = ATOM_##atom;
    SCOPE_KEYS(KEY_ATOM)
#undef KEY_ATOM
    for (int i = 0; i < N_SCOPE_CONSTS; i++) {
        S.const_len[i] = strlen(const_text[i]);
    }
    for (int i = 0; i < N_SCOPE_HEADERS; i++) {
        S.header_len[i] = strlen(header_text[i]);
    }
}

/* ---- validation (scheduler) ------------------------------------------------------- */

static int
key_index(ERL_NIF_TERM key)
{
    for (int i = 0; i < N_SCOPE_KEYS; i++) {
        if (S.atoms[i] == key) {
            return i;
        }
    }
    return -1;
}

static int
valid_header(ErlNifEnv *env, ERL_NIF_TERM h)
{
    int arity;
    const ERL_NIF_TERM *e;
    ERL_NIF_TERM name, value, tail;
    if (enif_get_tuple(env, h, &arity, &e)) {
        return arity == 2 && enif_is_binary(env, e[0]) && enif_is_binary(env, e[1]);
    }
    return enif_get_list_cell(env, h, &name, &tail) && enif_is_binary(env, name) &&
           enif_get_list_cell(env, tail, &value, &tail) && enif_is_binary(env, value) &&
           enif_is_empty_list(env, tail);
}

static int
valid_address(ErlNifEnv *env, ERL_NIF_TERM v)
{
    int arity, port;
    const ERL_NIF_TERM *e;
    if (v == ATOM_undefined || v == ATOM_none) {
        return 1;
    }
    return enif_get_tuple(env, v, &arity, &e) && arity == 2 && enif_is_binary(env, e[0]) &&
           enif_get_int(env, e[1], &port);
}

static int
binary_list(ErlNifEnv *env, ERL_NIF_TERM v)
{
    ERL_NIF_TERM head, tail = v;
    while (enif_get_list_cell(env, tail, &head, &tail)) {
        if (!enif_is_binary(env, head)) {
            return 0;
        }
    }
    return enif_is_empty_list(env, tail);
}

static int
is_websocket_type(ErlNifEnv *env, ERL_NIF_TERM type)
{
    ErlNifBinary bin;
    return enif_inspect_binary(env, type, &bin) && bin.size == 9 &&
           memcmp(bin.data, "websocket", 9) == 0;
}

static int
valid_value(ErlNifEnv *env, int index, ERL_NIF_TERM v)
{
    ERL_NIF_TERM head, tail;
    switch (index) {
    case S_SUBPROTOCOLS:
        return binary_list(env, v);
    case S_STATE:
        return enif_is_map(env, v) || lifespan_is_ref(env, v);
    case S_ASGI:
    case S_EXTENSIONS:
        return enif_is_map(env, v);
    case S_HEADERS:
        if (!enif_is_list(env, v)) {
            return 0;
        }
        tail = v;
        while (enif_get_list_cell(env, tail, &head, &tail)) {
            if (!valid_header(env, head)) {
                return 0;
            }
        }
        return enif_is_empty_list(env, tail);
    case S_SERVER:
    case S_CLIENT:
        return valid_address(env, v);
    default:
        return enif_is_binary(env, v);
    }
}

/* A map's kind, or -1 with *bad set.  A websocket scope has no `method' and an HTTP one
 * no `subprotocols' (the ASGI spec's field sets). */
static int
validate_map(ErlNifEnv *env, ERL_NIF_TERM scope, ERL_NIF_TERM *bad)
{
    if (!enif_is_map(env, scope)) {
        *bad = scope;
        return -1;
    }
    ErlNifMapIterator it;
    ERL_NIF_TERM k, v, type = 0;
    unsigned seen = 0;
    int rc = 0;
    enif_map_iterator_create(env, scope, &it, ERL_NIF_MAP_ITERATOR_FIRST);
    while (enif_map_iterator_get_pair(env, &it, &k, &v)) {
        int index = key_index(k);
        if (index < 0 || !valid_value(env, index, v)) {
            *bad = k;
            rc = -1;
            break;
        }
        seen |= 1u << index;
        type = index == S_TYPE ? v : type;
        enif_map_iterator_next(env, &it);
    }
    enif_map_iterator_destroy(env, &it);
    if (rc < 0) {
        return -1;
    }
    int websocket = type != 0 && is_websocket_type(env, type);
    int refused = websocket ? S_METHOD : S_SUBPROTOCOLS;
    *bad = !(seen & (1u << S_TYPE)) ? ATOM_type
         : !(seen & (1u << S_PATH)) ? ATOM_path
         : (seen & (1u << refused)) ? S.atoms[refused] : 0;
    return *bad != 0 ? -1 : websocket ? SCOPE_WEBSOCKET : SCOPE_HTTP;
}

/* ---- building (worker, GIL held) -------------------------------------------------- */

static PyObject *
text_value(py_state_t *st, const ErlNifBinary *bin)
{
    if (bin->size <= CONST_MAX_LEN && option_on(OPT_CACHED_CONSTANTS)) {
        for (int i = 0; i < N_SCOPE_CONSTS; i++) {
            if (S.const_len[i] == bin->size && memcmp(const_text[i], bin->data, bin->size) == 0) {
                return Py_NewRef(st->scope_consts[i]);
            }
        }
    }
    return PyUnicode_DecodeUTF8((const char *)bin->data, (Py_ssize_t)bin->size, "replace");
}

static int
hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* The request path as received -> str: %XX sequences decoded, then UTF-8 (invalid
 * sequences replaced, as urllib.parse.unquote does). */
static PyObject *
decoded_path(py_state_t *st, const ErlNifBinary *bin)
{
    const unsigned char *src = bin->data;
    if (memchr(src, '%', bin->size) == NULL) {
        return text_value(st, bin);
    }
    char stackbuf[512] = {0}; /* zeroed: quiets a false -Wmaybe-uninitialized */
    char *buf = bin->size <= sizeof(stackbuf) ? stackbuf : PyMem_Malloc(bin->size);
    if (buf == NULL) {
        return PyErr_NoMemory();
    }
    size_t n = 0;
    for (size_t i = 0; i < bin->size; i++) {
        int hi, lo;
        if (src[i] == '%' && i + 2 < bin->size && (hi = hexval(src[i + 1])) >= 0 &&
            (lo = hexval(src[i + 2])) >= 0) {
            buf[n++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            buf[n++] = (char)src[i];
        }
    }
    PyObject *s = PyUnicode_DecodeUTF8(buf, (Py_ssize_t)n, "replace");
    if (buf != stackbuf) {
        PyMem_Free(buf);
    }
    return s;
}

static PyObject *
bytes_value(py_state_t *st, const ErlNifBinary *bin)
{
    if (bin->size == 0) {
        return Py_NewRef(st->empty_bytes);
    }
    return PyBytes_FromStringAndSize((const char *)bin->data, (Py_ssize_t)bin->size);
}

/* A header name as lower-case bytes, shared when it is a common one. */
static PyObject *
header_name(py_state_t *st, const ErlNifBinary *bin)
{
    char stackbuf[256];
    const unsigned char *src = bin->data;
    size_t n = bin->size;
    int has_upper = 0;
    for (size_t i = 0; i < n; i++) {
        if (src[i] >= 'A' && src[i] <= 'Z') {
            has_upper = 1;
            break;
        }
    }
    const char *name = (const char *)src;
    char *heap = NULL;
    if (has_upper) {
        char *buf = n <= sizeof(stackbuf) ? stackbuf : (heap = PyMem_Malloc(n));
        if (buf == NULL) {
            return PyErr_NoMemory();
        }
        for (size_t i = 0; i < n; i++) {
            buf[i] = (src[i] >= 'A' && src[i] <= 'Z') ? (char)(src[i] + 32) : (char)src[i];
        }
        name = buf;
    }
    PyObject *out = NULL;
    if (option_on(OPT_HEADER_CACHE)) {
        for (int i = 0; i < N_SCOPE_HEADERS; i++) {
            if (S.header_len[i] == n && memcmp(header_text[i], name, n) == 0) {
                out = Py_NewRef(st->scope_headers[i]);
                break;
            }
        }
    }
    if (out == NULL) {
        out = PyBytes_FromStringAndSize(name, (Py_ssize_t)n);
    }
    PyMem_Free(heap);
    return out;
}

static PyObject *
headers_value(py_state_t *st, ErlNifEnv *env, ERL_NIF_TERM list)
{
    unsigned len;
    enif_get_list_length(env, list, &len);
    PyObject *out = PyList_New(len);
    ERL_NIF_TERM head, tail = list;
    for (unsigned i = 0; out != NULL && i < len; i++) {
        enif_get_list_cell(env, tail, &head, &tail);
        ERL_NIF_TERM name_t, value_t, rest;
        int arity;
        const ERL_NIF_TERM *e;
        if (enif_get_tuple(env, head, &arity, &e)) {
            name_t = e[0];
            value_t = e[1];
        } else {
            enif_get_list_cell(env, head, &name_t, &rest);
            enif_get_list_cell(env, rest, &value_t, &rest);
        }
        ErlNifBinary name, value;
        enif_inspect_binary(env, name_t, &name);
        enif_inspect_binary(env, value_t, &value);
        PyObject *n = header_name(st, &name);
        PyObject *v = n != NULL ? bytes_value(st, &value) : NULL;
        PyObject *pair = v != NULL ? PyTuple_Pack(2, n, v) : NULL;
        Py_XDECREF(n);
        Py_XDECREF(v);
        if (pair == NULL) {
            Py_CLEAR(out);
            break;
        }
        PyList_SET_ITEM(out, i, pair);
    }
    return out;
}

/* The subprotocols the client offered, as a list of str. */
static PyObject *
subprotocols_value(ErlNifEnv *env, ERL_NIF_TERM list)
{
    unsigned len;
    enif_get_list_length(env, list, &len);
    PyObject *out = PyList_New(len);
    ERL_NIF_TERM head, tail = list;
    for (unsigned i = 0; out != NULL && i < len; i++) {
        ErlNifBinary bin;
        enif_get_list_cell(env, tail, &head, &tail);
        enif_inspect_binary(env, head, &bin);
        PyObject *s = PyUnicode_DecodeUTF8((const char *)bin.data, (Py_ssize_t)bin.size, "replace");
        if (s == NULL) {
            Py_CLEAR(out);
            break;
        }
        PyList_SET_ITEM(out, i, s);
    }
    return out;
}

static PyObject *
address_value(ErlNifEnv *env, ERL_NIF_TERM v)
{
    int arity, port;
    const ERL_NIF_TERM *e;
    if (!enif_get_tuple(env, v, &arity, &e)) {
        Py_RETURN_NONE;
    }
    ErlNifBinary host;
    enif_inspect_binary(env, e[0], &host);
    enif_get_int(env, e[1], &port);
    PyObject *h = PyUnicode_DecodeUTF8((const char *)host.data, (Py_ssize_t)host.size, "replace");
    if (h == NULL) {
        return NULL;
    }
    return Py_BuildValue("(Ni)", h, port);
}

static PyObject *
field_value(py_state_t *st, ErlNifEnv *env, int index, ERL_NIF_TERM v, ERL_NIF_TERM *badarg)
{
    ErlNifBinary bin;
    PyObject *shared;
    switch (index) {
    case S_STATE:
        if (lifespan_is_ref(env, v)) {
            shared = lifespan_state(st, env, v);
            if (shared == NULL) {
                *badarg = enif_make_tuple2(env, ATOM_state, v);
                return NULL;
            }
            return PyDict_Copy(shared);
        }
        return convert_to_py(st, env, v, badarg);
    case S_ASGI:
    case S_EXTENSIONS:
        return convert_to_py(st, env, v, badarg);
    case S_HEADERS:
        return headers_value(st, env, v);
    case S_SUBPROTOCOLS:
        return subprotocols_value(env, v);
    case S_SERVER:
    case S_CLIENT:
        return address_value(env, v);
    case S_PATH:
        enif_inspect_binary(env, v, &bin);
        return decoded_path(st, &bin);
    case S_RAW_PATH:
    case S_QUERY_STRING:
        enif_inspect_binary(env, v, &bin);
        return bytes_value(st, &bin);
    default:
        enif_inspect_binary(env, v, &bin);
        return text_value(st, &bin);
    }
}

static PyObject *
scope_key(py_state_t *st, int index)
{
    if (option_on(OPT_INTERNED_KEYS)) {
        return Py_NewRef(st->scope_keys[index]);
    }
    return PyUnicode_FromString(key_text[index]);
}

static int
set_field(py_state_t *st, PyObject *dict, int index, PyObject *value)
{
    if (value == NULL) {
        return -1;
    }
    PyObject *key = scope_key(st, index);
    int rc = key != NULL ? PyDict_SetItem(dict, key, value) : -1;
    Py_XDECREF(key);
    Py_DECREF(value);
    return rc;
}

static PyObject *
const_str(py_state_t *st, const char *text)
{
    for (int i = 0; i < N_SCOPE_CONSTS; i++) {
        if (strcmp(const_text[i], text) == 0 && option_on(OPT_CACHED_CONSTANTS)) {
            return Py_NewRef(st->scope_consts[i]);
        }
    }
    return PyUnicode_FromString(text);
}

static int
set_defaults(py_state_t *st, PyObject *dict, unsigned seen, int websocket, ErlNifEnv *env,
             ERL_NIF_TERM path)
{
    ErlNifBinary bin;
    if (!(seen & (1u << S_ASGI)) && set_field(st, dict, S_ASGI, PyDict_Copy(st->asgi_version)) < 0) return -1;
    if (!(seen & (1u << S_HTTP_VERSION)) && set_field(st, dict, S_HTTP_VERSION, const_str(st, "1.1")) < 0) return -1;
    if (websocket) {
        if (!(seen & (1u << S_SCHEME)) && set_field(st, dict, S_SCHEME, const_str(st, "ws")) < 0) return -1;
        if (!(seen & (1u << S_SUBPROTOCOLS)) && set_field(st, dict, S_SUBPROTOCOLS, PyList_New(0)) < 0) return -1;
    } else {
        if (!(seen & (1u << S_METHOD)) && set_field(st, dict, S_METHOD, const_str(st, "GET")) < 0) return -1;
        if (!(seen & (1u << S_SCHEME)) && set_field(st, dict, S_SCHEME, const_str(st, "http")) < 0) return -1;
    }
    if (!(seen & (1u << S_RAW_PATH))) {
        enif_inspect_binary(env, path, &bin);
        if (set_field(st, dict, S_RAW_PATH, bytes_value(st, &bin)) < 0) return -1;
    }
    if (!(seen & (1u << S_QUERY_STRING)) && set_field(st, dict, S_QUERY_STRING, Py_NewRef(st->empty_bytes)) < 0) return -1;
    if (!(seen & (1u << S_ROOT_PATH)) && set_field(st, dict, S_ROOT_PATH, const_str(st, "")) < 0) return -1;
    if (!(seen & (1u << S_HEADERS)) && set_field(st, dict, S_HEADERS, PyList_New(0)) < 0) return -1;
    if (!(seen & (1u << S_SERVER)) && set_field(st, dict, S_SERVER, Py_NewRef(Py_None)) < 0) return -1;
    if (!(seen & (1u << S_CLIENT)) && set_field(st, dict, S_CLIENT, Py_NewRef(Py_None)) < 0) return -1;
    if (!(seen & (1u << S_STATE)) && set_field(st, dict, S_STATE, PyDict_New()) < 0) return -1;
    return 0;
}

static PyObject *
build_from_map(py_state_t *st, ErlNifEnv *env, ERL_NIF_TERM scope, ERL_NIF_TERM *badarg)
{
    PyObject *dict = PyDict_New();
    if (dict == NULL) {
        return NULL;
    }
    unsigned seen = 0;
    int websocket = 0;
    ERL_NIF_TERM path = 0;
    ErlNifMapIterator it;
    ERL_NIF_TERM k, v;
    enif_map_iterator_create(env, scope, &it, ERL_NIF_MAP_ITERATOR_FIRST);
    while (enif_map_iterator_get_pair(env, &it, &k, &v)) {
        int index = key_index(k);
        seen |= 1u << index;
        if (index == S_PATH) {
            path = v;
        }
        websocket |= index == S_TYPE && is_websocket_type(env, v);
        if (set_field(st, dict, index, field_value(st, env, index, v, badarg)) < 0) {
            enif_map_iterator_destroy(env, &it);
            Py_DECREF(dict);
            return NULL;
        }
        enif_map_iterator_next(env, &it);
    }
    enif_map_iterator_destroy(env, &it);
    if (set_defaults(st, dict, seen, websocket, env, path) < 0) {
        Py_DECREF(dict);
        return NULL;
    }
    return dict;
}

/* ---- templates -------------------------------------------------------------------- */

/* A template's dict is built on first use in each interpreter (an object belongs to
 * one), published with a compare-and-swap, and released through release_later on its
 * interpreter. */
typedef struct {
    ErlNifEnv *env;                /* holds map */
    ERL_NIF_TERM map;
    int kind;                      /* SCOPE_HTTP or SCOPE_WEBSOCKET */
    PyObject *dicts[INTERP_MAX];   /* by interpreter slot */
} template_t;

static ErlNifResourceType *TEMPLATE_RESOURCE = NULL;

static void
template_dtor(ErlNifEnv *env, void *obj)
{
    template_t *t = obj;
    for (int i = 0; i < INTERP_MAX; i++) {
        if (t->dicts[i] != NULL) {
            release_later(interp_slot(i), t->dicts[i]);
        }
    }
    if (t->env != NULL) {
        enif_free_env(t->env);
    }
}

int
scope_resource_init(ErlNifEnv *env)
{
    ErlNifResourceFlags tried;
    TEMPLATE_RESOURCE = enif_open_resource_type(env, NULL, "py_asgi_scope", template_dtor,
                                                ERL_NIF_RT_CREATE | ERL_NIF_RT_TAKEOVER, &tried);
    return TEMPLATE_RESOURCE == NULL ? -1 : 0;
}

ERL_NIF_TERM
scope_template_new(ErlNifEnv *env, ERL_NIF_TERM scope)
{
    ERL_NIF_TERM bad;
    int kind = validate_map(env, scope, &bad);
    if (kind < 0) {
        return enif_make_tuple2(env, ATOM_error, enif_make_tuple2(env, ATOM_bad_scope, bad));
    }
    template_t *t = enif_alloc_resource(TEMPLATE_RESOURCE, sizeof(*t));
    if (t == NULL) {
        return enif_raise_exception(env, enif_make_atom(env, "enomem"));
    }
    memset(t->dicts, 0, sizeof(t->dicts));
    t->kind = kind;
    t->env = enif_alloc_env();
    t->map = enif_make_copy(t->env, scope);
    ERL_NIF_TERM ref = enif_make_resource(env, t);
    enif_release_resource(t);
    return enif_make_tuple2(env, ATOM_ok, ref);
}

int
scope_check(ErlNifEnv *env, ERL_NIF_TERM scope, ERL_NIF_TERM *bad)
{
    template_t *t;
    if (enif_get_resource(env, scope, TEMPLATE_RESOURCE, (void **)&t)) {
        return t->kind;
    }
    return validate_map(env, scope, bad);
}

static int
replace_copy(py_state_t *st, PyObject *dict, int index, PyObject *(*copy)(PyObject *))
{
    PyObject *v = PyDict_GetItemWithError(dict, st->scope_keys[index]);
    if (v == NULL) {
        return PyErr_Occurred() ? -1 : 0;
    }
    PyObject *c = copy(v);
    if (c == NULL) {
        return -1;
    }
    int rc = PyDict_SetItem(dict, st->scope_keys[index], c);
    Py_DECREF(c);
    return rc;
}

static PyObject *
list_copy(PyObject *list)
{
    return PyList_GetSlice(list, 0, PyList_GET_SIZE(list));
}

/* Containers the app may mutate at any depth (state, asgi, extensions) are built anew
 * from the template's Erlang map for each request, exactly as for a map scope; a state
 * taken from a lifespan is its usual shallow copy. */
static int
fresh_field(py_state_t *st, PyObject *dict, template_t *t, int index, ERL_NIF_TERM *badarg)
{
    ERL_NIF_TERM v;
    PyObject *value;
    if (enif_get_map_value(t->env, t->map, S.atoms[index], &v)) {
        value = field_value(st, t->env, index, v, badarg);
    } else if (index == S_STATE) {
        value = PyDict_New();
    } else if (index == S_ASGI) {
        value = PyDict_Copy(st->asgi_version);
    } else {
        return 0;
    }
    return set_field(st, dict, index, value);
}

static PyObject *
from_template(py_state_t *st, template_t *t, ERL_NIF_TERM *badarg)
{
    PyObject **slot = &t->dicts[st->ip->index];
    PyObject *shared = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (shared == NULL) {
        PyObject *built = build_from_map(st, t->env, t->map, badarg);
        if (built == NULL) {
            return NULL;
        }
        if (__atomic_compare_exchange_n(slot, &shared, built, 0, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE)) {
            shared = built;
        } else {
            Py_DECREF(built); /* another thread of this interpreter built it first */
        }
    }
    PyObject *dict = PyDict_Copy(shared);
    if (dict == NULL || replace_copy(st, dict, S_HEADERS, list_copy) < 0 ||
        fresh_field(st, dict, t, S_STATE, badarg) < 0 || fresh_field(st, dict, t, S_ASGI, badarg) < 0 ||
        fresh_field(st, dict, t, S_EXTENSIONS, badarg) < 0) {
        Py_XDECREF(dict);
        return NULL;
    }
    return dict;
}

PyObject *
scope_build(py_state_t *st, ErlNifEnv *env, ERL_NIF_TERM scope, ERL_NIF_TERM *badarg)
{
    template_t *t;
    *badarg = 0;
    if (enif_get_resource(env, scope, TEMPLATE_RESOURCE, (void **)&t)) {
        return from_template(st, t, badarg);
    }
    return build_from_map(st, env, scope, badarg);
}
