"""Differential test of bin/pyweb against uvicorn and gunicorn (from the test
venv) for requests behind a reverse proxy and apps under a root path: each
server serves the same app (pw_apps.py, pw_starlette.py) on a port of
127.0.0.1, gets the same request bytes, and what the app saw (its ASGI scope
or WSGI environ, as JSON) must agree on the fields the case names.

    python pyweb_diff.py PATH/TO/bin/pyweb

Prints one line per case and "differential: N cases agree", exits 1 on a
disagreement. Where pyweb differs from one peer on purpose, the case is run
against the other, and the comment says why:

- ASGI proxy headers and root_path: uvicorn (gunicorn's ASGI worker does not
  put root_path into path, as ASGI 2.4 asks).
- WSGI scheme and the SCRIPT_NAME/PATH_INFO split: gunicorn (SCRIPT_NAME in its
  environment; the request path keeps the prefix).
- WSGI REMOTE_ADDR from X-Forwarded-For: uvicorn's WSGI interface (gunicorn
  never takes the client from X-Forwarded-For).
- X-Forwarded-Proto ws/wss on an HTTP request: uvicorn puts "ws"/"wss" in the
  HTTP scope's scheme, which ASGI defines as "http" or "https"; pyweb says
  "http"/"https" there (a WebSocket scope's scheme is ws/wss). Compared as such.
- WebSocket scopes (scheme ws/wss, client) behind a proxy: uvicorn.
- Not compared: an ASGI request whose path already starts with the root path
  (uvicorn adds the prefix a second time; pyweb does not, see --help).
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from typing import Iterator

PYWEB = sys.argv[1]
BIN = os.path.dirname(sys.executable)
HERE = os.path.dirname(os.path.abspath(__file__))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def server(name: str, argv: list[str], env: dict[str, str] | None = None) -> Iterator[int]:
    port = free_port()
    argv = [a.replace("PORT", str(port)) for a in argv]
    proc = subprocess.Popen(argv, cwd=HERE, env={**os.environ, **(env or {})},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not start: {proc.stderr.read().decode()}")
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def get(port: int, path: str, headers: list[tuple[str, str]]) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.putrequest("GET", path, skip_host=any(k.lower() == "host" for k, _ in headers),
                    skip_accept_encoding=True)
    for k, v in headers:
        conn.putheader(k, v)
    conn.endheaders()
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    if resp.status != 200:
        raise RuntimeError(f"status {resp.status} for {path}: {body!r}")
    return json.loads(body)


def pyweb(app: str, *args: str) -> list[str]:
    return [PYWEB, app, "--port", "PORT", "--log-level", "warning", *args]


def uvicorn(app: str, *args: str) -> list[str]:
    return [os.path.join(BIN, "uvicorn"), app, "--port", "PORT", "--log-level", "warning", *args]


def gunicorn(app: str, *args: str) -> list[str]:
    return [os.path.join(BIN, "gunicorn"), "-b", "127.0.0.1:PORT", "--log-level", "warning",
            *args, app]


def client(scope: dict, from_socket: bool) -> list | None:
    """The client the app saw; a socket's own port differs from run to run."""
    c = scope["client"]
    return [c[0], "socket-port"] if (c and from_socket) else c


agree = 0
failures: list[str] = []


def compare(case: str, peer: str, mine: dict, theirs: dict, fields: list[str]) -> None:
    global agree
    diff = {f: (mine.get(f), theirs.get(f)) for f in fields if mine.get(f) != theirs.get(f)}
    if diff:
        failures.append(f"{case}: pyweb vs {peer}: {diff}")
        print(f"DIFFERS {case} (vs {peer}): {diff}", flush=True)
    else:
        agree += 1
        print(f"agrees  {case} (vs {peer})", flush=True)


# An HTTP scope's scheme is "http" or "https" (ASGI): what uvicorn's "ws"/"wss" there means.
HTTP_SCHEME = {"ws": "http", "wss": "https"}


def scope_view(scope: dict, from_socket: bool) -> dict:
    scheme = HTTP_SCHEME.get(scope["scheme"], scope["scheme"]) if scope["type"] == "http" \
        else scope["scheme"]
    return {"scheme": scheme, "client": client(scope, from_socket),
            "path": scope["path"], "raw_path": scope["raw_path"], "root_path": scope["root_path"]}


XFF_CASES: list[tuple[str, list[tuple[str, str]], bool]] = [
    ("no proxy headers", [], True),
    ("X-Forwarded-Proto https", [("X-Forwarded-Proto", "https")], True),
    ("X-Forwarded-Proto wss", [("X-Forwarded-Proto", "wss")], True),
    ("X-Forwarded-Proto not a scheme", [("X-Forwarded-Proto", "https, http")], True),
    ("X-Forwarded-For one", [("X-Forwarded-For", "203.0.113.7")], False),
    ("X-Forwarded-For chain", [("X-Forwarded-For", "203.0.113.7, 127.0.0.1")], False),
    ("X-Forwarded-For spoofed left", [("X-Forwarded-For", "6.6.6.6, 203.0.113.7")], False),
    ("X-Forwarded-For with port", [("X-Forwarded-For", "203.0.113.7:5678")], False),
    ("X-Forwarded-For IPv6 with port", [("X-Forwarded-For", "[2001:db8::1]:4711")], False),
    ("X-Forwarded-For twice", [("X-Forwarded-For", "198.51.100.1"),
                               ("X-Forwarded-For", "203.0.113.7")], False),
    ("X-Forwarded-For and -Proto", [("X-Forwarded-For", "203.0.113.7"),
                                    ("X-Forwarded-Proto", "https")], False),
]


