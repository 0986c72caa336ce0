"""Plain WSGI apps for py_wsgi_SUITE, each wrapped in wsgiref.validate.validator."""
import hashlib
import sys
import time

from ep_wsgi_validate import validated

# close() calls of the iterables returned by close_* apps, in order.
closed = []


def get_closed():
    return list(closed)


def reset_closed():
    del closed[:]


def _start(start_response, body, status="200 OK", extra=()):
    headers = [("Content-Type", "application/octet-stream"),
               ("Content-Length", str(len(body)))]
    headers.extend(extra)
    start_response(status, headers)
    return [body]


def _echo(environ, start_response):
    """Echoes the request body: headers carry its length and sha256, the body is the body."""
    length = int(environ.get("CONTENT_LENGTH") or "0")
    body = environ["wsgi.input"].read(length)
    rest = environ["wsgi.input"].read(1)  # must be at EOF
    extra = [("X-Len", str(len(body))),
             ("X-Sha256", hashlib.sha256(body).hexdigest()),
             ("X-Rest", str(len(rest)))]
    return _start(start_response, body, extra=extra)


echo = validated(_echo)


def _latin1(environ, start_response):
    """Returns PATH_INFO and HTTP_X_BIN as latin-1 bytes, in headers and in the body."""
    path = environ["PATH_INFO"]
    value = environ.get("HTTP_X_BIN", "")
    body = path.encode("latin-1") + b"|" + value.encode("latin-1")
    extra = [("X-Path", path), ("X-Bin", value),
             ("X-Types", "%s,%s" % (type(path).__name__, type(value).__name__))]
    return _start(start_response, body, extra=extra)


latin1 = validated(_latin1)


def _environ_types(environ, start_response):
    """Reports, one `name=value` line each, the checks of the environ made in Python."""
    cgi = sorted(k for k in environ if "." not in k)
    lines = [
        "cgi_keys=" + ",".join(cgi),
        "cgi_all_str=%r" % all(type(environ[k]) is str for k in cgi),
        "version=%r" % (environ["wsgi.version"],),
        "version_type=%s" % type(environ["wsgi.version"]).__name__,
        "multithread=%r" % (environ["wsgi.multithread"],),
        "multiprocess=%r" % (environ["wsgi.multiprocess"],),
        "run_once=%r" % (environ["wsgi.run_once"],),
        "url_scheme=%r" % (environ["wsgi.url_scheme"],),
        "query_string=%r" % (environ["QUERY_STRING"],),
        "custom=%r" % (environ.get("x.custom"),),
    ]
    errors = environ["wsgi.errors"]
    lines.append("errors_methods=%r" % all(
        callable(getattr(errors, m, None)) for m in ("write", "writelines", "flush")))
    for k in cgi:
        lines.append("%s=%r" % (k, environ[k]))
    body = ("\n".join(lines) + "\n").encode("latin-1")
    return _start(start_response, body)


environ_types = validated(_environ_types)


def _errors_write(environ, start_response):
    """Writes to wsgi.errors (the Erlang logger) with write(), writelines() and flush()."""
    tag = environ["QUERY_STRING"]
    errors = environ["wsgi.errors"]
    errors.write("py_wsgi_SUITE %s: written\n" % tag)
    errors.writelines(["py_wsgi_SUITE %s: line a\n" % tag, "py_wsgi_SUITE %s: line b\n" % tag])
    errors.write("   \n")  # whitespace only: nothing logged
    errors.flush()
    return _start(start_response, b"written")


errors_write = validated(_errors_write)


def _input_methods(environ, start_response):
    """Reads the body with read(n), readline(), readline(n), readlines() and iteration."""
    stream = environ["wsgi.input"]
    mode = environ["QUERY_STRING"]
    if mode.startswith("raw_"):
        # The stream the NIF built, under the validator's InputWrapper (which only
        # allows read(n) and iterates with readline()).
        stream = stream.input
        mode = mode[4:]
    if mode == "read":
        parts = []
        while True:
            chunk = stream.read(3)
            if not chunk:
                break
            parts.append(chunk)
    elif mode == "readline":
        parts = [stream.readline(), stream.readline(2), stream.readline()]
        parts.append(stream.read(1000))
    elif mode == "readlines":
        parts = stream.readlines()
    elif mode == "readall":
        parts = [stream.read(), stream.read(), stream.read(-1)]
    elif mode == "iter":
        parts = [line for line in stream]
    else:
        raise ValueError(mode)
    body = repr(parts).encode("latin-1")
    return _start(start_response, body)


input_methods = validated(_input_methods)


class MyAppError(Exception):
    pass


def _raising(environ, start_response):
    raise MyAppError("app failed on purpose")  # ep_wsgi_apps raising line


raising = validated(_raising)


