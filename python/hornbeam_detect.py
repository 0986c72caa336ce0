"""Loading the app that ``bin/pyweb module:callable`` names.

``load`` imports the app, calls it first when it is an app factory (told, or
detected as uvicorn does: a callable that takes no arguments), and says
which interface the app speaks.  An ASGI app is a coroutine function, or an
object whose ``__call__`` is one (Starlette, FastAPI, Django's
ASGIHandler); anything else callable is taken for WSGI (Flask, Django's
WSGIHandler, plain functions).

The app a factory returns is served as an attribute of this module (the
server resolves apps as ``module.attribute``): ``__getattr__`` calls the
factory the first time such an attribute is asked for, in each interpreter,
and keeps the app.
"""

import functools
import importlib
import inspect
import traceback
from typing import Any

_FACTORY_PREFIX = "factory_app_"


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
        raise TypeError(f"{type(app).__qualname__} object is not callable")
    if _is_async(app):
        return "asgi"
    call = getattr(type(app), "__call__", None)
    if not inspect.isfunction(app) and not inspect.ismethod(app) and _is_async(call):
        return "asgi"
    return "wsgi"


def interface(module: str, name: str) -> str:
    """``"asgi"`` or ``"wsgi"`` for the app ``module:name``."""
    return detect(resolve(module, name))


def is_factory(obj: Any) -> bool:
    """Whether ``obj`` can be called with no arguments and is no app itself:
    a plain callable (not a coroutine function) whose every parameter has a
    default.  An app needs its request arguments, so it never qualifies."""
    if not callable(obj) or _is_async(obj):
        return False
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return False
    return all(
        p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        for p in signature.parameters.values()
    )


def factory_name(module: str, name: str) -> str:
    """The attribute of this module under which the app made by the factory
    ``module:name`` is served."""
    return _FACTORY_PREFIX + f"{module}:{name}".encode().hex()


def __getattr__(attr: str) -> Any:
    if not attr.startswith(_FACTORY_PREFIX):
        raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")
    module, name = bytes.fromhex(attr[len(_FACTORY_PREFIX):]).decode().split(":", 1)
    app = resolve(module, name)()
    globals()[attr] = app
    return app


def load(module: str, name: str, factory: bool) -> tuple[str, ...]:
    """The app to serve for ``module:name``.

    ``("ok", interface, module, name, factory)``: the names to serve it
    under (this module's for an app a factory made) and how the factory was
    known: ``"explicit"``, ``"detected"`` or ``"none"``.

    ``("error", kind, type, message, traceback, where)`` when it cannot be
    loaded; ``kind`` is ``"module_not_found"`` (the module itself does not
    exist), ``"attribute_not_found"``, ``"import_failed"`` (the module
    raised), ``"factory_failed"`` or ``"not_callable"``; ``traceback`` is
    formatted from the user's code on, ``where`` is ``"file, line N"`` of
    the innermost frame, or ``""`` (a SyntaxError's message has it already)."""
    try:
        obj: Any = importlib.import_module(module)
    except Exception as exc:
        kind = "module_not_found" if _missing_module(exc, module) else "import_failed"
        return _error(kind, exc)
    for part in name.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            return _error("attribute_not_found", exc)
    how = "explicit" if factory else ("detected" if is_factory(obj) else "none")
    served_module, served = module, name
    if how != "none":
        served_module, served = __name__, factory_name(module, name)
        try:
            obj = __getattr__(served)
        except Exception as exc:
            return _error("factory_failed", exc)
    try:
        return ("ok", detect(obj), served_module, served, how)
    except TypeError as exc:
        return _error("not_callable", exc)


def _error(kind: str, exc: BaseException) -> tuple[str, ...]:
    return ("error", kind, type(exc).__qualname__, str(exc), _format(exc), _where(exc))


def _where(exc: BaseException) -> str:
    if isinstance(exc, SyntaxError):
        return ""  # its message says where already
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not _loader_frame(f.filename)]
    return f"{frames[-1].filename}, line {frames[-1].lineno}" if frames else ""


def _format(exc: BaseException) -> str:
    """The traceback of ``exc`` (and the exceptions chained to it) without
    the loader's frames: this module's, ``importlib``'s."""
    top = traceback.TracebackException.from_exception(exc)
    seen: set[int] = set()
    todo = [top]
    while todo:
        te = todo.pop()
        if id(te) in seen:
            continue
        seen.add(id(te))
        te.stack = traceback.StackSummary.from_list(
            [f for f in te.stack if not _loader_frame(f.filename)])
        todo += [t for t in (te.__cause__, te.__context__) if t is not None]
    return "".join(top.format())


def _loader_frame(filename: str) -> bool:
    return filename in (__file__, importlib.__file__) or filename.startswith("<frozen importlib")


def _missing_module(exc: BaseException, module: str) -> bool:
    """Whether ``exc`` says that ``module`` itself (or a package on its
    path) does not exist, rather than an import failing inside it."""
    return isinstance(exc, ModuleNotFoundError) and exc.name is not None and (
        module == exc.name or module.startswith(exc.name + ".")
    )
