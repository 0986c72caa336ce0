%% @doc The log events py_web makes about an exchange, the same for the
%% server and the Cowboy and Elli handlers, and the text a user reads for
%% py_web's error reasons (reason/1: no Erlang terms where a sentence
%% says it). App failures (a Python exception, a response that breaks the
%% protocol, no response in time) carry the metadata `#{py_web => app}';
%% server events `#{py_web => server}'; access lines `#{py_web => access}'.
%% No logger domain: OTP's default handler drops events of domains outside
%% `[otp]'.
-module(py_web_log).

-export([app_error/3, reason/1, address/1]).

%% @doc The app failed on the request `Method Path'. A Python exception is
%% logged once, with its traceback; a timeout as a warning.
-spec app_error(binary(), binary(), term()) -> ok.
app_error(M, P, {python, Type, Msg, Tb}) ->
    logger:error("py_web: ~s ~s: ~ts: ~ts~n~ts", [M, P, Type, Msg, traceback(Tb)],
                 #{py_web => app});
app_error(M, P, request_timeout) ->
    logger:warning("py_web: ~s ~s: no response within the request timeout", [M, P],
                   #{py_web => app});
app_error(M, P, Reason) ->
    logger:error("py_web: ~s ~s: ~ts", [M, P, reason(Reason)], #{py_web => app}).

traceback(Tb) when is_list(Tb) -> [[L, $\n] || L <- Tb, is_binary(L) orelse is_list(L)];
traceback(Tb) when is_binary(Tb) -> Tb;
traceback(_) -> [].

%% @doc A connection's address as text: `127.0.0.1:80', `[::1]:80', or
%% `a Unix socket'.
-spec address({binary(), inet:port_number()} | undefined) -> iodata().
address(undefined) -> <<"a Unix socket">>;
address({H, P}) ->
    case binary:match(H, <<":">>) of
        nomatch -> [H, $:, integer_to_binary(P)];
        _ -> [$[, H, $], $:, integer_to_binary(P)]
    end.

%% @doc The text of an error reason of py_web (and of erlang_python's that
%% reach it), one line. A reason this does not know is printed as a term.
-spec reason(term()) -> iodata().
reason({listen, Bind, Why}) ->
    [<<"cannot listen on ">>, bind(Bind), <<": ">>, posix(Why)];
reason({tls, Which, File, Why}) ->
    io_lib:format("cannot use the TLS ~ts ~ts: ~ts", [tls_file(Which), File, tls_why(Why)]);
reason({tls, verify, V}) ->
    io_lib:format("unknown client certificate requirement: ~tp", [V]);
reason({app_load_failed, Kind, {python, Type, Msg, _}, Where}) ->
    [load_failure(Kind, Type, Msg), case Where of <<>> -> <<>>; _ -> [<<" (">>, Where, <<")">>] end];
reason({interface_detection_failed, R}) ->
    [<<"cannot tell whether the app is ASGI or WSGI: ">>, reason(R)];
reason({lifespan_startup_failed, {python, <<"hornbeam_asgi_runner.LifespanFailure">>, Msg, _}}) ->
    %% the app's lifespan.startup.failed message: often a whole traceback
    [<<"application startup failed: ">>, last_line(Msg)];
reason({lifespan_startup_failed, R}) ->
    [<<"application startup failed: ">>, reason(R)];
reason({lifespan, unsupported}) ->
    <<"the app does not support the ASGI lifespan protocol (lifespan is on)">>;
reason({bad_option, K, V}) ->
    io_lib:format("bad value for the option ~ts: ~tp", [K, V]);
reason({python, Type, Msg, _}) ->
    [Type, <<": ">>, last_line(Msg)];
reason({bad_response, What}) ->
    [<<"the app's response breaks the protocol: ">>, bad_response(What)];
reason(no_response) ->
    <<"the app returned without sending a response">>;
reason(request_timeout) ->
    <<"no response within the request timeout">>;
reason(timeout) ->
    <<"timed out">>;
reason(not_started) ->
    <<"erlang_python is not running">>;
reason({not_available, Module}) ->
    io_lib:format("the Python module ~ts cannot be imported (erlang_python's python/ "
                  "package is not on sys.path)", [Module]);
reason(bad_proxy_header) ->
    <<"malformed PROXY protocol header">>;
reason(no_proxy_header) ->
    <<"no PROXY protocol header before TLS">>;
reason(closed) ->
    <<"connection closed">>;
reason({shutdown, R}) ->
    reason(R);
reason({erlang_python, {R, {erlang_python_app, start, _}}}) ->
    %% application:ensure_all_started/1's: erlang_python did not start (docs/errors.md)
    reason(R);
reason({failed_to_start_child, _, R}) ->
    reason(R);
reason({mode_unavailable, Mode, Why}) ->
    io_lib:format("the mode ~ts is not available: ~ts", [Mode, Why]);
reason({Why, Text}) when (Why =:= init_failed orelse Why =:= python_not_found orelse
                          Why =:= python_mismatch orelse Why =:= nif_not_built orelse
                          Why =:= nif_load_failed), is_binary(Text) ->
    Text;
reason({log_config, File, Why}) ->
    io_lib:format("cannot use the log configuration ~ts: ~ts", [File, log_config(Why)]);
reason({log_handler, Id, Why}) ->
    io_lib:format("cannot add the log handler ~ts: ~0tp", [Id, Why]);
reason(R) when is_atom(R) ->
    case inet:format_error(R) of
        "unknown POSIX error" ++ _ -> atom_to_list(R);
        Text -> Text
    end;
reason(R) ->
    io_lib:format("~0tp", [R]).

%% One line of a message: its last line that is not empty (the last line of
%% a traceback says what was raised).
last_line(Msg) ->
    case [L || L <- binary:split(iolist_to_binary(Msg), <<"\n">>, [global]),
               string:trim(L) =/= <<>>] of
        [] -> <<>>;
        Lines -> string:trim(lists:last(Lines))
    end.

bind({tcp, Ip, Port, Host}) ->
    py_web_bind:url(#{host => Host, port => Port, family => family(Ip)});
bind({unix, Path, _}) -> ["unix:", Path];
bind({fd, N}) -> ["fd://", integer_to_list(N)].

family(Ip) when tuple_size(Ip) =:= 8 -> inet6;
family(_) -> inet.

posix(not_a_socket) -> <<"the path exists and is not a socket">>;
posix(path_too_long) -> <<"the path is longer than a Unix socket's 107 bytes">>;
posix(not_a_stream_socket) -> <<"not a TCP or Unix stream socket">>;
posix(Why) when is_atom(Why) -> inet:format_error(Why);
posix(Why) -> io_lib:format("~0tp", [Why]).

log_config(python_logging_format) ->
    <<"Python logging's .ini and .yaml files are not read: write it as JSON, Python's "
      "dictConfig or pyweb's (see the README)">>;
log_config(not_an_object) -> <<"not a JSON object">>;
log_config({json, At}) -> io_lib:format("not JSON (at byte ~B)", [At]);
log_config({Line, Mod, Msg}) when is_integer(Line), is_atom(Mod) ->
    io_lib:format("not Erlang terms: line ~B: ~ts", [Line, Mod:format_error(Msg)]);
log_config({bad_type, T}) ->
    io_lib:format("unknown handler type ~ts (standard_error, standard_io or file)", [T]);
log_config({bad_format, F}) -> io_lib:format("unknown format ~ts (text or json)", [F]);
log_config({bad_events, E}) -> io_lib:format("unknown events ~ts (all, access or other)", [E]);
log_config({bad_level, L}) -> io_lib:format("unknown level ~tp", [L]);
log_config({bad_handler, _}) -> <<"a handler that is not an object, or a file handler without a file">>;
log_config({unknown_handler, Id}) -> io_lib:format("a logger names the handler ~ts, not defined", [Id]);
log_config({unsupported_handler_class, C}) ->
    io_lib:format("the handler class ~tp is not supported (logging.StreamHandler, FileHandler, "
                  "handlers.WatchedFileHandler, handlers.RotatingFileHandler, "
                  "handlers.TimedRotatingFileHandler, NullHandler)", [C]);
log_config(Why) when is_atom(Why) -> file:format_error(Why);
log_config(Why) -> io_lib:format("~0tp", [Why]).

tls_file(certfile) -> <<"certificate file">>;
tls_file(keyfile) -> <<"key file">>;
tls_file(cacertfile) -> <<"CA certificates file">>.

tls_why(no_certificate) -> <<"no PEM certificate in it">>;
tls_why(no_private_key) -> <<"no PEM private key in it">>;
tls_why(Why) when is_atom(Why) -> file:format_error(Why);
tls_why(Why) -> io_lib:format("~0tp", [Why]).

load_failure(module_not_found, _, Msg) ->
    [<<"could not import the module: ">>, Msg];
load_failure(attribute_not_found, _, Msg) ->
    [<<"no such attribute: ">>, Msg];
load_failure(not_callable, _, Msg) ->
    [<<"the app is not callable: ">>, Msg];
load_failure(factory_failed, Type, Msg) ->
    [<<"the app factory raised ">>, Type, <<": ">>, Msg];
load_failure(import_failed, Type, Msg) ->
    [<<"importing the module raised ">>, Type, <<": ">>, Msg].

bad_response({content_length, too_long}) ->
    <<"more body than its Content-Length">>;
bad_response({content_length, too_short}) ->
    <<"less body than its Content-Length">>;
bad_response({content_length, Len, Size}) ->
    io_lib:format("Content-Length ~B but ~B bytes of body", [Len, Size]);
bad_response(start_twice) ->
    <<"the response was started twice">>;
bad_response({status, S}) ->
    io_lib:format("invalid status ~0tp", [S]);
bad_response({headers, _}) ->
    <<"invalid response headers (a name that is no token, or CR, LF or NUL in a value)">>;
bad_response(Other) ->
    io_lib:format("~0tp", [Other]).
