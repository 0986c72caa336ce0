"""A Django app for py_wsgi_SUITE, configured in code, wrapped in wsgiref.validate.validator."""
import django
from django.conf import settings

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="py_wsgi_SUITE-not-secret",
        ROOT_URLCONF="ep_wsgi_django_urls",
        ALLOWED_HOSTS=["localhost", "testserver", "127.0.0.1"],
        INSTALLED_APPS=[],
        MIDDLEWARE=["django.middleware.common.CommonMiddleware"],
        DATABASES={},
        USE_TZ=True,
        DEFAULT_CHARSET="utf-8",
        LOGGING_CONFIG=None,
    )
    django.setup()

from django.core.wsgi import get_wsgi_application  # noqa: E402

from ep_wsgi_validate import validated  # noqa: E402

application = validated(get_wsgi_application())
