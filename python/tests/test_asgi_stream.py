"""The streaming path: Stream's feed/need_body/disconnect/ack and stream_asgi."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _support import make_scope
from hornbeam_asgi_runner import ClientDisconnected, Stream, stream_asgi

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

START = {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}


class Recorder:
    """An ``emit`` that records events."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def __call__(self, *event: Any) -> None:
        self.events.append(event)

    def count(self, name: str) -> int:
        return sum(1 for event in self.events if event[0] == name)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def echo(scope: dict, receive: Receive, send: Send) -> None:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message["body"])
        if not message["more_body"]:
            break
    await send(START)
    await send({"type": "http.response.body", "body": b"|".join(chunks)})


def test_initial_body_only() -> None:
    emit = Recorder()
    asyncio.run(stream_asgi(echo, make_scope("POST"), Stream(emit, b"all")))
    assert emit.events == [("start", 200, START["headers"], False), ("body", b"all", False)]


def test_feed_after_need_body() -> None:
    async def main() -> Recorder:
        emit = Recorder()
        stream = Stream(emit, b"first", more_body=True)
        task = asyncio.ensure_future(stream_asgi(echo, make_scope("POST"), stream))
        await settle()
        assert emit.events == [("need_body",)]
        stream.feed(b"", True)
        await settle()
        assert emit.count("need_body") == 2
        stream.feed(b"second", True)
        stream.feed(b"third", False)
        await task
        return emit

    emit = asyncio.run(main())
    assert emit.events[-1] == ("body", b"first|second|third", False)
    assert emit.count("need_body") == 2


def test_need_body_emitted_once_per_wait() -> None:
    async def main() -> Recorder:
        emit = Recorder()
        stream = Stream(emit, more_body=True)
        task = asyncio.ensure_future(stream_asgi(echo, make_scope("POST"), stream))
        await settle()
        await settle()
        assert emit.events == [("need_body",)]
        stream.feed(b"x", False)
        await task
        return emit

    assert asyncio.run(main()).events[-1] == ("body", b"x", False)


def test_feed_after_last_chunk_is_an_error() -> None:
    stream = Stream(Recorder(), b"x")
    with pytest.raises(RuntimeError, match="after the last request body chunk"):
        stream.feed(b"y", False)


@settings(max_examples=50)
@given(st.lists(st.binary(max_size=50), max_size=10), st.binary(max_size=50))
def test_random_feed_chunking(chunks: list[bytes], initial: bytes) -> None:
    async def reader(scope: dict, receive: Receive, send: Send) -> None:
        body = b""
        more_body = True
        while more_body:
            message = await receive()
            body += message["body"]
            more_body = message["more_body"]
        await send(START)
        await send({"type": "http.response.body", "body": body})

    async def main() -> Recorder:
        emit = Recorder()
        stream = Stream(emit, initial, more_body=True)
        task = asyncio.ensure_future(stream_asgi(reader, make_scope("POST"), stream))
        for chunk in chunks:
            await settle()
            stream.feed(chunk, True)
        stream.feed(b"", False)
        await task
        return emit

    assert asyncio.run(main()).events[-1] == ("body", initial + b"".join(chunks), False)


def test_disconnect_wakes_receive_and_send_raises() -> None:
    outcome: list[Any] = []

    async def app(scope: dict, receive: Receive, send: Send) -> None:
        await receive()
        await send(START)
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        outcome.append(await receive())
        try:
            await send({"type": "http.response.body", "body": b"b"})
        except OSError as error:
            outcome.append(error)

    async def main() -> None:
        stream = Stream(Recorder())
        task = asyncio.ensure_future(stream_asgi(app, make_scope(), stream))
        await settle()
        assert not task.done()
        stream.disconnect()
        await task
        assert stream.disconnected

    asyncio.run(main())
    assert outcome[0] == {"type": "http.disconnect"}
    assert isinstance(outcome[1], ClientDisconnected)


def test_disconnect_while_waiting_for_body() -> None:
    async def app(scope: dict, receive: Receive, send: Send) -> None:
        assert await receive() == {"type": "http.disconnect"}

    async def main() -> None:
        stream = Stream(Recorder(), more_body=True)
        task = asyncio.ensure_future(stream_asgi(app, make_scope("POST"), stream))
        await settle()
        stream.disconnect()
        stream.feed(b"late", False)
        await task

    asyncio.run(main())


def test_incomplete_response_without_disconnect_raises() -> None:
    async def app(scope: dict, receive: Receive, send: Send) -> None:
        await send(START)

    with pytest.raises(RuntimeError, match="without completing the response"):
        asyncio.run(stream_asgi(app, make_scope(), Stream(Recorder())))


def test_backpressure_waits_for_ack() -> None:
    async def app(scope: dict, receive: Receive, send: Send) -> None:
        await send(START)
        for part in (b"aaaaaaaa", b"bbbbbbbb", b"cccccccc"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body"})

    async def main() -> None:
        emit = Recorder()
        stream = Stream(emit, high_water=10)
        task = asyncio.ensure_future(stream_asgi(app, make_scope(), stream))
        await settle()
        assert emit.count("body") == 2  # 16 bytes in flight > 10: send waits
        stream.ack(6)
        await settle()
        assert emit.count("body") == 2  # 10 > 10 // 2
        stream.ack(5)
        await settle()
        assert emit.count("body") == 3  # 5 <= 5 released; now 13 in flight
        stream.ack(13)
        await task
        assert emit.events[-1] == ("body", b"", False)

    asyncio.run(main())


def test_disconnect_releases_backpressure() -> None:
    outcome: list[BaseException] = []

    async def app(scope: dict, receive: Receive, send: Send) -> None:
        await send(START)
        await send({"type": "http.response.body", "body": b"x" * 100, "more_body": True})
        try:
            await send({"type": "http.response.body", "body": b"y"})
        except ClientDisconnected as error:
            outcome.append(error)

    async def main() -> None:
        stream = Stream(Recorder(), high_water=10)
        task = asyncio.ensure_future(stream_asgi(app, make_scope(), stream))
        await settle()
        assert not task.done()
        stream.disconnect()
        await task

    asyncio.run(main())
    assert len(outcome) == 1


def test_trailers_streamed() -> None:
    async def app(scope: dict, receive: Receive, send: Send) -> None:
        await send({**START, "trailers": True})
        await send({"type": "http.response.body", "body": b"data"})
        await send({"type": "http.response.trailers", "headers": [(b"x-sum", b"1")], "more_trailers": True})
        await send({"type": "http.response.trailers", "headers": [[b"x-end", b"2"]]})

    emit = Recorder()
    scope = make_scope(extensions={"http.response.trailers": {}})
    asyncio.run(stream_asgi(app, scope, Stream(emit)))
    assert emit.events == [
        ("start", 200, START["headers"], True),
        ("body", b"data", False),
        ("trailers", [(b"x-sum", b"1")], True),
        ("trailers", [(b"x-end", b"2")], False),
    ]


def test_receive_after_complete_returns_disconnect() -> None:
    async def app(scope: dict, receive: Receive, send: Send) -> None:
        await send(START)
        await send({"type": "http.response.body"})
        assert await receive() == {"type": "http.disconnect"}

    asyncio.run(stream_asgi(app, make_scope("POST"), Stream(Recorder(), more_body=True)))
