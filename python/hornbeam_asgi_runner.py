"""ASGI 3.0 (HTTP spec_version 2.4) runner used by the erlang_python NIF.

The C side builds the scope (types already per the spec) and calls one of:

* ``run_asgi(app, scope, body)``: buffered; returns ``(status, headers, body_chunks)``;
* ``stream_asgi(app, scope, stream)``: streaming, for the embedded HTTP server; the
  response is reported through the ``emit`` callable given to ``Stream``;
* ``stream_websocket(app, scope, ws)``: a websocket scope (ASGI websocket spec 2.4),
  through the ``emit`` callable given to ``WebSocketStream``.

There is one protocol state machine per kind of scope: ``Stream`` for HTTP (the
buffered path is a ``Stream`` whose ``emit`` collects the response), ``WebSocketStream``
for websockets. ``Lifespan`` drives the lifespan scope.

The streams' ``feed``/``message``/``disconnect``/``ack`` must be called on the thread that
runs the event loop the app runs on (the worker thread).
"""

import asyncio
import re
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

Message = dict[str, Any]
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
RawHeaders = list[tuple[bytes, bytes]]
Emit = Callable[..., Any]

TRAILERS_EXTENSION = "http.response.trailers"
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_UNSAFE_VALUE = re.compile(rb"[\x00\r\n]")


class ClientDisconnected(OSError):
    """Raised by ``send()`` once the client has gone away (as uvicorn does)."""


class LifespanFailure(Exception):
    """The app answered ``lifespan.startup.failed`` or ``lifespan.shutdown.failed``."""


class LifespanUnsupported(Exception):
    """The app raised or returned before answering ``lifespan.startup``."""


# The states of a response, as ints: the NIF's C exchange (c_src/asgi/asgi_native.c) keeps
# the same numbers and hands them to send_rules.
START, BODY, TRAILERS, COMPLETE = 0, 1, 2, 3

# Response bytes sent to the server and not yet acknowledged as written, beyond which a
# send() waits until they drop to half of it (Stream, WebSocketStream, and the NIF's C
# exchange of a stream, which reads it from here).
HIGH_WATER = 1 << 20

def _message_type(message: object) -> str:
    if not isinstance(message, dict):
        raise RuntimeError(f"ASGI message must be a dict, got {type(message).__name__}")
    kind = message.get("type")
    if not isinstance(kind, str):
        raise RuntimeError(f"ASGI message needs a str 'type', got {kind!r}")
    return kind


def _flag(message: Message, key: str) -> bool:
    value = message.get(key, False)
    if not isinstance(value, bool):
        raise RuntimeError(f"ASGI {message['type']!r}: {key!r} must be a bool, got {value!r}")
    return value


# Every valid status: the fast paths (Stream.send and the NIF's C exchange) take a start
# message as it is when its status is an int found here, and leave anything else to
# send_rules.
VALID_STATUSES = frozenset(range(100, 600))


def _status(message: Message) -> int:
    status = message.get("status")
    if type(status) is not int:
        raise RuntimeError(f"ASGI 'http.response.start': 'status' must be an int, got {status!r}")
    if status not in VALID_STATUSES:
        raise RuntimeError(f"ASGI 'http.response.start': invalid status {status}")
    return status


# Header pairs already found valid: apps send the same few again and again, and the
# regular expressions would otherwise dominate the cost of send().  Bounded: cleared
# when full.
_VALID_CACHE_SIZE = 4096
_valid_headers: set[tuple[bytes, bytes]] = set()


def _header(kind: str, header: object) -> tuple[bytes, bytes]:
    if not (
        isinstance(header, (list, tuple))
        and len(header) == 2
        and isinstance(header[0], bytes)
        and isinstance(header[1], bytes)
    ):
        raise RuntimeError(f"ASGI {kind!r}: each header must be a [bytes, bytes] pair, got {header!r}")
    pair = (header[0], header[1])
    if pair in _valid_headers:
        return pair
    name, value = pair
    if not _TOKEN.match(name):
        raise RuntimeError(f"ASGI {kind!r}: invalid header name {name!r}")
    if _UNSAFE_VALUE.search(value):
        raise RuntimeError(f"ASGI {kind!r}: header {name!r} has CR, LF or NUL in its value")
    if len(_valid_headers) >= _VALID_CACHE_SIZE:
        _valid_headers.clear()
    _valid_headers.add(pair)
    return pair


