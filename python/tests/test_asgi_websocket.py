"""The websocket path: WebSocketStream's events, flow control both ways, the app's
protocol errors, and Starlette's WebSocket on top of it."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from hornbeam_asgi_runner import (
    WS_MAX_QUEUE,
    ClientDisconnected,
    WebSocketStream,
    stream_websocket,
)

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def ws_scope(extensions: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "type": "websocket",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "scheme": "ws",
        "path": "/ws",
        "raw_path": b"/ws",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"localhost")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
        "subprotocols": ["chat", "superchat"],
        "state": {},
        "extensions": extensions or {},
    }


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def __call__(self, *event: Any) -> None:
        self.events.append(event)

    def names(self) -> list[str]:
        return [event[0] for event in self.events]


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def echo(scope: dict, receive: Receive, send: Send) -> None:
    assert (await receive()) == {"type": "websocket.connect"}
    await send({"type": "websocket.accept", "subprotocol": "chat", "headers": [(b"x-a", b"1")]})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


def run_with(app: Any, steps: Callable[[WebSocketStream], Awaitable[None]], scope: dict | None = None,
             high_water: int = 1 << 20) -> tuple[Recorder, BaseException | None]:
    async def main() -> tuple[Recorder, BaseException | None]:
        emit = Recorder()
        ws = WebSocketStream(emit, high_water=high_water)
        task = asyncio.ensure_future(stream_websocket(app, scope or ws_scope(), ws))
        await settle()
        await steps(ws)
        await settle()
        await asyncio.wait({task}, timeout=1)
        return emit, task.exception() if task.done() else None

    return asyncio.run(main())


def test_echo_and_disconnect() -> None:
    async def steps(ws: WebSocketStream) -> None:
        ws.message("héllo")
        ws.message(b"\x00\x01")
        await settle()
        ws.disconnect(1000, "bye")

    emit, error = run_with(echo, steps)
    assert error is None
    assert emit.events == [
        ("accept", "chat", [(b"x-a", b"1")]),
        ("text", "héllo"),
        ("bytes", b"\x00\x01"),
    ]


def test_messages_before_disconnect_are_delivered_first() -> None:
    received: list[Message] = []

    async def app(scope: dict, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await asyncio.sleep(0.01)
        while True:
            received.append(await receive())
            if received[-1]["type"] == "websocket.disconnect":
                return

    async def steps(ws: WebSocketStream) -> None:
        ws.message("a")
        ws.disconnect(1001, "")

    run_with(app, steps)
    assert received == [
        {"type": "websocket.receive", "text": "a"},
        {"type": "websocket.disconnect", "code": 1001, "reason": ""},
    ]


def test_send_after_disconnect_raises_oserror() -> None:
    caught: list[BaseException] = []

    async def app(scope: dict, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        assert (await receive())["code"] == 1006
        try:
            await send({"type": "websocket.send", "text": "late"})
        except OSError as error:
            caught.append(error)
            raise

    async def steps(ws: WebSocketStream) -> None:
        ws.disconnect()

    emit, error = run_with(app, steps)
    assert error is None  # a ClientDisconnected after disconnect ends the app quietly
    assert isinstance(caught[0], ClientDisconnected)


def test_close_before_accept_is_a_denial() -> None:
    async def app(scope: dict, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.close", "code": 1008})
        assert (await receive()) == {"type": "websocket.disconnect", "code": 1006, "reason": ""}

    emit, error = run_with(app, lambda ws: settle())
    assert error is None
    assert emit.events == [("close", 1008, "")]


def test_denial_response_needs_the_extension() -> None:
    async def app(scope: dict, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.http.response.start", "status": 401, "headers": [(b"x", b"y")]})
        await send({"type": "websocket.http.response.body", "body": b"no", "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b"pe"})

    scope = ws_scope({"websocket.http.response": {}})
    emit, error = run_with(app, lambda ws: settle(), scope)
    assert error is None
    assert emit.events == [("start", 401, [(b"x", b"y")], False), ("body", b"no", True), ("body", b"pe", False)]
    emit, error = run_with(app, lambda ws: settle())
    assert isinstance(error, RuntimeError)
    assert "but got 'websocket.http.response.start'" in str(error)


def test_denial_body_errors_name_the_websocket_message() -> None:
    async def app(scope: dict, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.http.response.start", "status": 999})

    emit, error = run_with(app, lambda ws: settle(), ws_scope({"websocket.http.response": {}}))
    assert isinstance(error, RuntimeError)
    assert "'websocket.http.response.start'" in str(error) and "999" in str(error)


@pytest.mark.parametrize(
    "messages, text",
    [
        ([{"type": "websocket.send", "text": "x"}], "Expected ASGI message 'websocket.accept'"),
        ([{"type": "websocket.accept"}, {"type": "websocket.accept"}],
         "Expected ASGI message 'websocket.send' or 'websocket.close', but got 'websocket.accept'"),
        ([{"type": "websocket.accept"}, {"type": "websocket.send", "text": b"x"}], "'text' must be a str"),
        ([{"type": "websocket.accept"}, {"type": "websocket.send", "bytes": "x"}], "'bytes' must be bytes"),
        ([{"type": "websocket.accept"}, {"type": "websocket.send"}], "exactly one of"),
        ([{"type": "websocket.accept"}, {"type": "websocket.send", "text": "a", "bytes": b"b"}], "exactly one of"),
        ([{"type": "websocket.accept"}, {"type": "websocket.close", "code": "1000"}], "'code' must be an int"),
        ([{"type": "websocket.accept"}, {"type": "websocket.close", "reason": b"x"}], "'reason' must be a str"),
        ([{"type": "websocket.accept"}, {"type": "websocket.close"}, {"type": "websocket.send", "text": "x"}],
         "after sending 'websocket.close'"),
        ([{"type": "websocket.accept", "subprotocol": b"chat"}], "'subprotocol' must be a str"),
        ([{"type": "websocket.accept", "headers": [(b"bad name", b"v")]}], "invalid header name"),
        (["not a dict"], "must be a dict"),
    ],
)
def test_protocol_errors_raise_in_send(messages: list[Any], text: str) -> None:
    async def app(scope: dict, receive: Receive, send: Send) -> None:
        await receive()
        for message in messages:
            await send(message)

    emit, error = run_with(app, lambda ws: settle())
    assert isinstance(error, RuntimeError)
    assert text in str(error)


def test_returning_without_handshake_is_an_error() -> None:
    async def app(scope: dict, receive: Receive, send: Send) -> None:
        await receive()

    emit, error = run_with(app, lambda ws: settle())
    assert isinstance(error, RuntimeError)
    assert "without completing the websocket handshake" in str(error)


def test_inbound_flow_control() -> None:
    release = asyncio.Event()

    async def slow(scope: dict, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await release.wait()
        while (await receive())["type"] != "websocket.disconnect":
            pass

    async def steps(ws: WebSocketStream) -> None:
        for i in range(WS_MAX_QUEUE + 5):
            ws.message(str(i))
        assert ws._emit.names().count("pause_reading") == 1  # type: ignore[attr-defined]
        release.set()
        await settle()
        ws.disconnect(1000)

    emit, error = run_with(slow, steps)
    assert error is None
    assert emit.names() == ["accept", "pause_reading", "resume_reading"]


def test_outbound_backpressure_waits_for_acks() -> None:
    sent: list[int] = []

    async def firehose(scope: dict, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        for i in range(10):
            await send({"type": "websocket.send", "text": "é" * 50})  # 100 bytes in UTF-8
            sent.append(i)

    async def steps(ws: WebSocketStream) -> None:
        assert sent == [0]  # the second message makes 200 bytes in flight > 150: it waits
        ws.ack(100)
        await settle()
        assert sent == [0]  # 100 in flight is still above 75
        ws.ack(100)
        await settle()
        assert sent == [0, 1, 2]
        ws.ack(10_000)
        await settle()
        ws.ack(10_000)
        await settle()
        ws.ack(10_000)
        await settle()
        ws.ack(10_000)
        await settle()

    emit, error = run_with(firehose, steps, high_water=150)
    assert error is None
    assert sent == list(range(10))


def test_starlette_websocket_endpoint() -> None:
    async def endpoint(websocket: WebSocket) -> None:
        await websocket.accept(subprotocol="superchat")
        try:
            while True:
                text = await websocket.receive_text()
                await websocket.send_json({"echo": text})
        except WebSocketDisconnect as disconnect:
            assert disconnect.code == 1000

    app = Starlette(routes=[WebSocketRoute("/ws", endpoint)])

    async def steps(ws: WebSocketStream) -> None:
        ws.message("hi")
        await settle()
        ws.disconnect(1000)

    emit, error = run_with(app, steps)
    assert error is None
    assert emit.events == [("accept", "superchat", []), ("text", '{"echo":"hi"}')]
