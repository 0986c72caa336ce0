"""Set-up and tear-down the erlang_python NIF runs in each interpreter it owns.

The NIF calls these on its own threads (the interpreter's main thread, a worker);
they are plain Python so that they can be read and tested outside the VM.

* ``configure(paths, venv, version)``: at every start of the application, in every
  interpreter (the main one, and each sub-interpreter in ``subinterpreters`` mode);
* ``teardown_loop(loop)``: when a worker stops, on its thread.

Inside the VM ``configure`` also guards the VM's process against the app
(:func:`guard_process`): no fork of the VM, no signal to it, and ``multiprocessing``
(and so ``concurrent.futures.ProcessPoolExecutor``) starting its children with
``spawn`` from the real Python interpreter.
"""

import asyncio
import importlib.machinery
import os
import signal
import site
import sys
from collections.abc import Callable
from typing import Any

FORK_REFUSED = (
    "os.fork() is refused inside the Erlang VM: the child would be a copy of the VM "
    "(its sockets, its listening port). Use multiprocessing or "
    "concurrent.futures.ProcessPoolExecutor (their start method is 'spawn' here) "
    "or subprocess."
)
SIGNAL_REFUSED = "signals to the Erlang VM's own process are refused: it would end the VM"


def configure(
    paths: list[str],
    venv: str | None,
    version: str,
    blocked_exit: Callable[..., Any] | None = None,
) -> str:
    """Puts ``paths`` first on ``sys.path`` (in order, each once) and the site-packages
    of the virtualenv ``venv`` right after them, processed as ``site.addsitedir`` does
    (``.pth`` files work).  ``version`` is ``"X.Y"`` of this interpreter, to find the
    venv's ``lib/pythonX.Y/site-packages``.  ``blocked_exit``, when given, replaces
    ``os._exit`` (the NIF passes ``_erlang._blocked_exit``, which raises SystemExit:
    an app must not end the VM's process) and then :func:`guard_process` runs.

    ``paths[0]`` is the python/ package as the application ships it (``priv/python``):
    its modules are imported without writing ``__pycache__`` there, so that the
    installed application stays as built (a release made from it ships no caches, and
    it may be read-only).

    Idempotent: the application runs it again at each start.  Returns a warning for the
    Erlang log ("" if none): a venv without site-packages for this Python is not fatal.
    """
    if blocked_exit is not None:
        os._exit = blocked_exit  # type: ignore[assignment]
        guard_process()
    if paths:
        sys.path_importer_cache[paths[0]] = source_only_finder(paths[0])
    for p in reversed(paths):
        if p in sys.path:
            sys.path.remove(p)
        sys.path.insert(0, p)
    if not venv:
        return ""
    site_packages = os.path.join(venv, "lib", "python" + version, "site-packages")
    if not os.path.isdir(site_packages):
        return f"virtualenv {venv} has no {site_packages}: is it a Python {version} venv?"
    if site_packages in sys.path:
        return ""
    before = set(sys.path)
    site.addsitedir(site_packages)
    added = [p for p in sys.path if p not in before]
    for p in added:
        sys.path.remove(p)
    sys.path[len(paths) : len(paths)] = added
    return ""


class SourceOnlyLoader(importlib.machinery.SourceFileLoader):
    """Imports a module from its source and never writes its bytecode cache."""

    def set_data(self, path: str, data: bytes, *, _mode: int = 0o666) -> None:
        pass


def source_only_finder(directory: str) -> importlib.machinery.FileFinder:
    """A path-entry finder for ``directory`` that imports its ``.py`` modules with
    :class:`SourceOnlyLoader` (and nothing else: the package has no extensions)."""
    return importlib.machinery.FileFinder(
        directory, (SourceOnlyLoader, importlib.machinery.SOURCE_SUFFIXES)
    )


def teardown_loop(loop: asyncio.AbstractEventLoop, grace: float = 1.0) -> None:
    """Cancels every task still on a stopped worker's ``loop``, gives them ``grace``
    seconds to unwind (their ``finally`` blocks, the replies of the jobs they belong
    to), then closes the loop."""
    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.wait(tasks, timeout=grace))
    loop.close()


def guard_process() -> None:
    """What an app may not do to the VM's process, made Python exceptions:

    * ``os.fork()`` and ``os.forkpty()`` raise RuntimeError (:data:`FORK_REFUSED`): a
      forked child is a copy of the whole VM, holding its listening sockets and
      connections, with none of its threads.  ``subprocess`` is unaffected (it forks
      and executes in C).
    * ``os.kill``/``os.killpg`` aimed at this process or its process group (pid 0,
      -1, the own pid or -pgid), ``signal.raise_signal`` and ``signal.pthread_kill``
      raise PermissionError (:data:`SIGNAL_REFUSED`) for any signal but 0.  The timer
      signals an app can arm (``signal.alarm``, ``signal.setitimer``) are made
      harmless by the NIF in C (core/signals.c).
    * ``multiprocessing``'s default start method is ``spawn`` with ``sys.executable``
      (the real interpreter, not beam.smp): children import the app's modules from
      the parent's ``sys.path``.

    Idempotent.  C extensions calling fork() or kill() directly are not covered.
    """
    if getattr(os.fork, "__erlang_guard__", False):
        return
    os.fork = _refused_fork  # type: ignore[assignment]
    if hasattr(os, "forkpty"):
        os.forkpty = _refused_fork  # type: ignore[assignment]
    os.kill = _guard_kill(os.kill, _targets_self)  # type: ignore[assignment]
    os.killpg = _guard_kill(os.killpg, _group_is_own)  # type: ignore[assignment]
    signal.raise_signal = _refused_raise  # type: ignore[assignment]
    signal.pthread_kill = _guard_pthread_kill(signal.pthread_kill)  # type: ignore[assignment]
    _spawn_children()


def _refused_fork() -> Any:
    raise RuntimeError(FORK_REFUSED)


_refused_fork.__erlang_guard__ = True  # type: ignore[attr-defined]


def _targets_self(pid: int) -> bool:
    return pid in (0, -1, os.getpid()) or (pid < -1 and -pid == os.getpgrp())


def _group_is_own(pgid: int) -> bool:
    return pgid in (0, os.getpgrp())


def _guard_kill(kill: Callable[[int, int], None], is_own: Callable[[int], bool]) -> Callable[[int, int], None]:
    def guarded(pid: int, sig: int, /) -> None:
        if sig != 0 and is_own(pid):
            raise PermissionError(1, SIGNAL_REFUSED)
        kill(pid, sig)

    guarded.__name__ = kill.__name__
    guarded.__doc__ = kill.__doc__
    return guarded


def _refused_raise(sig: int, /) -> None:
    raise PermissionError(1, SIGNAL_REFUSED)


def _guard_pthread_kill(pthread_kill: Callable[[int, int], None]) -> Callable[[int, int], None]:
    def guarded(thread_id: int, sig: int, /) -> None:
        if sig != 0:
            raise PermissionError(1, SIGNAL_REFUSED)
        pthread_kill(thread_id, sig)

    guarded.__doc__ = pthread_kill.__doc__
    return guarded


def _spawn_children() -> None:
    import multiprocessing

    if sys.executable:
        multiprocessing.set_executable(sys.executable)
    multiprocessing.set_start_method("spawn", force=True)
