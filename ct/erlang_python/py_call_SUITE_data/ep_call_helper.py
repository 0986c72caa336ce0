"""Python side of py_call_SUITE."""
import asyncio
import os
import sys


class MyError(Exception):
    pass


class Unprintable(Exception):
    def __str__(self):
        raise ValueError("no str for you")


class Greeter:
    @staticmethod
    def hello(name):
        return "hello " + name

    class Inner:
        @staticmethod
        def depth():
            return 2


def kw(a, b=2, *, c=3):
    return (a, b, c)


def kwargs_keys(**kwargs):
    return sorted(kwargs)


def raise_my(msg):
    raise MyError(msg)


def raise_nested():
    try:
        raise KeyError("inner")
    except KeyError as e:
        raise MyError("outer") from e


def raise_unprintable():
    raise Unprintable()


def raise_keyboard_interrupt():
    raise KeyboardInterrupt("stop")


def call_sys_exit(code):
    sys.exit(code)


def call_os_exit(code):
    os._exit(code)


async def add_later(a, b):
    await asyncio.sleep(0.01)
    return a + b


async def add_now(a, b):
    return a + b


async def raise_later(msg):
    await asyncio.sleep(0.01)
    raise MyError(msg)


async def exit_later():
    await asyncio.sleep(0)
    sys.exit(4)


async def sleep_async(seconds):
    await asyncio.sleep(seconds)
    return "slept"


async def gather_squares(n):
    async def sq(i):
        await asyncio.sleep(0.001)
        return i * i
    return await asyncio.gather(*(sq(i) for i in range(n)))



def run_own_loop(x):
    """Plain code on a worker thread may run an event loop of its own."""
    async def double():
        await asyncio.sleep(0)
        return 2 * x
    running = asyncio._get_running_loop()
    return [running is None, asyncio.run(double())]
