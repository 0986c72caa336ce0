"""Python side of py_runtime_SUITE."""
import os
import sys
import threading
import time

# Module state: survives stopping and starting the application (the interpreter stays).
_store = {}


def put(key, value):
    _store[key] = value
    return len(_store)


def get(key):
    return _store.get(key)


def loop_module():
    """The module of the worker's event loop's class (a sync call: set, not running)."""
    import asyncio

    return type(asyncio.get_event_loop()).__module__


async def running_loop_module():
    import asyncio

    return type(asyncio.get_running_loop()).__module__


def sleep_ident(seconds):
    """The (process, thread) that ran the call."""
    time.sleep(seconds)
    return [os.getpid(), threading.get_ident()]


def blocking_sleep(seconds, marker=None):
    if marker:
        open(marker, "w").close()
    time.sleep(seconds)
    return "done"


def sys_path():
    return list(sys.path)


def signal_handlers():
    """Python-level handlers of SIGINT, SIGTERM, SIGCHLD (None: not set from Python)."""
    import signal
    return [repr(signal.getsignal(s)) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD)]


def argv():
    return list(sys.argv)


def extension_modules():
    """Imports the C extension modules the issue names and exercises each (_decimal: in
    sub-interpreters of Python 3.12, refused, so decimal's pure-Python version)."""
    try:
        import _decimal
    except ImportError:
        if sys.version_info[:2] != (3, 12):
            raise
        import _pydecimal as _decimal
    import _json
    import _ssl
    import decimal
    import json
    import sqlite3
    import ssl

    con = sqlite3.connect(":memory:")
    try:
        con.execute("create table t (x)")
        con.executemany("insert into t values (?)", [(1,), (2,), (3,)])
        total = con.execute("select sum(x) from t").fetchone()[0]
    finally:
        con.close()
    return {
        "_json": json.scanner.make_scanner is _json.make_scanner
                 and _json.encode_basestring_ascii("\u00e9"),
        "_ssl": ssl.OPENSSL_VERSION.split()[0] if _ssl.OPENSSL_VERSION_NUMBER else None,
        "_decimal": decimal.Decimal is _decimal.Decimal
                    and str(decimal.Decimal(1) / decimal.Decimal(7)),
        "sqlite3": total,
    }


def flask_info():
    import flask
    import importlib.metadata
    return (importlib.metadata.version("flask"), os.path.realpath(flask.__file__))


def module_file(name):
    import importlib
    return os.path.realpath(importlib.import_module(name).__file__)


async def loop_blocking_sleep(seconds, marker):
    """Blocks its worker's event loop (not a job: a task's step after an await)."""
    import asyncio
    await asyncio.sleep(0)
    open(marker, "w").close()
    time.sleep(seconds)
    return "done"
