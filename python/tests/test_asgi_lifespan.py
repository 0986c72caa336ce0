"""Lifespan: startup/shutdown, state, failure and unsupported apps."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from fastapi import FastAPI, Request
from starlette.applications import Starlette

from _support import make_scope
from hornbeam_asgi_runner import Lifespan, LifespanFailure, LifespanUnsupported, run_asgi

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def test_raw_app_startup_and_shutdown() -> None:
    seen: list[Any] = []

    async def app(scope: dict, receive: Receive, send: Send) -> None:
        seen.append(scope)
        assert await receive() == {"type": "lifespan.startup"}
        scope["state"]["ready"] = True
        await send({"type": "lifespan.startup.complete"})
        assert await receive() == {"type": "lifespan.shutdown"}
        seen.append("shutdown")
        await send({"type": "lifespan.shutdown.complete"})

    async def main() -> Lifespan:
        lifespan = Lifespan(app, {"given": 1})
        await lifespan.startup()
        assert seen[1:] == []
        await lifespan.shutdown()
        return lifespan

    lifespan = asyncio.run(main())
    assert lifespan.state == {"given": 1, "ready": True}
    assert seen[0] == {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": lifespan.state}
    assert seen[1] == "shutdown"


def test_starlette_lifespan_state_reaches_requests() -> None:
    events: list[str] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        events.append("startup")
        yield {"db": "connected"}
        events.append("shutdown")

    app = FastAPI(lifespan=lifespan)

    @app.get("/")
    async def index(request: Request) -> dict[str, str]:
        return {"db": request.state.db}

    async def main() -> bytes:
        runner = Lifespan(app)
        await runner.startup()
        assert runner.state == {"db": "connected"}
        _, _, body = await run_asgi(app, make_scope(state=runner.state), b"")
        await runner.shutdown()
        return b"".join(body)

    assert asyncio.run(main()) == b'{"db":"connected"}'
    assert events == ["startup", "shutdown"]


def test_startup_failed() -> None:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        raise ConnectionError("no database")
        yield

    async def main() -> None:
        await Lifespan(Starlette(lifespan=lifespan)).startup()

    with pytest.raises(LifespanFailure, match="no database") as caught:
        asyncio.run(main())
    assert isinstance(caught.value.__cause__, ConnectionError)


def test_shutdown_failed() -> None:
    async def app(scope: dict, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.failed", "message": "flush failed"})
        await receive()

    async def main() -> None:
        lifespan = Lifespan(app)
        await lifespan.startup()
        await lifespan.shutdown()

    with pytest.raises(LifespanFailure, match="flush failed"):
        asyncio.run(main())


async def http_only(scope: dict, receive: Receive, send: Send) -> None:
    assert scope["type"] == "http"


async def returns_at_once(scope: dict, receive: Receive, send: Send) -> None:
    return None


@pytest.mark.parametrize("app", [http_only, returns_at_once])
def test_unsupported(app: Any) -> None:
    async def main() -> None:
        lifespan = Lifespan(app)
        with pytest.raises(LifespanUnsupported):
            await lifespan.startup()
        await lifespan.shutdown()  # nothing to shut down

    asyncio.run(main())


def test_app_gone_before_shutdown() -> None:
    async def app(scope: dict, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        raise OSError("crashed")

    async def main() -> None:
        lifespan = Lifespan(app)
        await lifespan.startup()
        await lifespan.shutdown()

    with pytest.raises(LifespanFailure, match="before answering lifespan.shutdown") as caught:
        asyncio.run(main())
    assert isinstance(caught.value.__cause__, OSError)


def test_wrong_answer_is_an_error() -> None:
    async def app(scope: dict, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.shutdown.complete"})

    async def main() -> None:
        await Lifespan(app).startup()

    with pytest.raises(LifespanUnsupported) as caught:
        asyncio.run(main())
    assert "unexpected 'lifespan.shutdown.complete' during startup" in str(caught.value.__cause__)
