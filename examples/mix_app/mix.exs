# An Elixir project that serves Python web apps with erlang_python and py_web
# (docs/getting-started-elixir.md).  Replace the URL with the one you clone erlang_python
# from.  Mix builds both with rebar3: point it at one with MIX_REBAR3=$(command -v rebar3)
# (or `mix local.rebar rebar3 $(command -v rebar3)`).  PYTHON (else python3) picks the
# Python the NIF is built for.
defmodule HelloPy.MixProject do
  use Mix.Project

  @erlang_python "https://example.invalid/erlang_python.git"

  def project do
    [app: :hello_py, version: "0.1.0", elixir: "~> 1.14", deps: deps()]
  end

  def application do
    [mod: {HelloPy.Application, []}, extra_applications: [:logger, :inets]]
  end

  defp deps do
    [
      # the OTP application erlang_python: :py.call, :py_asgi, :py_wsgi (builds its NIF)
      {:erlang_python, git: @erlang_python, branch: "main", manager: :rebar3},
      # the HTTP server py_web, from the same repository
      {:py_web, git: @erlang_python, branch: "main", sparse: "apps/py_web", manager: :rebar3}
    ]
  end
end
