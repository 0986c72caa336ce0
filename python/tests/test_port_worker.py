"""A hornbeam_port worker process driven over its fds 3 and 4 as Erlang drives it: the
frames, a call, a WSGI and an ASGI run, a stream, a large body both ways, a cancel, the
hang watchdog, drain and end of file."""

import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hornbeam_port import _codec, wire
from hornbeam_port.terms import RAW, Atom, decode, encode

PYTHON_DIR = str(Path(__file__).resolve().parents[1])
APPS = '''
import asyncio, time
def add(a, b): return a + b
def sleep(s): time.sleep(s); return "slept"
async def asleep(s): await asyncio.sleep(s); return "slept"
def wsgi(environ, start_response):
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("X-Len", str(len(body)))])
    return [b"echo:", body]
async def asgi(scope, receive, send):
    body, more = b"", True
    while more:
        message = await receive()
        body, more = body + message["body"], message["more_body"]
    await send({"type": "http.response.start", "status": 201, "headers": [(b"a", b"b")]})
    await send({"type": "http.response.body", "body": scope["path"].encode() + body})
'''


class Port:
    """The Erlang side of one worker process (its port)."""

    def __init__(self, tmp_path):
        (tmp_path / "pw_apps.py").write_text(APPS)
        to_worker_r, self.to_worker = os.pipe()
        self.from_worker, from_worker_w = os.pipe()
        # Erlang's nouse_stdio: the worker reads fd 3 and writes fd 4.
        code = ("import os, sys; os.dup2(int(sys.argv[2]), 3); os.dup2(int(sys.argv[3]), 4); "
                "sys.path.insert(0, sys.argv[1]); import hornbeam_port; hornbeam_port.main()")
        self.proc = subprocess.Popen([sys.executable, "-P", "-c", code, PYTHON_DIR,
                                      str(to_worker_r), str(from_worker_w)],
                                     pass_fds=(to_worker_r, from_worker_w))
        os.close(to_worker_r)
        os.close(from_worker_w)
        self.reader = _codec.Reader(self.from_worker)
        self.frames = []
        init = {Atom("paths"): [PYTHON_DIR.encode(), str(tmp_path).encode()],
                Atom("venv"): None, Atom("node"): b"nonode@nohost"}
        self.send(wire.INIT, 0, encode(init, RAW))
        op, _, head, _ = self.next()
        assert op == wire.READY
        assert decode(head)[0][Atom("python_version")] == "%d.%d.%d" % sys.version_info[:3]

    def send(self, op, rid, head=b"", payload=b""):
        frame = struct.pack(">BQI", op, rid, len(head)) + head + payload
        os.write(self.to_worker, struct.pack(">I", len(frame)) + frame)

    def next(self):
        while not self.frames:
            got = self.reader.read()
            assert got is not None, "worker closed its port"
            self.frames.extend(got)
        return self.frames.pop(0)

    def close(self):
        os.close(self.to_worker)
        return self.proc.wait(10)


@pytest.fixture
def port(tmp_path):
    p = Port(tmp_path)
    yield p
    if p.proc.poll() is None:
        p.proc.kill()
        p.proc.wait()


def timeout(ms):
    return struct.pack(">I", ms)


def names(*n):
    return encode(tuple(x.encode() for x in n), RAW)


def call_head(ms, module, fn, args):
    return timeout(ms) + names(module, fn) + encode(args) + encode({})


def test_call_and_errors(port):
    port.send(wire.CALL, 1, call_head(5000, "pw_apps", "add", [1, 2]))
    assert port.next() == (wire.REPLY, 1, encode((Atom("ok"), 3)), b"")
    port.send(wire.CALL, 2, call_head(5000, "pw_apps", "nope", []))
    op, rid, head, _ = port.next()
    error = decode(head, 0, RAW)[0]
    assert (op, rid, error[0], error[1][0], error[1][1]) == (wire.REPLY, 2, "error", "python", b"AttributeError")
    assert all(b"hornbeam_port" not in line for line in error[1][3])
    port.send(wire.CALL, 3, timeout(5000) + names("pw_apps", "add") + b"\x83l\x00\x00\x00\x01m\x00\x00\x00\x01\xffj" + encode({}))
    assert decode(port.next()[2], 0, RAW)[0] == ("error", ("badarg", ("invalid_utf8", b"\xff")))


