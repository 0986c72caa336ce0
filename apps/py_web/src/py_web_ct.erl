%% @doc Common Test helpers for suites that serve Python web apps with py_web: serve an app
%% on a free port of 127.0.0.1, make HTTP requests to it, stop it.  Python itself is set
%% up with `erlang_python_ct' (a virtualenv, the app's directory relative to the suite).
%%
%% ```
%% init_per_suite(Config) ->
%%     ok = erlang_python_ct:start(Config, #{app_dir => "pyapp"}),   % DATA_DIR/pyapp
%%     {ok, Server} = py_web_ct:serve(<<"main:app">>),
%%     [{server, Server} | Config].
%%
%% end_per_suite(Config) ->
%%     ok = py_web_ct:stop(?config(server, Config)),
%%     erlang_python_ct:stop().
%%
%% hello(Config) ->
%%     {ok, {200, _Headers, <<"hello">>}} = py_web_ct:request(?config(server, Config), get, "/").
%% '''
%%
%% Servers run unlinked, under the py_web application's supervisor, so that a server
%% started in `init_per_suite' outlives that function's process.  Requests use OTP's
%% `httpc' (the `inets' application, started on demand).
-module(py_web_ct).

-export([serve/1, serve/2, stop/1, url/2, request/3, request/5]).
-export([start_python/1, python_exe/0, venv/0, quiet/0, quiet_filter/2]).

-export_type([server/0]).

-type server() :: #{pid := pid(), port := inet:port_number(), url := string()}.
%% A served app: the server process, its port, and its base URL (`"http://127.0.0.1:PORT"').

%% @equiv serve(App, #{})
-spec serve(binary() | string() | {term(), term()}) -> {ok, server()} | {error, term()}.
serve(App) ->
    serve(App, #{}).

%% @doc Serves `App' (`<<"module:callable">>' or `{Module, Callable}') on a free port of
%% 127.0.0.1.  `Opts' are `py_web:start_link/1''s options (`interface', `lifespan',
%% limits...); `app', `ip' and `port' are set here.  Starts py_web (and erlang_python, if
%% it is not running yet, with its current environment).
-spec serve(binary() | string() | {term(), term()}, map()) -> {ok, server()} | {error, term()}.
serve(App, Opts) ->
    case py_web:start(Opts#{app => App, ip => {127, 0, 0, 1}, port => 0}) of
        {ok, Pid} ->
            Port = py_web:port(Pid),
            {ok, #{pid => Pid, port => Port, url => "http://127.0.0.1:" ++ integer_to_list(Port)}};
        {error, _} = Error ->
            Error
    end.

%% @doc Stops a server started by {@link serve/2} gracefully (in-flight requests finish,
%% ASGI lifespan shutdown runs).
-spec stop(server()) -> ok.
stop(#{pid := Pid}) ->
    py_web:stop(Pid).

%% @doc The URL of `Path' on the server.
-spec url(server(), string()) -> string().
url(#{url := Base}, Path) ->
    Base ++ Path.

%% @equiv request(Server, Method, Path, [], <<>>)
-spec request(server(), atom(), string()) ->
          {ok, {100..599, [{string(), string()}], binary()}} | {error, term()}.
request(Server, Method, Path) ->
    request(Server, Method, Path, [], <<>>).

%% @doc An HTTP/1.1 request to the server: `Method' is `get', `post', `put', `delete',
%% `head', `options' or `patch'; `Headers' a list of `{Name, Value}' strings; `Body' a
%% binary (sent with the `content-type' header's value, else
%% `application/octet-stream', when the method has a body).  Returns the status, the
%% response headers (names lower-cased) and the body.  Times out after 30 s.
-spec request(server(), atom(), string(), [{string(), string()}], iodata()) ->
          {ok, {100..599, [{string(), string()}], binary()}} | {error, term()}.
request(Server, Method, Path, Headers, Body) ->
    {ok, _} = application:ensure_all_started(inets),
    Url = url(Server, Path),
    Request = case lists:member(Method, [post, put, patch]) of
                  true ->
                      Type = proplists:get_value("content-type", lower(Headers),
                                                 "application/octet-stream"),
                      Others = [H || {N, _} = H <- Headers, string:lowercase(N) =/= "content-type"],
                      {Url, Others, Type, iolist_to_binary(Body)};
                  false ->
                      {Url, Headers}
              end,
    case httpc:request(Method, Request, [{timeout, 30000}, {autoredirect, false}],
                       [{body_format, binary}]) of
        {ok, {{_Version, Status, _Reason}, RespHeaders, RespBody}} ->
            {ok, {Status, RespHeaders, RespBody}};
        {error, _} = Error ->
            Error
    end.

lower(Headers) ->
    [{string:lowercase(N), V} || {N, V} <- Headers].

%% ---- kept for the py_web suites ------------------------------------------------------

%% @doc (Re)starts erlang_python with `Dirs' (absolute) prepended to sys.path, then
%% py_web.  The venv is the application env's or `$VIRTUAL_ENV' (Flask, Django, ...).
-spec start_python([file:filename()]) -> ok.
start_python([]) ->
    {ok, Cwd} = file:get_cwd(),
    start_python([Cwd]);
start_python([First | Rest]) ->
    ok = erlang_python_ct:start([], #{base => First, python_path => Rest}),
    _ = application:ensure_all_started(py_web),
    ok.

%% @doc The venv's python (for httpx as a client), or false.
-spec python_exe() -> string() | false.
python_exe() ->
    case venv() of
        false -> false;
        V ->
            P = filename:join([V, "bin", "python"]),
            case filelib:is_regular(P) of
                true -> P;
                false -> false
            end
    end.

%% @doc `$VIRTUAL_ENV', or false.
-spec venv() -> string() | false.
venv() ->
    case os:getenv("VIRTUAL_ENV") of
        false -> false;
        "" -> false;
        V -> V
    end.

%% @doc No "py_web: serving ..." notice for each of the many servers a suite
%% starts (warnings and errors, app tracebacks included, still show).
-spec quiet() -> ok.
quiet() ->
    _ = logger:add_primary_filter(py_web_quiet, {fun ?MODULE:quiet_filter/2, []}),
    ok.

%% @doc The logger filter behind {@link quiet/0}.
-spec quiet_filter(logger:log_event(), term()) -> logger:filter_return().
quiet_filter(#{level := notice, meta := #{py_web := server}}, _) -> stop;
quiet_filter(_, _) -> ignore.
