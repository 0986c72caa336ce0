#include "appcache.h"

#include "atoms.h"
#include "convert.h"
#include "errors.h"
#include "options.h"

#include <string.h>

#define APPCACHE_SIZE 32
typedef struct {
    appcache_key_t key;
    PyObject *app;       /* strong */
    PyObject *fn;        /* strong */
} entry_t;

static entry_t cache[APPCACHE_SIZE];
static int cache_used = 0;
static int cache_next = 0;   /* round-robin victim once full */

static int
append_name(ErlNifEnv *env, ERL_NIF_TERM term, char *buf, size_t *pos)
{
    ErlNifBinary bin;
    if (enif_is_atom(env, term)) {
        int n = enif_get_atom(env, term, buf + *pos, (unsigned)(APPCACHE_KEY_MAX - *pos), ERL_NIF_LATIN1);
        if (n <= 0) {
            return -1;
        }
        *pos += (size_t)n; /* n counts the terminating NUL */
        return 0;
    }
    if (!enif_inspect_binary(env, term, &bin) || *pos + bin.size + 1 > APPCACHE_KEY_MAX ||
        memchr(bin.data, 0, bin.size) != NULL) {
        return -1;
    }
    memcpy(buf + *pos, bin.data, bin.size);
    *pos += bin.size;
    buf[(*pos)++] = '\0';
    return 0;
}

/* getattr along a dotted path. */
static PyObject *
getattr_path(PyObject *obj, const char *path)
{
    Py_INCREF(obj);
    while (obj != NULL && *path != '\0') {
        const char *dot = strchr(path, '.');
        size_t n = dot != NULL ? (size_t)(dot - path) : strlen(path);
        PyObject *name = PyUnicode_DecodeUTF8(path, (Py_ssize_t)n, "strict");
        PyObject *next = name != NULL ? PyObject_GetAttr(obj, name) : NULL;
        Py_XDECREF(name);
        Py_DECREF(obj);
        obj = next;
        path += n + (dot != NULL ? 1 : 0);
    }
    return obj;
}

static ERL_NIF_TERM
message(ErlNifEnv *env, const char *fmt, const char *a, const char *b)
{
    char text[APPCACHE_KEY_MAX + 128];
    int n = snprintf(text, sizeof(text), fmt, a, b);
    return convert_bytes(env, text, n < 0 ? 0 : (size_t)n < sizeof(text) ? (size_t)n : sizeof(text) - 1);
}

static int
resolve(ErlNifEnv *env, const char *key, PyObject **app, PyObject **fn, ERL_NIF_TERM *err)
{
    const char *module = key;
    const char *callable = module + strlen(module) + 1;
    const char *runner = callable + strlen(callable) + 1;
    const char *entry = runner + strlen(runner) + 1;

    PyObject *rmod = PyImport_ImportModule(runner);
    if (rmod == NULL) {
        *err = errors_take(env);
        return -1;
    }
    *fn = PyObject_GetAttrString(rmod, entry);
    Py_DECREF(rmod);
    if (*fn == NULL || !PyCallable_Check(*fn)) {
        PyErr_Clear();
        Py_CLEAR(*fn);
        *err = enif_make_tuple2(env, ATOM_bad_runner,
                                message(env, "runner module '%s' has no callable %s()", runner, entry));
        return -1;
    }
    PyObject *mod = PyImport_ImportModule(module);
    *app = mod != NULL ? getattr_path(mod, callable) : NULL;
    Py_XDECREF(mod);
    if (*app == NULL) {
        *err = errors_take(env);
        Py_CLEAR(*fn);
        return -1;
    }
    return 0;
}

/* key = module \0 callable \0 runner \0 entry \0; -1 if too long or a name holds NUL. */
static int
build_key(ErlNifEnv *env, ERL_NIF_TERM module, ERL_NIF_TERM callable, ERL_NIF_TERM runner,
          const char *entry, appcache_key_t *key)
{
    size_t len = 0;
    size_t entry_len = strlen(entry) + 1;
    if (append_name(env, module, key->text, &len) < 0 || append_name(env, callable, key->text, &len) < 0 ||
        append_name(env, runner, key->text, &len) < 0 || len + entry_len > APPCACHE_KEY_MAX) {
        return -1;
    }
    memcpy(key->text + len, entry, entry_len);
    key->len = len + entry_len;
    return 0;
}

ERL_NIF_TERM
appcache_key(ErlNifEnv *env, const ERL_NIF_TERM names[3], const char *entry, appcache_key_t *key)
{
    ERL_NIF_TERM err = appcache_check_names(env, names);
    if (err == 0 && build_key(env, names[0], names[1], names[2], entry, key) < 0) {
        err = errors_tuple(env, enif_make_tuple2(env, ATOM_badarg,
                                                 enif_make_tuple3(env, names[0], names[1], names[2])));
    }
    return err;
}

int
appcache_get(ErlNifEnv *env, const appcache_key_t *key, PyObject **app, PyObject **fn, ERL_NIF_TERM *err)
{
    int use_cache = option_on(OPT_APP_CACHE);
    if (use_cache) {
        for (int i = 0; i < cache_used; i++) {
            if (cache[i].key.len == key->len && memcmp(cache[i].key.text, key->text, key->len) == 0) {
                *app = Py_NewRef(cache[i].app);
                *fn = Py_NewRef(cache[i].fn);
                return 0;
            }
        }
    }
    if (resolve(env, key->text, app, fn, err) < 0) {
        return -1;
    }
    if (use_cache) {
        entry_t *e;
        if (cache_used < APPCACHE_SIZE) {
            e = &cache[cache_used++];
        } else {
            e = &cache[cache_next];
            cache_next = (cache_next + 1) % APPCACHE_SIZE;
            Py_CLEAR(e->app);
            Py_CLEAR(e->fn);
        }
        memcpy(e->key.text, key->text, key->len);
        e->key.len = key->len;
        e->app = Py_NewRef(*app);
        e->fn = Py_NewRef(*fn);
    }
    return 0;
}

int
appcache_resolve(ErlNifEnv *env, ERL_NIF_TERM module, ERL_NIF_TERM callable, ERL_NIF_TERM runner,
                 const char *entry, PyObject **app, PyObject **fn, ERL_NIF_TERM *err)
{
    appcache_key_t key;
    if (build_key(env, module, callable, runner, entry, &key) < 0) {
        *err = enif_make_tuple2(env, ATOM_badarg, enif_make_tuple3(env, module, callable, runner));
        return -1;
    }
    return appcache_get(env, &key, app, fn, err);
}

int
appcache_is_runner(ErlNifEnv *env, ERL_NIF_TERM runner, const char *name)
{
    ErlNifBinary bin;
    char atom[APPCACHE_KEY_MAX];
    size_t len = strlen(name);
    if (enif_inspect_binary(env, runner, &bin)) {
        return bin.size == len && memcmp(bin.data, name, len) == 0;
    }
    return enif_get_atom(env, runner, atom, sizeof(atom), ERL_NIF_LATIN1) > 0 && strcmp(atom, name) == 0;
}

ERL_NIF_TERM
appcache_check_names(ErlNifEnv *env, const ERL_NIF_TERM names[3])
{
    for (int i = 0; i < 3; i++) {
        if (!enif_is_atom(env, names[i]) && !enif_is_binary(env, names[i])) {
            return errors_tuple(env, enif_make_tuple2(env, ATOM_badarg, names[i]));
        }
    }
    return 0;
}
