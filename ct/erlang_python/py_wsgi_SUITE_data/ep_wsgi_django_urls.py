"""URLconf and views of the Django app of py_wsgi_SUITE."""
import hashlib

from django.http import HttpResponse, HttpResponseRedirect, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt


def index(request):
    return HttpResponse("django index", content_type="text/plain")


def item(request, item_id):
    return JsonResponse({"id": item_id, "name": "item %d" % item_id})


def search(request):
    q = request.GET.get("q", "")
    return JsonResponse({"q": q, "len": len(q), "all": request.GET.getlist("q")})


@csrf_exempt
def form(request):
    return JsonResponse({"name": request.POST["name"], "city": request.POST["city"],
                         "multi": request.POST.getlist("m")})


@csrf_exempt
def upload(request):
    f = request.FILES["file"]
    data = f.read()
    return JsonResponse({"field": request.POST["title"], "filename": f.name,
                         "content_type": f.content_type, "size": len(data),
                         "sha256": hashlib.sha256(data).hexdigest()})


def set_cookies(request):
    resp = HttpResponse("cookies set", content_type="text/plain")
    resp.set_cookie("first", "1")
    resp.set_cookie("second", "2", httponly=True)
    return resp


def get_cookies(request):
    return JsonResponse({"cookies": sorted(request.COOKIES.items())})


def redir(request):
    return HttpResponseRedirect("/items/7/")


def boom(request):
    raise RuntimeError("django view failed")


urlpatterns = [
    path("", index),
    path("items/<int:item_id>/", item),
    path("search/", search),
    path("form/", form),
    path("upload/", upload),
    path("cookies/set/", set_cookies),
    path("cookies/get/", get_cookies),
    path("redirect/", redir),
    path("boom/", boom),
]
