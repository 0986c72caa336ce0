"""Shared helpers of the e2e apps: an event log read back from Erlang with
erlang_python_ct:each(Module, events, []) (module globals are per interpreter:
the suite asks each one), and a gate that a streaming response waits on until
the test opens it (py:call(Module, open_gate, [])), which shows that the first
chunk reached the client before the stream ended without timing.  The gate is a
file, so that any interpreter can open it for the one running the response."""

import hashlib
import os
import tempfile
import time

EVENTS: list[list[str]] = []
GATE = os.path.join(tempfile.gettempdir(), f"e2e-gate-{os.getpid()}")


def events() -> list[list[str]]:
    return [list(e) for e in EVENTS]


def record(*event: str) -> None:
    EVENTS.append(list(event))


def reset() -> None:
    """Runs in every interpreter at once (erlang_python_ct:each): the gate may be
    gone by the time this one removes it."""
    EVENTS.clear()
    try:
        os.remove(GATE)
    except FileNotFoundError:
        pass


def open_gate() -> None:
    with open(GATE, "w"):
        pass


def upload_summary(note: str, data: bytes) -> str:
    return f"note={note} size={len(data)} sha256={hashlib.sha256(data).hexdigest()}"


def gate_chunks_sync():
    """first, then (once the gate is open) second."""
    yield b"first\n"
    for _ in range(3000):
        if os.path.exists(GATE):
            break
        time.sleep(0.01)
    else:
        raise TimeoutError("gate never opened")
    yield b"second\n"


async def gate_chunks_async():
    import asyncio

    yield b"first\n"
    for _ in range(3000):
        if os.path.exists(GATE):
            break
        await asyncio.sleep(0.01)
    else:
        raise TimeoutError("gate never opened")
    yield b"second\n"


def forever_sync(path: str):
    import time

    done = False
    try:
        for i in range(100000):
            yield b"tick %d\n" % i
            time.sleep(0.01)
        done = True
    finally:
        if not done:
            record("disconnected", path)


async def forever_async(path: str):
    import asyncio

    done = False
    try:
        for i in range(100000):
            yield b"tick %d\n" % i
            await asyncio.sleep(0.01)
        done = True
    finally:
        if not done:
            record("disconnected", path)
