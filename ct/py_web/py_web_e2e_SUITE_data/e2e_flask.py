"""Flask (WSGI) app of py_web_e2e_SUITE."""

from flask import Flask, Response, jsonify, request

from e2e_common import forever_sync, gate_chunks_sync, upload_summary
from e2e_common import events, open_gate, reset  # noqa: F401  (called from Erlang)

app = Flask(__name__)


@app.get("/")
def index():
    return Response("Hello, World!", mimetype="text/plain")


@app.get("/items/<int:item_id>")
def item(item_id):
    return jsonify({"id": item_id, "q": request.args.get("q")})


@app.post("/json")
def echo_json():
    data = request.get_json()
    return jsonify({"a": data["a"], "b": data["b"], "n": len(data)})


@app.post("/form")
def form():
    return Response(f"{request.form['name']}/{request.form['lang']}", mimetype="text/plain")


@app.post("/upload")
def upload():
    data = request.files["file"].read()
    return Response(upload_summary(request.form["note"], data), mimetype="text/plain")


@app.get("/cookies/set")
def cookies_set():
    resp = Response("set", mimetype="text/plain")
    resp.set_cookie("a", "1")
    resp.set_cookie("b", "2", httponly=True)
    return resp


@app.get("/cookies/get")
def cookies_get():
    return Response(f"a={request.cookies.get('a')} b={request.cookies.get('b')}", mimetype="text/plain")


@app.get("/stream/gate")
def stream_gate():
    return Response(gate_chunks_sync(), mimetype="text/plain")


@app.get("/stream/forever")
def stream_forever():
    return Response(forever_sync("/stream/forever"), mimetype="text/plain")
