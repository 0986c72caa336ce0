"""Helpers for py_mode_SUITE: which interpreter runs what, module globals per
interpreter, lifespans that log to a file (shared by every interpreter)."""

import os
import sys
import threading
import time

INTERPRETER = "%x" % id(sys.modules)  # names this interpreter (its own sys.modules)
_VALUE = None
_LOG = None


def interpreter():
    return INTERPRETER


def set_value(value):
    global _VALUE
    _VALUE = value
    return INTERPRETER


def get_value():
    return _VALUE


def busy_interpreter(ms):
    """Holds the worker (and, under one GIL, the GIL) for ms milliseconds."""
    end = time.perf_counter() + ms / 1000
    while time.perf_counter() < end:
        pass
    return INTERPRETER


def set_log(path):
    global _LOG
    _LOG = path


def _log(event):
    with open(_LOG, "a") as f:
        f.write(f"{event} {INTERPRETER}\n")


async def _respond(send, body):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


async def lifespan_app(scope, receive, send):
    """Logs startup and shutdown; a request answers its interpreter and lifespan state."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                _log("startup")
                scope["state"]["started_in"] = INTERPRETER
                await send({"type": "lifespan.startup.complete"})
            else:
                _log("shutdown")
                await send({"type": "lifespan.shutdown.complete"})
                return
    await _respond(send, f"{INTERPRETER} {scope['state'].get('started_in')}".encode())


async def first_only_lifespan(scope, receive, send):
    """Starts in the first interpreter that gets here (a file created exclusively); fails
    everywhere else with the app's own message."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            try:
                os.close(os.open(_LOG + ".first", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                await send({"type": "lifespan.startup.failed", "message": "not the first"})
                return
            _log("startup")
            await send({"type": "lifespan.startup.complete"})
        else:
            _log("shutdown")
            await send({"type": "lifespan.shutdown.complete"})
            return


async def stream_app(scope, receive, send):
    """Answers the worker thread that started it, the one that read the last body chunk
    (fed later from Erlang: the follow-ups must reach the worker that owns the stream),
    and the body's length."""
    started = threading.get_ident()
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await _respond(send, f"{started} {threading.get_ident()} {len(body)}".encode())
