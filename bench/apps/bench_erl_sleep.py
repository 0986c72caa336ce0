"""The 10 ms sleep endpoint on Erlang timers (only meaningful under bin/pyweb)."""

import erlang_asyncio

from bench_apps import _HELLO_START, HELLO, _lifespan


async def sleep_erl_asgi(scope, receive, send):
    if scope["type"] != "http":
        return await _lifespan(receive, send)
    await erlang_asyncio.sleep(0.01)
    await send(_HELLO_START)
    await send({"type": "http.response.body", "body": HELLO})
