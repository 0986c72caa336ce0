"""FastAPI (ASGI) app of py_web_e2e_SUITE, with lifespan."""

import contextlib
from typing import Annotated

from fastapi import Cookie, FastAPI, File, Form, Request, UploadFile
from fastapi.responses import PlainTextResponse, Response, StreamingResponse
from pydantic import BaseModel

from e2e_common import forever_async, gate_chunks_async, record, upload_summary
from e2e_common import events, open_gate, reset  # noqa: F401


@contextlib.asynccontextmanager
async def lifespan(app):
    record("startup")
    yield {"greeting": "hello from lifespan"}
    record("shutdown")


app = FastAPI(lifespan=lifespan)


class Payload(BaseModel):
    a: int
    b: list[int]


@app.get("/", response_class=PlainTextResponse)
async def index():
    return "Hello, World!"


@app.get("/items/{item_id}")
async def item(item_id: int, q: str | None = None):
    return {"id": item_id, "q": q}


@app.post("/json")
async def echo_json(payload: Payload):
    return {"a": payload.a, "b": payload.b, "n": 2}


@app.post("/form", response_class=PlainTextResponse)
async def form(name: Annotated[str, Form()], lang: Annotated[str, Form()]):
    return f"{name}/{lang}"


@app.post("/upload", response_class=PlainTextResponse)
async def upload(file: Annotated[UploadFile, File()], note: Annotated[str, Form()]):
    return upload_summary(note, await file.read())


@app.get("/cookies/set")
async def cookies_set() -> Response:
    resp = PlainTextResponse("set")
    resp.set_cookie("a", "1")
    resp.set_cookie("b", "2", httponly=True)
    return resp


@app.get("/cookies/get", response_class=PlainTextResponse)
async def cookies_get(a: Annotated[str | None, Cookie()] = None, b: Annotated[str | None, Cookie()] = None):
    return f"a={a} b={b}"


@app.get("/state", response_class=PlainTextResponse)
async def state(request: Request):
    return getattr(request.state, "greeting", "no state")


@app.get("/stream/gate")
async def stream_gate():
    return StreamingResponse(gate_chunks_async(), media_type="text/plain")


@app.get("/stream/forever")
async def stream_forever():
    return StreamingResponse(forever_async("/stream/forever"), media_type="text/plain")
