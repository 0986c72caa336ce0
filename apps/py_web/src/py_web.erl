%% @doc py_web: an embedded HTTP/1.1 server for Python ASGI and WSGI apps
%% run by erlang_python.
%%
%% Under your own supervisor:
%% ```
%% ChildSpec = py_web:child_spec(#{app => {<<"myapp">>, <<"app">>},
%%                                 interface => asgi, port => 8000}),
%% '''
%% or directly `{ok, Pid} = py_web:start_link(Opts)' and
%% `ok = py_web:stop(Pid)'. `py_web:start/1' starts an unlinked server
%% under the py_web application's supervisor (the CLI uses it).
%%
%% The applications `erlang_python' (the Python runtime) and `py_web' (the
%% Date header ticker) should be started first:
%% `application:ensure_all_started(py_web)' starts both.
%%
%% Options (all optional except `app'; the defaults are py_web_opts's, and
%% the Cowboy and Elli handlers take the same options):
%% <ul>
%% <li>`app' — `{Module, Callable}' (binaries, atoms or strings) or
%%     `<<"module:callable">>'.</li>
%% <li>`interface' — `asgi | wsgi | auto' (default `auto': asks Python);
%%     `factory' (`false'): `app' is an app factory, served is what calling
%%     it returns (one that takes no arguments is taken for one anyway, with
%%     a warning).</li>
%% <li>`ip' (default `{127,0,0,1}'; a tuple, string or `any'), `port'
%%     (default 8000; 0 picks a free port, see port/1); or `bind', a list
%%     of addresses that replaces them: `{Ip, Port}', `{local, Path}',
%%     `{local, Path, Mode}', `{fd, N}' (an inherited listening socket) or
%%     gunicorn's texts (`"HOST:PORT"', `"unix:PATH"', `"fd://N"'; see
%%     py_web_bind). `reuse_port' (`false'): SO_REUSEPORT on TCP sockets.</li>
%% <li>`lifespan' — `auto | on | off' (ASGI; default `auto').</li>
%% <li>`access_log' — `true' to log each request at info level, however it
%%     ends (the app's response, the server's 4xx/5xx, a timeout, a client
%%     that left: 499, a shutdown cut) (metadata `#{py_web => access}');
%%     default `false' (bin/pyweb: on). `access_log_format': uvicorn's and
%%     gunicorn's fields (py_web_access). App failures carry
%%     `#{py_web => app}', other events `#{py_web => server}' (see
%%     py_web_log).</li>
%% <li>Behind a proxy: `proxy_headers' (`true'), `forwarded_allow_ips'
%%     (`"127.0.0.1,::1"'; addresses, networks, `*'): X-Forwarded-Proto,
%%     X-Forwarded-For and RFC 7239 Forwarded from those peers (see
%%     py_web_proxy); `proxy_protocol' (`off | v1 | v2 | auto') with
%%     `proxy_allow_ips' (the same default): HAProxy's PROXY header.</li>
%% <li>Responses: `server_header' (`<<"py_web">>', or `false'),
%%     `date_header' (`true'; the embedded server's Date), `headers' (sent
%%     with every response: `[{Name, Value}]' or `"Name: Value"' texts).</li>
%% <li>`certfile', `keyfile', `keyfile_password', `cacertfile', `verify'
%%     (`none | optional | required'), `ciphers' (TLS 1.2 suites by OpenSSL
%%     name), or `ssl' (a list of ssl server options): serve HTTPS; the
%%     files are read at start (py_web_tls).</li>
%% <li>`limit_concurrency' (`infinity'): answer 503 to requests while more
%%     connections are open; `max_requests' (`infinity'): after that many
%%     requests stop, or with `on_max_requests => Pid' tell Pid
%%     (`{py_web, max_requests, Server}') and go on.</li>
%% <li>Limits: `max_request_line' (8192, else 414), `max_header_size'
%%     (32768, else 431), `max_headers' (100, else 431), `max_body'
%%     (64 MiB or `infinity', else 413).</li>
%% <li>Timeouts (ms): `idle_timeout' (keep-alive, 5000),
%%     `header_timeout' (whole request head, 10000, else 408),
%%     `request_timeout' (app silent before its response starts, 60000,
%%     else 504), `body_timeout' (waiting for request body, 30000),
%%     `shutdown_timeout' (graceful drain, 10000, or `infinity'; then the
%%     requests still running are cut: a 503 if their response had not
%%     started).</li>
%% <li>WSGI request bodies: read whole before the app takes a Python worker
%%     thread (a slow client does not hold one): in memory up to
%%     `spool_threshold' bytes (1 MiB), beyond that in a file in a private
%%     directory of the VM inside `spool_dir' (an existing directory;
%%     default `tmpdir': $TMPDIR, else /tmp), which wsgi.input then reads
%%     and which is deleted when the request ends (py_web_spool). The
%%     limits above still apply (`max_body', `body_timeout' for each
%%     read). ASGI apps get the body as it arrives.</li>
%% <li>`root_path' (ASGI root_path, which the scope's path includes; WSGI
%%     SCRIPT_NAME, PATH_INFO the rest; a request path already under it is
%%     not prefixed again), `acceptors' (10), `backlog' (2048),
%%     `name' (register the server), `runner' and `timeout' (passed to
%%     the py_asgi/py_wsgi calls), `asgi_backend'/`wsgi_backend'
%%     (py_web_backend modules; default py_asgi/py_wsgi), `read_buffer'
%%     (65536: request bytes buffered ahead, and the most one read of the
%%     socket takes), `wsgi_hold' (2 ms: how long
%%     the first chunk of a WSGI body without Content-Length waits for the
%%     app's return, to be sent with a Content-Length, see
%%     py_web_exchange).</li>
%% <li>WebSockets (ASGI apps; uvicorn's options and defaults): `ws' (`auto', or `none':
%%     an upgrade request is plain HTTP to the app), `ws_max_size' (largest message,
%%     16777216 bytes, else close 1009), `ws_ping_interval' and `ws_ping_timeout' (ms or
%%     `infinity': a ping after 20000 ms without a byte from the client, then 20000 ms for
%%     any byte, else close), `ws_per_message_deflate' (`true': permessage-deflate,
%%     RFC 7692, when the client offers it). See py_web_ws_conn.</li>
%% <li>Handlers only: `state', the lifespan state to put in each scope.</li>
%% </ul>
-module(py_web).

-export([start_link/1, start/1, stop/1, retire/1, child_spec/1,
         port/1, info/1, detect_interface/2, load_app/3, multiprocess/0]).

-export_type([opts/0, server/0]).

-type opts() :: #{app := {binary() | atom() | string(), binary() | atom() | string()}
                         | binary() | string(),
                  interface => asgi | wsgi | auto,
                  ip => inet:ip_address() | string() | binary() | any,
                  port => inet:port_number(),
                  atom() => term()}.
-type server() :: pid() | atom().

%% @doc Start a server linked to the caller (for a supervisor). Lifespan
%% startup runs before the socket is opened; if it fails, so does this.
-spec start_link(opts()) -> {ok, pid()} | {error, term()}.
start_link(Opts) ->
    py_web_listener:start_link(Opts).

%% @doc Start an unlinked server under the py_web application's
%% supervisor (starts the application if needed).
-spec start(opts()) -> {ok, pid()} | {error, term()}.
start(Opts) ->
    case application:ensure_all_started(py_web) of
        {ok, _} ->
            Spec = child_spec(Opts),
            case supervisor:start_child(py_web_sup, Spec#{id := {py_web, make_ref()},
                                                          restart => temporary}) of
                {ok, Pid} -> {ok, Pid};
                {error, {Reason, Child}} when is_tuple(Child), element(1, Child) =:= child ->
                    {error, Reason};
                {error, _} = E -> E
            end;
        {error, _} = E ->
            E
    end.

%% @doc Stop a server gracefully: stop accepting, let in-flight requests
%% finish (up to `shutdown_timeout'), run lifespan shutdown.
-spec stop(server()) -> ok.
stop(Server) ->
    Pid = pid(Server),
    Children = try supervisor:which_children(py_web_sup)
               catch exit:_ -> []
               end,
    case [Id || {Id, P, _, _} <- Children, P =:= Pid] of
        [Id | _] ->
            _ = supervisor:terminate_child(py_web_sup, Id),
            _ = supervisor:delete_child(py_web_sup, Id),
            ok;
        [] when is_pid(Pid) ->
            gen_server:stop(Pid, normal, infinity);
        [] ->
            ok
    end.

%% @doc Hand over to another server on the same sockets (a new release of
%% the app): stop accepting at once, answer each open connection's next
%% request (with `Connection: close') or let it reach its keep-alive
%% timeout, finish the requests in flight (up to `shutdown_timeout'), run
%% lifespan shutdown, then stop. Returns when the server is gone. Unlike
%% stop/1, which closes idle keep-alive connections at once, no client that
%% sends a request on a kept-alive connection meanwhile is turned away.
-spec retire(server()) -> ok.
retire(Server) ->
    Pid = pid(Server),
    Ref = erlang:monitor(process, Pid),
    gen_server:cast(Pid, retire),
    receive
        {'DOWN', Ref, process, Pid, _} -> ok
    end.

pid(P) when is_pid(P) -> P;
pid(Name) -> whereis(Name).

%% @doc A child spec for your supervisor. The shutdown time covers the
%% graceful drain.
-spec child_spec(opts()) -> supervisor:child_spec().
child_spec(Opts) ->
    Shutdown = case maps:get(shutdown_timeout, Opts, py_web_opts:default(shutdown_timeout)) of
                   infinity -> infinity;
                   Drain -> Drain + 5000
               end,
    #{id => {py_web, maps:get(name, Opts, maps:get(port, Opts, py_web_opts:default(port)))},
      start => {py_web, start_link, [Opts]},
      restart => permanent,
      shutdown => Shutdown,
      type => worker,
      modules => [py_web_listener]}.

%% @doc The port the server listens on (useful with `port => 0').
-spec port(server()) -> inet:port_number().
port(Server) ->
    gen_server:call(Server, port).

%% @doc Port, interface, app, scheme, open connections, lifespan.
-spec info(server()) -> map().
info(Server) ->
    gen_server:call(Server, info).

%% @doc ASGI or WSGI? Asks the Python side
%% (`hornbeam_detect.interface(module, callable)'), which answers "asgi"
%% for a coroutine function or an object with an async `__call__'.
-spec detect_interface(binary(), binary()) -> {ok, asgi | wsgi} | {error, term()}.
detect_interface(Module, Callable) ->
    try py:call(hornbeam_detect, interface, [Module, Callable]) of
        {ok, I} -> interface_name(I);
        {error, _} = E -> E
    catch
        error:undef -> {error, {not_available, hornbeam_detect}};
        C:R -> {error, {C, R}}
    end.

%% @doc Import the app `Module:Callable' (calling it first if it is an app
%% factory: `Factory' true, or a callable that takes no arguments, which is
%% then reported as `detected'), and say which interface it speaks and
%% under which names to serve it (an app made by a factory is served as an
%% attribute of `hornbeam_detect').
%%
%% Errors: `{error, {app_load_failed, Kind, {python, Type, Message,
%% Traceback}, Where}}' with Kind `module_not_found | attribute_not_found |
%% import_failed | factory_failed | not_callable', Traceback the formatted
%% text from the app's code on, Where `<<"File, line N">>' or `<<>>'; or
%% erlang_python's own errors (`{error, not_started}'...).
-spec load_app(binary(), binary(), boolean()) ->
          {ok, #{interface := asgi | wsgi, module := binary(), callable := binary(),
                 factory := explicit | detected | none}} | {error, term()}.
load_app(Module, Callable, Factory) ->
    try py:call(hornbeam_detect, load, [Module, Callable, Factory]) of
        {ok, {<<"ok">>, I, M, C, How}} ->
            {ok, I1} = interface_name(I),
            {ok, #{interface => I1, module => M, callable => C,
                   factory => named(How, [explicit, detected, none])}};
        {ok, {<<"error">>, Kind, Type, Msg, Tb, Where}} ->
            Kinds = [module_not_found, attribute_not_found, import_failed, factory_failed,
                     not_callable],
            {error, {app_load_failed, named(Kind, Kinds), {python, Type, Msg, Tb}, Where}};
        {error, _} = E -> E
    catch
        error:undef -> {error, {not_available, hornbeam_detect}};
        C:R -> {error, {C, R}}
    end.

named(Bin, Atoms) ->
    [A] = [A || A <- Atoms, atom_to_binary(A) =:= Bin],
    A.

%% @doc Whether Python runs in several OS processes (erlang_python's
%% `processes' mode), which is what WSGI's `wsgi.multiprocess' says. False
%% when erlang_python is not running.
-spec multiprocess() -> boolean().
multiprocess() ->
    try py:info() of
        #{mode := processes} -> true;
        _ -> false
    catch
        _:_ -> false
    end.

interface_name(I) when I =:= asgi; I =:= <<"asgi">>; I =:= "asgi" -> {ok, asgi};
interface_name(I) when I =:= wsgi; I =:= <<"wsgi">>; I =:= "wsgi" -> {ok, wsgi};
interface_name(Other) -> {error, {unknown_interface, Other}}.
