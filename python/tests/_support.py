"""Request builders that mimic what the C side hands to the runners."""

import io
import uuid
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote_to_bytes

HeaderPairs = Iterable[tuple[str, str]]


def make_environ(
    method: str = "GET",
    path: str = "/",
    query: str = "",
    body: bytes = b"",
    headers: HeaderPairs = (),
) -> dict[str, Any]:
    """A PEP 3333 environ as a server builds it: native latin-1 strings, BytesIO input,
    repeated headers joined with ", "."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": unquote_to_bytes(path).decode("latin-1"),
        "QUERY_STRING": query,
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "8080",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "localhost:8080",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    if body:
        environ["CONTENT_LENGTH"] = str(len(body))
    for name, value in headers:
        key = name.upper().replace("-", "_")
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = "HTTP_" + key
        encoded = value.encode("utf-8").decode("latin-1")
        environ[key] = f"{environ[key]}, {encoded}" if key in environ else encoded
    return environ


def make_scope(
    method: str = "GET",
    path: str = "/",
    query: bytes = b"",
    headers: Iterable[tuple[bytes, bytes]] = (),
    spec_version: str = "2.4",
    extensions: dict[str, Any] | None = None,
    state: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An ASGI HTTP scope with the types the spec requires."""
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": spec_version},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": unquote_to_bytes(path).decode("utf-8"),
        "raw_path": path.encode("ascii"),
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"localhost:8080"), *((n.lower(), v) for n, v in headers)],
        "client": ("127.0.0.1", 54321),
        "server": ("localhost", 8080),
    }
    if extensions is not None:
        scope["extensions"] = extensions
    if state is not None:
        scope["state"] = dict(state)
    return scope


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[str, bytes]:
    """(content-type, body) of a multipart/form-data request."""
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        + value.encode()
        + b"\r\n"
        for name, value in fields.items()
    ]
    parts += [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode()
        + data
        + b"\r\n"
        for name, (filename, data) in files.items()
    ]
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return f"multipart/form-data; boundary={boundary}", body


def header_values(headers: Iterable[tuple[Any, Any]], name: Any) -> list[Any]:
    """All values of a header (case-insensitive), in order."""
    return [value for key, value in headers if key.lower() == name.lower()]
