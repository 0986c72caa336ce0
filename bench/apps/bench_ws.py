"""Websocket apps of `make bench`'s ws phase, plain ASGI (no framework cost): /echo sends
each message back; /room broadcasts each text message to every member."""

import asyncio
from typing import Any

members: set[Any] = set()


async def app(scope: dict, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})
        return
    await receive()
    await send({"type": "websocket.accept"})
    if scope["path"] == "/room":
        members.add(send)
        try:
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    return
                out = {"type": "websocket.send", "text": message.get("text")}
                await asyncio.gather(*(member(out) for member in list(members)),
                                     return_exceptions=True)
        finally:
            members.discard(send)
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})
