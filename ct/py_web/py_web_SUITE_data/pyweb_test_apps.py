"""The py_web_fake "apps" ported to Python: one raw ASGI app and one raw WSGI app
with the same paths and behaviour, so that py_web_SUITE's protocol cases run
through the real NIF (groups asgi_python and wsgi_python).

    /                  Hello, World!
    /scope             body = Erlang term text of {ScopeOrEnviron, #{body => Body, types => ...}}
    /echo              reads the whole body, answers it (x-body-chunks: receive() messages)
    /stream?n=N        N chunks "chunk I\\n"
    /chunks_echo       echoes each request body chunk as a response chunk
    /error             raises before the response
    /start_error       raises before the response (the real API has no separate start error)
    /error_after_start response started, then an exception
    /hang              never answers; records the disconnect
    /wait_disconnect   starts streaming, then waits for the disconnect (recorded)
    /cookies           two set-cookie headers around another header
    /status/NNN        that status, body "x" unless 204/304
    /cl                content-length: 5, body in two pieces
    /nostart           returns without a response
    /badheader         a header value containing CRLF
    /sleep?ms=N        answers after N ms
    /big?size=N        N bytes in one chunk
    /cl13              content-length: 13, Hello, World! (no body for HEAD, as Flask answers HEAD)
    /cl1               content-length: 5, body in one piece
    /cl_bad            content-length: 10, body of 5 bytes (an app bug)
    /cookies2          Set-Cookie values with a quoted space and an Expires attribute
    /read_error        reads the whole body, then raises

Every request an app sees is recorded in REQUESTS ([method, path]: read back
with requests()), so that a test can check that a request never reached it.
For WSGI, /echo says in x-input-type what wsgi.input was (the NIF's stream, or
the file of a body spooled whole).

Things the Erlang side cannot observe directly (disconnects, lifespan) are
recorded in EVENTS and read back with events().  Both are module globals: in the
subinterpreters mode each interpreter has its own, and the suites read all of them
(erlang_python_ct:each/3).
"""

import asyncio
import time
from urllib.parse import parse_qs

HELLO = b"Hello, World!"
EVENTS: list[list[str]] = []
REQUESTS: list[list[str]] = []


def events() -> list[list[str]]:
    return [list(e) for e in EVENTS]


def requests() -> list[list[str]]:
    return [list(r) for r in REQUESTS]


def clear_events() -> None:
    EVENTS.clear()
    REQUESTS.clear()


def record(*event: str) -> None:
    EVENTS.append(list(event))


# ---- Erlang term text (parsed by erl_parse:parse_term/1 in the suite) -----------------


def _bin(data: bytes) -> str:
    return "<<" + ",".join(str(b) for b in data) + ">>"


def to_erl(value: object, enc: str = "utf-8") -> str:
    """str -> binary (encoded with ``enc``), bytes -> binary, dict -> map,
    list -> list, tuple -> tuple, None -> undefined, anything else -> its repr."""
    if value is None:
        return "undefined"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _bin(value.encode(enc))
    if isinstance(value, (bytes, bytearray)):
        return _bin(bytes(value))
    if isinstance(value, dict):
        return "#{" + ",".join(f"{to_erl(k, enc)} => {to_erl(v, enc)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(to_erl(v, enc) for v in value) + "]"
    if isinstance(value, tuple):
        return "{" + ",".join(to_erl(v, enc) for v in value) + "}"
    return _bin(repr(value).encode())


def _types(scope: dict) -> dict:
    out = {}
    for k, v in scope.items():
        out[k] = type(v).__name__
    headers = scope.get("headers")
    if headers is not None:
        out["header_item"] = sorted({type(h).__name__ for h in headers})
        out["header_part"] = sorted({type(p).__name__ for h in headers for p in h})
    return out


def _qs_int(qs: str, key: str, default: int) -> int:
    return int(parse_qs(qs).get(key, [default])[0])


def _status_body(code: int) -> bytes:
    return b"" if code in (204, 304) else b"x"


# ---- ASGI -------------------------------------------------------------------------------


def _asgi(name: str):
    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            await _lifespan(name, scope, receive, send)
            return
        await _asgi_http(scope, receive, send)

    app.__name__ = name
    return app


