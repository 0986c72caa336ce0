"""A custom runner whose return value is chosen by the request's QUERY_STRING."""
from hornbeam_wsgi_runner import default_wsgi_handler


def run_wsgi(app, environ):
    status, headers, chunks = default_wsgi_handler(app, environ)
    mode = environ["QUERY_STRING"]
    if mode == "bytes":
        return status, headers, b"".join(chunks)
    if mode == "tuple_headers":
        return status, tuple(headers), chunks
    if mode == "none":
        return None
    if mode == "pair":
        return status, headers
    if mode == "bytes_status":
        return status.encode(), headers, chunks
    if mode == "non_latin1_status":
        return "200 \u20ac", headers, chunks
    if mode == "bad_header":
        return status, [("X-A", 1)], chunks
    if mode == "str_body":
        return status, headers, "text"
    if mode == "mixed_body":
        return status, headers, [b"a", "b"]
    return status, headers, chunks
