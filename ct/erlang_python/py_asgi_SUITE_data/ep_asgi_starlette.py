"""A Starlette app for py_asgi_SUITE."""
import asyncio
import contextlib
import hashlib

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

BACKGROUND = []


def background_log():
    return list(BACKGROUND)


async def item(request):
    return JSONResponse({"id": request.path_params["item_id"],
                         "q": request.query_params.get("q"),
                         "tags": request.query_params.getlist("tag"),
                         "path": request.url.path,
                         "method": request.method})


async def echo_json(request):
    data = await request.json()
    return JSONResponse({"got": data}, status_code=201)


async def form(request):
    async with request.form() as f:
        return JSONResponse({k: f.getlist(k) for k in f.keys()})


async def upload(request):
    async with request.form() as f:
        upload = f["file"]
        content = await upload.read()
        return JSONResponse({"filename": upload.filename,
                             "content_type": upload.content_type,
                             "size": len(content),
                             "sha256": hashlib.sha256(content).hexdigest(),
                             "field": f["field"],
                             "other": f.getlist("other")})


async def headers(request):
    return PlainTextResponse(
        "x-test=" + request.headers.get("x-test", "") + ";multi=" +
        ",".join(request.headers.getlist("x-multi")) + ";auth=" +
        request.headers.get("authorization", ""),
        headers={"X-Custom": "custom value", "X-Other": "2"})


async def cookies(request):
    resp = PlainTextResponse("cookies:" + ";".join(f"{k}={v}" for k, v in sorted(request.cookies.items())))
    resp.set_cookie("first", "1", path="/")
    resp.set_cookie("second", "2", httponly=True)
    return resp


async def stream(request):
    async def gen():
        for i in range(5):
            await asyncio.sleep(0.01)
            yield f"chunk{i};".encode()
    return StreamingResponse(gen(), media_type="text/plain")


def record_bg(tag):
    BACKGROUND.append(tag)


async def background(request):
    tag = request.query_params["tag"]
    return PlainTextResponse("queued", background=BackgroundTask(record_bg, tag))


async def teapot(request):
    raise HTTPException(status_code=418, detail="short and stout")


async def boom(request):
    raise ValueError("starlette boom")


async def lifespan_state(request):
    return JSONResponse({"greeting": request.state.greeting})


@contextlib.asynccontextmanager
async def lifespan(app):
    BACKGROUND.append("lifespan-start")
    yield {"greeting": "hello from lifespan"}
    BACKGROUND.append("lifespan-stop")


app = Starlette(routes=[
    Route("/items/{item_id:int}", item),
    Route("/json", echo_json, methods=["POST"]),
    Route("/form", form, methods=["POST"]),
    Route("/upload", upload, methods=["POST"]),
    Route("/headers", headers),
    Route("/cookies", cookies),
    Route("/stream", stream),
    Route("/background", background),
    Route("/teapot", teapot),
    Route("/boom", boom),
    Route("/state", lifespan_state),
], lifespan=lifespan)
