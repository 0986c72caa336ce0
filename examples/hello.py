"""Hello world, twice: ``app`` is ASGI, ``wsgi_app`` is WSGI.  No dependencies.

    bin/pyweb examples.hello:app
    bin/pyweb examples.hello:wsgi_app            # --interface auto detects WSGI
    curl http://127.0.0.1:8000/
"""

BODY = b"Hello, World!"


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        # No start-up work: answer the lifespan protocol so that --lifespan on works too.
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    assert scope["type"] == "http"
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"13")],
        }
    )
    await send({"type": "http.response.body", "body": BODY})


def wsgi_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "13")])
    return [BODY]
