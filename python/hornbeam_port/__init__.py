"""The Python side of erlang_python's ``processes`` mode.

Erlang starts each worker as a port program (``python -P -B -c 'import hornbeam_port;
hornbeam_port.main()'`` with ``nouse_stdio``): it reads frames on fd 3 and writes frames
on fd 4, so the app's own stdout and stderr stay the VM's, as in the NIF modes.  The
frames are described in docs/processes.md; ``wire`` owns their codes.

Inside the worker, the module ``_erlang`` offers what the NIF's does (``Atom``, ``Term``,
``log``, ``schedule_timer``, ``cancel_timer``), so the runners and ``erlang_asyncio``
behave the same in every mode.
"""

from __future__ import annotations

import asyncio
import faulthandler
import importlib.machinery as machinery
import os
import selectors
import signal
import struct
import sys
import types
from typing import Any

import erlang_python_runtime

from . import _codec, terms, wire
from .terms import RAW, Atom, Term, decode, encode
from .worker import Worker

IN_FD = 3
OUT_FD = 4

_WORKER: Worker | None = None


def running_worker() -> Worker:
    """The running worker (inside a worker process)."""
    assert _WORKER is not None, "not inside an erlang_python worker process"
    return _WORKER


class _FlushingSelector(selectors.EpollSelector):
    """Writes the frames queued during a loop iteration before the loop waits."""

    def __init__(self, writer: Any) -> None:
        super().__init__()
        self._writer = writer

    def select(self, timeout: float | None = None) -> list[Any]:
        self._writer.flush()
        return super().select(timeout)


def configure(paths: list[str], venv: str | None) -> str:
    """sys.path as the NIF sets it (erlang_python_runtime.configure: ``paths`` in front,
    then a virtualenv's site-packages; priv/python, ``paths[0]``, source-only).  Returns a
    warning or ''.

    This package is shipped in priv/python too: its directory is made source-only as
    well.  Erlang starts the process with ``-B`` so that loading this package wrote no
    bytecode there; bytecode writing is then turned back on for everything else (the
    app), unless PYTHONDONTWRITEBYTECODE asks otherwise."""
    warning = erlang_python_runtime.configure(paths, venv, "%d.%d" % sys.version_info[:2])
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path_importer_cache[here] = machinery.FileFinder(
        here,
        (erlang_python_runtime.SourceOnlyLoader, machinery.SOURCE_SUFFIXES),
        (machinery.ExtensionFileLoader, machinery.EXTENSION_SUFFIXES))
    sys.dont_write_bytecode = bool(os.environ.get("PYTHONDONTWRITEBYTECODE"))
    return warning


def _erlang_module(w: Worker) -> types.ModuleType:
    module = types.ModuleType("_erlang", "The Erlang VM behind this worker process (erlang_python processes mode).")
    module.Atom = Atom  # type: ignore[attr-defined]
    module.Term = Term  # type: ignore[attr-defined]
    module.log = w.log  # type: ignore[attr-defined]
    module.schedule_timer = w.schedule_timer  # type: ignore[attr-defined]
    module.cancel_timer = w.cancel_timer  # type: ignore[attr-defined]
    return module


def _reporting_exit(writer: Any) -> Any:
    """os._exit that tells Erlang the status first (its port may not report it)."""
    real_exit = os._exit

    def _exit(status: int) -> None:
        try:
            writer.push(wire.EXITING, 0, struct.pack(">I", status & 0xFF), None)
            writer.flush()
        finally:
            real_exit(status)

    return _exit


def _read_init(reader: Any) -> tuple[dict[str, Any], list[Any]]:
    """The INIT frame (always Erlang's first), and any frames that came with it."""
    frames: list[Any] = []
    while not frames:
        got = reader.read()
        if got is None:
            os._exit(0)
        frames = got
    op, _, head, _ = frames[0]
    if op != wire.INIT:
        raise RuntimeError(f"expected INIT from Erlang, got op {op}")
    config, _ = decode(head, 0, RAW)
    return config, frames[1:]


def main() -> None:
    global _WORKER
    _codec.parent_death_kill()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the VM owns Ctrl-C; it stops us by closing the port
    faulthandler.enable()
    _codec.report_fatal_signals(OUT_FD, wire.EXITING)
    os.set_inheritable(IN_FD, False)
    os.set_inheritable(OUT_FD, False)
    sys.argv = ["erlang_python"]
    reader = _codec.Reader(IN_FD)
    writer = _codec.Writer(OUT_FD)
    config, early = _read_init(reader)
    terms.LOCAL_NODE = config["node"]
    warning = configure([os.fsdecode(p) for p in config["paths"]],
                        os.fsdecode(config["venv"]) if config["venv"] else None)
    loop = asyncio.SelectorEventLoop(_FlushingSelector(writer))
    asyncio.set_event_loop(loop)
    _WORKER = w = Worker(loop, reader, writer)
    sys.modules["_erlang"] = _erlang_module(w)
    os._exit = _reporting_exit(writer)
    _codec.watchdog_start()
    ready = {Atom("python_version"): "%d.%d.%d" % sys.version_info[:3],
             Atom("executable"): sys.executable, Atom("warning"): warning}
    writer.push(wire.READY, 0, encode(ready), None)
    writer.flush()
    loop.add_reader(IN_FD, w.on_readable)
    if early:
        loop.call_soon(w.dispatch, early)
    while True:
        try:
            loop.run_forever()
        except (SystemExit, KeyboardInterrupt):
            # An app's task raised them; asyncio re-raises from the loop.  Its request got
            # the error; the worker carries on.
            continue
