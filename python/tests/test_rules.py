"""The protocol rules the NIF's C fast paths defer to: hornbeam_asgi_runner.send_rules and
hornbeam_wsgi_runner's start_response_rules / write_rules / finish_rules.  The messages
the fast paths take as they are must be exactly those these functions accept unchanged."""

import sys
from typing import Any

import pytest

import hornbeam_asgi_runner as asgi
import hornbeam_wsgi_runner as wsgi

START = {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}


def test_start_then_body_then_complete() -> None:
    state, trailers, event = asgi.send_rules(asgi.START, False, False, START)
    assert (state, trailers, event) == (asgi.BODY, False, ("start", 200, [(b"content-type", b"text/plain")], False))
    state, _, event = asgi.send_rules(state, False, False, {"type": "http.response.body", "body": b"a", "more_body": True})
    assert (state, event) == (asgi.BODY, ("body", b"a", True))
    state, _, event = asgi.send_rules(state, False, False, {"type": "http.response.body"})
    assert (state, event) == (asgi.COMPLETE, ("body", b"", False))


def test_trailers_only_when_offered_and_asked() -> None:
    start = {**START, "trailers": True}
    assert asgi.send_rules(asgi.START, False, False, start)[1] is False
    state, trailers, _ = asgi.send_rules(asgi.START, False, True, start)
    assert trailers is True
    state, _, _ = asgi.send_rules(state, trailers, True, {"type": "http.response.body", "body": b"x"})
    assert state == asgi.TRAILERS
    state, _, event = asgi.send_rules(state, trailers, True, {"type": "http.response.trailers", "headers": [(b"x-t", b"1")]})
    assert (state, event) == (asgi.COMPLETE, ("trailers", [(b"x-t", b"1")], False))


@pytest.mark.parametrize(
    ("state", "message", "error"),
    [
        (asgi.START, {"type": "http.response.body"}, "before 'http.response.start'"),
        (asgi.BODY, START, "sent twice"),
        (asgi.TRAILERS, {"type": "http.response.body"}, "after the last body message"),
        (asgi.COMPLETE, START, "after the response was complete"),
        (asgi.START, {"type": "websocket.send"}, "not supported in an HTTP response"),
        (asgi.START, {**START, "status": 600}, "invalid status 600"),
        (asgi.START, {**START, "status": True}, "'status' must be an int"),
    ],
)
def test_violations(state: int, message: dict[str, Any], error: str) -> None:
    with pytest.raises(RuntimeError, match=error):
        asgi.send_rules(state, False, False, message)


def test_valid_statuses_is_the_range_the_rules_accept() -> None:
    for status in (99, 100, 599, 600):
        try:
            asgi.send_rules(asgi.START, False, False, {**START, "status": status})
            accepted = True
        except RuntimeError:
            accepted = False
        assert accepted == (status in asgi.VALID_STATUSES)


def test_await_any_turns_an_awaitable_into_a_coroutine() -> None:
    import asyncio

    async def answer() -> int:
        return 42

    loop = asyncio.new_event_loop()
    try:
        future = loop.create_future()
        future.set_result(7)
        assert loop.run_until_complete(asgi.await_any(future)) == 7
        assert loop.run_until_complete(asgi.await_any(answer())) == 42
    finally:
        loop.close()


def test_start_response_rules() -> None:
    assert wsgi.start_response_rules(None, False, "200 OK", [("A", "b")], None) == ("200 OK", [("A", "b")])
    assert "200 OK" in wsgi._valid_statuses
    assert ("A", "b") in wsgi._valid_headers
    with pytest.raises(RuntimeError, match="a second time"):
        wsgi.start_response_rules("200 OK", False, "500 Oops", [], None)
    try:
        raise ValueError("boom")
    except ValueError:
        exc_info = sys.exc_info()
    assert wsgi.start_response_rules("200 OK", False, "500 Oops", [], exc_info) == ("500 Oops", [])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="boom"):
        wsgi.start_response_rules("200 OK", True, "500 Oops", [], exc_info)  # type: ignore[arg-type]


def test_write_and_finish_rules() -> None:
    assert wsgi.write_rules("200 OK", b"x") == b"x"
    assert wsgi.write_rules(None, b"") is None
    with pytest.raises(TypeError, match="must be bytes, got str"):
        wsgi.write_rules("200 OK", "x")
    with pytest.raises(RuntimeError, match="before calling start_response"):
        wsgi.write_rules(None, b"x")
    wsgi.finish_rules("200 OK")
    with pytest.raises(RuntimeError, match="without calling start_response"):
        wsgi.finish_rules(None)


def test_error_stream_logs_non_blank_text() -> None:
    records: list[tuple[str, str]] = []
    stream = wsgi.ErrorStream(lambda level, text: records.append((level, text)))
    stream.write("first\n")
    stream.writelines(["  \n", "second"])
    stream.flush()
    assert records == [("error", "first\n"), ("error", "second")]
    with pytest.raises(TypeError):
        stream.write(b"bytes")  # type: ignore[arg-type]
