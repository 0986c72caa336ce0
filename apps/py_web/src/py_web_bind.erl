%% @doc The addresses a server listens on: their syntax (parse/1, gunicorn's
%% `--bind'), opening them (listen/2) and how they are shown (url/1).
%%
%% An address is a TCP host and port, a Unix domain socket (with the file
%% mode to give it), or a file descriptor of a socket that is already open
%% (inherited: systemd socket activation, `--fd', and the sockets bin/pyweb's
%% supervisor hands to its server processes).
-module(py_web_bind).

-export([parse/1, host/1, listen/2, url/1, close/1]).

%% The longest path of a Unix socket (Linux: sun_path is 108 bytes with its NUL).
-define(UNIX_PATH_MAX, 107).
%% Linux's (OTP 25's inet has no reuseport option).
-define(SOL_SOCKET, 1).
-define(SO_REUSEPORT, 15).
-export_type([bind/0, listener/0]).

-type bind() :: {tcp, inet:ip_address(), inet:port_number(), Host :: binary()}
              | {unix, file:filename_all(), Mode :: non_neg_integer() | undefined}
              | {fd, non_neg_integer()}.

%% An open listening socket (gen_tcp), what it is bound to, and whether this
%% process made the socket file (to remove at close).
-type listener() :: #{socket := inet:socket(), fd := non_neg_integer(),
                      family := inet | inet6 | local, ip => inet:ip_address(),
                      port => inet:port_number(), host => binary(),
                      path => binary(), created := boolean()}.

%% @doc An address from its text or its term. Text: `HOST:PORT', `HOST'
%% (port 8000), `[IPV6]:PORT', `unix:PATH', `fd://N'; HOST an address or a
%% name (resolved now, IPv4 first). Terms: `{Ip, Port}', `{local, Path}',
%% `{local, Path, Mode}', `{fd, N}', or an already parsed bind().
-spec parse(string() | binary() | tuple()) -> {ok, bind()} | error.
parse({tcp, Ip, Port, Host} = B) when is_tuple(Ip), is_integer(Port), is_binary(Host) -> {ok, B};
parse({unix, _, _} = B) -> {ok, B};
parse({fd, N}) when is_integer(N), N >= 0 -> {ok, {fd, N}};
parse({local, Path}) -> parse({local, Path, undefined});
parse({local, Path, Mode}) when (is_list(Path) orelse is_binary(Path)),
                                (Mode =:= undefined orelse is_integer(Mode)) ->
    {ok, {unix, Path, Mode}};
parse({Ip, Port}) when is_tuple(Ip), is_integer(Port), Port >= 0, Port =< 65535 ->
    case inet:ntoa(Ip) of
        {error, _} -> error;
        Text -> {ok, {tcp, Ip, Port, list_to_binary(Text)}}
    end;
parse(B) when is_binary(B) ->
    parse(binary_to_list(B));
parse("unix:" ++ Path) when Path =/= "" ->
    {ok, {unix, Path, undefined}};
parse("fd://" ++ N) ->
    case string:to_integer(N) of
        {I, ""} when I >= 0 -> {ok, {fd, I}};
        _ -> error
    end;
parse("[" ++ Rest) ->
    case string:split(Rest, "]") of
        [H, ""] -> tcp(H, "8000");
        [H, ":" ++ P] -> tcp(H, P);
        _ -> error
    end;
parse(S) when is_list(S), S =/= "" ->
    case string:split(S, ":", all) of
        [H, P] -> tcp(H, P);
        [_] -> tcp(S, "8000");
        _ -> tcp(S, "8000")       %% a bare IPv6 address
    end;
parse(_) ->
    error.

tcp(H, P) ->
    case {host(H), string:to_integer(P)} of
        {{ok, Ip}, {Port, ""}} when Port >= 0, Port =< 65535 ->
            {ok, {tcp, Ip, Port, list_to_binary(H)}};
        _ -> error
    end.

