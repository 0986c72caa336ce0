%% @doc The options of py_web, in one place: their defaults, their
%% validation, and the `#cfg{}' record built from them. Used by
%% py_web:start_link/1 (through py_web_listener), by the command line
%% (py_web_cli: its help text shows these defaults) and by the Cowboy and
%% Elli handlers (handler/1), so the same option means the same thing
%% everywhere. See py_web for what each option does.
-module(py_web_opts).

-include("py_web.hrl").

-export([default/1, cli_default/1, validate/1, cfg/2, handler/1, backend/2]).

%% uvicorn's access line, with the body size and the time taken.
-define(ACCESS_LOG_FORMAT, <<"%(client_addr)s - \"%(request_line)s\" %(status_code)s %(B)s %(M)sms">>).
%% Peers trusted with X-Forwarded-* and PROXY headers (uvicorn's and gunicorn's default).
-define(LOCALHOST, <<"127.0.0.1,::1">>).

-define(DEFAULTS, #{
    interface => auto,
    factory => false,
    ip => {127, 0, 0, 1},
    port => 8000,
    bind => [],
    acceptors => 10,
    backlog => 2048,
    reuse_port => false,
    lifespan => auto,
    root_path => <<>>,
    access_log => false,
    access_log_format => ?ACCESS_LOG_FORMAT,
    server_header => <<"py_web">>,
    date_header => true,
    headers => [],
    proxy_headers => true,
    forwarded_allow_ips => ?LOCALHOST,
    proxy_protocol => off,
    proxy_allow_ips => ?LOCALHOST,
    limit_concurrency => infinity,
    max_requests => infinity,
    on_max_requests => stop,
    max_request_line => 8192,
    max_header_size => 32768,
    max_headers => 100,
    max_body => 64 * 1024 * 1024,
    idle_timeout => 5000,
    header_timeout => 10000,
    request_timeout => 60000,
    body_timeout => 30000,
    handshake_timeout => 10000,
    shutdown_timeout => 10000,
    read_buffer => 65536,
    wsgi_hold => 2,
    spool_threshold => 1024 * 1024,
    spool_dir => tmpdir,
    asgi_backend => py_asgi,
    wsgi_backend => py_wsgi,
    %% WebSockets, uvicorn's defaults: 16 MiB messages, a ping after 20 s without a
    %% byte from the client, 20 s for its answer, permessage-deflate offered.
    ws => auto,
    ws_max_size => 16777216,
    ws_ping_interval => 20000,
    ws_ping_timeout => 20000,
    ws_per_message_deflate => true
}).

%% @doc The default of one option.
-spec default(atom()) -> term().
default(Key) -> maps:get(Key, ?DEFAULTS).

%% @doc The default of one option for `bin/pyweb': uvicorn's where it has the
%% option (an access line for every request; graceful shutdown waits for every
%% request in flight), else default/1.
-spec cli_default(atom()) -> term().
cli_default(access_log) -> true;
cli_default(shutdown_timeout) -> infinity;
cli_default(Key) -> default(Key).

%% The WSGI `SERVER_SOFTWARE' of this server: `py_web/VERSION'.
-spec server_software() -> binary().
server_software() ->
    case persistent_term:get({?MODULE, server_software}, undefined) of
        undefined ->
            _ = application:load(py_web),
            {ok, Vsn} = application:get_key(py_web, vsn),
            S = <<"py_web/", (list_to_binary(Vsn))/binary>>,
            persistent_term:put({?MODULE, server_software}, S),
            S;
        S ->
            S
    end.

