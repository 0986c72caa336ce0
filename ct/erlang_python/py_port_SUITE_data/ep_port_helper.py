"""Python side of py_port_SUITE: apps that crash, hang, misbehave on the wire, grow."""
import asyncio
import ctypes
import os
import struct
import time

import hornbeam_port

HELD = []
STATE_SEEN = []


def pid():
    return os.getpid()


def segfault():
    """Reads address 0: SIGSEGV."""
    return ctypes.string_at(0)


def sleep_pid(seconds):
    time.sleep(seconds)
    return os.getpid()


async def sleep_async(seconds):
    await asyncio.sleep(seconds)
    return os.getpid()


def bad_frame():
    """Writes a well-formed packet (length prefix) whose content is no frame of the
    protocol, then waits to be killed for it."""
    junk = b"\xc8not a frame at all"
    os.write(hornbeam_port.OUT_FD, struct.pack(">I", len(junk)) + junk)
    time.sleep(60)


def grow(megabytes):
    """Keeps megabytes of memory alive in this process (touched, so resident)."""
    HELD.append(bytearray(b"x" * (megabytes << 20)))
    return os.getpid()


async def hello(scope, receive, send):
    if scope["type"] == "lifespan":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"hello " + scope["path"].encode()})


async def segfault_app(scope, receive, send):
    segfault()


async def blocks_loop(scope, receive, send):
    """Synchronous code inside an async app: the worker's loop is blocked."""
    time.sleep(60)


async def stream_forever(scope, receive, send):
    """Starts a response with one chunk naming this process, then keeps the stream open
    until the client disconnects."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"first %d" % os.getpid(), "more_body": True})
    while (await receive())["type"] != "http.disconnect":
        pass


async def websocket_echo(scope, receive, send):
    """Accepts with this process's pid as the subprotocol, then echoes text until the
    client leaves."""
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept", "subprotocol": str(os.getpid())})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        await send({"type": "websocket.send", "text": message["text"]})


def wsgi_waits_for_body(environ, start_response):
    """Reads the whole request body (a stream feeds it), then answers with this pid."""
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"%d %d" % (os.getpid(), len(body))]


async def lifespan_app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                scope["state"]["db"] = "connected"
                scope["state"]["pid"] = os.getpid()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    state = scope["state"]
    body = ("%s %d %d" % (state.get("db"), state.get("pid", 0), os.getpid())).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})
