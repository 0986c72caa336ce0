/* The ASGI scope's keys, shared values and common request header names, as data: the
 * scheduler side validates scopes against them (asgi/scope.c), and each interpreter keeps
 * them as Python objects (core/state.h).  No code here. */
#ifndef PY_NIF_ASGI_SCOPE_TABLES_H
#define PY_NIF_ASGI_SCOPE_TABLES_H

/* X(NAME, atom, "text"): the scope map's atom keys and the dict's str keys. */
#define SCOPE_KEYS(X)                                                              \
    X(TYPE, type, "type") X(PATH, path, "path") X(ASGI, asgi, "asgi")              \
    X(HTTP_VERSION, http_version, "http_version") X(METHOD, method, "method")      \
    X(SCHEME, scheme, "scheme") X(RAW_PATH, raw_path, "raw_path")                  \
    X(QUERY_STRING, query_string, "query_string") X(ROOT_PATH, root_path, "root_path") \
    X(HEADERS, headers, "headers") X(SERVER, server, "server")                     \
    X(CLIENT, client, "client") X(STATE, state, "state")                           \
    X(EXTENSIONS, extensions, "extensions") X(SUBPROTOCOLS, subprotocols, "subprotocols")

#define SCOPE_KEY_ENUM(name, atom, text) SCOPE_K_##name,
enum { SCOPE_KEYS(SCOPE_KEY_ENUM) N_SCOPE_KEYS };
#undef SCOPE_KEY_ENUM

/* str values shared between requests. */
#define SCOPE_CONSTS(X)                                                            \
    X("http") X("websocket") X("1.0") X("1.1") X("2") X("GET") X("POST") X("PUT")    \
    X("DELETE") X("HEAD") X("OPTIONS") X("PATCH") X("https") X("ws") X("wss") X("") \
    X("/")

/* Request header names shared as bytes objects. */
#define SCOPE_HEADERS(X)                                                           \
    X("host") X("user-agent") X("accept") X("accept-encoding") X("accept-language")  \
    X("connection") X("content-type") X("content-length") X("cookie")               \
    X("cache-control") X("referer") X("authorization") X("origin")                  \
    X("x-forwarded-for") X("x-forwarded-proto") X("x-requested-with")               \
    X("if-none-match") X("if-modified-since") X("upgrade-insecure-requests")        \
    X("pragma") X("transfer-encoding") X("upgrade") X("sec-fetch-mode")             \
    X("sec-fetch-site") X("sec-fetch-dest") X("te")

#define SCOPE_TABLE_COUNT(text) +1
enum {
    N_SCOPE_CONSTS = 0 SCOPE_CONSTS(SCOPE_TABLE_COUNT),
    N_SCOPE_HEADERS = 0 SCOPE_HEADERS(SCOPE_TABLE_COUNT),
};
#undef SCOPE_TABLE_COUNT

#endif
