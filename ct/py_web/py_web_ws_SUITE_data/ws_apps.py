"""Websocket apps for py_web_ws_SUITE: Starlette (runs in every mode) and a FastAPI chat
(not in subinterpreters mode: pydantic-core refuses them)."""

import asyncio
from typing import Any

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

# What the apps saw, read back by the suite (per interpreter).
seen: dict[str, Any] = {}


def record(key: str) -> Any:
    return seen.get(key)


def reset() -> None:
    seen.clear()


async def echo(websocket: WebSocket) -> None:
    offered = websocket.scope["subprotocols"]
    await websocket.accept(subprotocol=offered[-1] if offered else None,
                           headers=[(b"x-origin", websocket.headers.get("origin", "").encode())])
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                seen["disconnect"] = [message["code"], message.get("reason", "")]
                return
            if message.get("text") is not None:
                await websocket.send_text(message["text"])
            else:
                await websocket.send_bytes(message["bytes"])
    except WebSocketDisconnect as disconnect:
        seen["disconnect"] = [disconnect.code, disconnect.reason]


async def late_echo(websocket: WebSocket) -> None:
    """Echo, after not reading for 0.5 s: what the client sends meanwhile queues up (the
    runner asks the server to pause reading at 32 waiting messages)."""
    await websocket.accept()
    await asyncio.sleep(0.5)
    try:
        while True:
            await websocket.send_text(await websocket.receive_text())
    except WebSocketDisconnect:
        pass


async def deny(websocket: WebSocket) -> None:
    await websocket.close(code=1008)


async def deny_response(websocket: WebSocket) -> None:
    await websocket.send_denial_response(PlainTextResponse("members only", status_code=401))


async def close_code(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.receive_text()
    await websocket.close(code=4000, reason="bye")


async def bad_close_code(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.close(code=1005)


async def raises(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.receive_text()
    raise ValueError("the app failed")


async def returns(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("bye")


rooms: set[WebSocket] = set()


async def broadcast(websocket: WebSocket) -> None:
    """Every text message goes to every client of the room (the sender too)."""
    await websocket.accept()
    rooms.add(websocket)
    try:
        while True:
            text = await websocket.receive_text()
            await asyncio.gather(*(client.send_text(text) for client in list(rooms)),
                                 return_exceptions=True)
    except WebSocketDisconnect:
        pass
    finally:
        rooms.discard(websocket)


async def room_size(request: Any) -> PlainTextResponse:
    return PlainTextResponse(str(len(rooms)))


app = Starlette(routes=[
    WebSocketRoute("/echo", echo),
    WebSocketRoute("/late_echo", late_echo),
    WebSocketRoute("/deny", deny),
    WebSocketRoute("/deny_response", deny_response),
    WebSocketRoute("/close_code", close_code),
    WebSocketRoute("/bad_close_code", bad_close_code),
    WebSocketRoute("/raises", raises),
    WebSocketRoute("/returns", returns),
    WebSocketRoute("/broadcast", broadcast),
    Route("/room_size", room_size),
])
