"""Python side of erlang_asyncio_SUITE: erlang_asyncio inside the VM.

A Spy wraps the real ``_erlang`` timer functions (installed as erlang_asyncio._erlang)
and counts timers scheduled, cancelled, fired, and refused (schedule_timer raising,
as it does off the worker's loop).
"""
import asyncio
import threading
import time

import erlang_asyncio as ea

RECORDS = {}


class Spy:
    def __init__(self, real):
        self.real = real
        self.reset()

    def reset(self):
        self.scheduled = 0
        self.cancelled = 0
        self.fired = 0
        self.refused = 0
        self.delays = []

    def schedule_timer(self, delay_ms, callback):
        def fired():
            self.fired += 1
            callback()
        try:
            handle = self.real.schedule_timer(delay_ms, fired)
        except RuntimeError:
            self.refused += 1
            raise
        self.scheduled += 1
        self.delays.append(delay_ms)
        return handle

    def cancel_timer(self, handle):
        self.cancelled += 1
        return self.real.cancel_timer(handle)


_REAL = ea._erlang


def real_timers_module():
    """The name of the module erlang_asyncio found (None outside the VM)."""
    return None if _REAL is None else _REAL.__name__


def install_spy():
    ea._erlang = Spy(_REAL)


def uninstall_spy():
    ea._erlang = _REAL


def spy():
    s = ea._erlang
    return {"scheduled": s.scheduled, "cancelled": s.cancelled, "fired": s.fired,
            "refused": s.refused, "delays": list(s.delays)}


def spy_reset():
    ea._erlang.reset()


def record(key):
    return RECORDS.get(key)


def _ms(t0):
    return (time.monotonic() - t0) * 1000


# ---- sleep ------------------------------------------------------------------------------

async def sleep_result(delay, result):
    t0 = time.monotonic()
    r = await ea.sleep(delay, result)
    return [r, _ms(t0)]


async def sleep_default_result(delay):
    return await ea.sleep(delay)


async def sleep_record(key, delay):
    """Sleeps; notes CancelledError if cancelled (e.g. by a py:call timeout)."""
    RECORDS[key] = ["started"]
    try:
        await ea.sleep(delay)
        RECORDS[key].append("woke")
    except asyncio.CancelledError:
        RECORDS[key].append("cancelled")
        raise
    finally:
        RECORDS[key].append("finally")
    return "slept"


async def cancel_sleep():
    """A task sleeping 0.2 s on an Erlang timer is cancelled after 10 ms."""
    task = ea.create_task(ea.sleep(0.2, "never"))
    await asyncio.sleep(0.01)
    task.cancel()
    try:
        await task
        return "not cancelled"
    except asyncio.CancelledError:
        return ["cancelled", task.cancelled()]


async def many_sleeps(n, delay):
    t0 = time.monotonic()
    results = await ea.gather(*(ea.sleep(delay, i) for i in range(n)))
    return [results == list(range(n)), _ms(t0)]


# ---- asyncio API over erlang_asyncio.sleep --------------------------------------------------

async def api_wait_for():
    t0 = time.monotonic()
    try:
        await ea.wait_for(ea.sleep(1, "late"), 0.05)
        timed_out = False
    except (asyncio.TimeoutError, TimeoutError):
        timed_out = True
    ok = await ea.wait_for(ea.sleep(0.01, "in time"), 1)
    return [timed_out, _ms(t0) < 500, ok]


async def api_timeout():
    t0 = time.monotonic()
    try:
        async with ea.timeout(0.05):
            await ea.sleep(1)
        timed_out = False
    except TimeoutError:
        timed_out = True
    async with ea.timeout(1):
        ok = await ea.sleep(0.01, "in time")
    return [timed_out, _ms(t0) < 500, ok]


async def api_shield():
    inner = ea.create_task(ea.sleep(0.05, "inner result"))
    try:
        await ea.wait_for(ea.shield(inner), 0.01)
        outer = "not timed out"
    except (asyncio.TimeoutError, TimeoutError):
        outer = "timed out"
    return [outer, inner.cancelled(), await inner]


async def _raise_later():
    await ea.sleep(0.01)
    raise ValueError("gathered failure")


async def api_gather():
    values = await ea.gather(ea.sleep(0.03, 1), ea.sleep(0.01, 2), ea.sleep(0.02, 3))
    mixed = await ea.gather(ea.sleep(0.01, "a"), _raise_later(), return_exceptions=True)
    try:
        await ea.gather(ea.sleep(0.01), _raise_later())
        raised = None
    except ValueError as e:
        raised = str(e)
    return [values, [mixed[0], type(mixed[1]).__name__, str(mixed[1])], raised]


async def api_tasks():
    t = ea.create_task(ea.sleep(0.01, "task"))
    f = ea.ensure_future(ea.sleep(0.02, "future"))
    loop = ea.get_running_loop()
    same_loop = loop is asyncio.get_running_loop() and ea.get_event_loop() is loop
    results = [await t, await f]
    slow = ea.create_task(ea.sleep(1, "slow"))
    fast = ea.create_task(ea.sleep(0.01, "fast"))
    done, pending = await ea.wait({slow, fast}, return_when=asyncio.FIRST_COMPLETED)
    first = [x.result() for x in done]
    for p in pending:
        p.cancel()
    await asyncio.sleep(0)
    return [results, same_loop, first, len(pending), slow.cancelled()]


async def api_cancel_propagates():
    """Cancelling a task that awaits gather cancels every sleeper."""
    async def group():
        return await ea.gather(*(ea.sleep(1) for _ in range(10)))
    task = ea.create_task(group())
    await asyncio.sleep(0.02)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        return "cancelled"
    return "not cancelled"


async def zero_and_negative():
    return [await ea.sleep(0, "zero"), await ea.sleep(-1, "negative")]


async def rounding():
    """Delays under a millisecond round up: never early."""
    t0 = time.monotonic()
    r = await ea.sleep(0.0004, "tiny")
    return [r, _ms(t0) >= 0.4]


# ---- loops of the app's own ---------------------------------------------------------------

def thread_loop_sleep(delay):
    """A thread started by the app runs its own loop (erlang_asyncio.run): sleep falls
    back to asyncio.sleep there."""
    out = {}

    def run():
        async def main():
            t0 = time.monotonic()
            r = await ea.sleep(delay, "thread")
            return [r, _ms(t0)]
        try:
            out["result"] = ea.run(main())
        except BaseException as e:  # reported, not lost
            out["error"] = repr(e)

    th = threading.Thread(target=run)
    th.start()
    th.join(5)
    return out


async def executor_loop_sleep(delay):
    """The app hands blocking work to the loop's default executor; that thread runs a
    loop of its own (erlang_asyncio.run) where sleep falls back to asyncio.sleep."""
    def in_thread():
        async def main():
            t0 = time.monotonic()
            r = await ea.sleep(delay, "executor")
            return [r, _ms(t0)]
        return ea.run(main())
    return await asyncio.get_running_loop().run_in_executor(None, in_thread)


# ---- an ASGI app ----------------------------------------------------------------------------

async def asgi_sleep(scope, receive, send):
    delay = float(scope["query_string"] or b"0.1")
    key = scope["path"]
    RECORDS[key] = ["started"]
    try:
        await ea.sleep(delay)
    except asyncio.CancelledError:
        RECORDS[key].append("cancelled")
        raise
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": key.encode()})

