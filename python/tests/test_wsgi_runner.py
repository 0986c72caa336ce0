"""PEP 3333 behaviour of hornbeam_wsgi_runner, with wsgiref's validator around every app
whose behaviour is legal. Apps that break the protocol on purpose run unwrapped: the
validator would reject them with an AssertionError before the runner sees them."""

import io
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from wsgiref.validate import validator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from _support import make_environ
from hornbeam_wsgi_runner import (
    INPUT_FILE,
    FileWrapper,
    default_wsgi_handler,
    run_wsgi,
    stream_wsgi,
)

pytestmark = pytest.mark.filterwarnings("error::wsgiref.validate.WSGIWarning")

TEXT = [("Content-Type", "text/plain")]
Environ = dict[str, Any]


def call(app: Callable[..., Iterable[bytes]], environ: Environ | None = None) -> tuple[str, list, list]:
    return run_wsgi(validator(app), environ or make_environ())


def events(app: Callable[..., Iterable[bytes]], environ: Environ | None = None,
           validate: bool = True) -> list[tuple]:
    recorded: list[tuple] = []
    stream_wsgi(validator(app) if validate else app, environ or make_environ(),
                lambda *event: recorded.append(event))
    return recorded


class Closing:
    """A body iterable that records close() and can fail part-way."""

    def __init__(self, chunks: Iterable[Any], fail_after: int | None = None) -> None:
        self.chunks = list(chunks)
        self.fail_after = fail_after
        self.closed = False

    def __iter__(self) -> Iterator[Any]:
        for index, chunk in enumerate(self.chunks):
            if index == self.fail_after:
                raise ValueError("iteration failed")
            yield chunk

    def close(self) -> None:
        self.closed = True


def test_list_body() -> None:
    def app(environ: Environ, start_response: Callable) -> list[bytes]:
        start_response("200 OK", [*TEXT, ("X-A", "1"), ("X-A", "2")])
        return [b"hello ", b"world"]

    status, headers, body = call(app)
    assert status == "200 OK"
    assert headers == [("Content-Type", "text/plain"), ("X-A", "1"), ("X-A", "2")]
    assert body == [b"hello ", b"world"]


