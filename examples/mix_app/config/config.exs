import Config

# The app's Python code: priv/py of hello_py, wherever the app is installed.
config :erlang_python, python_path: [{:priv, :hello_py, ~c"py"}]
# Which Python runs (default: a venv's or python3.X on PATH, see docs/python.md):
# config :erlang_python, python: "/usr/bin/python3.11"

# 0: any free port (HelloPy.urls/0 tells which)
config :hello_py, asgi_port: 0, wsgi_port: 0
