%% Internal records of py_web. Not a public header.

%% Packets a connection's socket delivers per `{active, N}' arming (py_web_conn,
%% py_web_ws_conn). `{active, once}' costs a setopts (and the driver two epoll_ctl and a
%% recv that finds nothing) per packet: per keep-alive hello request, strace -c of
%% bin/pyweb under wrk counted 2 epoll_ctl and 2 recvfrom with once, 0.14 and 1.01 with
%% {active, 100}; per echoed websocket message 2.04 and 2.03, 0.19 and 1.03.
-define(ACTIVE_N, 100).

%% One request as the app will see it: parsed by py_web_h1_request (the server) or
%% built by py_web_req:new/1 (the Cowboy and Elli handlers). The defaults
%% are the parser's starting point, not configuration.
-record(req, {
    method = <<"GET">> :: binary(),
    version = {1, 1} :: {1, 0} | {1, 1},
    raw_path = <<"/">> :: binary(),          %% path as received, before '?'
    qs = <<>> :: binary(),                   %% query string without '?'
    headers = [] :: [{binary(), binary()}],  %% lower-cased names, arrival order
    clen :: undefined | non_neg_integer(),
    chunked = false :: boolean(),
    keepalive = true :: boolean(),
    expect = false :: boolean(),             %% Expect: 100-continue
    %% addresses as text; undefined over a Unix domain socket
    peer = {<<"127.0.0.1">>, 0} :: {binary(), inet:port_number()} | undefined,
    local = {<<"127.0.0.1">>, 0} :: {binary(), inet:port_number()} | undefined,
    scheme = <<"http">> :: binary()
}).

%% The configuration of one server or handler route, made by py_web_opts
%% (every field set there: defaults live in py_web_opts only).
-record(cfg, {
    listener :: pid() | undefined,  %% the server's listener (undefined in handlers)
    interface :: asgi | wsgi,
    module :: binary(),
    callable :: binary(),
    backend :: module(),            %% a py_web_backend: py_asgi | py_wsgi | a test double
    call_opts :: map(),             %% runner, timeout passed to Backend:start/4
    state :: undefined | map(),     %% lifespan state (ASGI)
    root_path :: binary(),
    scheme :: binary(),
    transport :: py_web_transport:t() | undefined,
    tls :: [ssl:tls_server_option()],  %% the TLS handshake's options (server, TLS only)
    date_header :: boolean(),               %% send Date unless the app did
    server_header :: binary() | false,
    headers :: [{binary(), binary()}], %% sent with every response of the server
    server_software :: binary(),       %% WSGI SERVER_SOFTWARE
    multiprocess :: boolean(),         %% WSGI wsgi.multiprocess: Python runs in several processes
    proxy :: py_web_proxy:trust() | undefined,   %% proxy_headers on: the peers believed
    proxy_protocol :: off | v1 | v2 | auto,
    proxy_allow :: py_web_proxy:trust(),         %% peers whose PROXY header is believed
    access_log :: false | py_web_access:format(),
    limits :: py_web_limits:t() | undefined,     %% concurrency and request count (server)
    max_request_line :: pos_integer(),
    max_header_size :: pos_integer(),
    max_headers :: pos_integer(),
    max_body :: non_neg_integer() | infinity,
    idle_timeout :: timeout(),
    header_timeout :: timeout(),
    request_timeout :: timeout(),
    body_timeout :: timeout(),
    handshake_timeout :: timeout(),
    read_buffer :: pos_integer(),
    wsgi_hold :: non_neg_integer(),
    spool_threshold :: non_neg_integer(),
    spool_dir :: binary(),
    ws :: false | py_web_ws:opts()  %% websockets off (`ws => none', WSGI), or their options
}).
