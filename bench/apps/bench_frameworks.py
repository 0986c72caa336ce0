"""Framework endpoints for the benchmarks: a Starlette JSON endpoint and a Flask JSON one."""

import flask
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

PAYLOAD = {"message": "Hello, World!", "items": list(range(10)), "ok": True}


async def _json(request):
    return JSONResponse(PAYLOAD)


starlette_app = Starlette(routes=[Route("/", _json)])

flask_app = flask.Flask(__name__)


@flask_app.route("/")
def _flask_json():
    return flask.jsonify(PAYLOAD)
