/* The WSGI environ's known keys and shared values, as data: the scheduler side looks
 * them up in C tables (wsgi/wsgi.c), and each interpreter keeps them as Python objects
 * (core/state.h).  No code here. */
#ifndef PY_NIF_WSGI_ENVIRON_TABLES_H
#define PY_NIF_WSGI_ENVIRON_TABLES_H

/* Environ keys known to the NIF: interned once per interpreter, shared by every request.
 * The first block has meaning to the NIF (required keys, defaults, special values); the
 * rest are common request headers. */
#define WSGI_KEYS(X)                                                               \
    X(REQUEST_METHOD, "REQUEST_METHOD") X(SCRIPT_NAME, "SCRIPT_NAME")              \
    X(PATH_INFO, "PATH_INFO") X(SERVER_NAME, "SERVER_NAME")                        \
    X(SERVER_PORT, "SERVER_PORT") X(SERVER_PROTOCOL, "SERVER_PROTOCOL")            \
    X(URL_SCHEME, "wsgi.url_scheme") X(INPUT, "wsgi.input")                        \
    X(QUERY_STRING, "QUERY_STRING") X(VERSION, "wsgi.version")                     \
    X(ERRORS, "wsgi.errors") X(MULTITHREAD, "wsgi.multithread")                    \
    X(MULTIPROCESS, "wsgi.multiprocess") X(RUN_ONCE, "wsgi.run_once")              \
    X(CONTENT_TYPE, "CONTENT_TYPE") X(CONTENT_LENGTH, "CONTENT_LENGTH")            \
    X(REMOTE_ADDR, "REMOTE_ADDR") X(REMOTE_PORT, "REMOTE_PORT")                    \
    X(REMOTE_HOST, "REMOTE_HOST") X(REQUEST_URI, "REQUEST_URI")                    \
    X(RAW_URI, "RAW_URI") X(H_HOST, "HTTP_HOST") X(H_USER_AGENT, "HTTP_USER_AGENT") \
    X(H_ACCEPT, "HTTP_ACCEPT") X(H_ACCEPT_ENCODING, "HTTP_ACCEPT_ENCODING")        \
    X(H_ACCEPT_LANGUAGE, "HTTP_ACCEPT_LANGUAGE") X(H_CONNECTION, "HTTP_CONNECTION") \
    X(H_COOKIE, "HTTP_COOKIE") X(H_CACHE_CONTROL, "HTTP_CACHE_CONTROL")            \
    X(H_REFERER, "HTTP_REFERER") X(H_AUTHORIZATION, "HTTP_AUTHORIZATION")          \
    X(H_ORIGIN, "HTTP_ORIGIN") X(H_X_FORWARDED_FOR, "HTTP_X_FORWARDED_FOR")        \
    X(H_X_FORWARDED_PROTO, "HTTP_X_FORWARDED_PROTO")                               \
    X(H_X_REQUESTED_WITH, "HTTP_X_REQUESTED_WITH") X(H_PRAGMA, "HTTP_PRAGMA")      \
    X(H_IF_NONE_MATCH, "HTTP_IF_NONE_MATCH")                                       \
    X(H_IF_MODIFIED_SINCE, "HTTP_IF_MODIFIED_SINCE")                               \
    X(H_UPGRADE_INSECURE_REQUESTS, "HTTP_UPGRADE_INSECURE_REQUESTS")

#define WSGI_KEY_ENUM(name, text) WSGI_K_##name,
enum { WSGI_KEYS(WSGI_KEY_ENUM) N_WSGI_KEYS };
#undef WSGI_KEY_ENUM

/* Values worth sharing: methods, protocols, schemes, frequent hosts and ports.  The
 * first is "" (the QUERY_STRING default). */
#define WSGI_CONSTS(X)                                                              \
    X("") X("GET") X("POST") X("PUT") X("DELETE") X("HEAD") X("OPTIONS") X("PATCH")  \
    X("HTTP/1.0") X("HTTP/1.1") X("HTTP/2") X("http") X("https") X("/")             \
    X("localhost") X("127.0.0.1") X("80") X("443") X("8000") X("8080") X("0")       \
    X("*/*") X("keep-alive") X("close")

#define WSGI_CONST_COUNT(text) +1
enum { N_WSGI_CONSTS = 0 WSGI_CONSTS(WSGI_CONST_COUNT) };
#undef WSGI_CONST_COUNT

#endif