%% @doc Validate options and fill in the defaults. The app is normalised
%% to `{Module, Callable}' binaries (`<<"mod:callable">>' and
%% `<<"mod">>', meaning `mod:app', are accepted), `ip' to a tuple.
%% Errors: `{error, {bad_option, Key, Value}}'.
-spec validate(map()) -> {ok, map()} | {error, {bad_option, atom(), term()}}.
validate(Opts) when is_map(Opts) ->
    O = maps:merge(?DEFAULTS, Opts),
    try
        App = app(maps:get(app, O, undefined)),
        one_of(interface, O, [auto, asgi, wsgi]),
        one_of(lifespan, O, [auto, on, off]),
        one_of(proxy_protocol, O, [off, v1, v2, auto]),
        [is_boolean(maps:get(K, O)) orelse throw({K, maps:get(K, O)})
         || K <- [factory, proxy_headers, access_log, date_header, reuse_port,
                 ws_per_message_deflate]],
        Binds = binds(maps:get(bind, O)),
        one_of(ws, O, [auto, none]),
        non_neg(ws_max_size, O),
        [timeout(K, O) || K <- [ws_ping_interval, ws_ping_timeout]],
        Port = maps:get(port, O),
        is_integer(Port) andalso Port >= 0 andalso Port =< 65535
            orelse throw({port, Port}),
        Ip = ip(maps:get(ip, O)),
        [pos_int(K, O) || K <- [acceptors, backlog, max_request_line, max_header_size,
                                max_headers, read_buffer]],
        [timeout(K, O) || K <- [idle_timeout, header_timeout, request_timeout,
                                body_timeout, handshake_timeout]],
        timeout0(shutdown_timeout, O),
        non_neg(wsgi_hold, O),
        [pos_int_or_infinity(K, O) || K <- [limit_concurrency, max_requests]],
        case maps:get(on_max_requests, O) of
            stop -> ok;
            P when is_pid(P) -> ok;
            P -> throw({on_max_requests, P})
        end,
        Forwarded = trust(forwarded_allow_ips, O),
        ProxyAllow = trust(proxy_allow_ips, O),
        Headers = headers(maps:get(headers, O)),
        Access = access_format(maps:get(access_log_format, O)),
        non_neg(spool_threshold, O),
        SpoolDir = spool_dir(maps:get(spool_dir, O)),
        case maps:get(max_body, O) of
            infinity -> ok;
            _ -> non_neg(max_body, O)
        end,
        Server = server_header(maps:get(server_header, O)),
        Root = root_path(maps:get(root_path, O)),
        [is_atom(maps:get(K, O)) orelse throw({K, maps:get(K, O)})
         || K <- [asgi_backend, wsgi_backend]],
        case maps:get(state, O, undefined) of
            undefined -> ok;
            S when is_map(S) -> ok;
            S -> throw({state, S})
        end,
        {ok, O#{app := App, ip := Ip, bind := Binds, server_header := Server,
                root_path := Root, forwarded_allow_ips := Forwarded,
                proxy_allow_ips := ProxyAllow, headers := Headers,
                access_log_format := Access, spool_dir := SpoolDir}}
    catch
        throw:{K, V} -> {error, {bad_option, K, V}}
    end;
validate(Other) ->
    {error, {bad_option, opts, Other}}.

%% @doc The configuration of validated options, with what is only known
%% once the server or handler runs: `interface' (resolved), `backend',
%% `state' (lifespan), `listener', `transport', `tls', `scheme', `limits',
%% `multiprocess', and the app's served `module' and `callable' when they
%% differ from the option's (an app factory's product).
-spec cfg(map(), map()) -> #cfg{}.
cfg(O, Run) ->
    {M, C} = maps:get(served, Run, maps:get(app, O)),
    #cfg{listener = maps:get(listener, Run, undefined),
         interface = maps:get(interface, Run),
         module = M,
         callable = C,
         backend = maps:get(backend, Run),
         call_opts = maps:with([runner, timeout], O),
         state = maps:get(state, Run, maps:get(state, O, undefined)),
         root_path = maps:get(root_path, O),
         scheme = maps:get(scheme, Run, <<"http">>),
         transport = maps:get(transport, Run, undefined),
         tls = maps:get(tls, Run, []),
         server_header = maps:get(server_header, O),
         date_header = maps:get(date_header, O),
         headers = maps:get(headers, O),
         server_software = server_software(),
         multiprocess = maps:get(multiprocess, Run, false),
         proxy = case maps:get(proxy_headers, O) of
                     true -> maps:get(forwarded_allow_ips, O);
                     false -> undefined
                 end,
         proxy_protocol = maps:get(proxy_protocol, O),
         proxy_allow = maps:get(proxy_allow_ips, O),
         access_log = case maps:get(access_log, O) of
                          true -> maps:get(access_log_format, O);
                          false -> false
                      end,
         limits = maps:get(limits, Run, undefined),
         max_request_line = maps:get(max_request_line, O),
         max_header_size = maps:get(max_header_size, O),
         max_headers = maps:get(max_headers, O),
         max_body = maps:get(max_body, O),
         idle_timeout = maps:get(idle_timeout, O),
         header_timeout = maps:get(header_timeout, O),
         request_timeout = maps:get(request_timeout, O),
         body_timeout = maps:get(body_timeout, O),
         handshake_timeout = maps:get(handshake_timeout, O),
         read_buffer = maps:get(read_buffer, O),
         wsgi_hold = maps:get(wsgi_hold, O),
         spool_threshold = maps:get(spool_threshold, O),
         spool_dir = maps:get(spool_dir, O),
         ws = ws(maps:get(interface, Run), O)}.

