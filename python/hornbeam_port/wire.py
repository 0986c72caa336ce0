"""The frames between a worker process and Erlang (docs/processes.md, "The wire").

Every frame is ``<<Op:8, Id:64, HeadLen:32, Head:HeadLen/binary, Payload/binary>>`` inside
a 4-byte length prefix.  The head holds fixed fields and terms in the external format;
the payload is raw bytes (a request or response body), never copied into a term.

This module owns the operation codes of the Python side and the shapes of the replies.
"""

from __future__ import annotations

import os
import struct
import traceback
from types import TracebackType
from typing import Any

from .terms import RAW, Atom, BadArg, Unconvertible, encode

# Erlang -> Python
CALL = 1
WSGI_RUN = 2
ASGI_RUN = 3
WSGI_START = 4
ASGI_START = 5
FEED = 6
ACK = 7
DISCONNECT = 8
CANCEL = 9
LIFESPAN_STARTUP = 10
LIFESPAN_SHUTDOWN = 11
DRAIN = 12
INIT = 13
WS_RECEIVE = 14  # websocket stream: head = <<0 (text) | 1 (binary)>>, payload = the message
WS_DISCONNECT = 15  # websocket stream: head = <<Code:32/signed>>, payload = the reason

# Python -> Erlang
REPLY = 1  # final: head = the whole reply term
RESPONSE = 2  # final: head = {Status, Headers}, payload = body
START = 3  # stream event: head = {Status, Headers}
BODY = 4  # stream event: head = <<More:8>>, payload = chunk
TRAILERS = 5  # stream event: head = {Headers, More}
NEED_BODY = 6  # stream event
DONE = 7  # final: the stream's app returned
CANCELLED = 8  # final: the request was cancelled; nothing to deliver
LOG = 9  # head = {Level, Message}
READY = 10  # head = #{...}, the answer to INIT
EXITING = 11  # head = <<Status:32>>: the process is about to die with this exit status
WS_EVENT = 12  # websocket stream event: head = the event term ({accept, ...}, {close, ...}, ...)
WS_SEND = 13  # websocket stream event: head = <<0 (text) | 1 (binary)>>, payload = the message

INFINITY = 0xFFFFFFFF  # a timeout field meaning "no timeout"

_U32 = struct.Struct(">I")
_I32 = struct.Struct(">i")
_U32_U64 = struct.Struct(">IQ")

OK = Atom("ok")
ERROR = Atom("error")
PYTHON = Atom("python")
BADARG = Atom("badarg")
BAD_RUNNER = Atom("bad_runner")
BAD_RESPONSE = Atom("bad_response")
UNCONVERTIBLE = Atom("unconvertible")
TOO_DEEP = Atom("too_deep")
UNSUPPORTED = Atom("unsupported")
NOT_STARTED = Atom("not_started")

# {ok, X} around an encoded X, without re-encoding X (nor counting it as a nesting level).
_OK_PREFIX = b"\x83h\x02w\x02ok"


def u32(head: bytes, offset: int = 0) -> int:
    return _U32.unpack_from(head, offset)[0]


def i32(head: bytes, offset: int = 0) -> int:
    return _I32.unpack_from(head, offset)[0]


def u32_u64(head: bytes) -> tuple[int, int]:
    return _U32_U64.unpack_from(head, 0)


def ok_reply(encoded: bytes) -> bytes:
    """``{ok, X}`` from the external format of X."""
    return _OK_PREFIX + encoded[1:]


def error_reply(reason: Any) -> bytes:
    return encode((ERROR, reason), RAW)


def _text(obj: object) -> bytes:
    try:
        s = obj if isinstance(obj, str) else str(obj)
    except Exception:
        return b"<unprintable>"
    return s.encode("utf-8", "backslashreplace")


def type_name(exc: BaseException) -> bytes:
    cls = type(exc)
    module = getattr(cls, "__module__", None)
    qualname = getattr(cls, "__qualname__", None) or "<unknown>"
    if isinstance(module, str) and module != "builtins":
        return _text(f"{module}.{qualname}")
    return _text(qualname)


_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _app_frames(tb: TracebackType | None) -> TracebackType | None:
    """The traceback without the worker's own frames in front (the NIF's has none)."""
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_PACKAGE):
        tb = tb.tb_next
    return tb


def python_error(exc: BaseException) -> tuple[Any, ...]:
    """``{python, Type, Message, Traceback}`` as the NIF reports it (docs/errors.md)."""
    try:
        tb = _app_frames(exc.__traceback__)
        lines = "".join(traceback.format_exception(type(exc), exc, tb)).splitlines()
    except Exception:
        lines = []
    return (PYTHON, type_name(exc), _text(exc), [_text(line) for line in lines])


def badarg_reason(exc: BadArg) -> Any:
    if exc.term is None:
        return (BADARG, Atom(exc.kind))
    return (BADARG, (Atom(exc.kind), exc.term))


def result_error(exc: BaseException) -> Any:
    """The error reason for a failure while converting a result to Erlang."""
    if isinstance(exc, Unconvertible):
        return TOO_DEEP if exc.what == "too_deep" else (UNCONVERTIBLE, exc.what.encode())
    # Raised by the codec, not by Python code: no frame of ours in the traceback.
    return python_error(exc.with_traceback(None))
