%% @doc The options of py_web, in one place: their defaults, their
%% validation, and the `#cfg{}' record built from them. Used by
%% py_web:start_link/1 (through py_web_listener), by the command line
%% (py_web_cli: its help text shows these defaults) and by the Cowboy and
%% Elli handlers (handler/1), so the same option means the same thing
%% everywhere. See py_web for what each option does.
-module(py_web_opts).

-include("py_web.hrl").

-export([default/1, python_default/1, python_modes/0, validate/1, cfg/2, handler/1,
         backend/2]).

-define(DEFAULTS, #{
    interface => auto,
    ip => {127, 0, 0, 1},
    port => 8000,
    acceptors => 10,
    backlog => 1024,
    lifespan => auto,
    root_path => <<>>,
    access_log => false,
    server_header => <<"py_web">>,
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

%% @doc The default of a setting of erlang_python that the command line also
%% sets (`workers', `mode'), as erlang_python has it: erlang_python owns
%% these defaults, py_web only shows and passes them on.
-spec python_default(workers | mode) -> term().
python_default(workers) ->
    _ = application:load(erlang_python),
    {ok, N} = application:get_env(erlang_python, workers),
    N;
python_default(mode) ->
    py_mode:default().

%% @doc The values of erlang_python's `mode' setting (`--mode').
-spec python_modes() -> [py_mode:configured()].
python_modes() ->
    py_mode:modes().

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
        one_of(ws, O, [auto, none]),
        non_neg(ws_max_size, O),
        [timeout(K, O) || K <- [ws_ping_interval, ws_ping_timeout]],
        is_boolean(maps:get(ws_per_message_deflate, O))
            orelse throw({ws_per_message_deflate, maps:get(ws_per_message_deflate, O)}),
        Port = maps:get(port, O),
        is_integer(Port) andalso Port >= 0 andalso Port =< 65535
            orelse throw({port, Port}),
        Ip = ip(maps:get(ip, O)),
        [pos_int(K, O) || K <- [acceptors, backlog, max_request_line, max_header_size,
                                max_headers, read_buffer]],
        [timeout(K, O) || K <- [idle_timeout, header_timeout, request_timeout,
                                body_timeout, handshake_timeout]],
        non_neg(shutdown_timeout, O),
        non_neg(wsgi_hold, O),
        non_neg(spool_threshold, O),
        SpoolDir = spool_dir(maps:get(spool_dir, O)),
        case maps:get(max_body, O) of
            infinity -> ok;
            _ -> non_neg(max_body, O)
        end,
        is_boolean(maps:get(access_log, O)) orelse throw({access_log, maps:get(access_log, O)}),
        Server = server_header(maps:get(server_header, O)),
        Root = text(root_path, maps:get(root_path, O)),
        [is_atom(maps:get(K, O)) orelse throw({K, maps:get(K, O)})
         || K <- [asgi_backend, wsgi_backend]],
        case maps:get(state, O, undefined) of
            undefined -> ok;
            S when is_map(S) -> ok;
            S -> throw({state, S})
        end,
        {ok, O#{app := App, ip := Ip, server_header := Server, root_path := Root,
                spool_dir := SpoolDir}}
    catch
        throw:{K, V} -> {error, {bad_option, K, V}}
    end;
validate(Other) ->
    {error, {bad_option, opts, Other}}.

%% @doc The configuration of validated options, with what is only known
%% once the server or handler runs: `interface' (resolved), `backend',
%% `state' (lifespan), `listener', `transport', `scheme'.
-spec cfg(map(), map()) -> #cfg{}.
cfg(O, Run) ->
    {M, C} = maps:get(app, O),
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
         server_header = maps:get(server_header, O),
         access_log = maps:get(access_log, O),
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
%% scope). `interface => auto' asks Python once per app (the answer is
%% kept for the VM's life).
-spec handler(map()) -> {ok, #cfg{}} | {error, term()}.
handler(Opts) ->
    case validate(Opts) of
        {ok, O = #{app := {M, C}}} ->
            case interface(maps:get(interface, O), M, C) of
                {ok, I} -> {ok, cfg(O, #{interface => I, backend => backend(I, O)})};
                {error, _} = E -> E
            end;
        {error, _} = E ->
            E
    end.

%% @doc The backend module of an interface.
-spec backend(asgi | wsgi, map()) -> module().
backend(asgi, O) -> maps:get(asgi_backend, O);
backend(wsgi, O) -> maps:get(wsgi_backend, O).

interface(auto, M, C) ->
    Key = {?MODULE, interface, M, C},
    case persistent_term:get(Key, undefined) of
        undefined ->
            case py_web:detect_interface(M, C) of
                {ok, I} -> persistent_term:put(Key, I), {ok, I};
                {error, R} -> {error, {interface_detection_failed, R}}
            end;
        I ->
            {ok, I}
    end;
interface(I, _, _) ->
    {ok, I}.

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

timeout(K, O) ->
    case maps:get(K, O) of
        infinity -> ok;
        V when is_integer(V), V > 0 -> ok;
        V -> throw({K, V})
    end.
