import gc
import sys


def tracked():
    """GC-tracked objects, allocated memory blocks, and the references to None, True and
    False (a C path that releases one it does not own makes the last drop by one per
    request; immortal from Python 3.12 on), after a full collection."""
    gc.collect()
    singletons = sys.getrefcount(None) + sys.getrefcount(True) + sys.getrefcount(False)
    return [len(gc.get_objects()), sys.getallocatedblocks(), singletons]


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