async def _lifespan(name, scope, receive, send):
    if name == "no_lifespan":
        raise RuntimeError("lifespan not supported")
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            if name == "fail_lifespan":
                await send({"type": "lifespan.startup.failed", "message": "startup failed"})
                return
            scope["state"]["started"] = True
            record("lifespan_startup", name)
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            record("lifespan_shutdown", name)
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _read_body(receive):
    chunks = []
    n = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionError("disconnected while reading the body")
        n += 1
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), n


async def _start(send, status, headers=((b"content-type", b"text/plain"),)):
    await send({"type": "http.response.start", "status": status, "headers": list(headers)})


async def _body(send, data, more=False):
    await send({"type": "http.response.body", "body": data, "more_body": more})


async def _wait_disconnect(receive, path):
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            record("disconnected", path)
            return


async def _asgi_http(scope, receive, send):
    # the route path: the scope's path after its root_path (as Starlette routes)
    path = scope["path"][len(scope.get("root_path", "")):]
    REQUESTS.append([scope["method"], path])
    qs = scope["query_string"].decode("latin-1")
    if path == "/":
        await _start(send, 200)
        await _body(send, HELLO)
    elif path.startswith("/scope"):
        body, _ = await _read_body(receive)
        text = "{%s, #{body => %s, types => %s}}." % (to_erl(scope), to_erl(body), to_erl(_types(scope)))
        await _start(send, 200, [(b"content-type", b"application/x-erlang-text")])
        await _body(send, text.encode())
    elif path == "/echo":
        body, n = await _read_body(receive)
        await _start(send, 200, [(b"content-type", b"application/octet-stream"),
                                 (b"x-body-chunks", str(n).encode())])
        await _body(send, body)
    elif path == "/read_error":
        await _read_body(receive)
        raise ValueError("secret internal detail")
    elif path == "/stream":
        await _start(send, 200)
        for i in range(1, _qs_int(qs, "n", 5) + 1):
            await _body(send, b"chunk %d\n" % i, True)
        await _body(send, b"")
    elif path == "/chunks_echo":
        await _start(send, 200)
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            if message.get("body"):
                await _body(send, message["body"], True)
            if not message.get("more_body", False):
                await _body(send, b"")
                return
    elif path == "/error":
        raise ValueError("secret internal detail")
    elif path == "/start_error":
        raise RuntimeError("cannot start")
    elif path == "/error_after_start":
        await _start(send, 200)
        await _body(send, b"partial", True)
        await _body(send, b"more", True)
        raise ValueError("secret internal detail")
    elif path == "/hang":
        await _wait_disconnect(receive, path)
    elif path == "/wait_disconnect":
        await _start(send, 200)
        await _body(send, b"first\n", True)
        await _wait_disconnect(receive, path)
    elif path == "/cookies":
        await _start(send, 200, [(b"set-cookie", b"a=1; Path=/"),
                                 (b"content-type", b"text/plain"),
                                 (b"set-cookie", b"b=2; Path=/")])
        await _body(send, b"cookies")
    elif path.startswith("/status/"):
        code = int(path[len("/status/"):])
        await _start(send, code)
        await _body(send, _status_body(code))
    elif path == "/cl":
        await _start(send, 200, [(b"content-length", b"5")])
        await _body(send, b"hel", True)
        await _body(send, b"lo")
    elif path == "/cl13":
        await _start(send, 200, [(b"content-type", b"text/plain"), (b"content-length", b"13")])
        await _body(send, b"" if scope["method"] == "HEAD" else HELLO)
    elif path == "/cl1":
        await _start(send, 200, [(b"Content-Length", b"5"), (b"content-type", b"text/plain")])
        await _body(send, b"hello")
    elif path == "/cl_bad":
        await _start(send, 200, [(b"content-length", b"10")])
        await _body(send, b"short")
    elif path == "/cookies2":
        await _start(send, 200, [(b"content-type", b"text/plain")] + [(b"set-cookie", c) for c in COOKIES2])
        await _body(send, b"cookies")
    elif path == "/nostart":
        return
    elif path == "/badheader":
        await _start(send, 200, [(b"x-bad", b"a\r\nx-injected: 1")])
        await _body(send, b"x")
    elif path == "/sleep":
        await asyncio.sleep(_qs_int(qs, "ms", 100) / 1000)
        await _start(send, 200)
        await _body(send, b"slept")
    elif path == "/big":
        await _start(send, 200, [(b"content-type", b"application/octet-stream")])
        await _body(send, b"a" * _qs_int(qs, "size", 1000))
    else:
        await _start(send, 200)
        await _body(send, HELLO)