%% The websocket options of py_web_ws, or false: `ws => none', or a WSGI app (an upgrade
%% request is plain HTTP to it).
ws(asgi, #{ws := auto} = O) ->
    #{max_message_size => maps:get(ws_max_size, O),
      ping_interval => maps:get(ws_ping_interval, O),
      ping_timeout => maps:get(ws_ping_timeout, O),
      deflate => case maps:get(ws_per_message_deflate, O) of
                     true -> #{};
                     false -> false
                 end};
ws(_, _) ->
    false.

%% @doc The configuration of a Cowboy or Elli route from its options (the
%% server's, see py_web; `state' gives the lifespan state to put in each
%% scope). With `interface => auto' or `factory => true' the app is loaded
%% once per app (the answer is kept for the VM's life).
-spec handler(map()) -> {ok, #cfg{}} | {error, term()}.
handler(Opts) ->
    case validate(Opts) of
        {ok, O = #{app := {M, C}}} ->
            case served(maps:get(interface, O), maps:get(factory, O), M, C) of
                {ok, I, Served} ->
                    {ok, cfg(O, #{interface => I, backend => backend(I, O), served => Served,
                                  multiprocess => py_web:multiprocess()})};
                {error, _} = E ->
                    E
            end;
        {error, _} = E ->
            E
    end.

%% @doc The backend module of an interface.
-spec backend(asgi | wsgi, map()) -> module().
backend(asgi, O) -> maps:get(asgi_backend, O);
backend(wsgi, O) -> maps:get(wsgi_backend, O).

served(I, false, M, C) when I =/= auto ->
    {ok, I, {M, C}};
served(I0, Factory, M, C) ->
    Key = {?MODULE, served, M, C, Factory},
    case persistent_term:get(Key, undefined) of
        undefined ->
            case py_web:load_app(M, C, Factory) of
                {ok, #{interface := I, module := M1, callable := C1}} ->
                    persistent_term:put(Key, {I, {M1, C1}}),
                    {ok, explicit(I0, I), {M1, C1}};
                {error, _} = E ->
                    E
            end;
        {I, Served} ->
            {ok, explicit(I0, I), Served}
    end.

explicit(auto, Detected) -> Detected;
explicit(I, _) -> I.

app({M, C}) -> {bin(app, M), bin(app, C)};
app(S) when is_list(S); is_binary(S) ->
    case string:split(bin(app, S), <<":">>, trailing) of
        [M, C] when M =/= <<>>, C =/= <<>> -> {M, C};
        [M] when M =/= <<>> -> {M, <<"app">>};
        _ -> throw({app, S})
    end;
app(Other) -> throw({app, Other}).

bin(_, B) when is_binary(B) -> B;
bin(_, A) when is_atom(A) -> atom_to_binary(A, utf8);
bin(K, L) when is_list(L) ->
    case unicode:characters_to_binary(L) of
        B when is_binary(B) -> B;
        _ -> throw({K, L})
    end;
bin(K, Other) -> throw({K, Other}).

text(K, V) when is_binary(V); is_list(V) -> bin(K, V);
text(K, V) -> throw({K, V}).

root_path(V) ->
    case text(root_path, V) of
        <<>> -> <<>>;
        <<"/">> -> <<>>;
        <<"/", _/binary>> = R ->
            case binary:last(R) of
                $/ -> binary:part(R, 0, byte_size(R) - 1);
                _ -> R
            end;
        _ -> throw({root_path, V})
    end.

trust(K, O) ->
    case maps:get(K, O) of
        T when is_tuple(T); T =:= all -> T;
        V ->
            case py_web_proxy:trust(V) of
                {ok, T} -> T;
                error -> throw({K, V})
            end
    end.

%% Default response headers: [{Name, Value}], or "Name:Value" texts (--header).
headers(L) when is_list(L) ->
    [header(H) || H <- L];
headers(V) ->
    throw({headers, V}).

header({N, V}) ->
    Name = text(headers, N),
    Value = text(headers, V),
    case py_web_http:response_head([{Name, Value}]) of
        #{headers := [_]} -> {py_web_h1_field:lower(Name), Value};
        _ -> throw({headers, {N, V}})
    end;
header(S) when is_list(S); is_binary(S) ->
    case string:split(text(headers, S), <<":">>) of
        [N, V] -> header({string:trim(N), string:trim(V)});
        _ -> throw({headers, S})
    end;
header(H) ->
    throw({headers, H}).

access_format(F) ->
    case py_web_access:compile(F) of
        {ok, C} -> C;
        error -> throw({access_log_format, F})
    end.

binds(L) when is_list(L) ->
    [case py_web_bind:parse(B) of
         {ok, P} -> P;
         error -> throw({bind, B})
     end || B <- L];
binds(V) ->
    throw({bind, V}).

%% An existing directory; `tmpdir' is the system's temporary directory
%% ($TMPDIR, else /tmp, as Python's tempfile looks first).
spool_dir(tmpdir) ->
    case os:getenv("TMPDIR") of
        Dir when is_list(Dir), Dir =/= "" -> spool_dir(Dir);
        _ -> spool_dir(<<"/tmp">>)
    end;
spool_dir(Dir) ->
    D = text(spool_dir, Dir),
    filelib:is_dir(D) orelse throw({spool_dir, Dir}),
    D.

server_header(false) -> false;
server_header(V) -> text(server_header, V).

one_of(K, O, Allowed) ->
    lists:member(maps:get(K, O), Allowed) orelse throw({K, maps:get(K, O)}).

ip(any) -> {0, 0, 0, 0};
ip(T) when is_tuple(T) -> T;
ip(S) when is_list(S); is_binary(S) ->
    case inet:parse_address(binary_to_list(bin(ip, S))) of
        {ok, T} -> T;
        {error, _} -> throw({ip, S})
    end;
ip(Other) -> throw({ip, Other}).

pos_int(K, O) ->
    V = maps:get(K, O),
    is_integer(V) andalso V > 0 orelse throw({K, V}).

non_neg(K, O) ->
    V = maps:get(K, O),
    is_integer(V) andalso V >= 0 orelse throw({K, V}).

timeout0(K, O) ->
    case maps:get(K, O) of
        infinity -> ok;
        V when is_integer(V), V >= 0 -> ok;
        V -> throw({K, V})
    end.

pos_int_or_infinity(K, O) ->
    case maps:get(K, O) of
        infinity -> ok;
        _ -> pos_int(K, O)
    end.

timeout(K, O) ->
    case maps:get(K, O) of
        infinity -> ok;
        V when is_integer(V), V > 0 -> ok;
        V -> throw({K, V})
    end.
