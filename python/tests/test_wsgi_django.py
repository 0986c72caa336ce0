"""A real Django app (configured in-test, urls module built here) through
hornbeam_wsgi_runner, validator-wrapped."""

import io
import json
import sys
import types
from collections.abc import Callable, Iterator
from typing import Any
from wsgiref.validate import validator

import pytest

from _support import header_values, make_environ, multipart
from hornbeam_wsgi_runner import run_wsgi

pytestmark = pytest.mark.filterwarnings("error::wsgiref.validate.WSGIWarning")

URLCONF = "hornbeam_test_django_urls"


def build_urls() -> types.ModuleType:
    from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse
    from django.shortcuts import redirect
    from django.urls import path

    def hello(request: HttpRequest, name: str) -> HttpResponse:
        return JsonResponse({"hello": name, "q": request.GET.getlist("q")})

    def form(request: HttpRequest) -> HttpResponse:
        return JsonResponse(request.POST.dict())

    def upload(request: HttpRequest) -> HttpResponse:
        upload = request.FILES["file"]
        data = upload.read()
        return JsonResponse({"title": request.POST["title"], "filename": upload.name, "size": len(data)})

    def cookies(request: HttpRequest) -> HttpResponse:
        response = JsonResponse({"seen": request.COOKIES.get("session")})
        response.set_cookie("a", "1")
        response.set_cookie("b", "2", httponly=True)
        return response

    def old(request: HttpRequest) -> HttpResponse:
        return redirect("/hello/new/")

    def boom(request: HttpRequest) -> HttpResponse:
        raise RuntimeError("boom")

    def download(request: HttpRequest) -> HttpResponse:
        return FileResponse(io.BytesIO(b"x" * 10000), content_type="application/octet-stream")

    module = types.ModuleType(URLCONF)
    module.urlpatterns = [  # type: ignore[attr-defined]
        path("hello/<str:name>/", hello),
        path("form/", form),
        path("upload/", upload),
        path("cookies/", cookies),
        path("old/", old),
        path("boom/", boom),
        path("download/", download),
    ]
    return module


@pytest.fixture(scope="module")
def django_app() -> Iterator[Callable[..., Any]]:
    import django
    from django.conf import settings
    from django.core.wsgi import get_wsgi_application

    if not settings.configured:
        settings.configure(
            DEBUG=False,
            SECRET_KEY="test",
            ALLOWED_HOSTS=["localhost"],
            ROOT_URLCONF=URLCONF,
            MIDDLEWARE=[],
            INSTALLED_APPS=[],
            DATABASES={},
            LOGGING_CONFIG=None,
        )
        django.setup()
    sys.modules[URLCONF] = build_urls()
    yield validator(get_wsgi_application())
    del sys.modules[URLCONF]


def call(app: Callable[..., Any], environ: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
    status, headers, body = run_wsgi(app, environ)
    return int(status.split(" ", 1)[0]), headers, b"".join(body)


def test_routing_json_and_query_string(django_app: Callable[..., Any]) -> None:
    status, headers, body = call(django_app, make_environ(path="/hello/ann/", query="q=1&q=two+words"))
    assert status == 200
    assert header_values(headers, "content-type") == ["application/json"]
    assert json.loads(body) == {"hello": "ann", "q": ["1", "two words"]}


def test_form_post(django_app: Callable[..., Any]) -> None:
    environ = make_environ(
        "POST",
        "/form/",
        body=b"name=J%C3%BCrgen&city=Z%C3%BCrich",
        headers=[("Content-Type", "application/x-www-form-urlencoded")],
    )
    assert json.loads(call(django_app, environ)[2]) == {"name": "Jürgen", "city": "Zürich"}


def test_multipart_upload(django_app: Callable[..., Any]) -> None:
    data = bytes(range(256)) * 40
    content_type, body = multipart({"title": "report"}, {"file": ("data.bin", data)})
    environ = make_environ("POST", "/upload/", body=body, headers=[("Content-Type", content_type)])
    assert json.loads(call(django_app, environ)[2]) == {"title": "report", "filename": "data.bin", "size": len(data)}


def test_cookies_in_and_two_set_cookie_headers(django_app: Callable[..., Any]) -> None:
    environ = make_environ(path="/cookies/", headers=[("Cookie", "session=abc; other=1")])
    status, headers, body = call(django_app, environ)
    assert json.loads(body) == {"seen": "abc"}
    cookies = header_values(headers, "set-cookie")
    assert [cookie.split(";")[0].strip() for cookie in cookies] == ["a=1", "b=2"]
    assert "HttpOnly" in cookies[1]


def test_redirect(django_app: Callable[..., Any]) -> None:
    status, headers, _ = call(django_app, make_environ(path="/old/"))
    assert status == 302
    assert header_values(headers, "location") == ["/hello/new/"]


def test_not_found(django_app: Callable[..., Any]) -> None:
    assert call(django_app, make_environ(path="/nope/"))[0] == 404


def test_server_error(django_app: Callable[..., Any]) -> None:
    assert call(django_app, make_environ(path="/boom/"))[0] == 500


def test_file_response_uses_file_wrapper(django_app: Callable[..., Any]) -> None:
    status, headers, body = run_wsgi(django_app, make_environ(path="/download/"))
    assert b"".join(body) == b"x" * 10000
    assert len(body) > 1
