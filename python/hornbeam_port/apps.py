"""Resolving ``module``, ``callable`` and the runner's entry point, with a cache.

The same rules as the NIF's app cache (c_src/appcache.c): the runner module is imported
first and must have a callable ``entry`` (else BadRunner), then the app's module, then the
dotted ``callable`` attribute by attribute.  Import errors are the app's own exceptions.
"""

from __future__ import annotations

import importlib
from typing import Any

_CACHE_SIZE = 32


class BadRunner(Exception):
    """The runner module has no callable entry point of the needed name."""


def name(raw: str | bytes) -> str:
    """A module or attribute name as Erlang sent it (atom text or UTF-8 binary)."""
    return raw if isinstance(raw, str) else raw.decode("utf-8")


def resolve_path(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


class AppCache:
    """(module, callable, runner, entry) -> (app, runner's entry), most recent 32."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str, str, str], tuple[Any, Any]] = {}

    def get(self, names: tuple[Any, Any, Any], entry: str) -> tuple[Any, Any]:
        key = (name(names[0]), name(names[1]), name(names[2]), entry)
        found = self._cache.get(key)
        if found is not None:
            return found
        module, callable_, runner, _ = key
        fn = getattr(importlib.import_module(runner), entry, None)
        if not callable(fn):
            raise BadRunner(f"runner module '{runner}' has no callable {entry}()")
        app = resolve_path(importlib.import_module(module), callable_)
        if len(self._cache) >= _CACHE_SIZE:
            self._cache.pop(next(iter(self._cache)))
        self._cache[key] = (app, fn)
        return app, fn
