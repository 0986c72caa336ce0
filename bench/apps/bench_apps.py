"""Apps served by the benchmarks (`make bench`), plain ASGI and WSGI, no framework.

Every server under test (bin/pyweb, uvicorn, granian, gunicorn, hypercorn) gets the same
callables.  The `*_via_call` functions are the in-process generic-path shims: they are
what a runner written on top of `py:call` would do (build the environ/scope dict from an
Erlang map, run the app through the same hornbeam runner, return (status, headers, body)),
so that `py:call` vs `py_wsgi:run`/`py_asgi:run` compares the same app.
"""

import asyncio
import io
import sys

HELLO = b"Hello, World!"
BIG = b"x" * 65536  # 64 KiB: above the NIF's 4 KiB zero-copy threshold
_HELLO_HEADERS_WSGI = [("Content-Type", "text/plain"), ("Content-Length", str(len(HELLO)))]
_BIG_HEADERS_WSGI = [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(BIG)))]
_HELLO_START = {"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"13")]}
_BIG_START = {"type": "http.response.start", "status": 200,
              "headers": [(b"content-type", b"application/octet-stream"), (b"content-length", b"65536")]}


# The CPU-bound apps' work: pure Python, no I/O, about 2 ms per request on the bench
# machine (bench/run.py measures and reports it).  It holds the GIL all along: under one
# GIL, two workers cannot run it at once; with a sub-interpreter (or a process) each, they
# can.
CPU_ROUNDS = 20_000


def cpu_work(rounds: int = CPU_ROUNDS) -> bytes:
    acc = 0
    for i in range(rounds):
        acc = (acc * 31 + i) % 1_000_003
    return b"%d" % acc


# ---- WSGI -------------------------------------------------------------------------------

def hello_wsgi(environ, start_response):
    start_response("200 OK", _HELLO_HEADERS_WSGI)
    return [HELLO]


def cpu_wsgi(environ, start_response):
    body = cpu_work()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def big_wsgi(environ, start_response):
    start_response("200 OK", _BIG_HEADERS_WSGI)
    return [BIG]


def echo_wsgi(environ, start_response):
    n = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(n) if n else b""
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(len(body)))])
    return [body]


# ---- ASGI -------------------------------------------------------------------------------

async def _lifespan(receive, send):
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def hello_asgi(scope, receive, send):
    if scope["type"] != "http":
        return await _lifespan(receive, send)
    await send(_HELLO_START)
    await send({"type": "http.response.body", "body": HELLO})


async def cpu_asgi(scope, receive, send):
    if scope["type"] != "http":
        return await _lifespan(receive, send)
    body = cpu_work()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def big_asgi(scope, receive, send):
    if scope["type"] != "http":
        return await _lifespan(receive, send)
    await send(_BIG_START)
    await send({"type": "http.response.body", "body": BIG})


async def echo_asgi(scope, receive, send):
    if scope["type"] != "http":
        return await _lifespan(receive, send)
    chunks = []
    more = True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    body = b"".join(chunks)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/octet-stream"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def sleep_asgi(scope, receive, send):
    """Awaits asyncio.sleep(0.01): a request that really suspends on the loop."""
    if scope["type"] != "http":
        return await _lifespan(receive, send)
    await asyncio.sleep(0.01)
    await send(_HELLO_START)
    await send({"type": "http.response.body", "body": HELLO})


# ---- generic-path shims for the in-process benchmark ------------------------------------

def wsgi_via_call(environ_map, body):
    """`py:call(bench_apps, wsgi_via_call, [Environ, {bytes, Body}])`: hello_wsgi through
    hornbeam_wsgi_runner.run_wsgi, the environ built in Python from the converted map."""
    import hornbeam_wsgi_runner
    environ = dict(environ_map)
    environ["wsgi.version"] = (1, 0)
    environ["wsgi.input"] = io.BytesIO(body)
    environ["wsgi.errors"] = sys.stderr
    environ["wsgi.multithread"] = True
    environ["wsgi.multiprocess"] = True
    environ["wsgi.run_once"] = False
    status, headers, chunks = hornbeam_wsgi_runner.run_wsgi(_WSGI_APPS[environ["PATH_INFO"]], environ)
    return status, headers, b"".join(chunks) if isinstance(chunks, list) else chunks


def asgi_via_call(scope_map, body):
    """`py:call(bench_apps, asgi_via_call, [Scope, {bytes, Body}])`: hello_asgi through
    hornbeam_asgi_runner.run_asgi, the coroutine stepped directly when it never suspends
    (as the NIF path does), else run on an event loop."""
    import hornbeam_asgi_runner
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": scope_map.get("http_version", "1.1"),
        "method": scope_map.get("method", "GET"),
        "scheme": scope_map.get("scheme", "http"),
        "path": scope_map["path"],
        "raw_path": scope_map["path"].encode(),
        "query_string": scope_map.get("query_string", "").encode(),
        "root_path": "",
        "headers": [(k.encode().lower(), v.encode()) for k, v in scope_map.get("headers", [])],
        "client": None,
        "server": None,
        "state": {},
    }
    coro = hornbeam_asgi_runner.run_asgi(_ASGI_APPS[scope["path"]], scope, body)
    try:
        coro.send(None)
    except StopIteration as stop:
        status, headers, chunks = stop.value
    else:  # suspended on a real future: finish on a loop
        coro.close()
        status, headers, chunks = asyncio.run(
            hornbeam_asgi_runner.run_asgi(_ASGI_APPS[scope["path"]], scope, body))
    return status, headers, b"".join(chunks)


_WSGI_APPS = {"/": hello_wsgi, "/big": big_wsgi}
_ASGI_APPS = {"/": hello_asgi, "/big": big_asgi}
