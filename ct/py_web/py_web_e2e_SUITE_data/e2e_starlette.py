"""Starlette (ASGI) app of py_web_e2e_SUITE, with lifespan; ``failing_app``'s
lifespan startup raises."""

import contextlib

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route

from e2e_common import forever_async, gate_chunks_async, record, upload_summary
from e2e_common import events, open_gate, reset  # noqa: F401


@contextlib.asynccontextmanager
async def lifespan(app):
    record("startup")
    yield {"greeting": "hello from lifespan"}
    record("shutdown")


@contextlib.asynccontextmanager
async def failing_lifespan(app):
    raise RuntimeError("database unreachable")
    yield {}


async def index(request: Request):
    return PlainTextResponse("Hello, World!")


async def item(request: Request):
    return JSONResponse({"id": request.path_params["item_id"], "q": request.query_params.get("q")})


async def echo_json(request: Request):
    data = await request.json()
    return JSONResponse({"a": data["a"], "b": data["b"], "n": len(data)})


async def form(request: Request):
    f = await request.form()
    return PlainTextResponse(f"{f['name']}/{f['lang']}")


async def upload(request: Request):
    f = await request.form(max_part_size=64 * 1024 * 1024)
    data = await f["file"].read()
    return PlainTextResponse(upload_summary(f["note"], data))


async def cookies_set(request: Request):
    resp = PlainTextResponse("set")
    resp.set_cookie("a", "1")
    resp.set_cookie("b", "2", httponly=True)
    return resp


async def cookies_get(request: Request):
    return PlainTextResponse(f"a={request.cookies.get('a')} b={request.cookies.get('b')}")


async def state(request: Request):
    return PlainTextResponse(getattr(request.state, "greeting", "no state"))


async def stream_gate(request: Request):
    return StreamingResponse(gate_chunks_async(), media_type="text/plain")


async def stream_forever(request: Request):
    return StreamingResponse(forever_async("/stream/forever"), media_type="text/plain")


routes = [
    Route("/", index),
    Route("/items/{item_id:int}", item),
    Route("/json", echo_json, methods=["POST"]),
    Route("/form", form, methods=["POST"]),
    Route("/upload", upload, methods=["POST"]),
    Route("/cookies/set", cookies_set),
    Route("/cookies/get", cookies_get),
    Route("/state", state),
    Route("/stream/gate", stream_gate),
    Route("/stream/forever", stream_forever),
]

app = Starlette(routes=routes, lifespan=lifespan)
failing_app = Starlette(routes=routes, lifespan=failing_lifespan)
