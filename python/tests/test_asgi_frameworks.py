"""Real Starlette and FastAPI apps through hornbeam_asgi_runner."""

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import BackgroundTasks, Cookie, FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import JSONResponse as FastJSONResponse
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.requests import Request as StarletteRequest
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from _support import header_values, make_scope, multipart
from hornbeam_asgi_runner import Stream, run_asgi, stream_asgi

Result = tuple[int, list[tuple[bytes, bytes]], bytes]


def call(app: Any, scope: dict[str, Any], body: bytes = b"") -> Result:
    status, headers, chunks = asyncio.run(run_asgi(app, scope, body))
    return status, headers, b"".join(chunks)


# --- Starlette -----------------------------------------------------------------------

done_tasks: list[str] = []


class Teapot(Exception):
    pass


async def hello(request: StarletteRequest) -> Response:
    return JSONResponse({"hello": request.path_params["name"], "q": request.query_params.getlist("q")})


async def echo(request: StarletteRequest) -> Response:
    return Response(await request.body(), media_type="application/octet-stream")


async def form(request: StarletteRequest) -> Response:
    async with request.form() as data:
        fields = {key: value for key, value in data.items() if isinstance(value, str)}
        upload = data.get("file")
        if upload is not None and not isinstance(upload, str):
            fields["file"] = f"{upload.filename}:{len(await upload.read())}"
    return JSONResponse(fields)


async def cookies(request: StarletteRequest) -> Response:
    response = JSONResponse({"seen": request.cookies.get("session")})
    response.set_cookie("a", "1")
    response.set_cookie("b", "2", httponly=True)
    return response


async def background(request: StarletteRequest) -> Response:
    return PlainTextResponse("queued", background=BackgroundTask(done_tasks.append, "starlette"))


async def stream(request: StarletteRequest) -> Response:
    async def numbers() -> AsyncIterator[bytes]:
        for number in range(5):
            await asyncio.sleep(0.001)
            yield f"{number}\n".encode()

    return StreamingResponse(numbers(), media_type="text/plain")


async def old(request: StarletteRequest) -> Response:
    return RedirectResponse("/hello/new", status_code=302)


async def forbidden(request: StarletteRequest) -> Response:
    raise StarletteHTTPException(status_code=403, detail="no")


async def teapot(request: StarletteRequest) -> Response:
    raise Teapot()


async def boom(request: StarletteRequest) -> Response:
    raise ZeroDivisionError("boom")


async def state(request: StarletteRequest) -> Response:
    return PlainTextResponse(request.state.greeting)


async def on_teapot(request: StarletteRequest, exc: Exception) -> Response:
    return PlainTextResponse("teapot", status_code=418)


starlette_app = Starlette(
    routes=[
        Route("/hello/{name}", hello),
        Route("/echo", echo, methods=["POST"]),
        Route("/form", form, methods=["POST"]),
        Route("/cookies", cookies),
        Route("/background", background),
        Route("/stream", stream),
        Route("/old", old),
        Route("/forbidden", forbidden),
        Route("/teapot", teapot),
        Route("/boom", boom),
        Route("/state", state),
    ],
    exception_handlers={Teapot: on_teapot},
)


def test_starlette_routing_json_query() -> None:
    status, headers, body = call(starlette_app, make_scope(path="/hello/ann", query=b"q=1&q=two%20words"))
    assert status == 200
    assert header_values(headers, b"content-type") == [b"application/json"]
    assert json.loads(body) == {"hello": "ann", "q": ["1", "two words"]}


@pytest.mark.parametrize("size", [0, 1, 1023, 1024, 65536])
def test_starlette_request_body_sizes(size: int) -> None:
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    headers = [(b"content-length", str(size).encode())]
    assert call(starlette_app, make_scope("POST", "/echo", headers=headers), payload)[2] == payload


def test_starlette_form_post() -> None:
    body = b"name=J%C3%BCrgen&city=Z%C3%BCrich"
    headers = [(b"content-type", b"application/x-www-form-urlencoded")]
    status, _, response = call(starlette_app, make_scope("POST", "/form", headers=headers), body)
    assert json.loads(response) == {"name": "Jürgen", "city": "Zürich"}


def test_starlette_multipart_upload() -> None:
    content_type, body = multipart({"title": "report"}, {"file": ("data.bin", bytes(10000))})
    headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    status, _, response = call(starlette_app, make_scope("POST", "/form", headers=headers), body)
    assert json.loads(response) == {"title": "report", "file": "data.bin:10000"}


def test_starlette_cookies() -> None:
    scope = make_scope(path="/cookies", headers=[(b"cookie", b"session=abc; other=1")])
    status, headers, body = call(starlette_app, scope)
    assert json.loads(body) == {"seen": "abc"}
    cookies = header_values(headers, b"set-cookie")
    assert [cookie.split(b";")[0] for cookie in cookies] == [b"a=1", b"b=2"]


def test_starlette_background_task_runs_before_return() -> None:
    done_tasks.clear()
    assert call(starlette_app, make_scope(path="/background"))[2] == b"queued"
    assert done_tasks == ["starlette"]


@pytest.mark.parametrize("spec_version", ["2.0", "2.3", "2.4"])
def test_starlette_streaming_response_full_body(spec_version: str) -> None:
    status, _, body = call(starlette_app, make_scope(path="/stream", spec_version=spec_version))
    assert (status, body) == (200, b"0\n1\n2\n3\n4\n")


