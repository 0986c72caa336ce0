"""The websockets library (uvicorn's) as the client of py_web_ws_SUITE: one scenario per
run, `python ws_client.py URL SCENARIO`; prints "ok" and exits 0, or raises."""

import asyncio
import json
import os
import random
import ssl
import sys
import urllib.request

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedError, InvalidStatus


def ssl_context(url: str) -> ssl.SSLContext | None:
    if not url.startswith("wss:"):
        return None
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


SIZES = (0, 1, 125, 126, 65535, 65536, 1 << 20)
# Cowboy 2.12 garbles an empty message after the first under permessage-deflate (the
# client reads compressed bytes as the text): its deflate scenario has no empty message.
NONEMPTY = (2, 125, 126, 65535, 65536, 1 << 20)


async def echo(url: str, compression: str | None = "deflate", sizes: tuple = SIZES) -> None:
    async with connect(url + "/echo", compression=compression, max_size=None,
                       subprotocols=["one", "two"], origin="http://example.test",
                       ssl=ssl_context(url)) as ws:
        assert ws.subprotocol == "two", ws.subprotocol
        assert ws.response.headers["x-origin"] == "http://example.test"
        extensions = ws.response.headers.get("sec-websocket-extensions")
        assert (extensions is not None) == (compression is not None), extensions
        rng = random.Random(7)
        for size in sizes:
            text = "".join(rng.choice("aé€😀") for _ in range(size // 2))
            await ws.send(text)
            assert await ws.recv() == text
            data = os.urandom(size)
            await ws.send(data)
            assert await ws.recv() == data
        # A fragmented message, pings between its fragments.
        await ws.send(["frag", "mented ", "😀"])
        assert await ws.recv() == "fragmented 😀"
        pong = await ws.ping(b"hi")
        await asyncio.wait_for(pong, 5)
    assert ws.close_code == 1000


async def deny(url: str) -> None:
    for path, status, body in (("/deny", 403, b""), ("/deny_response", 401, b"members only")):
        try:
            async with connect(url + path):
                raise AssertionError("accepted")
        except InvalidStatus as error:
            assert error.response.status_code == status, error.response.status_code
            assert error.response.body == body, error.response.body


async def closes(url: str) -> None:
    async with connect(url + "/close_code") as ws:
        await ws.send("x")
        await ws.wait_closed()
    assert (ws.close_code, ws.close_reason) == (4000, "bye"), (ws.close_code, ws.close_reason)
    for path, code in (("/bad_close_code", 1011), ("/raises", 1011), ("/returns", 1000)):
        async with connect(url + path) as ws:
            if path == "/raises":
                await ws.send("x")
            try:
                while True:
                    await ws.recv()
            except Exception:
                pass
        assert ws.close_code == code, (path, ws.close_code)


async def broadcast(url: str, clients: str = "100") -> None:
    n = int(clients)
    sockets = [await connect(url + "/broadcast") for _ in range(n)]
    await sockets[0].send("hello everyone")
    got = await asyncio.wait_for(asyncio.gather(*(ws.recv() for ws in sockets)), 30)
    assert got == ["hello everyone"] * n
    await asyncio.gather(*(ws.close() for ws in sockets))


async def many(url: str, clients: str = "1000") -> None:
    """Many concurrent websockets, each echoing its own messages, verified."""
    async def one(i: int) -> None:
        async with connect(url + "/echo", compression=None, open_timeout=60) as ws:
            for j in range(5):
                message = f"{i}:{j}:" + "x" * (i % 300)
                await ws.send(message)
                assert await ws.recv() == message

    await asyncio.gather(*(one(i) for i in range(int(clients))))


async def hold(url: str) -> None:
    """Connects and waits for the server to close (graceful shutdown: 1001)."""
    async with connect(url + "/echo") as ws:
        print("connected", flush=True)
        try:
            await ws.recv()
        except ConnectionClosedError:
            pass
        except Exception:
            pass
    print("closed", ws.close_code, flush=True)
    assert ws.close_code == 1001, ws.close_code


# What Chrome sends beside the handshake's own fields (its extension offer,
# "permessage-deflate; client_max_window_bits", is websockets' default too).
CHROME_UA = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
             "Chrome/131.0.0.0 Safari/537.36")
CHROME_HEADERS = {"Cache-Control": "no-cache", "Pragma": "no-cache",
                  "Accept-Encoding": "gzip, deflate, br, zstd",
                  "Accept-Language": "en-US,en;q=0.9"}


async def chat(url: str) -> None:
    """The FastAPI chat as a browser uses it: the page, then its websocket with the
    browser's handshake (Origin, User-Agent, compression offered), beside a second
    member; short and long (compressed) messages reach both."""
    origin = "http" + url[2:]
    page = await asyncio.to_thread(lambda: urllib.request.urlopen(origin + "/").read())
    assert b"new WebSocket(" in page, page
    browser = connect(url + "/chat/alice", origin=origin, user_agent_header=CHROME_UA,
                      additional_headers=CHROME_HEADERS)
    async with browser as alice, connect(url + "/chat/bob") as bob:
        extensions = alice.response.headers.get("Sec-WebSocket-Extensions", "")
        assert extensions.startswith("permessage-deflate"), extensions
        for text in ("hi bob", "a long line " * 5000):
            await alice.send(json.dumps({"text": text}))
            expected = {"from": "alice", "text": text}
            assert json.loads(await alice.recv()) == expected
            assert json.loads(await bob.recv()) == expected


SCENARIOS = {"echo": echo, "deny": deny, "closes": closes, "broadcast": broadcast,
             "many": many, "hold": hold, "chat": chat,
             "echo_plain": lambda url: echo(url, None),
             "echo_nonempty": lambda url: echo(url, "deflate", NONEMPTY)}

if __name__ == "__main__":
    url, name, *args = sys.argv[1:]
    asyncio.run(SCENARIOS[name](url, *args))
    print("ok")