class _ClosingIter:
    def __init__(self, tag, fail_at):
        self.tag = tag
        self.fail_at = fail_at
        self.n = 0

    def __iter__(self):
        return self

    def __next__(self):
        self.n += 1
        if self.n == self.fail_at:
            raise RuntimeError("iterable failed at chunk %d" % self.n)
        if self.n > 3:
            raise StopIteration
        return b"chunk%d;" % self.n

    def close(self):
        closed.append(self.tag)


def _close_ok(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return _ClosingIter(environ["QUERY_STRING"], fail_at=0)


close_ok = validated(_close_ok)


def _close_raising(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return _ClosingIter(environ["QUERY_STRING"], fail_at=2)


close_raising = validated(_close_raising)


def _close_raising_first(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return _ClosingIter(environ["QUERY_STRING"], fail_at=1)


close_raising_first = validated(_close_raising_first)


def _exc_info_replace(environ, start_response):
    """Starts a 200, fails before any body, then replaces the status with exc_info."""
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-First", "yes")])
    try:
        raise ValueError("broken after start_response")
    except ValueError:
        start_response("500 Internal Server Error",
                       [("Content-Type", "text/plain"), ("X-Replaced", "yes")],
                       sys.exc_info())
    return [b"replaced"]


exc_info_replace = validated(_exc_info_replace)


def _exc_info_after_body(environ, start_response):
    """Sends body data, then calls start_response with exc_info: the error is re-raised."""
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"already sent")
    try:
        raise LookupError("too late to replace")
    except LookupError:
        start_response("500 Internal Server Error", [("Content-Type", "text/plain")],
                       sys.exc_info())
    return [b"never"]


exc_info_after_body = validated(_exc_info_after_body)


def _write_callable(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"written;")
    write(b"")
    return [b"returned;", b"", b"end"]


write_callable = validated(_write_callable)


def _sleep(environ, start_response):
    time.sleep(float(environ["QUERY_STRING"] or "0"))
    return _start(start_response, b"slept " + environ["QUERY_STRING"].encode("latin-1"))


sleep = validated(_sleep)


def _app_a(environ, start_response):
    return _start(start_response, b"A:" + environ["PATH_INFO"].encode("latin-1"),
                  extra=[("X-App", "a")])


def _app_b(environ, start_response):
    return _start(start_response, b"B:" + environ["PATH_INFO"].encode("latin-1"),
                  status="201 Created", extra=[("X-App", "b")])


app_a = validated(_app_a)
app_b = validated(_app_b)


def _custom_key(environ, start_response):
    return _start(start_response, ("custom.key=%r" % (environ.get("custom.key"),)).encode())


custom_key = validated(_custom_key)


class Nested:
    """A callable reached through a dotted name."""
    inner = staticmethod(validated(_app_a))


def _headers_order(environ, start_response):
    start_response("200 OK", [
        ("Content-Type", "text/plain"),
        ("Set-Cookie", "a=1; Path=/"),
        ("X-Dup", "one"),
        ("Set-Cookie", "b=2; Path=/"),
        ("X-Dup", "two"),
    ])
    return [b"ok"]


headers_order = validated(_headers_order)


class _TrackedBytesIO:
    """A file-like object for wsgi.file_wrapper that records its close()."""

    def __init__(self, data, tag):
        import io
        self._io = io.BytesIO(data)
        self.tag = tag

    def read(self, n=-1):
        return self._io.read(n)

    def close(self):
        closed.append(self.tag)


def _file_wrapper(environ, start_response):
    """Returns environ['wsgi.file_wrapper'] over the request body, in blocks of 7 bytes."""
    data = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or "0"))
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return environ["wsgi.file_wrapper"](_TrackedBytesIO(data, environ["QUERY_STRING"]), 7)


file_wrapper = validated(_file_wrapper)


def _generator(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    for i in range(5):
        yield b"g%d;" % i
    yield b""
    yield b"end"


generator = validated(_generator)


def _system_exit(environ, start_response):
    raise SystemExit("app called sys.exit")


system_exit = validated(_system_exit)


def response_kind(environ, start_response):
    """Not validated (the validator wraps start_response): answers the class of the
    start_response it got, the NIF's C one or the runner's bound method."""
    environ["wsgi.input"].read()
    body = type(start_response).__name__.encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]


def sequence_body(environ, start_response):
    """Not validated (the validator hides the body's type): the query string's
    comma-separated chunks as a list body, a tuple with ``tuple=`` before them, or a
    generator with ``gen=``."""
    kind, _, chunks = environ["QUERY_STRING"].rpartition("=")
    body = [c.encode() for c in chunks.split(",")]
    start_response("200 OK", [("Content-Type", "text/plain")])
    if kind == "tuple":
        return tuple(body)
    if kind == "gen":
        return (c for c in body)
    return body
