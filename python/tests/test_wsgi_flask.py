"""A real Flask app through hornbeam_wsgi_runner (validator-wrapped)."""

import json
from typing import Any
from wsgiref.validate import validator

import pytest
from flask import Flask, jsonify, redirect, request

from _support import header_values, make_environ, multipart
from hornbeam_wsgi_runner import run_wsgi

pytestmark = pytest.mark.filterwarnings("error::wsgiref.validate.WSGIWarning")


def make_app() -> Flask:
    app = Flask(__name__)

    @app.get("/hello/<name>")
    def hello(name: str) -> Any:
        return jsonify(hello=name, q=request.args.getlist("q"))

    @app.post("/json")
    def echo_json() -> Any:
        return jsonify(received=request.get_json())

    @app.post("/form")
    def form() -> Any:
        return jsonify(dict(request.form))

    @app.post("/upload")
    def upload() -> Any:
        upload = request.files["file"]
        data = upload.read()
        return jsonify(title=request.form["title"], filename=upload.filename, size=len(data), head=data[:4].hex())

    @app.get("/cookies")
    def cookies() -> Any:
        response = jsonify(seen=request.cookies.get("session"))
        response.set_cookie("a", "1")
        response.set_cookie("b", "2", httponly=True)
        return response

    @app.get("/old")
    def old() -> Any:
        return redirect("/hello/new", code=302)

    @app.get("/boom")
    def boom() -> Any:
        raise RuntimeError("boom")

    @app.get("/café")
    def cafe() -> Any:
        return "café"

    return app


def call(environ: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
    status, headers, body = run_wsgi(validator(make_app()), environ)
    assert isinstance(status, str)
    return int(status.split(" ", 1)[0]), headers, b"".join(body)


def json_of(body: bytes) -> Any:
    return json.loads(body)


def test_routing_and_query_string() -> None:
    status, headers, body = call(make_environ(path="/hello/ann", query="q=1&q=two%20words"))
    assert status == 200
    assert header_values(headers, "content-type") == ["application/json"]
    assert json_of(body) == {"hello": "ann", "q": ["1", "two words"]}


def test_json_post() -> None:
    environ = make_environ("POST", "/json", body=b'{"x": [1, 2]}', headers=[("Content-Type", "application/json")])
    assert json_of(call(environ)[2]) == {"received": {"x": [1, 2]}}


def test_form_post() -> None:
    environ = make_environ(
        "POST",
        "/form",
        body=b"name=J%C3%BCrgen&city=Z%C3%BCrich",
        headers=[("Content-Type", "application/x-www-form-urlencoded")],
    )
    assert json_of(call(environ)[2]) == {"name": "Jürgen", "city": "Zürich"}


def test_multipart_upload() -> None:
    data = bytes(range(256)) * 40
    content_type, body = multipart({"title": "report"}, {"file": ("data.bin", data)})
    environ = make_environ("POST", "/upload", body=body, headers=[("Content-Type", content_type)])
    expected = {"title": "report", "filename": "data.bin", "size": len(data), "head": "00010203"}
    assert json_of(call(environ)[2]) == expected


def test_cookies_in_and_two_set_cookie_headers() -> None:
    status, headers, body = call(make_environ(path="/cookies", headers=[("Cookie", "session=abc; other=1")]))
    assert json_of(body) == {"seen": "abc"}
    assert header_values(headers, "set-cookie") == ["a=1; Path=/", "b=2; HttpOnly; Path=/"]


def test_redirect() -> None:
    status, headers, _ = call(make_environ(path="/old"))
    assert status == 302
    assert header_values(headers, "location") == ["/hello/new"]


def test_not_found() -> None:
    assert call(make_environ(path="/nope"))[0] == 404


def test_server_error() -> None:
    assert call(make_environ(path="/boom"))[0] == 500


def test_utf8_path_through_latin1_environ() -> None:
    status, _, body = call(make_environ(path="/caf%C3%A9"))
    assert (status, body.decode()) == (200, "café")


def test_head_request_has_no_body() -> None:
    status, headers, body = call(make_environ("HEAD", "/hello/x"))
    assert (status, body) == (200, b"")
    assert header_values(headers, "content-length") != []

