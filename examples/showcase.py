"""A small Starlette app that shows what the embedded server does: JSON, a
streamed response (an async generator, sent as the app produces it), an HTML
form POST, cookies and lifespan state.

    make run                                   # or:
    VIRTUAL_ENV=$PWD/.venv bin/pyweb examples.showcase:app

Then open http://127.0.0.1:8000/ or:

    curl http://127.0.0.1:8000/api/hello?name=BEAM
    curl -N http://127.0.0.1:8000/stream?n=5          # one line every 0.2 s
    curl -d 'name=Ada&message=hi' http://127.0.0.1:8000/form
"""

import asyncio
import contextlib
import html
import sys
import time

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, StreamingResponse
from starlette.routing import Route

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>pyweb showcase</title></head>
<body>
<h1>pyweb showcase</h1>
<p>A Starlette app served by the BEAM (py_web on erlang_python), Python {python}.</p>
<ul>
  <li><a href="/api/hello?name=BEAM">/api/hello</a> &mdash; JSON</li>
  <li><a href="/stream?n=10">/stream</a> &mdash; a streamed response (async generator)</li>
  <li><a href="/messages">/messages</a> &mdash; the messages posted below, as JSON</li>
</ul>
<h2>Leave a message</h2>
<form method="post" action="/form">
  <label>Name <input name="name" required></label>
  <label>Message <input name="message" required></label>
  <button type="submit">Send</button>
</form>
{messages}
</body></html>
"""


@contextlib.asynccontextmanager
async def lifespan(app):
    # Runs once before the server accepts connections; the state reaches every
    # request as request.state (a per-request copy).
    yield {"started_at": time.time(), "messages": []}


async def index(request: Request) -> HTMLResponse:
    items = "".join(
        f"<li><b>{html.escape(m['name'])}</b>: {html.escape(m['message'])}</li>"
        for m in request.state.messages
    )
    return HTMLResponse(
        PAGE.format(
            python=sys.version.split()[0],
            messages=f"<h2>Messages</h2><ul>{items}</ul>" if items else "",
        )
    )


async def hello(request: Request) -> JSONResponse:
    name = request.query_params.get("name", "world")
    return JSONResponse(
        {
            "message": f"Hello, {name}!",
            "method": request.method,
            "path": request.url.path,
            "uptime_s": round(time.time() - request.state.started_at, 3),
        }
    )


async def stream(request: Request) -> StreamingResponse:
    n = min(int(request.query_params.get("n", "10")), 1000)
    delay = float(request.query_params.get("delay", "0.2"))

    async def lines():
        for i in range(1, n + 1):
            yield f"line {i} of {n}\n"
            await asyncio.sleep(delay)

    return StreamingResponse(lines(), media_type="text/plain")


async def form(request: Request) -> RedirectResponse:
    data = await request.form()
    name = str(data.get("name", "")).strip() or "anonymous"
    message = str(data.get("message", "")).strip()
    request.state.messages.append({"name": name, "message": message})
    response = RedirectResponse("/", status_code=303)
    response.set_cookie("last_name", name)
    return response


async def messages(request: Request) -> JSONResponse:
    return JSONResponse(request.state.messages)


app = Starlette(
    routes=[
        Route("/", index),
        Route("/api/hello", hello),
        Route("/stream", stream),
        Route("/form", form, methods=["POST"]),
        Route("/messages", messages),
    ],
    lifespan=lifespan,
)
