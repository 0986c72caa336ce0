"""Raw ASGI apps for py_asgi_SUITE (run through the NIF by py_asgi:run/4,5).

Records go into RECORDS (a module global) under a key chosen by the test, and are read
back with ep_test_lib:one(ep_asgi_apps, record, [Key]) (module globals are per interpreter:
each sub-interpreter has its own RECORDS).  Apps whose answer depends on earlier requests
also report INTERPRETER, which names the interpreter that ran them.
"""
import asyncio
import hashlib
import json
import sys

RECORDS = {}
COUNTS = {}
INTERPRETER = "%x" % id(sys.modules)


def record(key):
    return RECORDS.get(key)


def count(key):
    return COUNTS.get(key, 0)


def reset():
    RECORDS.clear()
    COUNTS.clear()
    _STATES.clear()
    return None


def _bump(key):
    COUNTS[key] = COUNTS.get(key, 0) + 1


def typed(v):
    """A JSON-able picture of a value with its exact Python type."""
    if v is None:
        return ["None"]
    if isinstance(v, bool):
        return [type(v).__name__, v]
    if isinstance(v, bytes):
        return [type(v).__name__, v.hex()]
    if isinstance(v, str):
        return [type(v).__name__, v]
    if isinstance(v, int):
        return [type(v).__name__, v]
    if isinstance(v, (tuple, list)):
        return [type(v).__name__, [typed(x) for x in v]]
    if isinstance(v, dict):
        return [type(v).__name__, [[typed(k), typed(x)] for k, x in v.items()]]
    return [type(v).__name__, repr(v)]


async def _respond(send, status=200, body=b"", headers=()):
    await send({"type": "http.response.start", "status": status, "headers": list(headers)})
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive):
    chunks = []
    while True:
        msg = await receive()
        assert msg["type"] == "http.request", msg
        chunks.append(msg["body"])
        if not msg.get("more_body", False):
            return b"".join(chunks)


# ---- scope ------------------------------------------------------------------------------

async def echo_scope(scope, receive, send):
    """Answers the scope it got as typed JSON; the keys in scope order."""
    body = json.dumps([[k, typed(v)] for k, v in scope.items()]).encode()
    await _respond(send, 200, body, [(b"content-type", b"application/json")])


# The state dict of each request, kept alive so that ids cannot be reused.
_STATES = []


def states_seen():
    return len(_STATES)



async def state_identity(scope, receive, send):
    """Mutates scope['state'] and reports what it found first."""
    state = scope["state"]
    _STATES.append(state)
    seen = {"keys": sorted(state), "ids": len({id(s) for s in _STATES}), "n": len(_STATES),
            "interp": INTERPRETER}
    state["touched"] = True
    await _respond(send, 200, json.dumps(seen).encode())


async def mutate_scope(scope, receive, send):
    """Reports the scope it got (typed), then mutates everything mutable in it."""
    body = json.dumps([[k, typed(v)] for k, v in scope.items()]).encode()
    scope["headers"].append((b"x-added", b"1"))
    scope["state"]["leak"] = "yes"
    for value in scope["state"].values():
        if isinstance(value, list):
            value.append("leak")
        if isinstance(value, dict):
            value["leak"] = True
    scope["method"] = "PATCH"
    scope["path"] = "/mutated"
    scope["asgi"]["version"] = "9.9"
    ext = scope.get("extensions")
    if isinstance(ext, dict):
        ext["leak"] = {}
        for value in ext.values():
            if isinstance(value, dict):
                value["leak"] = True
    scope["new_key"] = 1
    await _respond(send, 200, body)


# ---- bodies -----------------------------------------------------------------------------

async def echo_body(scope, receive, send):
    body = await _read_body(receive)
    await _respond(send, 200, body, [
        (b"x-len", str(len(body)).encode()),
        (b"x-sha256", hashlib.sha256(body).hexdigest().encode()),
        (b"x-type", type(body).__name__.encode()),
    ])


_PATTERN = bytes(range(251))


def pattern(n):
    return (_PATTERN * (n // len(_PATTERN) + 1))[:n]


async def sized_body(scope, receive, send):
    """A response body of int(query_string) bytes of the 0..250 pattern, in one message."""
    n = int(scope["query_string"])
    await _respond(send, 200, pattern(n))


async def chunked_body(scope, receive, send):
    """The same body in 3 messages (the runner joins them)."""
    n = int(scope["query_string"])
    data = pattern(n)
    third = n // 3
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": data[:third], "more_body": True})
    await send({"type": "http.response.body", "body": bytearray(data[third:2 * third]),
                "more_body": True})
    await send({"type": "http.response.body", "body": memoryview(data[2 * third:])})


# ---- receive() after the body ----------------------------------------------------------

async def receive_waits(scope, receive, send):
    """A task awaits receive() after the body; the app notes when it returns relative to
    its own sends."""
    key = scope["path"]
    loop = asyncio.get_running_loop()
    first = await receive()
    events = []

    async def watcher():
        msg = await receive()
        events.append(["receive_returned", msg["type"]])

    task = asyncio.ensure_future(watcher())
    await asyncio.sleep(0.05)
    events.append(["before_start", task.done()])
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"part1", "more_body": True})
    await asyncio.sleep(0.05)
    events.append(["before_last_body", task.done()])
    await send({"type": "http.response.body", "body": b"part2"})
    events.append(["after_last_body", task.done()])
    await asyncio.wait_for(task, 2)
    events.append(["watcher_done", task.done()])
    RECORDS[key] = {"first": [first["type"], first["body"].hex(), first["more_body"]],
                    "events": events, "elapsed_ok": loop.time() > 0}