def test_wsgi_and_asgi_with_large_bodies(port):
    body = os.urandom(3 << 20)
    environ = {b"REQUEST_METHOD": b"POST", b"PATH_INFO": b"/"}
    port.send(wire.WSGI_RUN, 4, timeout(5000) + names("pw_apps", "wsgi", "hornbeam_wsgi_runner") + encode(environ, RAW), body)
    op, rid, head, payload = port.next()
    assert (op, rid) == (wire.RESPONSE, 4)
    assert decode(head, 0, RAW)[0] == (b"200 OK", [(b"X-Len", str(len(body)).encode())])
    assert payload == b"echo:" + body
    scope = encode({Atom("type"): b"http", Atom("path"): b"/p%C3%A9"}, RAW)
    port.send(wire.ASGI_RUN, 5, timeout(5000) + names("pw_apps", "asgi", "hornbeam_asgi_runner") + scope, body)
    op, rid, head, payload = port.next()
    assert (op, rid, decode(head, 0, RAW)[0]) == (wire.RESPONSE, 5, (201, [(b"a", b"b")]))
    assert payload == "/pé".encode() + body


def test_asgi_stream_events(port):
    scope = encode({Atom("type"): b"http", Atom("path"): b"/s"}, RAW)
    port.send(wire.ASGI_START, 6, b"\x01" + names("pw_apps", "asgi", "hornbeam_asgi_runner") + scope, b"ab")
    assert port.next()[0] == wire.NEED_BODY
    port.send(wire.FEED, 6, b"\x00", b"")
    assert port.next()[:3] == (wire.START, 6, encode((201, [(b"a", b"b")]), RAW))
    assert port.next() == (wire.BODY, 6, b"\x00", b"/sab")
    assert port.next() == (wire.DONE, 6, b"", b"")


def test_cancel_async_and_watchdog_kills_sync(port):
    port.send(wire.CALL, 7, call_head(60000, "pw_apps", "asleep", [30]))
    port.send(wire.CANCEL, 7)
    assert port.next() == (wire.CANCELLED, 7, b"", b"")
    port.send(wire.CALL, 8, call_head(100, "pw_apps", "sleep", [30]))
    assert port.proc.wait(10) == -9


def test_drain_finishes_then_exits(port):
    port.send(wire.CALL, 9, call_head(5000, "pw_apps", "asleep", [0.2]))
    port.send(wire.DRAIN, 0)
    assert port.next() == (wire.REPLY, 9, encode((Atom("ok"), "slept")), b"")
    assert port.proc.wait(10) == 0


def test_end_of_file_exits(port):
    assert port.close() == 0


@pytest.mark.parametrize("module, fn, args, status", [("os", "_exit", [5], 5),
                                                      ("ctypes", "string_at", [0], 139)])
def test_last_words_before_dying(port, module, fn, args, status):
    """os._exit and fatal signals announce the exit status (a port that fails a write
    to a dead process cannot report it)."""
    port.send(wire.CALL, 10, call_head(5000, module, fn, args))
    assert port.next() == (wire.EXITING, 0, struct.pack(">I", status), b"")
    assert port.proc.wait(10) in (status, -(status - 128))


@pytest.mark.parametrize("dont_write", [False, True])
def test_configure_keeps_the_package_dir_free_of_bytecode(tmp_path, dont_write):
    """Erlang starts workers with -B; configure() keeps paths[0] (priv/python, which a
    release copies as it is) source-only and lets the app's modules be cached, unless
    PYTHONDONTWRITEBYTECODE says otherwise."""
    package, app = tmp_path / "package", tmp_path / "app"
    package.mkdir()
    app.mkdir()
    (package / "shipped.py").write_text("X = 1\n")
    (app / "user_app.py").write_text("Y = 2\n")
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import hornbeam_port; "
            "hornbeam_port.configure([sys.argv[2], sys.argv[3]], None); "
            "import shipped, user_app")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    if dont_write:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    subprocess.run([sys.executable, "-P", "-B", "-c", code, PYTHON_DIR, str(package), str(app)],
                   check=True, env=env)
    assert not (package / "__pycache__").exists()
    assert (app / "__pycache__").is_dir() is not dont_write