def _headers(message: Message) -> RawHeaders:
    headers = message.get("headers", ())
    if isinstance(headers, (str, bytes)) or not isinstance(headers, Iterable):
        raise RuntimeError(f"ASGI {message['type']!r}: 'headers' must be an iterable of pairs")
    checked = []
    for header in headers:
        if type(header) is tuple and len(header) == 2:
            try:
                if header in _valid_headers:
                    checked.append(header)
                    continue
            except TypeError:  # unhashable members: _header reports them
                pass
        checked.append(_header(message["type"], header))
    return checked


def _known_headers(headers: object) -> RawHeaders | None:
    """``headers`` as they are when every pair is an exact (bytes, bytes) tuple already
    found valid (the fast path), else None (send_rules decides)."""
    if type(headers) is not list:
        return None
    for header in headers:
        if type(header) is not tuple or len(header) != 2:
            return None
        try:
            if header not in _valid_headers:
                return None
        except TypeError:
            return None
    return list(headers)


def _as_bytes(data: bytes | bytearray | memoryview) -> bytes:
    return data if isinstance(data, bytes) else bytes(data)


def _body(message: Message) -> bytes:
    body = message.get("body", b"")
    if isinstance(body, (bytes, bytearray, memoryview)):
        return _as_bytes(body)
    raise RuntimeError(f"ASGI 'http.response.body': 'body' must be bytes, got {type(body).__name__}")


Event = tuple[Any, ...]


def send_rules(state: int, trailers: bool, accept_trailers: bool, message: object) -> tuple[int, bool, Event]:
    """The rules of an HTTP response's ``send()``, in one place.

    ``state`` is START, BODY, TRAILERS or COMPLETE; ``trailers`` whether the app asked
    for trailers (and the scope offers them); ``accept_trailers`` whether the scope
    offers the ``http.response.trailers`` extension.  Returns ``(state, trailers,
    event)`` with ``event`` one of ``("start", status, headers, trailers)``,
    ``("body", body, more_body)``, ``("trailers", headers, more_trailers)``; raises
    ``RuntimeError`` for any message the spec does not allow at this point.

    ``Stream.send`` and the NIF's C exchange take the common valid messages (a start
    whose status is in VALID_STATUSES and whose headers are all known valid, without
    trailers; a body with bytes and a bool or absent more_body, without trailers) as
    they are, and call this for everything else.
    """
    kind = _message_type(message)
    assert isinstance(message, dict)
    if state == COMPLETE:
        raise RuntimeError(f"ASGI {kind!r} sent after the response was complete")
    if kind == "http.response.start":
        if state != START:
            raise RuntimeError("ASGI 'http.response.start' sent twice")
        status = _status(message)
        headers = _headers(message)
        trailers = _flag(message, "trailers") and accept_trailers
        return BODY, trailers, ("start", status, headers, trailers)
    if kind == "http.response.body":
        if state == START:
            raise RuntimeError("ASGI 'http.response.body' sent before 'http.response.start'")
        if state == TRAILERS:
            raise RuntimeError("ASGI 'http.response.body' sent after the last body message")
        body = _body(message)
        more_body = _flag(message, "more_body")
        if not more_body:
            state = TRAILERS if trailers else COMPLETE
        return state, trailers, ("body", body, more_body)
    if kind == "http.response.trailers":
        if not trailers:
            raise RuntimeError(
                "ASGI 'http.response.trailers' needs the 'http.response.trailers' extension"
                " and 'trailers': True in 'http.response.start'"
            )
        if state != TRAILERS:
            raise RuntimeError("ASGI 'http.response.trailers' sent before the last body message")
        headers = _headers(message)
        more_trailers = _flag(message, "more_trailers")
        return (TRAILERS if more_trailers else COMPLETE), trailers, ("trailers", headers, more_trailers)
    raise RuntimeError(f"ASGI message type {kind!r} is not supported in an HTTP response")


