"""Starlette under --root-path: url_for, request.url and redirects keep the prefix."""

from starlette.applications import Starlette
from starlette.responses import JSONResponse, RedirectResponse
from starlette.routing import Route


async def item(request):
    return JSONResponse({
        "url": str(request.url),
        "url_for": str(request.url_for("item", item_id=7)),
        "base_url": str(request.base_url),
        "root_path": request.scope["root_path"],
        "path": request.scope["path"],
    })


async def go(request):
    return RedirectResponse(request.url_for("item", item_id=1), status_code=302)


app = Starlette(routes=[Route("/items/{item_id:int}", item, name="item"),
                        Route("/go", go)])
