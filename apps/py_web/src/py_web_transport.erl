%% @doc The one place where plain TCP and TLS differ (as `elli_tcp' is for
%% Elli): every socket operation of py_web takes the transport (`gen_tcp' or
%% `ssl') and the socket. Sockets are in binary, raw, passive mode and read
%% with `{active, N}' (active/3); messages/1 gives the tags they arrive with,
%% passive/1 the tag that says an `{active, N}' ran out.
-module(py_web_transport).

-export([accept/2, handshake/4, active/3, send/3, close/2, names/2, messages/1, passive/1,
         of_elli/1]).

-export_type([t/0, socket/0]).

-type t() :: gen_tcp | ssl.
-type socket() :: inet:socket() | ssl:sslsocket().

%% @doc Accept a connection on a listening socket. Listening sockets are
%% always TCP (or Unix domain) sockets opened by py_web_bind: TLS starts
%% after the accept, in the connection process (handshake/4), so that a
%% slow client does not hold an acceptor and a PROXY protocol header can be
%% read before the TLS handshake.
-spec accept(inet:socket(), timeout()) -> {ok, inet:socket()} | {error, term()}.
accept(L, T) -> gen_tcp:accept(L, T).

%% @doc Complete a connection's set-up on the accepted TCP socket: the TLS
%% handshake with the server's options (nothing for plain TCP).
-spec handshake(t(), inet:socket(), [ssl:tls_server_option()], timeout()) ->
          {ok, socket()} | {error, term()}.
handshake(gen_tcp, S, _, _) -> {ok, S};
handshake(ssl, S, Opts, T) -> ssl:handshake(S, Opts, T).

%% @doc Deliver the next `N' data messages (then `{passive/1, Socket}'), or stop
%% delivering (`false').
-spec active(t(), socket(), pos_integer() | false) -> ok | {error, term()}.
active(gen_tcp, S, N) -> inet:setopts(S, [{active, N}]);
active(ssl, S, N) -> ssl:setopts(S, [{active, N}]).

-spec send(t(), socket(), iodata()) -> ok | {error, term()}.
send(gen_tcp, S, Data) -> gen_tcp:send(S, Data);
send(ssl, S, Data) -> ssl:send(S, Data).

-spec close(t(), socket()) -> ok.
close(gen_tcp, S) -> gen_tcp:close(S);
close(ssl, S) -> _ = ssl:close(S), ok.

%% @doc The peer's and the local address of a connection, addresses as
%% text (`<<"127.0.0.1">>', `<<"::1">>'); `undefined' for both over a
%% Unix domain socket (as ASGI's `client' and `server' are then `None').
-spec names(t(), socket()) ->
          {ok, {binary(), inet:port_number()} | undefined,
           {binary(), inet:port_number()} | undefined} | error.
names(gen_tcp, S) -> addrs(inet:peername(S), inet:sockname(S));
names(ssl, S) -> addrs(ssl:peername(S), ssl:sockname(S)).

addrs({ok, {local, _}}, {ok, {local, _}}) ->
    {ok, undefined, undefined};
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

%% @doc The tag of the message `{Tag, Socket}' that an `{active, N}' socket
%% sends when its N messages are delivered (it is passive from then on).
-spec passive(t()) -> tcp_passive | ssl_passive.
passive(gen_tcp) -> tcp_passive;
passive(ssl) -> ssl_passive.

%% @doc An Elli socket (`{plain, S}' or `{ssl, S}', see `elli_tcp') as a
%% transport and socket.
-spec of_elli({plain | ssl, socket()}) -> {t(), socket()}.
of_elli({plain, S}) -> {gen_tcp, S};
of_elli({ssl, S}) -> {ssl, S}.