def finish_rules(state: int) -> None:
    """The app returned: its response must be complete (unless the client went away, which
    the caller checks first)."""
    if state != COMPLETE:
        raise RuntimeError("ASGI app returned without completing the response")


class _Flag:
    """A one-loop asyncio.Event that costs nothing until somebody waits on it (most
    requests never wait: the whole body is there and the app answers at once)."""

    __slots__ = ("_is_set", "_waiters")

    def __init__(self) -> None:
        self._is_set = False
        self._waiters: list[asyncio.Future[None]] | None = None

    def set(self) -> None:
        self._is_set = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._is_set = False

    async def wait(self) -> None:
        if self._is_set:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        await waiter


class _SendWindow:
    """Bytes sent to the server but not yet acknowledged as written (``ack()``): once they
    exceed ``high_water`` the sender waits until they drop to ``high_water // 2``.  The
    subclass has ``_disconnected``: after it nobody waits."""

    __slots__ = ("_high_water", "_in_flight", "_drained")

    def __init__(self, high_water: int) -> None:
        self._high_water = high_water
        self._in_flight = 0
        self._drained = _Flag()

    def ack(self, nbytes: int) -> None:
        """The server has written ``nbytes`` more to the client."""
        self._in_flight = max(0, self._in_flight - nbytes)
        if self._in_flight <= self._high_water // 2:
            self._drained.set()

    def _over_high_water(self, sent: int) -> bool:
        """Counts ``sent`` bytes as in flight; True when the sender must wait for acks."""
        self._in_flight += sent
        return self._in_flight > self._high_water and not self._disconnected  # type: ignore[attr-defined]

    async def _wait_drained(self) -> None:
        self._drained.clear()
        await self._drained.wait()


