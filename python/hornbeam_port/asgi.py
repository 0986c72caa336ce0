"""ASGI on the worker side: the scope from its Erlang map, the response to Erlang terms.

The scope has the types c_src/asgi/scope.c gives it in the NIF modes (ASGI 3.0, HTTP
and websocket spec_version 2.4): ``path`` the percent-decoded UTF-8 str, ``raw_path``,
``query_string`` and headers bytes (names lower-cased, order and duplicates kept),
``client``/``server`` (host, port) tuples or None, ``state`` a fresh dict or a shallow
copy of a lifespan's state, ``asgi`` and ``extensions`` converted as py:call arguments,
a websocket scope's ``subprotocols`` a list of str (``scheme`` "ws" by default, no
``method``).
The Erlang side validated the map (py_nif:check_scope/1) before sending it.
"""

from __future__ import annotations

from typing import Any, Callable
from urllib.parse import unquote_to_bytes

from .terms import RAW, encode

ASGI_VERSION = {"version": "3.0", "spec_version": "2.4"}

Scope = dict[str, Any]


def _text(value: bytes) -> str:
    return value.decode("utf-8", "replace")


def _path(raw: bytes) -> str:
    if b"%" not in raw:
        return raw.decode("utf-8", "replace")
    return unquote_to_bytes(raw).decode("utf-8", "replace")


def _address(value: Any) -> tuple[str, int] | None:
    if value is None:
        return None
    return (_text(value[0]), value[1])


def build_scope(fields: dict[str, Any], lifespan_state: Callable[[int], dict[str, Any]]) -> Scope:
    """The scope dict from the decoded map (``SCOPE`` mode); a ``state`` of
    ``(lifespan, Id)`` is a shallow copy of that lifespan's state."""
    scope: Scope = {}
    for key, value in fields.items():
        if key == "path":
            scope["path"] = _path(value)
        elif key in ("raw_path", "query_string"):
            scope[key] = value
        elif key == "headers":
            scope["headers"] = [(h[0].lower(), h[1]) for h in value]
        elif key in ("server", "client"):
            scope[key] = _address(value)
        elif key == "state":
            scope["state"] = dict(lifespan_state(value[1])) if type(value) is tuple else value
        elif key in ("asgi", "extensions"):
            scope[key] = value
        elif key == "subprotocols":
            scope[key] = [_text(p) for p in value]
        else:
            scope[key] = _text(value)
    if "asgi" not in scope:
        scope["asgi"] = dict(ASGI_VERSION)
    scope.setdefault("http_version", "1.1")
    if scope["type"] == "websocket":
        scope.setdefault("scheme", "ws")
        scope.setdefault("subprotocols", [])
    else:
        scope.setdefault("method", "GET")
        scope.setdefault("scheme", "http")
    if "raw_path" not in scope:
        scope["raw_path"] = fields["path"]
    scope.setdefault("query_string", b"")
    scope.setdefault("root_path", "")
    if "headers" not in scope:
        scope["headers"] = []
    scope.setdefault("server", None)
    scope.setdefault("client", None)
    if "state" not in scope:
        scope["state"] = {}
    return scope


class BadResponse(Exception):
    """A runner's result that is not (status, headers, body) of the right types."""


def _buffer(obj: Any) -> bytes:
    if type(obj) is bytes:
        return obj
    try:
        return bytes(memoryview(obj))
    except TypeError:
        raise BadResponse from None


def raw_headers(headers: Any, message: str) -> list[tuple[bytes, bytes]]:
    """``[(bytes, bytes)]`` from a list of 2-item tuples or lists of bytes-like objects."""
    if not isinstance(headers, list):
        raise BadResponse("headers must be a list")
    out = []
    try:
        for pair in headers:
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise BadResponse
            out.append((_buffer(pair[0]), _buffer(pair[1])))
    except BadResponse:
        raise BadResponse(message) from None
    return out


def body_chunks(body: Any) -> list[bytes]:
    """The body as a list of bytes objects (written as they are, never joined)."""
    try:
        if isinstance(body, (list, tuple)):
            return [_buffer(chunk) for chunk in body]
        return [_buffer(body)]
    except BadResponse:
        raise BadResponse("body must be bytes or a list of bytes") from None


def response(result: Any) -> tuple[bytes, list[bytes]]:
    """(head, body chunks) of a RESPONSE frame for run_asgi's (status, headers, body)."""
    if not isinstance(result, tuple) or len(result) != 3:
        raise BadResponse("run_asgi must return (status, headers, body)")
    status, headers, body = result
    if not isinstance(status, int) or not 100 <= status <= 999:
        raise BadResponse("status must be an int from 100 to 999")
    head = encode((int(status), raw_headers(headers, "headers must be (bytes, bytes) pairs")), RAW)
    return head, body_chunks(body)
