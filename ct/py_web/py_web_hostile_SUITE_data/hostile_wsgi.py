"""A WSGI app that does what an app must not be able to do to the server's VM: fork
it, signal it, hang its workers.  Each path is one such act; its answer says what
happened.  HOSTILE_LOG (a file) records every request the app started."""

import os
import signal
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from typing import Any
from urllib.parse import parse_qs

StartResponse = Callable[..., Any]


def square(x: int) -> int:
    return x * x


def _record(environ: dict[str, Any]) -> None:
    log = os.environ.get("HOSTILE_LOG")
    if log:
        line = f"{environ['PATH_INFO']}?{environ.get('QUERY_STRING', '')}\n"
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)


def _refused(act: Callable[[], Any]) -> str:
    try:
        act()
    except (RuntimeError, PermissionError) as e:
        return f"refused {type(e).__name__}: {e}"
    return "not refused"


def _mp_pool() -> str:
    import multiprocessing

    with multiprocessing.Pool(2) as pool:
        return ",".join(str(r) for r in pool.map(square, [1, 2, 3]))


def _mp_fork_pool() -> str:
    import multiprocessing

    def run() -> None:
        with multiprocessing.get_context("fork").Pool(2) as pool:
            pool.map(square, [1])

    return _refused(run)


def _executor() -> str:
    with ProcessPoolExecutor(2) as ex:
        return ",".join(str(r) for r in ex.map(square, [1, 2, 3]))


def _answer(path: str, query: dict[str, list[str]]) -> str:
    if path == "/fork":
        return _refused(os.fork)
    if path == "/mp":
        return _mp_pool()
    if path == "/mp-fork":
        return _mp_fork_pool()
    if path == "/executor":
        return _executor()
    if path == "/alarm":
        signal.alarm(1)
        return "armed"
    if path == "/itimer":
        signal.setitimer(signal.ITIMER_REAL, 0.5)
        signal.setitimer(signal.ITIMER_VIRTUAL, 0.01)
        signal.setitimer(signal.ITIMER_PROF, 0.01)
        return "armed"
    if path == "/kill":
        return _refused(lambda: os.kill(os.getpid(), signal.SIGTERM))
    if path == "/killpg":
        return _refused(lambda: os.killpg(os.getpgrp(), signal.SIGTERM))
    if path == "/raise":
        return _refused(lambda: signal.raise_signal(signal.SIGTERM))
    if path == "/sleep":
        time.sleep(float(query.get("s", ["3600"])[0]))
        return "slept"
    return "hello"


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    _record(environ)
    body = _answer(environ["PATH_INFO"], parse_qs(environ.get("QUERY_STRING", ""))).encode()
    start_response("200 OK", [("content-type", "text/plain"), ("content-length", str(len(body)))])
    return [body]
