"""Django behind a TLS-terminating proxy: a form with CSRF protection.

The browser's form post carries Origin https://example.com. Django accepts it
only if the request is secure (request.is_secure(): wsgi.url_scheme, set from
X-Forwarded-Proto by the server for a trusted proxy); otherwise 403."""

import django
from django.conf import settings

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="py_web pyweb suite",
        ALLOWED_HOSTS=["example.com", "127.0.0.1", "localhost"],
        ROOT_URLCONF=__name__,
        MIDDLEWARE=["django.middleware.csrf.CsrfViewMiddleware"],
        INSTALLED_APPS=[],
        USE_TZ=True,
    )
    django.setup()

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import HttpResponse, HttpResponseRedirect  # noqa: E402
from django.middleware.csrf import get_token  # noqa: E402
from django.urls import path  # noqa: E402


def form(request):
    if request.method == "POST":
        return HttpResponseRedirect("/done")
    return HttpResponse(f"token={get_token(request)}", content_type="text/plain")


urlpatterns = [path("form", form)]

application = get_wsgi_application()