COOKIES2 = [b'msg="hello world"; Path=/; SameSite=lax',
            b"c=3; Expires=Wed, 01 Jan 2031 00:00:00 GMT; HttpOnly; Path=/"]

asgi_app = _asgi("asgi_app")
fail_lifespan = _asgi("fail_lifespan")
no_lifespan = _asgi("no_lifespan")


# ---- WSGI -------------------------------------------------------------------------------

TEXT = [("Content-Type", "text/plain")]


class _Watched:
    """An iterable response that records a disconnect: the server closes it
    (PEP 3333) without having taken every chunk when a write failed."""

    def __init__(self, path, gen):
        self.path = path
        self.gen = gen
        self.finished = False

    def __iter__(self):
        for chunk in self.gen:
            yield chunk
        self.finished = True

    def close(self):
        self.gen.close()
        if not self.finished:
            record("disconnected", self.path)


def wsgi_app(environ, start_response):
    path = environ["PATH_INFO"]
    REQUESTS.append([environ["REQUEST_METHOD"], path])
    qs = environ.get("QUERY_STRING", "")
    inp = environ["wsgi.input"]
    if path == "/":
        start_response("200 OK", TEXT)
        return [HELLO]
    if path.startswith("/scope"):
        body = inp.read()
        text = "{%s, #{body => %s}}." % (to_erl(environ, "latin-1"), to_erl(body))
        start_response("200 OK", [("Content-Type", "application/x-erlang-text")])
        return [text.encode()]
    if path == "/echo":
        body = inp.read()
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("X-Body-Chunks", "1"),
                                  ("X-Input-Type", type(inp).__name__)])
        return [body]
    if path == "/read_error":
        inp.read()
        raise ValueError("secret internal detail")
    if path == "/stream":
        def gen():
            for i in range(1, _qs_int(qs, "n", 5) + 1):
                yield b"chunk %d\n" % i
        start_response("200 OK", TEXT)
        return gen()
    if path == "/chunks_echo":
        def gen():
            while True:
                data = inp.read(4)
                if not data:
                    return
                yield data
        start_response("200 OK", TEXT)
        return gen()
    if path == "/error":
        raise ValueError("secret internal detail")
    if path == "/start_error":
        raise RuntimeError("cannot start")
    if path == "/error_after_start":
        def gen():
            yield b"partial"
            yield b"more"
            raise ValueError("secret internal detail")
        start_response("200 OK", TEXT)
        return gen()
    if path == "/hang":
        # A WSGI app learns of a disconnect only when it writes: hang for a
        # while, then try to answer.
        def gen():
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                time.sleep(0.02)
            start_response("200 OK", TEXT)
            yield b"late"
        return _Watched(path, gen())
    if path == "/wait_disconnect":
        def gen():
            yield b"first\n"
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                time.sleep(0.02)
                yield b"."
        start_response("200 OK", TEXT)
        return _Watched(path, gen())
    if path == "/cookies":
        start_response("200 OK", [("Set-Cookie", "a=1; Path=/"), ("Content-Type", "text/plain"),
                                  ("Set-Cookie", "b=2; Path=/")])
        return [b"cookies"]
    if path.startswith("/status/"):
        code = int(path[len("/status/"):])
        start_response(f"{code} Something", TEXT)
        return [_status_body(code)]
    if path == "/cl":
        start_response("200 OK", [("Content-Length", "5")])
        return [b"hel", b"lo"]
    if path == "/cl13":
        start_response("200 OK", TEXT + [("Content-Length", "13")])
        return [] if environ["REQUEST_METHOD"] == "HEAD" else [HELLO]
    if path == "/cl1":
        start_response("200 OK", [("Content-Length", "5"), ("Content-Type", "text/plain")])
        return [b"hello"]
    if path == "/cl_bad":
        start_response("200 OK", [("Content-Length", "10")])
        return [b"short"]
    if path == "/cookies2":
        start_response("200 OK", TEXT + [("Set-Cookie", c.decode()) for c in COOKIES2])
        return [b"cookies"]
    if path == "/nostart":
        return []
    if path == "/badheader":
        start_response("200 OK", [("X-Bad", "a\r\nx-injected: 1")])
        return [b"x"]
    if path == "/sleep":
        time.sleep(_qs_int(qs, "ms", 100) / 1000)
        start_response("200 OK", TEXT)
        return [b"slept"]
    if path == "/big":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [b"a" * _qs_int(qs, "size", 1000)]
    start_response("200 OK", TEXT)
    return [HELLO]
