"""Wraps every app of py_wsgi_SUITE in wsgiref.validate.validator, warnings as errors.

Every response the suite gets back therefore also proves PEP 3333 conformance of the
environ the NIF built and of the way the runner drove the app (start_response, the
iterable, close()).
"""
import warnings
import wsgiref.validate

warnings.simplefilter("error", wsgiref.validate.WSGIWarning)


def validated(app):
    return wsgiref.validate.validator(app)