class Stream(_SendWindow):
    """One HTTP request/response exchange between the server and an ASGI app.

    The request body arrives through the constructor and ``feed()``; the
    response leaves through ``emit`` (or, when ``emit`` is None, is collected in
    ``status``, ``headers`` and ``chunks``, trailers dropped):

    * ``emit("need_body")``: the app waits for more request body (once per wait);
    * ``emit("start", status: int, headers: list[tuple[bytes, bytes]], trailers: bool)``;
    * ``emit("body", body: bytes, more_body: bool)``;
    * ``emit("trailers", headers: list[tuple[bytes, bytes]], more_trailers: bool)``.

    Response bytes emitted but not yet ``ack()``-ed count as in flight: once they
    exceed ``high_water``, ``send()`` waits until they drop to ``high_water // 2``.
    The last body message never waits (the response is complete: the server need not
    acknowledge it).
    ``accept_trailers`` is set by ``stream_asgi`` from the scope's extensions.
    """

    __slots__ = (
        "accept_trailers", "_emit", "status", "headers", "chunks", "_pending", "_more_body",
        "_asked_for_body", "_body_arrived", "_state", "_trailers", "_finished",
        "_disconnected",
    )

    def __init__(
        self,
        emit: Callable[..., Any] | None,
        body: bytes = b"",
        more_body: bool = False,
        high_water: int = HIGH_WATER,
    ) -> None:
        self.accept_trailers = False
        self._emit = emit
        # With no emit (the buffered run_asgi), the response is collected here instead.
        self.status = 0
        self.headers: RawHeaders = []
        self.chunks: list[bytes] = []
        self._pending: deque[bytes] = deque((_as_bytes(body),) if body or not more_body else ())
        self._more_body = more_body
        self._asked_for_body = False
        self._body_arrived = _Flag()
        self._state = START
        self._trailers = False
        self._finished = _Flag()
        self._disconnected = False
        super().__init__(high_water)

    @property
    def complete(self) -> bool:
        """The app has sent its whole response."""
        return self._state == COMPLETE

    @property
    def disconnected(self) -> bool:
        return self._disconnected

    def feed(self, chunk: bytes, more_body: bool) -> None:
        """More request body from the client; ``more_body`` False for the last chunk."""
        if self._disconnected:
            return
        if not self._more_body:
            raise RuntimeError("Stream.feed() called after the last request body chunk")
        if chunk or not more_body:
            self._pending.append(_as_bytes(chunk))
        self._more_body = more_body
        self._asked_for_body = False
        self._body_arrived.set()

    def disconnect(self) -> None:
        """The client went away: wake every waiter; ``send()`` now raises."""
        self._disconnected = True
        self._body_arrived.set()
        self._finished.set()
        self._drained.set()

    async def receive(self) -> Message:
        while True:
            if self._disconnected or self._state == COMPLETE:
                return {"type": "http.disconnect"}
            if self._pending:
                body = self._pending.popleft()
                more_body = bool(self._pending) or self._more_body
                return {"type": "http.request", "body": body, "more_body": more_body}
            if self._more_body:
                self._ask_for_body()
                await self._body_arrived.wait()
            else:
                await self._finished.wait()

    async def send(self, message: Message) -> None:
        if self._disconnected:
            raise ClientDisconnected("the client disconnected")
        # The common valid messages as they are (see send_rules), the rest by the rules.
        kind = message.get("type") if type(message) is dict else None
        if kind == "http.response.start" and self._state == START and "trailers" not in message:
            status = message.get("status")
            headers = _known_headers(message.get("headers"))
            if type(status) is int and status in VALID_STATUSES and headers is not None:
                self._state = BODY
                event: Event = ("start", status, headers, False)
            else:
                event = self._by_rules(message)
        elif kind == "http.response.body" and self._state == BODY and not self._trailers:
            body = message.get("body", b"")
            more_body = message.get("more_body", False)
            if type(body) is bytes and type(more_body) is bool:
                if not more_body:
                    self._complete()
                event = ("body", body, more_body)
            else:
                event = self._by_rules(message)
        else:
            event = self._by_rules(message)
        await self._deliver(event)

    def _by_rules(self, message: object) -> Event:
        state, self._trailers, event = send_rules(
            self._state, self._trailers, self.accept_trailers, message
        )
        if state == COMPLETE:
            self._complete()
        else:
            self._state = state
        return event

    async def _deliver(self, event: Event) -> None:
        """Emits the event (or, buffered, collects the response); waits for acks when
        too much body is in flight."""
        if self._emit is not None:
            self._emit(*event)
            if event[0] == "body" and event[2] and self._over_high_water(len(event[1])):
                await self._wait_drained()
        elif event[0] == "start":
            self.status, self.headers = event[1], event[2]
        elif event[0] == "body" and event[1]:
            self.chunks.append(event[1])

    def _ask_for_body(self) -> None:
        if not self._asked_for_body:
            self._asked_for_body = True
            self._body_arrived.clear()
            if self._emit is not None:
                self._emit("need_body")

    def _complete(self) -> None:
        self._state = COMPLETE
        self._finished.set()



async def stream_asgi(app: ASGIApp, scope: Scope, stream: Stream) -> None:
    """Run an ASGI app over ``stream``.

    Returns when the app returns with its response complete (or after the
    client disconnected); raises ``RuntimeError`` if the app returned without
    completing the response. Exceptions from the app propagate unchanged.
    """
    stream.accept_trailers = TRAILERS_EXTENSION in (scope.get("extensions") or {})
    await app(scope, stream.receive, stream.send)
    if not stream.disconnected:
        finish_rules(stream._state)


# ---- websockets (ASGI websocket spec 2.4) ----------------------------------------------

WEBSOCKET_RESPONSE_EXTENSION = "websocket.http.response"
# Messages the server has delivered that the app's receive() has not taken yet: at this
# many the server is told to stop reading from the client (``pause_reading``), and once the
# app has taken half of them to go on (``resume_reading``).  uvicorn's --ws-max-queue.
WS_MAX_QUEUE = 32

# The states of a websocket: before the handshake's answer, sending a denial response
# (websocket.http.response), open, closed by the app (or denied: the end for the app).
WS_CONNECTING, WS_RESPONSE, WS_OPEN, WS_CLOSED = range(4)


