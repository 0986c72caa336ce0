"""Set-up and tear-down the erlang_python NIF runs in each interpreter it owns.

The NIF calls these on its own threads (the interpreter's main thread, a worker);
they are plain Python so that they can be read and tested outside the VM.

* ``configure(paths, venv, version)``: at every start of the application, in every
  interpreter (the main one, and each sub-interpreter in ``subinterpreters`` mode);
* ``teardown_loop(loop)``: when a worker stops, on its thread.
"""

import asyncio
import importlib.machinery
import os
import site
import sys
from collections.abc import Callable
from typing import Any


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
    an app must not end the VM's process).

    ``paths[0]`` is the python/ package as the application ships it (``priv/python``):
    its modules are imported without writing ``__pycache__`` there, so that the
    installed application stays as built (a release made from it ships no caches, and
    it may be read-only).

    Idempotent: the application runs it again at each start.  Returns a warning for the
    Erlang log ("" if none): a venv without site-packages for this Python is not fatal.
    """
    if blocked_exit is not None:
        os._exit = blocked_exit  # type: ignore[assignment]
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
