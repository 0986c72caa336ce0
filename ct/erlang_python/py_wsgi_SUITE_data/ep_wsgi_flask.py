"""A Flask app for py_wsgi_SUITE, wrapped in wsgiref.validate.validator."""
import hashlib

from flask import Flask, abort, jsonify, make_response, redirect, request

from ep_wsgi_validate import validated

flask_app = Flask("ep_wsgi_flask")


@flask_app.route("/")
def index():
    return "flask index"


@flask_app.route("/items/<int:item_id>")
def item(item_id):
    return jsonify(id=item_id, name="item %d" % item_id, tags=["a", "b"])


@flask_app.route("/search")
def search():
    q = request.args.get("q", "")
    return jsonify(q=q, len=len(q), all=request.args.getlist("q"))


@flask_app.route("/json", methods=["POST"])
def post_json():
    data = request.get_json()
    return jsonify(received=data, method=request.method), 201


@flask_app.route("/form", methods=["POST"])
def form():
    return jsonify(name=request.form["name"], city=request.form["city"],
                   multi=request.form.getlist("m"))


@flask_app.route("/upload", methods=["POST"])
def upload():
    f = request.files["file"]
    data = f.read()
    return jsonify(field=request.form["title"], filename=f.filename,
                   content_type=f.content_type, size=len(data),
                   sha256=hashlib.sha256(data).hexdigest())


@flask_app.route("/cookies/set")
def set_cookies():
    resp = make_response("cookies set")
    resp.set_cookie("first", "1")
    resp.set_cookie("second", "2", httponly=True)
    return resp


@flask_app.route("/cookies/get")
def get_cookies():
    return jsonify(sorted(request.cookies.items()))


@flask_app.route("/redirect")
def redir():
    return redirect("/items/7")


@flask_app.route("/missing")
def missing():
    abort(404)


@flask_app.route("/boom")
def boom():
    raise RuntimeError("flask view failed")


application = validated(flask_app)
