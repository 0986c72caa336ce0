"""asyncio helpers for code running inside the Erlang VM.

``sleep`` uses an Erlang timer (``_erlang.schedule_timer``) when it runs on a
worker's event loop inside the VM, so a sleeping coroutine costs no Python timer (in the
processes mode, the worker process's ``_erlang`` keeps the timer on that loop);
anywhere else (outside the VM, or on a loop of the app's own thread) it is
``asyncio.sleep``. Every other name is asyncio's own, re-exported unchanged.
"""

import asyncio
import math
from asyncio import (
    create_task,
    ensure_future,
    gather,
    get_event_loop,
    get_running_loop,
    new_event_loop,
    run,
    set_event_loop,
    shield,
    timeout,
    wait,
    wait_for,
)
from types import ModuleType
from typing import TypeVar

__all__ = [
    "create_task",
    "ensure_future",
    "gather",
    "get_event_loop",
    "get_running_loop",
    "new_event_loop",
    "run",
    "set_event_loop",
    "shield",
    "sleep",
    "timeout",
    "wait",
    "wait_for",
]

T = TypeVar("T")


def _erlang_timers() -> ModuleType | None:
    """The NIF's ``_erlang`` module if it offers timers (only inside the VM)."""
    try:
        import _erlang  # type: ignore[import-not-found]
    except ImportError:
        return None
    return _erlang if hasattr(_erlang, "schedule_timer") else None


_erlang = _erlang_timers()


def _to_ms(delay: float) -> int:
    """Whole milliseconds, rounded up so that a sleep never ends early."""
    return math.ceil(round(delay * 1000, 6))


async def sleep(delay: float, result: T | None = None) -> T | None:
    """``asyncio.sleep`` with the timer kept by Erlang when inside the VM."""
    if _erlang is None or delay <= 0:
        return await asyncio.sleep(delay, result)
    future: asyncio.Future[T | None] = get_running_loop().create_future()

    def wake() -> None:
        if not future.done():
            future.set_result(result)

    try:
        handle = _erlang.schedule_timer(_to_ms(delay), wake)
    except RuntimeError:  # not on a worker's loop (e.g. a thread of the app's own)
        return await asyncio.sleep(delay, result)
    try:
        return await future
    except asyncio.CancelledError:
        _erlang.cancel_timer(handle)
        raise