def _http_rules(state: int, message: Message) -> tuple[int, Event]:
    """A websocket.http.response.* message checked by the HTTP response's rules (one owner
    for them: send_rules), its errors naming the websocket message."""
    kind = message["type"]
    try:
        state, _, event = send_rules(state, False, False, {**message, "type": kind[len("websocket."):]})
    except RuntimeError as error:
        raise RuntimeError(str(error).replace("'http.response.", "'websocket.http.response.")) from None
    return state, event


def _close_fields(message: Message) -> tuple[int, str]:
    code = message.get("code", 1000)
    reason = message.get("reason") or ""
    if type(code) is not int:
        raise RuntimeError(f"ASGI 'websocket.close': 'code' must be an int, got {code!r}")
    if not isinstance(reason, str):
        raise RuntimeError(f"ASGI 'websocket.close': 'reason' must be a str, got {type(reason).__name__}")
    return code, reason


def _send_data(message: Message) -> tuple[str, str | bytes, int]:
    """A websocket.send's ``("text", str, utf8_size)`` or ``("bytes", bytes, size)``."""
    text = message.get("text")
    data = message.get("bytes")
    if (text is None) == (data is None):
        raise RuntimeError("ASGI 'websocket.send' needs exactly one of 'bytes' and 'text' not None")
    if text is not None:
        if not isinstance(text, str):
            raise RuntimeError(f"ASGI 'websocket.send': 'text' must be a str, got {type(text).__name__}")
        return "text", text, len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise RuntimeError(f"ASGI 'websocket.send': 'bytes' must be bytes, got {type(data).__name__}")
    data = _as_bytes(data)
    return "bytes", data, len(data)


