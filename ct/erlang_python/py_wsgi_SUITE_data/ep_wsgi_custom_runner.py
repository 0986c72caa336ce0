"""The custom runner of the reference: sets environ['custom.key'], then the default handler."""
from hornbeam_wsgi_runner import default_wsgi_handler

calls = []


def run_wsgi(app, environ):
    environ["custom.key"] = "value"
    calls.append(environ["PATH_INFO"])
    response = default_wsgi_handler(app, environ)
    return response


def call_count():
    return len(calls)
