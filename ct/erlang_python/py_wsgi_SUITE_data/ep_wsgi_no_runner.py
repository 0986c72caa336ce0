"""A module that is importable but is not a WSGI runner: its run_wsgi is not callable."""


def something_else(app, environ):
    return None


run_wsgi = "not callable"