%% @doc An IP address from its text or a host name (`localhost'): the
%% name's IPv4 address, else its IPv6 one.
-spec host(string()) -> {ok, inet:ip_address()} | error.
host(H) ->
    case inet:parse_strict_address(H) of
        {ok, Ip} -> {ok, Ip};
        {error, _} when H =/= "" ->
            case inet:getaddr(H, inet) of
                {ok, Ip} -> {ok, Ip};
                {error, _} ->
                    case inet:getaddr(H, inet6) of
                        {ok, Ip} -> {ok, Ip};
                        {error, _} -> error
                    end
            end;
        {error, _} -> error
    end.

%% @doc Open a listening socket. `Opts': `backlog', the gen_tcp options
%% the accepted sockets inherit, and `reuse_port' (SO_REUSEPORT on a TCP
%% socket: other sockets may bind the same address; default false). A Unix socket file left by a server that
%% is gone is replaced; one that answers is `eaddrinuse'.
%% Errors: `{error, {listen, bind(), Reason}}' (Reason a POSIX atom,
%% `not_a_socket' for a path that is another kind of file, `path_too_long',
%% `not_a_stream_socket' for a descriptor of another kind of socket).
-spec listen(bind(), #{backlog := pos_integer(), socket_opts := [gen_tcp:listen_option()],
                       reuse_port => boolean()}) ->
          {ok, listener()} | {error, {listen, bind(), term()}}.
listen(B = {tcp, Ip, Port, Host}, Opts = #{backlog := Backlog, socket_opts := SO}) ->
    Family = family(Ip),
    ReusePort = [{raw, ?SOL_SOCKET, ?SO_REUSEPORT, <<1:32/native>>}
                 || maps:get(reuse_port, Opts, false)],
    case gen_tcp:listen(Port, [Family, {ip, Ip}, {reuseaddr, true}, {backlog, Backlog}
                               | ReusePort ++ SO]) of
        {ok, L} -> described(L, #{family => Family, ip => Ip, host => Host, created => false});
        {error, R} -> {error, {listen, B, R}}
    end;
listen(B = {unix, Path, Mode}, #{backlog := Backlog, socket_opts := SO}) ->
    case byte_size(unicode:characters_to_binary(Path)) =< ?UNIX_PATH_MAX andalso stale_socket(Path) of
        false ->
            {error, {listen, B, path_too_long}};
        ok ->
            case gen_tcp:listen(0, [local, {ifaddr, {local, Path}}, {backlog, Backlog}
                                    | [O || O <- SO, not tcp_only(O)]]) of
                {ok, L} ->
                    _ = case Mode of
                        undefined -> ok;
                        _ -> file:change_mode(Path, Mode)
                    end,
                    described(L, #{family => local, path => iolist_to_binary(Path),
                                   created => true});
                {error, R} ->
                    {error, {listen, B, R}}
            end;
        {error, R} ->
            {error, {listen, B, R}}
    end;
listen(B = {fd, Fd}, #{backlog := Backlog, socket_opts := SO}) ->
    case open_fd(Fd, Backlog, SO, [inet, inet6, local]) of
        {ok, L, Family} -> described(L, #{family => Family, created => false});
        {error, R} -> {error, {listen, B, R}}
    end.

%% A descriptor is opened with each address family in turn: the inet
%% driver refuses (einval) one that is not the socket's, and leaves the
%% descriptor as it was. (Not asked through the socket module: closing a
%% socket it opened on a duplicate makes the shared open file blocking, and
%% every process accepting on it, bin/pyweb's server processes, can then
%% hang in accept.)
open_fd(_Fd, _Backlog, _SO, []) ->
    {error, not_a_stream_socket};
open_fd(Fd, Backlog, SO, [Family | Others]) ->
    Opts = [{fd, Fd}, Family, {backlog, Backlog}
            | [O || O <- SO, Family =/= local orelse not tcp_only(O)]],
    case gen_tcp:listen(0, Opts) of
        {ok, L} -> {ok, L, Family};
        {error, einval} -> open_fd(Fd, Backlog, SO, Others);
        {error, R} -> {error, R}
    end.

described(L, M = #{family := local}) ->
    {ok, Fd} = inet:getfd(L),
    Path = case inet:sockname(L) of
               {ok, {local, P}} -> P;
               _ -> maps:get(path, M, <<>>)
           end,
    {ok, M#{socket => L, fd => Fd, path => Path}};
described(L, M) ->
    {ok, Fd} = inet:getfd(L),
    {ok, {Ip, Port}} = inet:sockname(L),
    Host = maps:get(host, M, list_to_binary(inet:ntoa(Ip))),
    {ok, M#{socket => L, fd => Fd, ip => Ip, port => Port, host => Host}}.

family(Ip) when tuple_size(Ip) =:= 8 -> inet6;
family(_) -> inet.

tcp_only({nodelay, _}) -> true;
tcp_only(_) -> false.

%% A socket file nobody listens on any more (a server killed without
%% cleaning up) is removed; a live one is left alone.
stale_socket(Path) ->
    case file:read_link_info(Path) of
        {error, enoent} -> ok;
        {ok, Info} when element(3, Info) =:= other ->
            case gen_tcp:connect({local, Path}, 0, [local], 1000) of
                {ok, S} -> gen_tcp:close(S), {error, eaddrinuse};
                {error, _} -> file:delete(Path)
            end;
        {ok, _} -> {error, not_a_socket};
        {error, R} -> {error, R}
    end.

%% @doc How an address is shown to a user: `http://127.0.0.1:8000',
%% `http://[::]:8000', `unix:/run/app.sock' (the scheme given by the caller
%% is prepended to TCP addresses).
-spec url(listener() | {binary(), listener()}) -> binary().
url({Scheme, #{family := local, path := Path}}) ->
    <<Scheme/binary, "+unix:", Path/binary>>;
url({Scheme, #{host := Host, port := Port}}) ->
    H = case binary:match(Host, <<":">>) of
            nomatch -> Host;
            _ -> <<"[", Host/binary, "]">>
        end,
    <<Scheme/binary, "://", H/binary, ":", (integer_to_binary(Port))/binary>>;
url(L) ->
    url({<<"http">>, L}).

%% @doc Close a listening socket (and remove the socket file it made).
-spec close(listener()) -> ok.
close(#{socket := L, created := Created} = M) ->
    _ = gen_tcp:close(L),
    _ = case {Created, M} of
        {true, #{path := Path}} -> file:delete(Path);
        _ -> ok
    end,
    ok.