def asgi_proxy_headers() -> None:
    for allow in (None, "*", "127.0.0.1,10.0.0.0/8", "10.9.9.9"):
        extra = ["--forwarded-allow-ips", allow] if allow else []
        with server("uvicorn", uvicorn("pw_apps:app", *extra)) as up, \
                server("pyweb", pyweb("pw_apps:app", *extra)) as pp:
            for name, headers, from_socket in XFF_CASES:
                if allow == "10.9.9.9":
                    from_socket = True   # the peer is not trusted: nothing applied
                theirs = scope_view(get(up, "/scope", headers), from_socket)
                mine = scope_view(get(pp, "/scope", headers), from_socket)
                compare(f"ASGI {name}, trusted {allow or 'default'}", "uvicorn", mine, theirs,
                        ["scheme", "client"])


def ws_scope(port: int, headers: list[tuple[str, str]]) -> dict:
    """The scope a websocket app saw (its first message)."""
    from websockets.sync.client import connect
    with connect(f"ws://127.0.0.1:{port}/ws", additional_headers=headers,
                 open_timeout=30) as ws:
        return json.loads(ws.recv(timeout=30))


def websocket_proxy_headers() -> None:
    """The websocket scope behind a proxy: scheme ws/wss from X-Forwarded-Proto, client
    from X-Forwarded-For (the same rules as HTTP)."""
    with server("uvicorn", uvicorn("pw_apps:app")) as up, \
            server("pyweb", pyweb("pw_apps:app")) as pp:
        for name, headers, from_socket in [
                ("no proxy headers", [], True),
                ("X-Forwarded-Proto https", [("X-Forwarded-Proto", "https")], True),
                ("X-Forwarded-Proto wss", [("X-Forwarded-Proto", "wss")], True),
                ("X-Forwarded-For and -Proto", [("X-Forwarded-For", "203.0.113.7"),
                                                ("X-Forwarded-Proto", "https")], False)]:
            theirs = scope_view(ws_scope(up, headers), from_socket)
            mine = scope_view(ws_scope(pp, headers), from_socket)
            compare(f"WebSocket {name}", "uvicorn", mine, theirs, ["scheme", "client", "path"])


def asgi_root_path() -> None:
    with server("uvicorn", uvicorn("pw_apps:app", "--root-path", "/api")) as up, \
            server("pyweb", pyweb("pw_apps:app", "--root-path", "/api")) as pp:
        for path in ("/scope", "/scope?x=%20y", "/sc%6Fpe"):
            theirs = scope_view(get(up, path, []), True)
            mine = scope_view(get(pp, path, []), True)
            compare(f"ASGI root_path /api, {path}", "uvicorn", mine, theirs,
                    ["path", "raw_path", "root_path"])
    host = [("Host", "example.com"), ("X-Forwarded-Proto", "https")]
    with server("uvicorn", uvicorn("pw_starlette:app", "--root-path", "/api")) as up, \
            server("pyweb", pyweb("pw_starlette:app", "--root-path", "/api")) as pp:
        compare("Starlette url_for under root_path /api", "uvicorn", get(pp, "/items/3", host),
                get(up, "/items/3", host), ["url", "url_for", "base_url", "root_path", "path"])


def wsgi_environ() -> None:
    env = {"SCRIPT_NAME": "/api"}
    with server("gunicorn", gunicorn("pw_apps:wsgi_app"), env) as gp, \
            server("pyweb", pyweb("pw_apps:wsgi_app", "--interface", "wsgi"), env) as pp:
        host = ("Host", "example.com")
        for name, headers in [("plain", [host]),
                              ("X-Forwarded-Proto https", [host, ("X-Forwarded-Proto", "https")]),
                              ("X-Forwarded-Proto http", [host, ("X-Forwarded-Proto", "http")]),
                              ("Host with a port", [("Host", "example.com:8443")])]:
            for path in ("/api/environ", "/api/a%20b/environ?q=%20"):
                compare(f"WSGI {name}, SCRIPT_NAME=/api, {path}", "gunicorn",
                        get(pp, path, headers), get(gp, path, headers),
                        ["SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "wsgi.url_scheme",
                         "HTTP_HOST", "REQUEST_METHOD"])
    with server("uvicorn", uvicorn("pw_apps:wsgi_app", "--interface", "wsgi")) as up, \
            server("pyweb", pyweb("pw_apps:wsgi_app", "--interface", "wsgi")) as pp:
        for name, headers, _ in XFF_CASES[4:]:
            compare(f"WSGI REMOTE_ADDR, {name}", "uvicorn", get(pp, "/environ", headers),
                    get(up, "/environ", headers), ["REMOTE_ADDR", "wsgi.url_scheme"])


def main() -> None:
    asgi_proxy_headers()
    websocket_proxy_headers()
    asgi_root_path()
    wsgi_environ()
    if failures:
        print("differential: disagreements:\n  " + "\n  ".join(failures), flush=True)
        sys.exit(1)
    print(f"differential: {agree} cases agree", flush=True)


if __name__ == "__main__":
    main()
