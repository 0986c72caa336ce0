"""WSGI on the worker side: the environ, the response, and streams.

The environ has the types c_src/wsgi.c gives it in the NIF modes (PEP 3333): binary
values as native str decoded as latin-1, other values converted as py:call arguments,
``wsgi.input`` a binary stream, ``wsgi.errors`` the Erlang logger.  A stream's app runs
on a thread of its own: its ``wsgi.input`` waits for body chunks fed by the loop thread,
and its writes wait while more than 1 MiB of response body is unacknowledged.
"""

from __future__ import annotations

import io
import threading
from collections import deque
from typing import Any, Callable

from hornbeam_wsgi_runner import ErrorStream

from .asgi import BadResponse, body_chunks
from .terms import RAW, encode

HIGH_WATER = 1 << 20

Environ = dict[str, Any]


def build_environ(fields: Environ, wsgi_input: Any, errors: ErrorStream) -> Environ:
    """The environ from the decoded map (``ENVIRON`` mode) and the PEP 3333 defaults."""
    fields["wsgi.input"] = wsgi_input
    fields["wsgi.errors"] = errors
    fields.setdefault("wsgi.version", (1, 0))
    fields.setdefault("wsgi.multithread", True)
    fields.setdefault("wsgi.multiprocess", True)
    fields.setdefault("wsgi.run_once", False)
    fields.setdefault("QUERY_STRING", "")
    return fields


def _latin1(value: Any, message: str) -> bytes:
    if not isinstance(value, str):
        raise BadResponse(message)
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        raise BadResponse(message) from None


def headers_term(headers: Any, message: str) -> list[tuple[bytes, bytes]]:
    if not isinstance(headers, list):
        raise BadResponse("headers must be a list")
    out = []
    for pair in headers:
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise BadResponse(message)
        out.append((_latin1(pair[0], message), _latin1(pair[1], message)))
    return out


def response(result: Any) -> tuple[bytes, list[bytes]]:
    """(head, body chunks) of a RESPONSE frame for run_wsgi's (status, headers, body)."""
    if not isinstance(result, tuple) or len(result) != 3:
        raise BadResponse("run_wsgi must return (status, headers, body)")
    status = _latin1(result[0], "status must be a latin-1 str")
    headers = headers_term(result[1], "headers must be (str, str) tuples of latin-1 text")
    return encode((status, headers), RAW), body_chunks(result[2])


class Channel:
    """A WSGI stream's request body and response window, shared by its app thread and
    the loop thread (which feeds chunks, acks and the disconnect)."""

    def __init__(self, body: bytes, more: bool, ask: Callable[[], None]) -> None:
        self._cond = threading.Condition()
        self._chunks: deque[bytes] = deque((body,))
        self._more = more
        self._asked = False
        self._ask = ask
        self.disconnected = False
        self._in_flight = 0

    def feed(self, chunk: bytes, more: bool) -> None:
        with self._cond:
            self._chunks.append(chunk)
            self._more = more
            self._asked = False
            self._cond.notify_all()

    def ack(self, nbytes: int) -> None:
        with self._cond:
            self._in_flight = max(0, self._in_flight - nbytes)
            if self._in_flight <= HIGH_WATER // 2:
                self._cond.notify_all()

    def disconnect(self) -> None:
        with self._cond:
            self.disconnected = True
            self._cond.notify_all()

    def next_chunk(self) -> bytes | None:
        """The next piece of body; None at its end.  Raises ConnectionResetError after
        the disconnect."""
        with self._cond:
            if not self._chunks and self._more and not self.disconnected and not self._asked:
                self._asked = True
                self._ask()
            while not self._chunks and self._more and not self.disconnected:
                self._cond.wait()
            if self._chunks:
                return self._chunks.popleft()
            if self.disconnected:
                raise ConnectionResetError("the client disconnected")
            return None

    def count(self, nbytes: int) -> None:
        """Counts nbytes of response about to be sent as in flight."""
        with self._cond:
            if self.disconnected:
                raise ConnectionResetError("the client disconnected")
            self._in_flight += nbytes

    def wait_window(self, nbytes: int) -> None:
        """After sending: waits while more than HIGH_WATER is unacknowledged."""
        with self._cond:
            while self._in_flight > HIGH_WATER and not self.disconnected:
                self._cond.wait()
            if self.disconnected and nbytes > 0:
                raise ConnectionResetError("the client disconnected")


class StreamInput:
    """wsgi.input over a request body streamed from Erlang."""

    def __init__(self, channel: Channel) -> None:
        self._channel = channel
        self._buffer = bytearray()
        self._eof = False

    def _fill(self) -> bool:
        if self._eof:
            return False
        chunk = self._channel.next_chunk()
        if chunk is None:
            self._eof = True
            return False
        self._buffer += chunk
        return True

    def _take(self, n: int) -> bytes:
        out = bytes(self._buffer[:n])
        del self._buffer[:n]
        return out

    def read(self, size: int | None = -1) -> bytes:
        size = -1 if size is None else size
        while (size < 0 or len(self._buffer) < size) and self._fill():
            pass
        have = len(self._buffer)
        return self._take(have if size < 0 or size > have else size)

    def readline(self, size: int | None = -1) -> bytes:
        size = -1 if size is None else size
        scanned = 0
        while True:
            nl = self._buffer.find(b"\n", scanned)
            if nl >= 0:
                n = nl + 1
                return self._take(size if 0 <= size < n else n)
            if 0 <= size <= len(self._buffer):
                return self._take(size)
            scanned = len(self._buffer)
            if not self._fill():
                return self._take(len(self._buffer))

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        hint = -1 if hint is None else hint
        lines, total = [], 0
        while True:
            line = self.readline()
            if not line:
                return lines
            lines.append(line)
            total += len(line)
            if 0 < hint <= total:
                return lines

    def __iter__(self) -> StreamInput:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line


def input_stream(body: bytes) -> io.BytesIO:
    return io.BytesIO(body)
