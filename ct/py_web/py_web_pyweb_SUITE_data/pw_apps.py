"""Apps of py_web_pyweb_SUITE and pyweb_diff.py: raw ASGI and WSGI apps that
answer with what the server gave them (scope or environ, as JSON)."""

import asyncio
import json
import os
import time

VERSION = "v1"


def _scope_view(scope):
    return {
        "type": scope["type"],
        "scheme": scope.get("scheme"),
        "path": scope["path"],
        "raw_path": scope.get("raw_path", b"").decode("latin-1"),
        "root_path": scope.get("root_path", ""),
        "client": list(scope["client"]) if scope.get("client") else None,
        "server": list(scope["server"]) if scope.get("server") else None,
        "query_string": scope.get("query_string", b"").decode("latin-1"),
        "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]],
    }


async def _send(send, status, body, ctype=b"text/plain", headers=()):
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", ctype), *headers]})
    await send({"type": "http.response.body", "body": body})


async def app(scope, receive, send):
    """ASGI: /scope, /version, /loop (the running loop's module), /slow?S, /hang, /error,
    /env?NAME, anything else 404; a
    websocket is accepted, told its scope, and kept until the client or the server ends it."""
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": json.dumps(_scope_view(scope))})
        while (await receive())["type"] != "websocket.disconnect":
            pass
        return
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    path = scope["path"][len(scope.get("root_path", "")):]
    qs = scope.get("query_string", b"").decode()
    if path == "/":
        await _send(send, 200, b"Hello, World!")
    elif path == "/scope":
        await _send(send, 200, json.dumps(_scope_view(scope)).encode(), b"application/json")
    elif path == "/version":
        await _send(send, 200, f"{VERSION} {os.getpid()}".encode())
    elif path == "/loop":
        await asyncio.sleep(0.01)  # a timer on the loop
        await _send(send, 200, type(asyncio.get_running_loop()).__module__.encode())
    elif path == "/slow":
        print("pw_apps: /slow entered", flush=True)
        await asyncio.sleep(float(qs or "1"))
        await _send(send, 200, f"slow {VERSION}".encode())
    elif path == "/hang":
        print("pw_apps: /hang entered", flush=True)
        await asyncio.sleep(3600)
    elif path == "/error":
        raise RuntimeError("boom in /error")
    elif path == "/env":
        await _send(send, 200, os.environ.get(qs, "-").encode())
    else:
        await _send(send, 404, b"not found")


def wsgi_app(environ, start_response):
    """WSGI: /environ answers with the environ's text values."""
    script_name = environ.get("SCRIPT_NAME", "")
    if environ["PATH_INFO"] == "/slow":
        time.sleep(float(environ.get("QUERY_STRING") or "1"))
    keys = ("REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "SERVER_NAME",
            "SERVER_PORT", "REMOTE_ADDR", "HTTP_HOST", "HTTP_X_FORWARDED_FOR",
            "HTTP_X_FORWARDED_PROTO", "wsgi.url_scheme", "wsgi.multiprocess",
            "SERVER_SOFTWARE")
    body = json.dumps({k: environ.get(k) for k in keys} | {"script_name": script_name}).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]


def create_app():
    """An app factory (takes no arguments)."""
    return app
