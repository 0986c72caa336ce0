import functools

import pytest

import hornbeam_detect


async def asgi_function(scope, receive, send):
    pass


def wsgi_function(environ, start_response):
    return []


class AsgiClass:
    async def __call__(self, scope, receive, send):
        pass


class WsgiClass:
    def __call__(self, environ, start_response):
        return []


@pytest.mark.parametrize(
    ("app", "expected"),
    [
        (asgi_function, "asgi"),
        (wsgi_function, "wsgi"),
        (AsgiClass(), "asgi"),
        (WsgiClass(), "wsgi"),
        (functools.partial(asgi_function), "asgi"),
    ],
)
def test_detect_plain_apps(app, expected):
    assert hornbeam_detect.detect(app) == expected


def test_frameworks():
    import flask
    import starlette.applications
    import fastapi
    from django.core.handlers.asgi import ASGIHandler
    from django.core.handlers.wsgi import WSGIHandler

    assert hornbeam_detect.detect(flask.Flask("x")) == "wsgi"
    assert hornbeam_detect.detect(starlette.applications.Starlette()) == "asgi"
    assert hornbeam_detect.detect(fastapi.FastAPI()) == "asgi"
    # Instances made without __init__, which would need Django settings.
    assert hornbeam_detect.detect(ASGIHandler.__new__(ASGIHandler)) == "asgi"
    assert hornbeam_detect.detect(WSGIHandler.__new__(WSGIHandler)) == "wsgi"


def test_interface_resolves_dotted_names():
    assert hornbeam_detect.interface("hornbeam_detect", "detect") == "wsgi"
    assert hornbeam_detect.interface(__name__, "AsgiClass.__call__") == "asgi"


def test_not_callable():
    with pytest.raises(TypeError):
        hornbeam_detect.detect(42)
