%% @doc The one place where plain TCP and TLS differ (as `elli_tcp' is for
%% Elli): every socket operation of py_web takes the transport (`gen_tcp' or
%% `ssl') and the socket. Sockets are in binary, raw, passive mode and read
%% with `{active, once}'; messages/1 gives the tags they arrive with.
-module(py_web_transport).

-export([listen/3, port/2, accept/3, handshake/3, controlling_process/3, active_once/2,
         send/3, close/2, names/2, messages/1, of_elli/1]).

-export_type([t/0, socket/0]).

-type t() :: gen_tcp | ssl.
-type socket() :: inet:socket() | ssl:sslsocket().

%% @doc Listen on Port: TLS when SslOpts is not empty (certfile, keyfile,
%% or any ssl server option), else plain TCP.
-spec listen(inet:port_number(), [gen_tcp:listen_option()], [ssl:tls_server_option()]) ->
          {ok, t(), socket()} | {error, term()}.
listen(Port, Opts, []) ->
    case gen_tcp:listen(Port, Opts) of
        {ok, L} -> {ok, gen_tcp, L};
        {error, _} = E -> E
    end;
listen(Port, Opts, SslOpts) ->
    _ = application:ensure_all_started(ssl),
    case ssl:listen(Port, Opts ++ SslOpts) of
        {ok, L} -> {ok, ssl, L};
        {error, _} = E -> E
    end.

%% @doc The port a listening socket is bound to.
-spec port(t(), socket()) -> {ok, inet:port_number()} | {error, term()}.
port(gen_tcp, L) -> inet:port(L);
port(ssl, L) ->
    case ssl:sockname(L) of
        {ok, {_, P}} -> {ok, P};
        {error, _} = E -> E
    end.

%% @doc Accept a connection. For TLS this only accepts the TCP connection:
%% the handshake runs in the connection process (handshake/3), so that a slow
%% client does not hold an acceptor.
-spec accept(t(), socket(), timeout()) -> {ok, socket()} | {error, term()}.
accept(gen_tcp, L, T) -> gen_tcp:accept(L, T);
accept(ssl, L, T) -> ssl:transport_accept(L, T).

%% @doc Complete a connection's set-up (the TLS handshake; nothing for TCP).
-spec handshake(t(), socket(), timeout()) -> {ok, socket()} | {error, term()}.
handshake(gen_tcp, S, _) -> {ok, S};
handshake(ssl, S, T) -> ssl:handshake(S, T).

-spec controlling_process(t(), socket(), pid()) -> ok | {error, term()}.
controlling_process(gen_tcp, S, P) -> gen_tcp:controlling_process(S, P);
controlling_process(ssl, S, P) -> ssl:controlling_process(S, P).

%% @doc Deliver the next data (or close) as one message.
-spec active_once(t(), socket()) -> ok | {error, term()}.
active_once(gen_tcp, S) -> inet:setopts(S, [{active, once}]);
active_once(ssl, S) -> ssl:setopts(S, [{active, once}]).

-spec send(t(), socket(), iodata()) -> ok | {error, term()}.
send(gen_tcp, S, Data) -> gen_tcp:send(S, Data);
send(ssl, S, Data) -> ssl:send(S, Data).

-spec close(t(), socket()) -> ok.
close(gen_tcp, S) -> gen_tcp:close(S);
close(ssl, S) -> _ = ssl:close(S), ok.

%% @doc The peer's and the local address of a connection, addresses as
%% text (`<<"127.0.0.1">>', `<<"::1">>').
-spec names(t(), socket()) ->
          {ok, {binary(), inet:port_number()}, {binary(), inet:port_number()}} | error.
names(gen_tcp, S) -> addrs(inet:peername(S), inet:sockname(S));
names(ssl, S) -> addrs(ssl:peername(S), ssl:sockname(S)).

addrs({ok, {PIp, PPort}}, {ok, {LIp, LPort}}) ->
    {ok, {ip(PIp), PPort}, {ip(LIp), LPort}};
addrs(_, _) ->
    error.

ip({127, 0, 0, 1}) -> <<"127.0.0.1">>;
ip(Ip) -> list_to_binary(inet:ntoa(Ip)).

%% @doc The tags of the messages an `{active, once}' socket sends:
%% `{Data, Closed, Error}'.
-spec messages(t()) -> {tcp, tcp_closed, tcp_error} | {ssl, ssl_closed, ssl_error}.
messages(gen_tcp) -> {tcp, tcp_closed, tcp_error};
messages(ssl) -> {ssl, ssl_closed, ssl_error}.

%% @doc An Elli socket (`{plain, S}' or `{ssl, S}', see `elli_tcp') as a
%% transport and socket.
-spec of_elli({plain | ssl, socket()}) -> {t(), socket()}.
of_elli({plain, S}) -> {gen_tcp, S};
of_elli({ssl, S}) -> {ssl, S}.
