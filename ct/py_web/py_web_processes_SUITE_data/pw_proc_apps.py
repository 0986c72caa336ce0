"""Apps of py_web_processes_SUITE: requests that crash their worker process."""

import asyncio
import ctypes
import os

from flask import Flask
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Route


def segfault():
    ctypes.string_at(0)


async def index(request):
    return PlainTextResponse("Hello, World!")


async def pid(request):
    return PlainTextResponse(str(os.getpid()))


async def segv(request):
    segfault()


async def stream_then_segv(request):
    async def chunks():
        yield b"first\n"
        await asyncio.sleep(0.05)
        segfault()
    return StreamingResponse(chunks(), media_type="text/plain")


starlette_app = Starlette(routes=[Route("/", index), Route("/pid", pid), Route("/segv", segv),
                                  Route("/stream-segv", stream_then_segv)])

flask_app = Flask(__name__)


@flask_app.route("/")
def flask_index():
    return "Hello, World!"


@flask_app.route("/segv")
def flask_segv():
    segfault()
