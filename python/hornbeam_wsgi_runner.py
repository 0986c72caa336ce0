"""WSGI (PEP 3333) runner used by the erlang_python NIF.

The C side builds the environ (native latin-1 strings, ``wsgi.input`` a binary
stream, ``wsgi.errors`` a text stream) and calls one of two entry points:

* ``run_wsgi(app, environ)`` returns ``(status, headers, body_chunks)``;
* ``stream_wsgi(app, environ, emit)`` reports the response as it is produced,
  for the embedded HTTP server.

Both share one implementation of the ``start_response``/``write`` state
(``_Response``): the buffered entry point is the streaming one with an ``emit``
that collects the events.
"""

import re
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import IO, Any, cast

Environ = dict[str, Any]
Headers = list[tuple[str, str]]
ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
Write = Callable[[bytes], None]
StartResponse = Callable[..., Write]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]
Emit = Callable[..., Any]

HOP_BY_HOP_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
# The environ key of a request body spooled to a file (see stream_wsgi).
INPUT_FILE = "erlang_python.input_file"
_STATUS = re.compile(r"[0-9]{3} [^\x00-\x1f\x7f]*\Z")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_FIELD_VALUE = re.compile(r"[^\x00-\x08\x0a-\x1f\x7f]*\Z")


class FileWrapper:
    """``wsgi.file_wrapper``: iterates a binary file-like object in blocks."""

    def __init__(self, filelike: IO[bytes], blksize: int = 8192) -> None:
        self.filelike = filelike
        self.blksize = blksize

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        data = self.filelike.read(self.blksize)
        if data:
            return data
        raise StopIteration

    def close(self) -> None:
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()


def _check_latin1(text: str, what: str) -> None:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(f"WSGI {what} must be latin-1 encodable, got {text!r}") from None


# Statuses and headers already found valid: apps send the same few again and again, and
# validation (regular expressions, latin-1 encoding) would otherwise cost more than the
# rest of the runner.  Bounded: cleared when full.
_VALID_CACHE_SIZE = 4096
_valid_statuses: set[str] = set()
_valid_headers: set[tuple[str, str]] = set()


def _check_status(status: object) -> str:
    if not isinstance(status, str):
        raise TypeError(f"WSGI status must be a str, got {type(status).__name__}")
    if status in _valid_statuses:
        return status
    if not _STATUS.match(status):
        raise ValueError(f"WSGI status must look like '200 OK', got {status!r}")
    _check_latin1(status, "status")
    if len(_valid_statuses) >= _VALID_CACHE_SIZE:
        _valid_statuses.clear()
    _valid_statuses.add(status)
    return status


def _check_header(header: object) -> tuple[str, str]:
    if not (
        isinstance(header, tuple)
        and len(header) == 2
        and isinstance(header[0], str)
        and isinstance(header[1], str)
    ):
        raise TypeError(f"WSGI response header must be a (str, str) tuple, got {header!r}")
    if header in _valid_headers:
        return header
    name, value = header
    if not _TOKEN.match(name):
        raise ValueError(f"invalid WSGI response header name {name!r}")
    if name.lower() in HOP_BY_HOP_HEADERS:
        raise ValueError(f"hop-by-hop header {name!r} is not allowed in a WSGI response")
    if not _FIELD_VALUE.match(value):
        raise ValueError(f"WSGI response header {name!r} has control characters in its value")
    _check_latin1(value, f"response header {name!r}")
    if len(_valid_headers) >= _VALID_CACHE_SIZE:
        _valid_headers.clear()
    # The app's own tuple when it is a plain one: an app that reuses its header tuples
    # (module constants) then hits the cache by identity, with no tuple comparison.
    checked = cast("tuple[str, str]", header) if type(header) is tuple else (name, value)
    _valid_headers.add(checked)
    return checked


def _check_headers(headers: object) -> Headers:
    if not isinstance(headers, list):
        raise TypeError(f"WSGI response headers must be a list, got {type(headers).__name__}")
    return [_check_header(header) for header in headers]


def start_response_rules(
    current_status: str | None,
    headers_sent: bool,
    status: object,
    headers: object,
    exc_info: ExcInfo | None,
) -> tuple[str, Headers]:
    """The rules of ``start_response`` (PEP 3333), in one place: the checked
    ``(status, headers)``, or an exception.

    ``current_status`` is the status of an earlier call (None before the first);
    ``headers_sent`` whether a body chunk has gone out.  ``_Response`` and the NIF's C
    start_response (c_src/wsgi/wsgi_native.c) both call it; the C one takes a first call
    without exc_info whose status and headers are all known valid (``_valid_statuses``,
    ``_valid_headers``) as it is.
    """
    if exc_info is not None:
        if headers_sent:
            raise exc_info[1].with_traceback(exc_info[2])
    elif current_status is not None:
        raise RuntimeError("start_response() called a second time without exc_info")
    return _check_status(status), _check_headers(headers)


