defmodule HelloPy.Application do
  @moduledoc "Two py_web servers: the ASGI app and the WSGI app of priv/py/hello_app.py."
  use Application

  @impl true
  def start(_type, _args) do
    asgi_port = Application.get_env(:hello_py, :asgi_port, 8080)
    wsgi_port = Application.get_env(:hello_py, :wsgi_port, 8081)

    children = [
      :py_web.child_spec(%{app: "hello_app:app", interface: :asgi, lifespan: :off,
                           port: asgi_port, name: :hello_py_asgi}),
      :py_web.child_spec(%{app: "hello_app:wsgi_app", interface: :wsgi,
                           port: wsgi_port, name: :hello_py_wsgi})
    ]

    Supervisor.start_link(children, strategy: :one_for_one, name: HelloPy.Supervisor)
  end
end
