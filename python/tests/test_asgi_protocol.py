"""ASGI HTTP protocol enforcement of hornbeam_asgi_runner (buffered path)."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from _support import make_scope
from hornbeam_asgi_runner import default_asgi_handler, run_asgi

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

START = {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
TRAILERS_EXTENSION = {"http.response.trailers": {}}


def sender(*messages: Message) -> Callable[[dict, Receive, Send], Awaitable[None]]:
    """An app that sends ``messages`` in order."""

    async def app(scope: dict, receive: Receive, send: Send) -> None:
        for message in messages:
            await send(message)

    return app


def run(app: Any, scope: dict | None = None, body: bytes = b"") -> tuple[int, list, list]:
    return asyncio.run(run_asgi(app, scope or make_scope(), body))


def test_simple_response() -> None:
    app = sender(
        {**START, "headers": [(b"Content-Type", b"text/plain"), [b"set-cookie", b"a=1"], (b"set-cookie", b"b=2")]},
        {"type": "http.response.body", "body": b"hello ", "more_body": True},
        {"type": "http.response.body", "body": b"", "more_body": True},
        {"type": "http.response.body", "body": b"world"},
    )
    status, headers, body = run(app)
    assert status == 200
    assert headers == [(b"Content-Type", b"text/plain"), (b"set-cookie", b"a=1"), (b"set-cookie", b"b=2")]
    assert body == [b"hello ", b"world"]


def test_empty_body() -> None:
    assert run(sender(START, {"type": "http.response.body"})) == (200, START["headers"], [])


@pytest.mark.parametrize("body", [bytearray(b"abc"), memoryview(b"abc")])
def test_bytes_like_bodies_become_bytes(body: Any) -> None:
    chunks = run(sender(START, {"type": "http.response.body", "body": body}))[2]
    assert chunks == [b"abc"]
    assert type(chunks[0]) is bytes


@pytest.mark.parametrize("size", [0, 1, 1023, 1024, 65536])
def test_request_body_sizes(size: int) -> None:
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)

    async def echo(scope: dict, receive: Receive, send: Send) -> None:
        message = await receive()
        assert message == {"type": "http.request", "body": payload, "more_body": False}
        await send(START)
        await send({"type": "http.response.body", "body": message["body"]})

    assert b"".join(run(echo, make_scope("POST"), payload)[2]) == payload


@pytest.mark.parametrize(
    ("messages", "error"),
    [
        ([{"type": "http.response.body", "body": b"x"}], "before 'http.response.start'"),
        ([START, START], "sent twice"),
        ([START, {"type": "http.response.body"}, {"type": "http.response.body"}], "after the response was complete"),
        ([START, {"type": "http.response.body"}, START], "after the response was complete"),
        ([{"type": "http.response.push", "path": "/"}], "not supported"),
        ([START, {"type": "websocket.send", "text": "x"}], "not supported"),
        ([{"status": 200}], "needs a str 'type'"),
        ([[("type", "http.response.start")]], "must be a dict"),
        ([{**START, "status": "200"}], "'status' must be an int"),
        ([{**START, "status": 200.0}], "'status' must be an int"),
        ([{**START, "status": True}], "'status' must be an int"),
        ([{**START, "status": 42}], "invalid status"),
        ([{**START, "headers": 5}], "iterable"),
        ([{**START, "headers": b"content-type: x"}], "iterable"),
        ([{**START, "headers": [("content-type", "text/plain")]}], r"\[bytes, bytes\]"),
        ([{**START, "headers": [(b"content-type", b"text/plain", b"x")]}], r"\[bytes, bytes\]"),
        ([{**START, "headers": [(b"bad name", b"x")]}], "invalid header name"),
        ([{**START, "headers": [(b"x-split", b"a\r\nset-cookie: evil")]}], "CR, LF or NUL"),
        ([{**START, "trailers": "yes"}], "'trailers' must be a bool"),
        ([START, {"type": "http.response.body", "body": "text"}], "'body' must be bytes"),
        ([START, {"type": "http.response.body", "body": b"", "more_body": 1}], "'more_body' must be a bool"),
        (
            [START, {"type": "http.response.body"}, {"type": "http.response.trailers", "headers": []}],
            "after the response was complete",
        ),
        ([START, {"type": "http.response.trailers", "headers": []}], "needs the 'http.response.trailers' extension"),
    ],
)
def test_protocol_violations_raise(messages: list[Any], error: str) -> None:
    with pytest.raises(RuntimeError, match=error):
        run(sender(*messages))


def test_app_returning_without_response_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="ASGI app returned without completing the response"):
        run(sender())


def test_app_returning_with_partial_body_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="without completing the response"):
        run(sender(START, {"type": "http.response.body", "body": b"x", "more_body": True}))


def test_app_exception_propagates_unchanged() -> None:
    error = ValueError("from the app")

    async def app(scope: dict, receive: Receive, send: Send) -> None:
        await send(START)
        raise error

    with pytest.raises(ValueError) as caught:
        run(app)
    assert caught.value is error


def test_receive_waits_until_response_complete() -> None:
    observed: list[Any] = []

    async def app(scope: dict, receive: Receive, send: Send) -> None:
        assert (await receive())["type"] == "http.request"
        waiter = asyncio.ensure_future(receive())
        await send(START)
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        await asyncio.sleep(0.01)
        observed.append(waiter.done())
        await send({"type": "http.response.body", "body": b"b"})
        observed.append(await waiter)
        observed.append(await receive())

    assert run(app)[2] == [b"a", b"b"]
    assert observed == [False, {"type": "http.disconnect"}, {"type": "http.disconnect"}]


def test_trailers_accepted_with_extension_and_dropped_when_buffered() -> None:
    app = sender(
        {**START, "trailers": True},
        {"type": "http.response.body", "body": b"data"},
        {"type": "http.response.trailers", "headers": [(b"x-checksum", b"1")], "more_trailers": True},
        {"type": "http.response.trailers", "headers": [(b"x-more", b"2")]},
    )
    scope = make_scope(extensions=TRAILERS_EXTENSION)
    assert run(app, scope) == (200, START["headers"], [b"data"])


def test_trailers_required_before_completion_when_announced() -> None:
    app = sender({**START, "trailers": True}, {"type": "http.response.body", "body": b"data"})
    with pytest.raises(RuntimeError, match="without completing the response"):
        run(app, make_scope(extensions=TRAILERS_EXTENSION))


def test_trailers_before_last_body_is_an_error() -> None:
    app = sender(
        {**START, "trailers": True},
        {"type": "http.response.body", "body": b"data", "more_body": True},
        {"type": "http.response.trailers", "headers": []},
    )
    with pytest.raises(RuntimeError, match="before the last body message"):
        run(app, make_scope(extensions=TRAILERS_EXTENSION))


def test_trailers_without_announcing_them_is_an_error() -> None:
    app = sender(
        START,
        {"type": "http.response.body", "body": b"x", "more_body": True},
        {"type": "http.response.trailers"},
    )
    with pytest.raises(RuntimeError, match="'trailers': True"):
        run(app, make_scope(extensions=TRAILERS_EXTENSION))


def test_trailers_flag_ignored_without_extension() -> None:
    app = sender({**START, "trailers": True}, {"type": "http.response.body", "body": b"x"})
    assert run(app)[2] == [b"x"]


def test_custom_runner_wraps_default_handler() -> None:
    async def custom_run_asgi(app: Any, scope: dict, body: bytes) -> tuple[int, list, list]:
        scope["state"]["custom_key"] = "value"
        return await default_asgi_handler(app, scope, body)

    async def app(scope: dict, receive: Receive, send: Send) -> None:
        await send(START)
        await send({"type": "http.response.body", "body": scope["state"]["custom_key"].encode()})

    result = asyncio.run(custom_run_asgi(app, make_scope(state={}), b""))
    assert result[2] == [b"value"]


def test_non_suspending_app_runs_without_an_event_loop() -> None:
    """The C side may step the coroutine directly: an app that never waits on a
    future must finish at the first step, with no running loop needed."""

    async def app(scope: dict, receive: Receive, send: Send) -> None:
        request = await receive()
        await send(START)
        await send({"type": "http.response.body", "body": request["body"]})

    coroutine = run_asgi(app, make_scope("POST"), b"payload")
    with pytest.raises(StopIteration) as finished:
        coroutine.send(None)
    assert finished.value.value == (200, START["headers"], [b"payload"])
