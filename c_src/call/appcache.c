#include "call/appcache.h"

#include "core/atoms.h"
#include "core/options.h"
#include "terms/convert.h"
#include "terms/errors.h"

#include <string.h>

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
resolve(py_state_t *st, ErlNifEnv *env, const char *key, PyObject **app, PyObject **fn, ERL_NIF_TERM *err)
{
    const char *module = key;
    const char *callable = module + strlen(module) + 1;
    const char *runner = callable + strlen(callable) + 1;
    const char *entry = runner + strlen(runner) + 1;

    PyObject *rmod = PyImport_ImportModule(runner);
    if (rmod == NULL) {
        *err = errors_take(st, env);
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
        *err = errors_take(st, env);
        Py_CLEAR(*fn);
        return -1;
    }
    return 0;
}

/* The argument names of module, callable and runner in {badarg, {Name, Value}}. */
static ERL_NIF_TERM
name_badarg(ErlNifEnv *env, int which, ERL_NIF_TERM value)
{
    const ERL_NIF_TERM names[3] = {ATOM_module, ATOM_callable, ATOM_runner};
    return enif_make_tuple2(env, ATOM_badarg, enif_make_tuple2(env, names[which], value));
}

/* key = module \0 callable \0 runner \0 entry \0.  Returns 0, or -1 with *bad the
 * index (0..2) of the name that holds a NUL byte or makes the key too long. */
static int
build_key(ErlNifEnv *env, const ERL_NIF_TERM names[3], const char *entry, appcache_key_t *key,
          int *bad)
{
    size_t len = 0;
    size_t entry_len = strlen(entry) + 1;
    for (int i = 0; i < 3; i++) {
        if (append_name(env, names[i], key->text, &len) < 0 ||
            (i == 2 && len + entry_len > APPCACHE_KEY_MAX)) {
            *bad = i;
            return -1;
        }
    }
    memcpy(key->text + len, entry, entry_len);
    key->len = len + entry_len;
    return 0;
}

ERL_NIF_TERM
appcache_key(ErlNifEnv *env, const ERL_NIF_TERM names[3], const char *entry, appcache_key_t *key)
{
    ERL_NIF_TERM err = appcache_check_names(env, names);
    int bad;
    if (err == 0 && build_key(env, names, entry, key, &bad) < 0) {
        err = errors_tuple(env, name_badarg(env, bad, names[bad]));
    }
    return err;
}

/* The cached entry for `key`, new references in *app and *fn; 0 if none.  st->lock
 * held. */
static int
lookup(py_state_t *st, const appcache_key_t *key, PyObject **app, PyObject **fn)
{
    for (int i = 0; i < st->appcache_used; i++) {
        appcache_entry_t *e = &st->appcache[i];
        if (e->key.len == key->len && memcmp(e->key.text, key->text, key->len) == 0) {
            *app = Py_NewRef(e->app);
            *fn = Py_NewRef(e->fn);
            return 1;
        }
    }
    return 0;
}

/* Adds an entry (round-robin victim once full); the victim's references go to
 * evicted[0..1] (dropped by the caller once the lock is released: a destructor may run
 * Python).  st->lock held. */
static void
insert(py_state_t *st, const appcache_key_t *key, PyObject *app, PyObject *fn,
       PyObject *evicted[2])
{
    appcache_entry_t *e;
    if (st->appcache_used < APPCACHE_SIZE) {
        e = &st->appcache[st->appcache_used++];
    } else {
        e = &st->appcache[st->appcache_next];
        st->appcache_next = (st->appcache_next + 1) % APPCACHE_SIZE;
        evicted[0] = e->app;
        evicted[1] = e->fn;
    }
    memcpy(e->key.text, key->text, key->len);
    e->key.len = key->len;
    e->app = Py_NewRef(app);
    e->fn = Py_NewRef(fn);
}

int
appcache_get(py_state_t *st, ErlNifEnv *env, const appcache_key_t *key, PyObject **app,
             PyObject **fn, ERL_NIF_TERM *err)
{
    int use_cache = option_on(OPT_APP_CACHE);
    if (use_cache) {
        pthread_mutex_lock(&st->lock);
        int found = lookup(st, key, app, fn);
        pthread_mutex_unlock(&st->lock);
        if (found) {
            return 0;
        }
    }
    if (resolve(st, env, key->text, app, fn, err) < 0) {
        return -1;
    }
    if (use_cache) {
        PyObject *known_app = NULL, *known_fn = NULL, *evicted[2] = {NULL, NULL};
        pthread_mutex_lock(&st->lock);
        /* another thread of this interpreter may have resolved it meanwhile
         * (free-threaded builds) */
        if (!lookup(st, key, &known_app, &known_fn)) {
            insert(st, key, *app, *fn, evicted);
        }
        pthread_mutex_unlock(&st->lock);
        Py_XDECREF(known_app);
        Py_XDECREF(known_fn);
        Py_XDECREF(evicted[0]);
        Py_XDECREF(evicted[1]);
    }
    return 0;
}

int
appcache_resolve(py_state_t *st, ErlNifEnv *env, ERL_NIF_TERM module, ERL_NIF_TERM callable, ERL_NIF_TERM runner,
                 const char *entry, PyObject **app, PyObject **fn, ERL_NIF_TERM *err)
{
    appcache_key_t key;
    const ERL_NIF_TERM names[3] = {module, callable, runner};
    int bad;
    if (build_key(env, names, entry, &key, &bad) < 0) {
        *err = name_badarg(env, bad, names[bad]);
        return -1;
    }
    return appcache_get(st, env, &key, app, fn, err);
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
            return errors_tuple(env, name_badarg(env, i, names[i]));
        }
    }
    return 0;
}