class WebSocketStream(_SendWindow):
    """One websocket between the server and an ASGI app (websocket spec 2.4).

    The app's messages leave through ``emit``:

    * ``emit("accept", subprotocol: str | None, headers: list[tuple[bytes, bytes]])``;
    * ``emit("text", data: str)`` and ``emit("bytes", data: bytes)`` (websocket.send);
    * ``emit("close", code: int, reason: str)``: after accept, the close handshake;
      before it, a denial (the server answers 403);
    * ``emit("start", status, headers, False)`` and ``emit("body", body, more_body)``: a
      denial response (the ``websocket.http.response`` extension, offered by the scope);
    * ``emit("pause_reading")`` when WS_MAX_QUEUE messages wait for the app's receive(),
      ``emit("resume_reading")`` once it has taken half of them.

    The server calls ``message(data)`` for each message from the client (str for text,
    bytes for binary: websocket.receive), ``disconnect(code, reason)`` when the connection
    has ended (websocket.disconnect; 1006 when it ended without a close handshake) and
    ``ack(nbytes)`` for the bytes of sent messages (and of a denial body) written out:
    ``send()`` waits while more than ``high_water`` bytes are unacknowledged, until they
    drop to half of it.  After ``disconnect`` the app's ``send()`` raises
    ``ClientDisconnected`` (an OSError, as the spec asks).

    Messages out of order (send before accept, anything after close, a response body
    without its start, bad field types) raise RuntimeError in the app's ``send()``;
    close codes and reason lengths are the server's to check.
    """

    __slots__ = (
        "accept_response", "_emit", "_state", "_connected", "_queue", "_arrived", "_paused",
        "_close", "_disconnected",
    )

    def __init__(self, emit: Emit, high_water: int = HIGH_WATER) -> None:
        self.accept_response = False
        self._emit = emit
        self._state = WS_CONNECTING
        self._connected = False
        self._queue: deque[str | bytes] = deque()
        self._arrived = _Flag()
        self._paused = False
        self._close: tuple[int, str] | None = None  # the websocket.disconnect to give
        self._disconnected = False
        super().__init__(high_water)

    @property
    def disconnected(self) -> bool:
        return self._disconnected

    @property
    def state(self) -> int:
        return self._state

    # -- the server's side

    def message(self, data: str | bytes) -> None:
        """A message from the client: str for text, bytes for binary."""
        if self._close is not None:
            return
        self._queue.append(data)
        if len(self._queue) >= WS_MAX_QUEUE and not self._paused:
            self._paused = True
            self._emit("pause_reading")
        self._arrived.set()

    def disconnect(self, code: int = 1006, reason: str = "") -> None:
        """The connection has ended: receive() gives websocket.disconnect once the queued
        messages are taken; send() raises."""
        self._disconnected = True
        if self._close is None:
            self._close = (code, reason)
        self._arrived.set()
        self._drained.set()

    # -- the app's side

    async def receive(self) -> Message:
        if not self._connected:
            self._connected = True
            return {"type": "websocket.connect"}
        while True:
            if self._queue:
                data = self._queue.popleft()
                if self._paused and len(self._queue) <= WS_MAX_QUEUE // 2:
                    self._paused = False
                    self._emit("resume_reading")
                if type(data) is str:
                    return {"type": "websocket.receive", "text": data}
                return {"type": "websocket.receive", "bytes": data}
            if self._close is not None:
                code, reason = self._close
                return {"type": "websocket.disconnect", "code": code, "reason": reason}
            self._arrived.clear()
            await self._arrived.wait()

    async def send(self, message: Message) -> None:
        if self._disconnected:
            raise ClientDisconnected("the client disconnected")
        kind = _message_type(message)
        if self._state == WS_OPEN:
            if kind == "websocket.send":
                event, data, size = _send_data(message)
                self._emit(event, data)
                await self._count_sent(size)
            elif kind == "websocket.close":
                self._emit("close", *_close_fields(message))
                self._state = WS_CLOSED
            else:
                raise RuntimeError(
                    f"Expected ASGI message 'websocket.send' or 'websocket.close', but got {kind!r}."
                )
        elif self._state == WS_CONNECTING:
            self._handshake(kind, message)
        elif self._state == WS_RESPONSE:
            if kind != "websocket.http.response.body":
                raise RuntimeError(f"Expected ASGI message 'websocket.http.response.body' but got {kind!r}.")
            state, event = _http_rules(BODY, message)
            self._emit(*event)
            if state == COMPLETE:
                self._end()
            elif event[2]:
                await self._count_sent(len(event[1]))
        else:
            raise RuntimeError(f"Unexpected ASGI message {kind!r}, after sending 'websocket.close'.")

    def _handshake(self, kind: str, message: Message) -> None:
        if kind == "websocket.accept":
            subprotocol = message.get("subprotocol")
            if subprotocol is not None and not isinstance(subprotocol, str):
                raise RuntimeError(f"ASGI 'websocket.accept': 'subprotocol' must be a str or None, got {subprotocol!r}")
            self._emit("accept", subprotocol, _headers(message))
            self._state = WS_OPEN
        elif kind == "websocket.close":
            self._emit("close", *_close_fields(message))
            self._end()
        elif kind == "websocket.http.response.start" and self.accept_response:
            _, event = _http_rules(START, message)
            self._emit(*event)
            self._state = WS_RESPONSE
        else:
            raise RuntimeError(
                "Expected ASGI message 'websocket.accept', 'websocket.close' or "
                f"'websocket.http.response.start' but got {kind!r}."
            )

    def _end(self) -> None:
        """Denied (403 or the app's response): for the app the connection is over."""
        self._state = WS_CLOSED
        if self._close is None:
            self._close = (1006, "")
        self._arrived.set()

    async def _count_sent(self, size: int) -> None:
        if self._over_high_water(size):
            await self._wait_drained()


async def stream_websocket(app: ASGIApp, scope: Scope, ws: WebSocketStream) -> None:
    """Run an ASGI app on a websocket scope over ``ws``.

    Raises RuntimeError when the app returns without answering the handshake (neither
    accept, nor close, nor a complete denial response); the server answers 500 then, and
    1011 when the app raises after accepting.  A ``ClientDisconnected`` the app lets
    through is the end of the connection, not an error.
    """
    ws.accept_response = WEBSOCKET_RESPONSE_EXTENSION in (scope.get("extensions") or {})
    try:
        await app(scope, ws.receive, ws.send)
    except ClientDisconnected:
        if not ws.disconnected:
            raise
        return
    if ws.state in (WS_CONNECTING, WS_RESPONSE) and not ws.disconnected:
        raise RuntimeError("ASGI callable returned without completing the websocket handshake")