@pytest.mark.parametrize("size", [0, 1, 1023, 1024, 65536])
def test_request_and_response_body_sizes(size: int) -> None:
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)

    def echo(environ: Environ, start_response: Callable) -> list[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        data = environ["wsgi.input"].read(length)
        start_response("200 OK", [*TEXT, ("Content-Length", str(len(data)))])
        return [data]

    status, headers, body = call(echo, make_environ("POST", body=payload))
    assert b"".join(body) == payload
    assert body == ([payload] if size else [])
    assert ("Content-Length", str(size)) in headers


def test_generator_app_calls_start_response_lazily() -> None:
    def app(environ: Environ, start_response: Callable) -> Iterator[bytes]:
        start_response("201 Created", TEXT)
        yield b"a"
        yield b""
        yield b"b"

    assert call(app) == ("201 Created", TEXT, [b"a", b"b"])


def test_write_callable_then_iterable() -> None:
    def app(environ: Environ, start_response: Callable) -> list[bytes]:
        write = start_response("200 OK", TEXT)
        write(b"first ")
        write(b"")
        return [b"second"]

    assert call(app)[2] == [b"first ", b"second"]


def test_stream_emits_start_before_first_non_empty_chunk() -> None:
    def app(environ: Environ, start_response: Callable) -> Iterator[bytes]:
        start_response("200 OK", TEXT)
        yield b""
        yield b"x"
        yield b"y"

    assert events(app) == [("start", "200 OK", TEXT), ("body", b"x"), ("body", b"y")]


@pytest.mark.parametrize("kind", [list, tuple])
def test_stream_emits_a_sequence_bodys_last_item_as_last(kind: type) -> None:
    def app(environ: Environ, start_response: Callable) -> Any:
        start_response("200 OK", TEXT)
        return kind([b"x", b"", b"y"])

    # (not through wsgiref's validator, whose wrapper hides the sequence)
    assert events(app, validate=False) == [("start", "200 OK", TEXT), ("body", b"x"), ("last", b"y")]


def test_stream_a_sequence_ending_empty_has_no_last() -> None:
    def app(environ: Environ, start_response: Callable) -> list[bytes]:
        start_response("200 OK", TEXT)
        return [b"x", b""]

    assert events(app, validate=False) == [("start", "200 OK", TEXT), ("body", b"x")]


def test_stream_empty_body_emits_start_at_end() -> None:
    def app(environ: Environ, start_response: Callable) -> list[bytes]:
        start_response("204 No Content", [])
        return []

    assert events(app) == [("start", "204 No Content", [])]
    assert call(app) == ("204 No Content", [], [])


def test_exc_info_before_headers_sent_replaces_status() -> None:
    def app(environ: Environ, start_response: Callable) -> Iterator[bytes]:
        start_response("200 OK", TEXT)
        yield b""
        try:
            raise KeyError("boom")
        except KeyError:
            start_response("500 Internal Server Error", [*TEXT, ("X-Error", "1")], sys.exc_info())
        yield b"failed"

    assert call(app) == ("500 Internal Server Error", [*TEXT, ("X-Error", "1")], [b"failed"])


def test_exc_info_after_headers_sent_reraises_original() -> None:
    error = KeyError("boom")

    def app(environ: Environ, start_response: Callable) -> list[bytes]:
        write = start_response("200 OK", TEXT)
        write(b"partial")
        try:
            raise error
        except KeyError:
            start_response("500 Internal Server Error", TEXT, sys.exc_info())
        return [b"unreachable"]

    with pytest.raises(KeyError) as caught:
        call(app)
    assert caught.value is error
    assert any(entry.name == "app" for entry in caught.traceback)


def test_exc_info_after_first_chunk_reraises() -> None:
    def app(environ: Environ, start_response: Callable) -> Iterator[bytes]:
        start_response("200 OK", TEXT)
        yield b"sent"
        try:
            raise LookupError("late")
        except LookupError:
            start_response("500 Internal Server Error", TEXT, sys.exc_info())
        yield b"never"

    with pytest.raises(LookupError, match="late"):
        call(app)


def test_start_response_twice_without_exc_info() -> None:
    def app(environ: Environ, start_response: Callable) -> list[bytes]:
        start_response("200 OK", TEXT)
        start_response("200 OK", TEXT)
        return []

    with pytest.raises(RuntimeError, match="second time"):
        run_wsgi(app, make_environ())


def test_close_called_on_success() -> None:
    body = Closing([b"a", b"b"])

    def app(environ: Environ, start_response: Callable) -> Closing:
        start_response("200 OK", TEXT)
        return body

    assert call(app)[2] == [b"a", b"b"]
    assert body.closed


def test_close_called_when_iteration_raises() -> None:
    body = Closing([b"a", b"b"], fail_after=1)

    def app(environ: Environ, start_response: Callable) -> Closing:
        start_response("200 OK", TEXT)
        return body

    with pytest.raises(ValueError, match="iteration failed"):
        call(app)
    assert body.closed


def test_close_called_when_start_response_rejects_headers() -> None:
    closed: list[bool] = []

    def app(environ: Environ, start_response: Callable) -> Iterator[bytes]:
        try:
            start_response("200 OK", [("Connection", "close")])
            yield b"never"
        finally:
            closed.append(True)

    with pytest.raises(ValueError, match="hop-by-hop"):
        run_wsgi(app, make_environ())
    assert closed == [True]


def test_empty_body_without_start_response_is_an_error() -> None:
    body = Closing([])

    def app(environ: Environ, start_response: Callable) -> Closing:
        return body

    with pytest.raises(RuntimeError, match="without calling start_response"):
        run_wsgi(app, make_environ())
    assert body.closed


def test_body_before_start_response_is_an_error() -> None:
    def app(environ: Environ, start_response: Callable) -> list[bytes]:
        return [b"data"]

    with pytest.raises(RuntimeError, match="before calling start_response"):
        run_wsgi(app, make_environ())


@pytest.mark.parametrize("chunk", ["text", bytearray(b"x"), memoryview(b"x"), 1])
def test_non_bytes_chunk_is_a_type_error_and_closes(chunk: Any) -> None:
    body = Closing([b"ok", chunk])

    def app(environ: Environ, start_response: Callable) -> Closing:
        start_response("200 OK", TEXT)
        return body

    with pytest.raises(TypeError, match="must be bytes"):
        run_wsgi(app, make_environ())
    assert body.closed


def test_write_rejects_str() -> None:
    def app(environ: Environ, start_response: Callable) -> list[bytes]:
        start_response("200 OK", TEXT)("text")
        return []

    with pytest.raises(TypeError, match="must be bytes"):
        run_wsgi(app, make_environ())


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (200, TypeError),
        (b"200 OK", TypeError),
        ("200", ValueError),
        ("OK 200", ValueError),
        ("2000 OK", ValueError),
        ("200 OK\r\nX-Injected: 1", ValueError),
        ("200 \u2603", ValueError),
    ],
)
def test_invalid_status(status: Any, error: type[Exception]) -> None:
    def app(environ: Environ, start_response: Callable) -> list[bytes]:
        start_response(status, TEXT)
        return []

    with pytest.raises(error, match="status"):
        run_wsgi(app, make_environ())


