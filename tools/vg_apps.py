def wsgi(environ, start_response):
    start_response("200 OK", [("A", "b")])
    return [environ["wsgi.input"].read()]
async def asgi(scope, receive, send):
    m = await receive()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"a", b"b")]})
    await send({"type": "http.response.body", "body": m["body"] * 5000})