# ---- protocol violations ----------------------------------------------------------------

START = {"type": "http.response.start", "status": 200, "headers": []}


async def body_before_start(scope, receive, send):
    await send({"type": "http.response.body", "body": b"x"})


async def start_twice(scope, receive, send):
    await send(START)
    await send(START)


async def send_after_end(scope, receive, send):
    await send(START)
    await send({"type": "http.response.body", "body": b"done"})
    await send({"type": "http.response.body", "body": b"more"})


async def no_response(scope, receive, send):
    return None


async def start_only(scope, receive, send):
    await send(START)


async def body_unfinished(scope, receive, send):
    await send(START)
    await send({"type": "http.response.body", "body": b"x", "more_body": True})


async def unknown_type(scope, receive, send):
    await send({"type": "http.response.foo"})


async def not_a_dict(scope, receive, send):
    await send([("type", "http.response.start")])


async def status_str(scope, receive, send):
    await send({"type": "http.response.start", "status": "200", "headers": []})


async def headers_str(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": [("x-a", "b")]})


async def body_str(scope, receive, send):
    await send(START)
    await send({"type": "http.response.body", "body": "text"})


async def more_body_str(scope, receive, send):
    await send(START)
    await send({"type": "http.response.body", "body": b"x", "more_body": "yes"})


async def app_raises(scope, receive, send):
    raise ValueError("app failed on purpose")


async def violation_caught(scope, receive, send):
    """The app catches the protocol error and reports it in a proper response."""
    try:
        await send({"type": "http.response.body", "body": b"x"})
    except RuntimeError as e:
        await _respond(send, 500, str(e).encode())


# ---- concurrency and stepping --------------------------------------------------------------

async def sleep_100ms(scope, receive, send):
    await asyncio.sleep(0.1)
    await _respond(send, 200, scope["path"].encode())


async def _no_suspend():
    return b"value"


async def counted(scope, receive, send):
    """The same response whichever way of awaiting the path asks for; counts each call."""
    key = scope["path"]
    _bump(key)
    how = scope["query_string"]
    if how == b"plain":
        value = await _no_suspend()
    elif how == b"done_future":
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(b"value")
        value = await fut
    elif how == b"sleep0":
        await asyncio.sleep(0)
        value = await _no_suspend()
    elif how == b"sleep":
        await asyncio.sleep(0.01)
        value = await _no_suspend()
    elif how == b"task":
        value = await asyncio.ensure_future(_no_suspend())
    else:
        raise ValueError(how)
    body = await _read_body(receive)
    _bump(key + ":after")
    await _respond(send, 200, value + b"|" + body,
                   [(b"x-count", str(COUNTS[key]).encode()), (b"x-interp", INTERPRETER.encode())])


# ---- timeouts ---------------------------------------------------------------------------

async def sleep_long(scope, receive, send):
    key = scope["path"]
    RECORDS[key] = ["started"]
    try:
        await asyncio.sleep(10)
    except asyncio.CancelledError:
        RECORDS[key].append("cancelled")
        raise
    finally:
        RECORDS[key].append("finally")
    await _respond(send, 200, b"late")


async def hello(scope, receive, send):
    await _respond(send, 200, b"hello", [(b"content-type", b"text/plain")])


# ---- lifespan -----------------------------------------------------------------------------

async def lifespan_app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                RECORDS["lifespan"] = ["startup"]
                scope["state"]["name"] = "db"
                scope["state"]["shared"] = [0]
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                RECORDS["lifespan"].append("shutdown")
                await send({"type": "lifespan.shutdown.complete"})
                return
    state = scope["state"]
    seen = {"keys": sorted(state), "name": state.get("name"),
            "shared": list(state.get("shared", [])), "type": type(state).__name__,
            "interp": INTERPRETER}
    state["name"] = "changed"
    state["added"] = 1
    state["shared"].append(len(seen["shared"]))
    await _respond(send, 200, json.dumps(seen).encode())


async def lifespan_raises(scope, receive, send):
    if scope["type"] != "http":
        raise ValueError("lifespan not supported")
    await _respond(send, 200, b"ok")


async def lifespan_fails(scope, receive, send):
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no database here"})
        return
    await _respond(send, 200, b"ok")
