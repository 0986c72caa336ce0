"""ASGI apps for py_asgi_stream_SUITE (py_asgi:start/4 and the {asgi, S, Event} messages).

Apps note what they saw in RECORDS[scope["path"]], read back with
py:call(ep_asgi_stream_apps, record, [Path]).
"""
import asyncio
import hashlib

RECORDS = {}


def record(key):
    return RECORDS.get(key)


def _note(scope, *item):
    RECORDS.setdefault(scope["path"], []).append(list(item) if len(item) > 1 else item[0])


START = {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/octet-stream")]}


async def echo_chunks(scope, receive, send):
    """Echoes each request body chunk as a response body chunk with the same more_body."""
    await send({"type": "http.response.start", "status": 200, "headers": [(b"x-app", b"echo")]})
    while True:
        msg = await receive()
        _note(scope, msg["type"], len(msg.get("body", b"")), msg.get("more_body", False))
        await send({"type": "http.response.body", "body": msg["body"],
                    "more_body": msg["more_body"]})
        if not msg["more_body"]:
            return


async def read_all(scope, receive, send):
    """Reads the whole body, then answers its size, SHA-256 and number of chunks."""
    chunks = []
    while True:
        msg = await receive()
        chunks.append(msg["body"])
        if not msg.get("more_body", False):
            break
    body = b"".join(chunks)
    await send({"type": "http.response.start", "status": 200, "headers": [
        (b"x-chunks", str(len(chunks)).encode()),
        (b"x-sha256", hashlib.sha256(body).hexdigest().encode())]})
    await send({"type": "http.response.body", "body": str(len(body)).encode()})


async def ten_chunks(scope, receive, send):
    await send({"type": "http.response.start", "status": 201,
                "headers": [(b"set-cookie", b"a=1"), (b"x-b", b"2"), (b"set-cookie", b"b=2")]})
    for i in range(10):
        await send({"type": "http.response.body", "body": f"c{i}".encode(), "more_body": True})
        if i % 3 == 0:
            await asyncio.sleep(0.001)
    await send({"type": "http.response.body", "body": b"", "more_body": False})


CHUNK = 256 * 1024


async def big_sender(scope, receive, send):
    """20 x 256 KiB: chunk i is 256 KiB of byte i; notes how many sends have returned."""
    RECORDS[scope["path"]] = {"returned": 0, "error": None}
    await send(START)
    try:
        for i in range(20):
            await send({"type": "http.response.body", "body": bytes([i]) * CHUNK,
                        "more_body": i < 19})
            RECORDS[scope["path"]]["returned"] = i + 1
    except Exception as e:
        RECORDS[scope["path"]]["error"] = type(e).__name__
        RECORDS[scope["path"]]["oserror"] = isinstance(e, OSError)


async def wait_disconnect(scope, receive, send):
    """Sends the start and one chunk, then waits in receive() (the body is complete),
    and tries to send again after receive() returned."""
    first = await receive()
    _note(scope, "first", first["type"], first["body"].decode(), first["more_body"])
    await send(START)
    await send({"type": "http.response.body", "body": b"partial", "more_body": True})
    msg = await receive()
    _note(scope, "received", msg["type"])
    try:
        await send({"type": "http.response.body", "body": b"after", "more_body": False})
        _note(scope, "send", "returned")
    except Exception as e:
        _note(scope, "send", type(e).__name__, isinstance(e, OSError))


async def wait_body_disconnect(scope, receive, send):
    """Waits for more request body that never comes."""
    msgs = []
    while True:
        msg = await receive()
        msgs.append(msg["type"])
        if msg["type"] == "http.disconnect" or not msg.get("more_body"):
            break
    RECORDS[scope["path"]] = msgs
    try:
        await send(START)
        RECORDS[scope["path"]].append("send returned")
    except OSError as e:
        RECORDS[scope["path"]].append(type(e).__name__)


async def trailers(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": [(b"trailer", b"x-checksum")],
                "trailers": True})
    await send({"type": "http.response.body", "body": b"data", "more_body": True})
    await send({"type": "http.response.body", "body": b"more", "more_body": False})
    await send({"type": "http.response.trailers", "headers": [(b"x-checksum", b"abc"),
                                                               (b"x-more", b"1")],
                "more_trailers": True})
    await send({"type": "http.response.trailers", "headers": [(b"x-last", b"2")],
                "more_trailers": False})


async def raises_after_start(scope, receive, send):
    await send(START)
    await send({"type": "http.response.body", "body": b"x", "more_body": True})
    raise ValueError("stream app failed")


async def body_before_start(scope, receive, send):
    await send({"type": "http.response.body", "body": b"x"})


async def returns_early(scope, receive, send):
    await send(START)


async def echo_state(scope, receive, send):
    state = scope["state"]
    body = repr(sorted(state.items())).encode()
    state["added"] = True
    await send(START)
    await send({"type": "http.response.body", "body": body})


async def lifespan_app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                scope["state"]["db"] = "conn"
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    await echo_state(scope, receive, send)


async def scope_method(scope, receive, send):
    await send(START)
    await send({"type": "http.response.body", "body": (scope["method"] + " " + scope["path"]).encode()})
    scope["method"] = "CHANGED"


async def start_then_wait(scope, receive, send):
    """Starts, waits (the first step ends), then sends the body."""
    await send(START)
    await asyncio.sleep(0.01)
    await send({"type": "http.response.body", "body": b"late"})


async def respond_then_wait(scope, receive, send):
    """Sends the whole response, then waits (the first step ends) before it returns, as an
    app with a background task after its response does."""
    await send(START)
    await send({"type": "http.response.body", "body": b"now"})
    await asyncio.sleep(0.01)


async def exchange_kind(scope, receive, send):
    """Answers the class of the object behind send(): the NIF's C exchange or the runner's
    Stream."""
    while (await receive()).get("more_body"):
        pass
    await send(START)
    await send({"type": "http.response.body", "body": type(send.__self__).__name__.encode()})
