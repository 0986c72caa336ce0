"""Which interface an app speaks, for ``bin/pyweb --interface auto``.

An ASGI app is a coroutine function, or an object whose ``__call__`` is one
(Starlette, FastAPI, Django's ASGIHandler).  Anything else callable is taken
for WSGI (Flask, Django's WSGIHandler, plain functions).
"""

import functools
import importlib
import inspect
from typing import Any


def resolve(module: str, name: str) -> Any:
    """``module:name`` with a dotted ``name`` resolved attribute by attribute."""
    obj: Any = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def _is_async(obj: Any) -> bool:
    while isinstance(obj, functools.partial):
        obj = obj.func
    return inspect.iscoroutinefunction(obj)


def detect(app: Any) -> str:
    """``"asgi"`` or ``"wsgi"`` for an app object; TypeError if it is not callable."""
    if not callable(app):
        raise TypeError(f"{app!r} is not callable")
    if _is_async(app):
        return "asgi"
    call = getattr(type(app), "__call__", None)
    if not inspect.isfunction(app) and not inspect.ismethod(app) and _is_async(call):
        return "asgi"
    return "wsgi"


def interface(module: str, name: str) -> str:
    """``"asgi"`` or ``"wsgi"`` for the app ``module:name``."""
    return detect(resolve(module, name))
