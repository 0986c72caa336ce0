"""erlang_asyncio: asyncio semantics, and the Erlang-timer path with a fake _erlang."""

import asyncio
import importlib
import sys
import time
import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import erlang_asyncio

REEXPORTED = [
    "run", "gather", "wait_for", "wait", "create_task", "ensure_future", "shield", "timeout",
    "get_event_loop", "new_event_loop", "set_event_loop", "get_running_loop",
]


@pytest.mark.parametrize("name", REEXPORTED)
def test_reexports_are_asyncio(name: str) -> None:
    assert getattr(erlang_asyncio, name) is getattr(asyncio, name)
    assert name in erlang_asyncio.__all__


class FakeErlang(types.ModuleType):
    """``_erlang`` timers backed by loop.call_later, recording every call."""

    def __init__(self, cancel_really: bool = True) -> None:
        super().__init__("_erlang")
        self.scheduled: list[int] = []
        self.cancelled: list[asyncio.TimerHandle] = []
        self.cancel_really = cancel_really

    def schedule_timer(self, delay_ms: int, callback: Callable[[], None]) -> asyncio.TimerHandle:
        assert type(delay_ms) is int
        self.scheduled.append(delay_ms)
        return asyncio.get_running_loop().call_later(delay_ms / 1000, callback)

    def cancel_timer(self, handle: asyncio.TimerHandle) -> None:
        self.cancelled.append(handle)
        if self.cancel_really:
            handle.cancel()


def install(monkeypatch: pytest.MonkeyPatch, module: types.ModuleType) -> Iterator[Any]:
    monkeypatch.setitem(sys.modules, "_erlang", module)
    importlib.reload(erlang_asyncio)
    yield module
    monkeypatch.delitem(sys.modules, "_erlang")
    importlib.reload(erlang_asyncio)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeErlang]:
    yield from install(monkeypatch, FakeErlang())


@pytest.fixture
def leaky(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeErlang]:
    """A fake whose cancel_timer does not stop the timer: the callback still fires."""
    yield from install(monkeypatch, FakeErlang(cancel_really=False))


def capture_loop_errors() -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda loop, context: errors.append(context))
    return errors


# --- semantics shared by both paths -----------------------------------------------------

@pytest.fixture(params=["asyncio", "erlang"])
def timers(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param == "asyncio":
        yield request.param
    else:
        for _ in install(monkeypatch, FakeErlang()):
            yield request.param


def test_sleep_returns_result_after_delay(timers: str) -> None:
    async def main() -> Any:
        started = time.monotonic()
        result = await erlang_asyncio.sleep(0.02, "done")
        return result, time.monotonic() - started

    result, elapsed = asyncio.run(main())
    assert result == "done"
    assert elapsed >= 0.019


@pytest.mark.parametrize("delay", [0, -1])
def test_non_positive_delay_yields_once(timers: str, delay: float) -> None:
    async def main() -> list[str]:
        order: list[str] = []

        async def other() -> None:
            order.append("other")

        task = asyncio.ensure_future(other())
        order.append(await erlang_asyncio.sleep(delay, "sleeper"))
        await task
        return order

    assert asyncio.run(main()) == ["other", "sleeper"]


def test_gather_wait_for_timeout_shield(timers: str) -> None:
    async def main() -> None:
        sleep = erlang_asyncio.sleep
        assert await erlang_asyncio.gather(sleep(0.02, 1), sleep(0.01, 2)) == [1, 2]
        with pytest.raises(TimeoutError):
            await erlang_asyncio.wait_for(sleep(10), 0.01)
        with pytest.raises(TimeoutError):
            async with erlang_asyncio.timeout(0.01):
                await sleep(10)
        inner = erlang_asyncio.ensure_future(sleep(0.02, "kept"))
        with pytest.raises(TimeoutError):
            await erlang_asyncio.wait_for(erlang_asyncio.shield(inner), 0.005)
        assert await inner == "kept"
        done, pending = await erlang_asyncio.wait({erlang_asyncio.create_task(sleep(0.001, "x"))})
        assert [task.result() for task in done] == ["x"] and not pending

    erlang_asyncio.run(main())


def test_cancellation(timers: str) -> None:
    async def main() -> None:
        task = erlang_asyncio.create_task(erlang_asyncio.sleep(10))
        await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert task.cancelled()

    asyncio.run(main())


# --- the Erlang-timer path ------------------------------------------------------------

def test_uses_erlang_timer_in_whole_ms(fake: FakeErlang) -> None:
    async def main() -> None:
        await erlang_asyncio.sleep(0.001)
        await erlang_asyncio.sleep(0.003)
        await erlang_asyncio.sleep(0.007)
        await erlang_asyncio.sleep(0.0001)
        await erlang_asyncio.sleep(0)

    asyncio.run(main())
    assert fake.scheduled == [1, 3, 7, 1]
    assert fake.cancelled == []


def test_cancel_cancels_erlang_timer(fake: FakeErlang) -> None:
    async def main() -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(erlang_asyncio.sleep(5), 0.01)

    asyncio.run(main())
    assert fake.scheduled == [5000]
    assert len(fake.cancelled) == 1 and fake.cancelled[0].cancelled()


def test_late_timer_after_cancel_is_harmless(leaky: FakeErlang) -> None:
    async def main() -> list[dict[str, Any]]:
        errors = capture_loop_errors()
        task = asyncio.ensure_future(erlang_asyncio.sleep(0.005))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.02)  # the un-cancelled timer fires now
        return errors

    assert asyncio.run(main()) == []
    assert len(leaky.cancelled) == 1


def test_module_without_timers_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    for _ in install(monkeypatch, types.ModuleType("_erlang")):
        assert erlang_asyncio._erlang is None
        assert asyncio.run(erlang_asyncio.sleep(0.001, "fallback")) == "fallback"
