"""The Python side of hello_py: an ASGI app, a WSGI app and a plain function."""


async def app(scope, receive, send):
    assert scope["type"] == "http"
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"hello from ASGI"})


def wsgi_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello from WSGI"]


def greet(name: str) -> str:
    return f"hello {name}, from Python"
