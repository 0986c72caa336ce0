%% Internal records of py_web. Not a public header.

%% One parsed request (head only; the body is read by py_web_conn).
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
    peer = {<<"127.0.0.1">>, 0} :: {binary(), inet:port_number()},
    local = {<<"127.0.0.1">>, 0} :: {binary(), inet:port_number()},
    scheme = <<"http">> :: binary()
}).

%% Static configuration of one server, copied once into each connection.
-record(cfg, {
    listener :: pid() | undefined,
    interface = asgi :: asgi | wsgi,
    module :: binary(),
    callable :: binary(),
    backend :: module(),            %% py_asgi | py_wsgi | a test double
    call_opts = #{} :: map(),       %% runner, timeout passed to Backend:start/4
    state :: undefined | term(),    %% lifespan state (ASGI)
    root_path = <<>> :: binary(),
    scheme = <<"http">> :: binary(),
    transport = gen_tcp :: gen_tcp | ssl,
    server_line = <<>> :: binary(), %% <<"server: py_web\r\n">> or <<>>
    access_log = false :: boolean(),
    max_request_line = 8192 :: pos_integer(),
    max_header_size = 32768 :: pos_integer(),
    max_headers = 100 :: pos_integer(),
    max_body = 67108864 :: non_neg_integer() | infinity,
    idle_timeout = 5000 :: timeout(),
    header_timeout = 10000 :: timeout(),
    request_timeout = 60000 :: timeout(),
    body_timeout = 30000 :: timeout(),
    handshake_timeout = 10000 :: timeout(),
    read_buffer = 65536 :: pos_integer(),
    wsgi_hold = 2 :: non_neg_integer()
}).