@pytest.mark.parametrize(
    ("headers", "error", "message"),
    [
        ((("Content-Type", "text/plain"),), TypeError, "must be a list"),
        ([["Content-Type", "text/plain"]], TypeError, "tuple"),
        ([("Content-Type",)], TypeError, "tuple"),
        ([("Content-Type", b"text/plain")], TypeError, "tuple"),
        ([(b"Content-Type", "text/plain")], TypeError, "tuple"),
        ([("Bad Name", "x")], ValueError, "header name"),
        ([("X-Snow", "\u2603")], ValueError, "latin-1"),
        ([("X-Split", "a\r\nSet-Cookie: evil=1")], ValueError, "control characters"),
        ([("Transfer-Encoding", "chunked")], ValueError, "hop-by-hop"),
        ([("keep-alive", "timeout=5")], ValueError, "hop-by-hop"),
    ],
)
def test_invalid_headers(headers: Any, error: type[Exception], message: str) -> None:
    def app(environ: Environ, start_response: Callable) -> list[bytes]:
        start_response("200 OK", headers)
        return []

    with pytest.raises(error, match=message):
        run_wsgi(app, make_environ())


def test_latin1_header_value_accepted() -> None:
    def app(environ: Environ, start_response: Callable) -> list[bytes]:
        start_response("200 OK", [*TEXT, ("X-Name", "caf\xe9")])
        return [b""]

    assert call(app)[1] == [*TEXT, ("X-Name", "caf\xe9")]


def test_file_wrapper_from_environ() -> None:
    data = bytes(range(256)) * 10
    source = io.BytesIO(data)

    def app(environ: Environ, start_response: Callable) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](source, 1000)

    status, headers, body = call(app)
    assert [len(chunk) for chunk in body] == [1000, 1000, 560]
    assert b"".join(body) == data
    assert source.closed


def test_file_wrapper_set_only_by_default() -> None:
    class OtherWrapper(FileWrapper):
        pass

    environ = make_environ()
    environ["wsgi.file_wrapper"] = OtherWrapper

    def app(environ: Environ, start_response: Callable) -> list[bytes]:
        start_response("200 OK", TEXT)
        return [environ["wsgi.file_wrapper"].__name__.encode()]

    assert call(app, environ)[2] == [b"OtherWrapper"]
    assert call(app)[2] == [b"FileWrapper"]


def test_file_wrapper_without_close() -> None:
    class Reader:
        def __init__(self) -> None:
            self.data = io.BytesIO(b"abc")

        def read(self, size: int) -> bytes:
            return self.data.read(size)

    wrapper = FileWrapper(Reader(), 2)  # type: ignore[arg-type]
    assert list(wrapper) == [b"ab", b"c"]
    wrapper.close()


def test_stream_reads_a_spooled_body_from_its_file(tmp_path: Any) -> None:
    # py_wsgi:start/4's body_file: the path comes as a latin-1 str of its bytes.
    body = b"line one\nline two\n" + bytes(range(256))
    path = tmp_path / "caf\xe9.body"
    path.write_bytes(body)
    seen: dict[str, Any] = {}

    def app(environ: Environ, start_response: Callable) -> list[bytes]:
        inp = environ["wsgi.input"]
        seen["keys"] = set(environ)
        seen["first"] = inp.readline()
        seen["rest"] = b"".join(inp)
        seen["input"] = inp
        start_response("200 OK", TEXT)
        return [b"ok"]

    environ = make_environ(method="POST")
    environ[INPUT_FILE] = str(path).encode().decode("latin-1")
    recorded: list[tuple] = []
    stream_wsgi(app, environ, lambda *event: recorded.append(event))
    assert seen["first"] + seen["rest"] == body
    assert INPUT_FILE not in seen["keys"]
    assert seen["input"].closed
    assert recorded[-1] == ("last", b"ok")


def test_stream_closes_the_spooled_body_when_the_app_raises(tmp_path: Any) -> None:
    path = tmp_path / "b.body"
    path.write_bytes(b"x")
    seen: dict[str, Any] = {}

    def app(environ: Environ, start_response: Callable) -> list[bytes]:
        seen["input"] = environ["wsgi.input"]
        raise ValueError("app failed")

    environ = make_environ(method="POST")
    environ[INPUT_FILE] = str(path)
    with pytest.raises(ValueError):
        stream_wsgi(app, environ, lambda *event: None)
    assert seen["input"].closed


def test_custom_runner_wraps_default_handler() -> None:
    def custom_run_wsgi(app: Callable, environ: Environ) -> tuple[str, list, list]:
        environ["custom.key"] = "value"
        return default_wsgi_handler(app, environ)

    def app(environ: Environ, start_response: Callable) -> list[bytes]:
        start_response("200 OK", TEXT)
        return [environ["custom.key"].encode()]

    assert custom_run_wsgi(validator(app), make_environ())[2] == [b"value"]


@given(st.lists(st.binary(max_size=300), max_size=20))
def test_chunks_round_trip(chunks: list[bytes]) -> None:
    def app(environ: Environ, start_response: Callable) -> Iterator[bytes]:
        start_response("200 OK", TEXT)
        yield from chunks

    body = call(app)[2]
    assert b"".join(body) == b"".join(chunks)
    assert all(body)