def test_starlette_redirect_and_http_errors() -> None:
    status, headers, _ = call(starlette_app, make_scope(path="/old"))
    assert (status, header_values(headers, b"location")) == (302, [b"/hello/new"])
    assert call(starlette_app, make_scope(path="/forbidden"))[0] == 403
    assert call(starlette_app, make_scope(path="/nope"))[0] == 404
    assert call(starlette_app, make_scope(path="/teapot"))[:3:2] == (418, b"teapot")


def test_starlette_unhandled_exception_propagates() -> None:
    with pytest.raises(ZeroDivisionError, match="boom"):
        call(starlette_app, make_scope(path="/boom"))


def test_starlette_request_state_from_scope() -> None:
    assert call(starlette_app, make_scope(path="/state", state={"greeting": "hi"}))[2] == b"hi"


def test_starlette_streaming_stops_on_disconnect() -> None:
    """Per spec 2.4, send() after a disconnect raises an OSError, which Starlette
    turns into its ClientDisconnect: the stream stops, the app's exception propagates."""

    async def endless(request: StarletteRequest) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            while True:
                await asyncio.sleep(0.001)
                yield b"tick"

        return StreamingResponse(chunks())

    app = Starlette(routes=[Route("/", endless)])
    events: list[tuple[Any, ...]] = []

    async def main() -> None:
        stream = Stream(lambda *event: events.append(event))
        task = asyncio.ensure_future(stream_asgi(app, make_scope(), stream))
        while len(events) < 4:
            await asyncio.sleep(0.001)
        stream.disconnect()
        await task

    with pytest.raises(ClientDisconnect):
        asyncio.run(main())
    assert events[0][:2] == ("start", 200)
    assert events[1:] == [("body", b"tick", True)] * (len(events) - 1)


# --- FastAPI -------------------------------------------------------------------------

fastapi_app = FastAPI()


class Item(BaseModel):
    name: str
    price: float


@fastapi_app.get("/items/{item_id}")
async def read_item(item_id: int, q: str | None = None) -> dict[str, Any]:
    return {"item_id": item_id, "q": q}


@fastapi_app.post("/items")
async def create_item(item: Item) -> dict[str, Any]:
    return {"name": item.name, "total": item.price * 2}


@fastapi_app.post("/login")
async def login(username: str = Form(), password: str = Form()) -> dict[str, Any]:
    return {"username": username, "password_length": len(password)}


@fastapi_app.post("/upload")
async def upload(title: str = Form(), file: UploadFile = File()) -> dict[str, Any]:
    return {"title": title, "filename": file.filename, "size": len(await file.read())}


@fastapi_app.get("/me")
async def me(session: str | None = Cookie(default=None)) -> FastJSONResponse:
    response = FastJSONResponse({"session": session})
    response.set_cookie("a", "1")
    response.set_cookie("b", "2")
    return response


@fastapi_app.post("/notify")
async def notify(tasks: BackgroundTasks) -> dict[str, str]:
    tasks.add_task(done_tasks.append, "fastapi")
    return {"status": "queued"}


@fastapi_app.get("/missing")
async def missing() -> None:
    raise HTTPException(status_code=404, detail="not here")


@fastapi_app.get("/state")
async def read_state(request: Request) -> dict[str, Any]:
    return {"db": request.state.db}


def test_fastapi_path_and_query() -> None:
    status, _, body = call(fastapi_app, make_scope(path="/items/5", query=b"q=x"))
    assert (status, json.loads(body)) == (200, {"item_id": 5, "q": "x"})


def test_fastapi_validation_error() -> None:
    assert call(fastapi_app, make_scope(path="/items/abc"))[0] == 422


def test_fastapi_json_body() -> None:
    body = json.dumps({"name": "pen", "price": 1.5}).encode()
    scope = make_scope("POST", "/items", headers=[(b"content-type", b"application/json")])
    status, _, response = call(fastapi_app, scope, body)
    assert (status, json.loads(response)) == (200, {"name": "pen", "total": 3.0})


def test_fastapi_form() -> None:
    scope = make_scope("POST", "/login", headers=[(b"content-type", b"application/x-www-form-urlencoded")])
    status, _, body = call(fastapi_app, scope, b"username=ann&password=secret")
    assert json.loads(body) == {"username": "ann", "password_length": 6}


def test_fastapi_multipart_upload() -> None:
    data = bytes(range(256)) * 8
    content_type, body = multipart({"title": "t"}, {"file": ("f.bin", data)})
    scope = make_scope("POST", "/upload", headers=[(b"content-type", content_type.encode())])
    status, _, response = call(fastapi_app, scope, body)
    assert json.loads(response) == {"title": "t", "filename": "f.bin", "size": len(data)}


def test_fastapi_cookies() -> None:
    status, headers, body = call(fastapi_app, make_scope(path="/me", headers=[(b"cookie", b"session=xyz")]))
    assert json.loads(body) == {"session": "xyz"}
    assert len(header_values(headers, b"set-cookie")) == 2


def test_fastapi_background_task() -> None:
    done_tasks.clear()
    assert json.loads(call(fastapi_app, make_scope("POST", "/notify"))[2]) == {"status": "queued"}
    assert done_tasks == ["fastapi"]


def test_fastapi_http_exception() -> None:
    status, _, body = call(fastapi_app, make_scope(path="/missing"))
    assert (status, json.loads(body)) == (404, {"detail": "not here"})