async def default_asgi_handler(
    app: ASGIApp, scope: Scope, body: bytes
) -> tuple[int, RawHeaders, list[bytes]]:
    """Run an ASGI app on a complete request body; return ``(status, headers, body_chunks)``.

    ``body_chunks`` lists the non-empty body chunks. If the scope offers the
    ``http.response.trailers`` extension the app may send trailers; they are
    accepted and dropped, since a buffered response has nowhere to put them.
    """
    stream = Stream(None, body)
    await stream_asgi(app, scope, stream)
    return stream.status, stream.headers, stream.chunks


T = TypeVar("T")


async def await_any(awaitable: Awaitable[T]) -> T:
    """Any awaitable as a coroutine: the NIF wraps an app call that returns another kind
    of awaitable (asyncio tasks take coroutines only)."""
    return await awaitable


# The entry point called by the NIF.  Custom runners define their own run_asgi and wrap
# default_asgi_handler; this module's is that handler itself (one coroutine frame less
# per request).
run_asgi = default_asgi_handler


class Lifespan:
    """Drives an app's ``lifespan`` scope: ``await startup()``, later ``await shutdown()``.

    ``state`` is the lifespan state dict; the server shallow-copies it into
    each request scope.
    """

    def __init__(self, app: ASGIApp, state: dict[str, Any] | None = None) -> None:
        self.app = app
        self.state: dict[str, Any] = {} if state is None else state
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._phase = ""
        self._answer: asyncio.Future[Message] | None = None
        self._task: asyncio.Future[None] | None = None
        self._started = False

    async def startup(self) -> None:
        """Raises ``LifespanUnsupported`` if the app raises or returns before answering,
        ``LifespanFailure`` if it answers ``lifespan.startup.failed``."""
        scope = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "state": self.state,
        }
        self._task = asyncio.ensure_future(self.app(scope, self._receive, self._send))
        answer = await self._exchange("startup")
        if answer is None:
            error = await self._finish_app()
            raise LifespanUnsupported("ASGI app ended before answering lifespan.startup") from error
        await self._check(answer)
        self._started = True

    async def shutdown(self) -> None:
        """Raises ``LifespanFailure`` on ``lifespan.shutdown.failed`` or if the app ended
        before answering. Does nothing unless ``startup()`` succeeded."""
        if not self._started:
            return
        self._started = False
        answer = await self._exchange("shutdown")
        if answer is None:
            error = await self._finish_app()
            raise LifespanFailure("ASGI app ended before answering lifespan.shutdown") from error
        await self._check(answer)
        error = await self._finish_app()
        if error is not None:
            raise error

    async def _exchange(self, phase: str) -> Message | None:
        """Send ``lifespan.<phase>``; return the app's answer, or None if the app ended first."""
        assert self._task is not None
        self._phase = phase
        self._answer = asyncio.get_running_loop().create_future()
        await self._inbox.put({"type": f"lifespan.{phase}"})
        waiters: set[asyncio.Future[Any]] = {self._answer, self._task}
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        return self._answer.result() if self._answer.done() else None

    async def _check(self, answer: Message) -> None:
        if answer["type"].endswith(".failed"):
            error = await self._finish_app()
            raise LifespanFailure(answer.get("message", "")) from error

    async def _finish_app(self) -> BaseException | None:
        """Wait for the app to end (cancelling it if it still runs); return its exception."""
        assert self._task is not None
        if not self._task.done():
            self._task.cancel()
        await asyncio.wait({self._task})
        return None if self._task.cancelled() else self._task.exception()

    async def _receive(self) -> Message:
        return await self._inbox.get()

    async def _send(self, message: Message) -> None:
        kind = _message_type(message)
        if kind not in (f"lifespan.{self._phase}.complete", f"lifespan.{self._phase}.failed"):
            raise RuntimeError(f"ASGI lifespan: unexpected {kind!r} during {self._phase}")
        if self._answer is None or self._answer.done():
            raise RuntimeError(f"ASGI lifespan: {self._phase} already answered")
        self._answer.set_result(message)
