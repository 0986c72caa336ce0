"""One worker process of erlang_python's processes mode.

The main thread runs an asyncio loop that reads frames from Erlang (fd 3) and writes
frames to it (fd 4, flushed before the loop sleeps).  As in a NIF worker thread:

* plain calls (``py:call`` of a normal function, a WSGI app run by ``py_wsgi:run``) run
  directly on the loop thread, with the loop *not* set as asyncio's running loop so that
  they may run loops of their own;
* async work (``py:call`` of an ``async def``, ``py_asgi``, lifespans) becomes a task whose
  first step runs at once (eager start), many in flight;
* a WSGI stream runs its app on a thread of its own (one at a time per process: a WSGI
  worker is busy while it runs an app), fed by the loop thread.

A synchronous call runs under the hang watchdog (``_codec.watchdog_arm``): past its
timeout the process kills itself and Erlang replaces it.  The process exits when Erlang
closes the port, and after ``DRAIN`` once its last request is answered.
"""

from __future__ import annotations

import asyncio
import asyncio.events
import importlib
import os
import sys
import threading
import time
import types
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, NoReturn

from . import _codec, asgi, wsgi, wire
from .apps import AppCache, BadRunner, name, resolve_path
from .asgi import BadResponse
from .terms import ENVIRON, GENERIC, KWARGS, RAW, SCOPE, Atom, BadArg, Unconvertible, decode, encode

_LEVELS = ("debug", "info", "warning", "error")
_TIMED_OPS = (wire.CALL, wire.WSGI_RUN, wire.ASGI_RUN, wire.LIFESPAN_STARTUP, wire.LIFESPAN_SHUTDOWN)
_FLUSH_AT = 1 << 20
_FLUSH_AFTER = 0.0005  # seconds


def _spawn_eager_312(loop: asyncio.AbstractEventLoop, coro: Any) -> asyncio.Task[Any]:
    return asyncio.Task(coro, loop=loop, eager_start=True)  # type: ignore[call-arg]


def _spawn_eager_311(loop: asyncio.AbstractEventLoop, coro: Any) -> asyncio.Task[Any]:
    """3.11 has no eager tasks: its Task schedules its first step with
    ``loop.call_soon(step, context=ctx)``; an instance attribute shadows the method for
    that one call, and the step runs at once, as 3.12's eager_start does."""
    captured: list[tuple[Callable[..., Any], Any]] = []

    def capture(callback: Callable[..., Any], *args: Any, context: Any = None) -> None:
        captured.append((callback, context))

    loop.call_soon = capture  # type: ignore[method-assign]
    try:
        task = asyncio.Task(coro, loop=loop)
    finally:
        del loop.call_soon
    step, context = captured[0]
    context.run(step)
    return task


spawn_eager = _spawn_eager_312 if sys.version_info >= (3, 12) else _spawn_eager_311


