"""Apps of the processes-mode benchmark (`make bench`): about 2 ms of pure-Python work
per request (ASGI and WSGI: the CPU-bound app, where processes use both cores) and a
FastAPI JSON endpoint (against uvicorn and granian with 2 workers)."""

from bench_apps import _lifespan
from fastapi import FastAPI

HELLO = b"Hello, World!"
BURN_N = 20_000  # about 2 ms of interpreted loop on the bench machine (run.py measures it)
_HEADERS_WSGI = [("Content-Type", "text/plain"), ("Content-Length", str(len(HELLO)))]
_START = {"type": "http.response.start", "status": 200,
          "headers": [(b"content-type", b"text/plain"), (b"content-length", b"13")]}


def burn(n: int = BURN_N) -> int:
    """Pure-Python work that holds the GIL throughout."""
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def cpu_wsgi(environ, start_response):
    burn()
    start_response("200 OK", _HEADERS_WSGI)
    return [HELLO]


async def cpu_asgi(scope, receive, send):
    if scope["type"] != "http":
        return await _lifespan(receive, send)
    burn()
    await send(_START)
    await send({"type": "http.response.body", "body": HELLO})


fastapi_app = FastAPI()


@fastapi_app.get("/")
async def fastapi_root() -> dict[str, str]:
    return {"message": "Hello, World!"}
