"""ASGI websocket apps for py_asgi_ws_SUITE (plain ASGI and Starlette)."""

import asyncio
from typing import Any

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

Message = dict[str, Any]
# What the apps saw, for the suite to read back (per interpreter).
seen: dict[str, Any] = {}


def record(key: str) -> Any:
    return seen.get(key)


def reset() -> None:
    seen.clear()


async def echo(scope: dict, receive: Any, send: Any) -> None:
    """Accepts with the first offered subprotocol; echoes; records scope and disconnect."""
    seen["scope"] = {
        k: (list(v) if k in ("headers", "subprotocols") else v)
        for k, v in scope.items()
        if k not in ("state",)
    }
    seen["types"] = {k: type(v).__name__ for k, v in scope.items()}
    assert (await receive()) == {"type": "websocket.connect"}
    offered = scope["subprotocols"]
    await send({"type": "websocket.accept", "subprotocol": offered[0] if offered else None,
                "headers": [(b"x-app", b"echo")]})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            seen["disconnect"] = [message["code"], message["reason"]]
            return
        if "text" in message:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


async def closer(scope: dict, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.close", "code": 4001, "reason": "bye é"})
    message = await receive()
    seen["disconnect"] = [message["code"], message["reason"]]


async def deny(scope: dict, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "websocket.close"})
    seen["after_deny"] = await receive()


async def deny_with_response(scope: dict, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "websocket.http.response.start", "status": 401,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "websocket.http.response.body", "body": b"who are ", "more_body": True})
    await send({"type": "websocket.http.response.body", "body": b"you"})


async def send_before_accept(scope: dict, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "websocket.send", "text": "too early"})


async def bytes_as_text(scope: dict, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": b"not str"})


async def raises(scope: dict, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "websocket.accept"})
    raise ValueError("boom")


async def returns_after_accept(scope: dict, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "websocket.accept"})


async def returns_early(scope: dict, receive: Any, send: Any) -> None:
    await receive()


async def ignores_disconnect(scope: dict, receive: Any, send: Any) -> None:
    """Sends forever without reading: the OSError after disconnect ends it quietly."""
    await receive()
    await send({"type": "websocket.accept"})
    while True:
        await send({"type": "websocket.send", "bytes": b"x" * 1000})
        await asyncio.sleep(0.001)


async def firehose(scope: dict, receive: Any, send: Any) -> None:
    """2 MiB in 64 KiB messages, then close: the owner's acks pace it."""
    await receive()
    await send({"type": "websocket.accept"})
    for i in range(32):
        await send({"type": "websocket.send", "bytes": bytes([i]) * 65536})
    await send({"type": "websocket.close"})
    await receive()


async def slow_reader(scope: dict, receive: Any, send: Any) -> None:
    """Accepts, waits for a "go" message's arrival time to pass, then reads everything."""
    await receive()
    await send({"type": "websocket.accept"})
    await asyncio.sleep(0.3)
    count = 0
    while (await receive())["type"] != "websocket.disconnect":
        count += 1
    seen["count"] = count


async def chat(websocket: WebSocket) -> None:
    await websocket.accept(subprotocol="chat.v1" if "chat.v1" in websocket.scope["subprotocols"] else None)
    try:
        while True:
            data = await websocket.receive_json()
            await websocket.send_json({"you said": data, "path": websocket.url.path})
    except WebSocketDisconnect as disconnect:
        seen["disconnect"] = [disconnect.code, disconnect.reason]


starlette_app = Starlette(routes=[WebSocketRoute("/chat", chat)])
