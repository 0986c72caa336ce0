defmodule HelloPy do
  @moduledoc "What runs where, and a check that everything answers."

  @doc "The base URLs of the two servers."
  def urls do
    %{asgi: url(:hello_py_asgi), wsgi: url(:hello_py_wsgi)}
  end

  @doc "A Python call and one HTTP request to each server."
  def check do
    %{asgi: asgi, wsgi: wsgi} = urls()
    %{call: :py.call(:hello_app, :greet, ["Elixir"]), asgi: get(asgi <> "/"), wsgi: get(wsgi <> "/")}
  end

  defp url(server), do: "http://127.0.0.1:#{:py_web.port(server)}"

  defp get(url) do
    case :httpc.request(:get, {String.to_charlist(url), []}, [timeout: 10_000], body_format: :binary) do
      {:ok, {{_, status, _}, _headers, body}} -> {status, body}
      {:error, _} = error -> error
    end
  end
end
