"""Django (WSGI) app of py_web_e2e_SUITE: a one-file project."""

import django
from django.conf import settings

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="py_web e2e",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        MIDDLEWARE=[],
        INSTALLED_APPS=[],
        USE_TZ=True,
        DATA_UPLOAD_MAX_MEMORY_SIZE=None,
    )
    django.setup()

import json  # noqa: E402

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse  # noqa: E402
from django.urls import path  # noqa: E402

from e2e_common import forever_sync, gate_chunks_sync, upload_summary  # noqa: E402
from e2e_common import events, open_gate, reset  # noqa: E402,F401


def text(body):
    return HttpResponse(body, content_type="text/plain")


def index(request):
    return text("Hello, World!")


def item(request, item_id):
    return JsonResponse({"id": item_id, "q": request.GET.get("q")})


def echo_json(request):
    data = json.loads(request.body)
    return JsonResponse({"a": data["a"], "b": data["b"], "n": len(data)})


def form(request):
    return text(f"{request.POST['name']}/{request.POST['lang']}")


def upload(request):
    data = request.FILES["file"].read()
    return text(upload_summary(request.POST["note"], data))


def cookies_set(request):
    resp = text("set")
    resp.set_cookie("a", "1")
    resp.set_cookie("b", "2", httponly=True)
    return resp


def cookies_get(request):
    return text(f"a={request.COOKIES.get('a')} b={request.COOKIES.get('b')}")


def stream_gate(request):
    return StreamingHttpResponse(gate_chunks_sync(), content_type="text/plain")


def stream_forever(request):
    return StreamingHttpResponse(forever_sync("/stream/forever"), content_type="text/plain")


urlpatterns = [
    path("", index),
    path("items/<int:item_id>", item),
    path("json", echo_json),
    path("form", form),
    path("upload", upload),
    path("cookies/set", cookies_set),
    path("cookies/get", cookies_get),
    path("stream/gate", stream_gate),
    path("stream/forever", stream_forever),
]

application = get_wsgi_application()
