import gc
import sys


def tracked():
    """GC-tracked objects and allocated memory blocks, after a full collection."""
    gc.collect()
    return [len(gc.get_objects()), sys.getallocatedblocks()]


def wsgi_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello ", environ["wsgi.input"].read()]


async def asgi_app(scope, receive, send):
    message = await receive()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"hello " + message["body"]})


def add(a, b):
    return a + b