def write_rules(status: str | None, data: object) -> bytes | None:
    """The rules of ``write()`` and of each chunk the body yields: the chunk to send, None
    for an empty one (nothing is sent), or an exception.  The C start_response appends a
    non-empty ``bytes`` chunk after start_response itself and calls this otherwise."""
    if not isinstance(data, bytes):
        raise TypeError(f"WSGI body chunks must be bytes, got {type(data).__name__}")
    if not data:
        return None
    if status is None:
        raise RuntimeError("WSGI app produced body data before calling start_response()")
    return data


def finish_rules(status: str | None) -> None:
    """The app returned (and its iterable is closed): start_response must have been called."""
    if status is None:
        raise RuntimeError("WSGI app returned without calling start_response()")


class ErrorStream:
    """``wsgi.errors``: each write of non-blank text goes to ``log("error", text)`` (the
    NIF passes ``_erlang.log``, the Erlang logger)."""

    def __init__(self, log: Callable[[str, str], object]) -> None:
        self._log = log

    def write(self, s: str) -> None:
        if not isinstance(s, str):
            raise TypeError("wsgi.errors.write() takes str")
        if s.strip():
            self._log("error", s)

    def writelines(self, seq: Iterable[str]) -> None:
        for s in seq:
            self.write(s)

    def flush(self) -> None:
        pass


class _Response:
    """The ``start_response``/``write`` state of one WSGI call.

    With an ``emit`` callable (streaming), it emits ``("start", status, headers)``
    once, just before the first non-empty body chunk (or at ``finish()`` for an
    empty body), then ``("body", chunk)`` for each non-empty chunk, ``("last",
    chunk)`` for a list or tuple body's last one.  Without one (buffered), it
    collects the chunks in ``chunks``.
    """

    __slots__ = ("_emit", "status", "headers", "_headers_sent", "chunks")

    def __init__(self, emit: Emit | None) -> None:
        self._emit = emit
        self.status: str | None = None
        self.headers: Headers = []
        self._headers_sent = False
        self.chunks: list[bytes] = []

    def start_response(
        self, status: str, headers: Headers, exc_info: ExcInfo | None = None
    ) -> Write:
        self.status, self.headers = start_response_rules(
            self.status, self._headers_sent, status, headers, exc_info
        )
        return self.write

    def write(self, data: bytes) -> None:
        self.write_chunk(data, "body")

    def write_chunk(self, data: bytes, event: str) -> None:
        """``write(data)``, emitted as ``event``: "body", or "last" for the body's
        last chunk."""
        chunk = write_rules(self.status, data)
        if chunk is None:
            return
        if not self._headers_sent:
            self._send_headers()
        if self._emit is None:
            self.chunks.append(chunk)
        else:
            self._emit(event, chunk)

    def finish(self) -> None:
        finish_rules(self.status)
        if not self._headers_sent:
            self._send_headers()

    def _send_headers(self) -> None:
        self._headers_sent = True
        if self._emit is not None:
            self._emit("start", self.status, self.headers)


def _run(app: WSGIApp, environ: Environ, response: _Response) -> None:
    environ.setdefault("wsgi.file_wrapper", FileWrapper)
    body = app(environ, response.start_response)
    try:
        if type(body) is list or type(body) is tuple:
            # its last item is known to be the last chunk
            for i, chunk in enumerate(body):
                response.write_chunk(chunk, "last" if i == len(body) - 1 else "body")
        else:
            for chunk in body:
                response.write(chunk)
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()
    response.finish()


def stream_wsgi(app: WSGIApp, environ: Environ, emit: Emit) -> None:
    """Run a WSGI app, reporting the response through ``emit``.

    ``emit("start", status, headers)`` is called once, just before the first
    non-empty body chunk (or at the end for an empty body);
    ``emit("body", chunk)`` is called for each non-empty chunk, ``emit("last",
    chunk)`` instead for the last item of a list or tuple body (nothing is written
    after it: the emitter may hold it for the end and need not wait). The iterable's
    ``close()`` is always called, whether iteration succeeds or raises.

    When the environ has ``erlang_python.input_file`` (py_wsgi:start/4's
    ``body_file``: a request body read whole and spooled to a file), that key
    is removed and ``wsgi.input`` is the file, opened read-only for the
    duration of the call.
    """
    path = environ.pop(INPUT_FILE, None)
    if path is None:
        _run(app, environ, _Response(emit))
        return
    # The path's bytes came as a latin-1 str, as every environ value does.
    with open(path.encode("latin-1"), "rb") as body:
        environ["wsgi.input"] = body
        _run(app, environ, _Response(emit))


def default_wsgi_handler(
    app: WSGIApp, environ: Environ
) -> tuple[str, Headers, list[bytes] | bytes]:
    """Run a WSGI app and return ``(status, headers, body_chunks)``.

    ``body_chunks`` is the list of non-empty chunks (empty for no body); the
    C side joins them with a single copy.
    """
    response = _Response(None)
    _run(app, environ, response)
    return response.status, response.headers, response.chunks  # type: ignore[return-value]


def run_wsgi(app: WSGIApp, environ: Environ) -> tuple[str, Headers, list[bytes] | bytes]:
    """Entry point called by the NIF; custom runners wrap ``default_wsgi_handler``."""
    return default_wsgi_handler(app, environ)