class Worker:
    """Dispatches the frames of one Erlang port."""

    def __init__(self, loop: asyncio.AbstractEventLoop, reader: Any, writer: Any) -> None:
        self.loop = loop
        self.reader = reader
        self.writer = writer
        self.loop_thread = threading.get_ident()
        self.apps = AppCache()
        self.errors = wsgi.ErrorStream(self.log)
        self.tasks: dict[int, asyncio.Task[Any]] = {}
        self.streams: dict[int, Any] = {}  # id -> the runner's Stream, or a wsgi.Channel
        self.active: set[int] = set()
        self.lifespans: dict[int, Any] = {}
        self.draining = False
        self._wsgi_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wsgi-stream")
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self._next_timer = 0
        self._received = 0.0
        self._handlers: dict[int, Callable[[int, bytes, bytes], None]] = {
            wire.CALL: self.call,
            wire.WSGI_RUN: self.wsgi_run,
            wire.ASGI_RUN: self.asgi_run,
            wire.WSGI_START: self.wsgi_start,
            wire.ASGI_START: self.asgi_start,
            wire.FEED: self.feed,
            wire.ACK: self.ack,
            wire.DISCONNECT: self.disconnect,
            wire.WS_RECEIVE: self.ws_receive,
            wire.WS_DISCONNECT: self.ws_disconnect,
            wire.CANCEL: self.cancel,
            wire.LIFESPAN_STARTUP: self.lifespan_startup,
            wire.LIFESPAN_SHUTDOWN: self.lifespan_shutdown,
            wire.DRAIN: self.drain,
        }

    # ---- frames out ---------------------------------------------------------------------

    def send(self, op: int, rid: int, head: bytes = b"", payload: Any = None) -> None:
        self.writer.push(op, rid, head, payload)
        if threading.get_ident() != self.loop_thread or self.writer.pending >= _FLUSH_AT:
            self.writer.flush()

    def final(self, rid: int, op: int, head: bytes = b"", payload: Any = None) -> None:
        """The last frame of a request: Erlang forgets it."""
        self.send(op, rid, head, payload)
        self.active.discard(rid)
        self.tasks.pop(rid, None)
        self.streams.pop(rid, None)
        if self.draining and not self.active:
            if threading.get_ident() == self.loop_thread:
                self.exit()
            else:
                self.loop.call_soon_threadsafe(self._exit_if_idle)

    def fail(self, rid: int, reason: Any) -> None:
        self.final(rid, wire.REPLY, wire.error_reply(reason))

    def fail_exception(self, rid: int, exc: BaseException) -> None:
        self.fail(rid, error_reason(exc))

    def log(self, level: str, message: str) -> None:
        """_erlang.log(level, message): a record for the Erlang logger."""
        if level not in _LEVELS:
            raise ValueError(f"unknown log level {level!r}")
        if not isinstance(message, str):
            raise TypeError("log() message must be str")
        head = encode((Atom(level), message.encode("utf-8", "backslashreplace")), RAW)
        self.send(wire.LOG, 0, head)

    # ---- frames in ----------------------------------------------------------------------

    def on_readable(self) -> None:
        try:
            frames = self.reader.read()
        except (OSError, EOFError, ValueError) as exc:
            self.protocol_error(f"cannot read from Erlang: {exc!r}")
        if frames is None:
            self.exit()  # Erlang closed the port
            return
        self.dispatch(frames)

    def protocol_error(self, what: str) -> NoReturn:
        """Erlang sent what no frame can be: nothing here can be trusted any more."""
        sys.stderr.write(f"hornbeam_port: {what}; exiting\n")
        sys.stderr.flush()
        os._exit(70)

    def dispatch(self, frames: list[tuple[int, int, bytes, bytes]]) -> None:
        self._received = flushed = time.monotonic()
        cancelled = {rid for op, rid, _, _ in frames if op == wire.CANCEL} if len(frames) > 1 else ()
        for op, rid, head, payload in frames:
            # Replies leave when the loop is about to wait, so that a burst of small
            # requests costs one write; but not later than _FLUSH_AFTER into a batch of
            # slow ones, whose clients would otherwise wait for the whole batch.
            now = time.monotonic()
            if now - flushed > _FLUSH_AFTER and self.writer.pending:
                self.writer.flush()
                flushed = now
            handler = self._handlers.get(op)
            if handler is None:
                self.protocol_error(f"unknown frame op {op} from Erlang")
            if op in _TIMED_OPS:
                if rid in cancelled:
                    self.send(wire.CANCELLED, rid)
                    continue
                self.active.add(rid)
            elif op in (wire.WSGI_START, wire.ASGI_START):
                self.active.add(rid)
            try:
                handler(rid, head, payload)
            except BaseException as exc:  # SystemExit included: an app's error result
                if rid in self.active:
                    self.fail_exception(rid, exc)
                else:
                    sys.unraisablehook(_unraisable(exc, handler))

    def remaining_ms(self, timeout: int) -> int | None:
        """What is left of a request's timeout (None: infinity)."""
        if timeout == wire.INFINITY:
            return None
        return timeout - int((time.monotonic() - self._received) * 1000)

    def run_sync(self, timeout: int | None, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Runs synchronous Python under the watchdog, the loop not set as running."""
        token = _codec.watchdog_arm(timeout) if timeout is not None else None
        asyncio.events._set_running_loop(None)
        try:
            return fn(*args, **kwargs)
        finally:
            asyncio.events._set_running_loop(self.loop)
            if token is not None:
                _codec.watchdog_disarm(token)

    def await_task(self, rid: int, timeout: int | None, coro: Any,
                   done: Callable[[int, asyncio.Task[Any]], None]) -> None:
        """Runs coro as a task (its first step now, under the watchdog); done() when it ends."""
        token = _codec.watchdog_arm(timeout) if timeout is not None else None
        try:
            task = spawn_eager(self.loop, coro)
        finally:
            if token is not None:
                _codec.watchdog_disarm(token)
        if task.done():
            done(rid, task)
            return
        self.tasks[rid] = task
        task.add_done_callback(lambda t: done(rid, t))

    def task_result(self, rid: int, task: asyncio.Task[Any]) -> Any:
        """The task's result; None after sending CANCELLED or the error reply."""
        if task.cancelled():
            self.final(rid, wire.CANCELLED)
            return _NO_RESULT
        exc = task.exception()
        if exc is not None:
            self.fail_exception(rid, exc)
            return _NO_RESULT
        return task.result()

    # ---- py:call ------------------------------------------------------------------------

    def call(self, rid: int, head: bytes, payload: bytes) -> None:
        timeout = self.remaining_ms(wire.u32(head))
        if timeout is not None and timeout <= 0:
            self.final(rid, wire.CANCELLED)
            return
        names, offset = decode(head, 4, RAW)
        fn = resolve_path(_import(name(names[0])), name(names[1]))
        try:
            args, offset = decode(head, offset, GENERIC)
            kwargs, _ = decode(head, offset, KWARGS)
        except BadArg as exc:
            self.fail(rid, wire.badarg_reason(exc))
            return
        result = self.run_sync(timeout, fn, *args, **kwargs)
        if type(result) is types.CoroutineType:
            self.await_task(rid, timeout, result, self._call_done)
        else:
            self._call_reply(rid, result)

    def _call_done(self, rid: int, task: asyncio.Task[Any]) -> None:
        result = self.task_result(rid, task)
        if result is not _NO_RESULT:
            self._call_reply(rid, result)

    def _call_reply(self, rid: int, result: Any) -> None:
        try:
            data = wire.ok_reply(encode(result, GENERIC))
        except (Unconvertible, UnicodeError) as exc:
            self.fail(rid, wire.result_error(exc))
            return
        self.final(rid, wire.REPLY, data)

    # ---- WSGI ---------------------------------------------------------------------------

    def wsgi_run(self, rid: int, head: bytes, payload: bytes) -> None:
        timeout = self.remaining_ms(wire.u32(head))
        if timeout is not None and timeout <= 0:
            self.final(rid, wire.CANCELLED)
            return
        names, offset = decode(head, 4, RAW)
        app, fn = self.apps.get(names, "run_wsgi")
        fields, _ = decode(head, offset, ENVIRON)
        environ = wsgi.build_environ(fields, wsgi.input_stream(payload), self.errors)
        result = self.run_sync(timeout, fn, app, environ)
        self._respond(rid, wsgi.response, result)

    def _respond(self, rid: int, convert: Callable[[Any], tuple[bytes, list[bytes]]], result: Any) -> None:
        try:
            head, body = convert(result)
        except BadResponse as exc:
            self.fail(rid, (wire.BAD_RESPONSE, str(exc).encode()))
            return
        self.final(rid, wire.RESPONSE, head, body)

    def wsgi_start(self, rid: int, head: bytes, payload: bytes) -> None:
        names, offset = decode(head, 1, RAW)
        channel = wsgi.Channel(payload, head[0] == 1, lambda: self.send(wire.NEED_BODY, rid))
        self.streams[rid] = channel
        self._wsgi_thread.submit(self._wsgi_stream, rid, names, head, offset, channel)

    def _wsgi_stream(self, rid: int, names: Any, head: bytes, offset: int, channel: wsgi.Channel) -> None:
        """On the WSGI stream thread: the whole app.  A stream given up (disconnected, or
        its owner gone) while it waited for the thread never starts: {error, not_started},
        as in the NIF modes."""
        if channel.disconnected:
            self.fail(rid, wire.NOT_STARTED)
            return
        try:
            app, fn = self.apps.get(names, "stream_wsgi")
            fields, _ = decode(head, offset, ENVIRON)
            environ = wsgi.build_environ(fields, wsgi.StreamInput(channel), self.errors)
            fn(app, environ, self._wsgi_emitter(rid, channel))
        except BaseException as exc:
            self.fail_exception(rid, exc)
            return
        self.final(rid, wire.DONE)

    def _wsgi_emitter(self, rid: int, channel: wsgi.Channel) -> Callable[..., None]:
        def emit(kind: str, *args: Any) -> None:
            if kind in ("body", "last") and len(args) == 1:
                try:
                    chunk = asgi._buffer(args[0])
                except BadResponse:
                    raise TypeError("WSGI body chunks must be bytes") from None
                channel.count(len(chunk))
                self.send(wire.BODY, rid, b"\x00", chunk)
                if kind == "body":  # nothing is written after the last chunk
                    channel.wait_window(len(chunk))
            elif kind == "start" and len(args) == 2:
                try:
                    status = wsgi._latin1(args[0], "")
                    headers = wsgi.headers_term(args[1], "")
                except BadResponse:
                    raise ValueError("WSGI status and headers must be latin-1 str") from None
                channel.count(0)
                self.send(wire.START, rid, encode((status, headers), RAW))
            else:
                raise ValueError("bad stream event")
        return emit

    # ---- ASGI ---------------------------------------------------------------------------

    def lifespan_state(self, lid: int) -> dict[str, Any]:
        lifespan = self.lifespans.get(lid)
        if lifespan is None:
            raise RuntimeError(f"lifespan {lid} is not running in this worker")
        return lifespan.state

    def asgi_run(self, rid: int, head: bytes, payload: bytes) -> None:
        timeout = self.remaining_ms(wire.u32(head))
        if timeout is not None and timeout <= 0:
            self.final(rid, wire.CANCELLED)
            return
        names, offset = decode(head, 4, RAW)
        app, fn = self.apps.get(names, "run_asgi")
        try:
            fields, _ = decode(head, offset, SCOPE)
        except BadArg as exc:
            self.fail(rid, wire.badarg_reason(exc))
            return
        scope = asgi.build_scope(fields, self.lifespan_state)
        coro = fn(app, scope, payload)
        if type(coro) is not types.CoroutineType:
            self.fail(rid, (wire.BAD_RUNNER, b"run_asgi must be an async function"))
            return
        self.await_task(rid, timeout, coro, self._asgi_done)

    def _asgi_done(self, rid: int, task: asyncio.Task[Any]) -> None:
        result = self.task_result(rid, task)
        if result is not _NO_RESULT:
            self._respond(rid, asgi.response, result)

    def asgi_start(self, rid: int, head: bytes, payload: bytes) -> None:
        names, offset = decode(head, 1, RAW)
        try:
            fields, _ = decode(head, offset, SCOPE)
        except BadArg as exc:
            self.fail(rid, wire.badarg_reason(exc))
            return
        scope = asgi.build_scope(fields, self.lifespan_state)
        if scope["type"] == "websocket":
            app, fn = self.apps.get(names, "stream_websocket")
            _, stream_class = self.apps.get(names, "WebSocketStream")
            stream = stream_class(self._websocket_emitter(rid))
        else:
            app, fn = self.apps.get(names, "stream_asgi")
            _, stream_class = self.apps.get(names, "Stream")
            stream = stream_class(self._asgi_emitter(rid), payload, head[0] == 1)
        coro = fn(app, scope, stream)
        self.streams[rid] = stream
        self.await_task(rid, None, coro, self._stream_done)

    def _stream_done(self, rid: int, task: asyncio.Task[Any]) -> None:
        if self.task_result(rid, task) is not _NO_RESULT:
            self.final(rid, wire.DONE)

    def _asgi_emitter(self, rid: int) -> Callable[..., None]:
        def emit(kind: str, *args: Any) -> None:
            if kind == "body" and len(args) == 2:
                self.send(wire.BODY, rid, b"\x01" if args[1] else b"\x00", asgi._buffer(args[0]))
            elif kind == "start" and len(args) >= 2 and isinstance(args[0], int):
                headers = asgi.raw_headers(args[1], "bad stream event")
                self.send(wire.START, rid, encode((int(args[0]), headers), RAW))
            elif kind == "need_body":
                self.send(wire.NEED_BODY, rid)
            elif kind == "trailers" and len(args) == 2:
                headers = asgi.raw_headers(args[0], "bad stream event")
                self.send(wire.TRAILERS, rid, encode((headers, bool(args[1])), RAW))
            else:
                raise ValueError("bad stream event")
        return emit

    def _websocket_emitter(self, rid: int) -> Callable[..., None]:
        """A WebSocketStream's events as the NIF delivers them: {accept, Subprotocol,
        Headers}, {send, text | binary, Data}, {close, Code, Reason}, pause_reading,
        resume_reading, and a denial response's start and body as for HTTP."""
        http = self._asgi_emitter(rid)

        def emit(kind: str, *args: Any) -> None:
            if kind == "text" and len(args) == 1:
                self.send(wire.WS_SEND, rid, b"\x00", args[0].encode("utf-8"))
            elif kind == "bytes" and len(args) == 1:
                self.send(wire.WS_SEND, rid, b"\x01", asgi._buffer(args[0]))
            elif kind == "accept" and len(args) == 2:
                subprotocol = _UNDEFINED if args[0] is None else args[0].encode("utf-8")
                headers = asgi.raw_headers(args[1], "bad stream event")
                self.send(wire.WS_EVENT, rid, encode((Atom("accept"), subprotocol, headers), RAW))
            elif kind == "close" and len(args) == 2:
                reason = args[1].encode("utf-8")
                self.send(wire.WS_EVENT, rid, encode((Atom("close"), int(args[0]), reason), RAW))
            elif kind in ("pause_reading", "resume_reading") and not args:
                self.send(wire.WS_EVENT, rid, encode(Atom(kind), RAW))
            else:
                http(kind, *args)
        return emit

    # ---- stream follow-ups --------------------------------------------------------------

    def feed(self, rid: int, head: bytes, payload: bytes) -> None:
        stream = self.streams.get(rid)
        if stream is not None:
            stream.feed(payload, head[0] == 1)

    def ack(self, rid: int, head: bytes, payload: bytes) -> None:
        stream = self.streams.get(rid)
        if stream is not None:
            stream.ack(int.from_bytes(head[:8], "big"))

    def disconnect(self, rid: int, head: bytes, payload: bytes) -> None:
        stream = self.streams.get(rid)
        if stream is not None:
            stream.disconnect()

    def ws_receive(self, rid: int, head: bytes, payload: bytes) -> None:
        stream = self.streams.get(rid)
        if stream is not None:
            stream.message(payload.decode("utf-8", "replace") if head[0] == 0 else payload)

    def ws_disconnect(self, rid: int, head: bytes, payload: bytes) -> None:
        stream = self.streams.get(rid)
        if stream is not None:
            stream.disconnect(wire.i32(head), payload.decode("utf-8", "replace"))

    def cancel(self, rid: int, head: bytes, payload: bytes) -> None:
        task = self.tasks.get(rid)
        if task is not None:
            task.cancel()

    # ---- lifespan -----------------------------------------------------------------------

    def lifespan_startup(self, rid: int, head: bytes, payload: bytes) -> None:
        timeout_field, lid = wire.u32_u64(head)
        timeout = self.remaining_ms(timeout_field)
        names, _ = decode(head, 12, RAW)
        app, lifespan_class = self.apps.get(names, "Lifespan")
        lifespan = lifespan_class(app)
        self.await_task(rid, timeout, lifespan.startup(),
                        lambda r, t: self._startup_done(r, t, lid, lifespan))

    def _startup_done(self, rid: int, task: asyncio.Task[Any], lid: int, lifespan: Any) -> None:
        if task.cancelled():
            self.final(rid, wire.CANCELLED)
            return
        exc = task.exception()
        if exc is not None and type(exc).__name__ == "LifespanUnsupported":
            self.fail(rid, wire.UNSUPPORTED)
        elif exc is not None:
            self.fail_exception(rid, exc)
        else:
            self.lifespans[lid] = lifespan
            self.final(rid, wire.REPLY, encode(wire.OK, RAW))

    def lifespan_shutdown(self, rid: int, head: bytes, payload: bytes) -> None:
        timeout_field, lid = wire.u32_u64(head)
        lifespan = self.lifespans.pop(lid, None)
        if lifespan is None:
            self.final(rid, wire.REPLY, encode(wire.OK, RAW))
            return
        self.await_task(rid, self.remaining_ms(timeout_field), lifespan.shutdown(),
                        self._shutdown_done)

    def _shutdown_done(self, rid: int, task: asyncio.Task[Any]) -> None:
        if self.task_result(rid, task) is not _NO_RESULT:
            self.final(rid, wire.REPLY, encode(wire.OK, RAW))

    # ---- life of the process ------------------------------------------------------------

    def drain(self, rid: int, head: bytes, payload: bytes) -> None:
        self.draining = True
        self._exit_if_idle()

    def _exit_if_idle(self) -> None:
        if not self.active:
            self.exit()

    def exit(self) -> None:
        """Ends the process now (after writing what is queued)."""
        try:
            self.writer.flush()
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(0)  # reported to Erlang, see hornbeam_port._reporting_exit

    # ---- _erlang timers -----------------------------------------------------------------

    def schedule_timer(self, delay_ms: int, callback: Callable[[], Any]) -> int:
        """_erlang.schedule_timer: callback on this worker's loop after delay_ms."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not self.loop or threading.get_ident() != self.loop_thread:
            raise RuntimeError("_erlang.schedule_timer needs a worker thread of a running erlang_python")
        self._next_timer += 1
        handle = self._next_timer

        def fire() -> None:
            self._timers.pop(handle, None)
            callback()

        self._timers[handle] = self.loop.call_later(max(0, delay_ms) / 1000, fire)
        return handle

    def cancel_timer(self, handle: int) -> None:
        timer = self._timers.pop(handle, None)
        if timer is not None:
            timer.cancel()


_NO_RESULT = object()
_UNDEFINED = Atom("undefined")


def _import(module: str) -> types.ModuleType:
    """sys.modules first (a dict lookup), the import machinery otherwise."""
    found = sys.modules.get(module)
    return found if found is not None else importlib.import_module(module)


def error_reason(exc: BaseException) -> Any:
    if isinstance(exc, BadArg):
        return wire.badarg_reason(exc)
    if isinstance(exc, BadRunner):
        return (wire.BAD_RUNNER, str(exc).encode())
    return wire.python_error(exc)


class _Unraisable:
    def __init__(self, exc: BaseException, obj: object) -> None:
        self.exc_type = type(exc)
        self.exc_value = exc
        self.exc_traceback = exc.__traceback__
        self.err_msg = "Exception in an erlang_python frame handler"
        self.object = obj


def _unraisable(exc: BaseException, obj: object) -> Any:
    return _Unraisable(exc, obj)
