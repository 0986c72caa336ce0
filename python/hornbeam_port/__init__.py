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
import site
import struct
import sys
import types
from typing import Any

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


class _SourceOnlyLoader(machinery.SourceFileLoader):
    """Imports source files without writing their bytecode beside them."""

    def set_data(self, path: str, data: bytes, *, _mode: int = 0o666) -> None:
        pass


def _source_only(directory: str) -> None:
    """Imports from ``directory`` never write ``__pycache__`` into it."""
    sys.path_importer_cache[directory] = machinery.FileFinder(
        directory,
        (_SourceOnlyLoader, machinery.SOURCE_SUFFIXES),
        (machinery.ExtensionFileLoader, machinery.EXTENSION_SUFFIXES))


def configure(paths: list[str], venv: str | None) -> str:
    """sys.path as the NIF sets it: ``paths`` in front, then a virtualenv's
    site-packages processed like site.addsitedir.  Returns a warning or ''.

    ``paths[0]`` is the python/ package (priv/python, which a release copies as it is):
    as in the NIF, modules imported from it, and from this package, write no bytecode
    there.  Erlang starts the process with ``-B`` so that loading this package wrote
    none either; bytecode writing is then turned back on for everything else (the app),
    unless PYTHONDONTWRITEBYTECODE asks otherwise."""
    if paths:
        _source_only(paths[0])
    _source_only(os.path.dirname(os.path.abspath(__file__)))
    sys.dont_write_bytecode = bool(os.environ.get("PYTHONDONTWRITEBYTECODE"))
    for p in reversed(paths):
        if p in sys.path:
            sys.path.remove(p)
        sys.path.insert(0, p)
    if not venv:
        return ""
    version = "%d.%d" % sys.version_info[:2]
    sp = os.path.join(venv, "lib", "python" + version, "site-packages")
    if not os.path.isdir(sp):
        return f"virtualenv {venv} has no {sp}: is it a Python {version} venv?"
    if sp in sys.path:
        return ""
    before = set(sys.path)
    site.addsitedir(sp)
    added = [p for p in sys.path if p not in before]
    for p in added:
        sys.path.remove(p)
    sys.path[len(paths):len(paths)] = added
    return ""


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
