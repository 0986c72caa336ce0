%% @doc One py_web server: owns the listening socket, the acceptor
%% processes, the ASGI lifespan, and knows its connections (each one
%% registers and links itself) so that it can drain them on shutdown.
%%
%% Start order (init/1): resolve the interface, run lifespan startup, then
%% listen and start accepting. Stop order (terminate/2): close the
%% listening socket (acceptors exit), ask every connection to finish its
%% current request and close, wait up to `shutdown_timeout', kill the
%% rest, then run lifespan shutdown.
-module(py_web_listener).
-behaviour(gen_server).

-include("py_web.hrl").

-export([start_link/1, config/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).
-export([acceptor/2]).

-record(ls, {
    lsock :: term(),
    cfg :: #cfg{},
    port :: inet:port_number(),
    acceptors = #{} :: #{pid() => true},
    conns = #{} :: #{pid() => true},
    lifespan :: undefined | term(),
    shutdown_timeout :: non_neg_integer(),
    open = true :: boolean()
}).

-spec start_link(map()) -> {ok, pid()} | {error, term()}.
start_link(Opts) ->
    case config(Opts) of
        {ok, Opts1} ->
            case maps:get(name, Opts1, undefined) of
                undefined -> gen_server:start_link(?MODULE, Opts1, []);
                Name -> gen_server:start_link({local, Name}, ?MODULE, Opts1, [])
            end;
        {error, _} = E ->
            E
    end.

%%====================================================================
%% Options
%%====================================================================

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
    asgi_backend => py_asgi,
    wsgi_backend => py_wsgi
}).

%% @doc Validate options and fill in defaults (also used by py_web).
-spec config(map()) -> {ok, map()} | {error, term()}.
config(Opts) when is_map(Opts) ->
    O = maps:merge(?DEFAULTS, Opts),
    try
        {M, C} = app(maps:get(app, O, undefined)),
        lists:member(maps:get(interface, O), [auto, asgi, wsgi])
            orelse throw({interface, maps:get(interface, O)}),
        lists:member(maps:get(lifespan, O), [auto, on, off])
            orelse throw({lifespan, maps:get(lifespan, O)}),
        Port = maps:get(port, O),
        is_integer(Port) andalso Port >= 0 andalso Port =< 65535
            orelse throw({port, Port}),
        Ip = ip(maps:get(ip, O)),
        [pos_int(K, O) || K <- [acceptors, backlog, max_request_line,
                                 max_header_size, max_headers, read_buffer]],
        [timeout(K, O) || K <- [idle_timeout, header_timeout, request_timeout,
                                body_timeout, handshake_timeout]],
        non_neg(shutdown_timeout, O),
        non_neg(wsgi_hold, O),
        case maps:get(max_body, O) of
            infinity -> ok;
            _ -> non_neg(max_body, O)
        end,
        {ok, O#{app := {M, C}, ip := Ip}}
    catch
        throw:{K, V} -> {error, {bad_option, K, V}}
    end;
config(Other) ->
    {error, {bad_option, opts, Other}}.

app({M, C}) -> {bin(M), bin(C)};
app(S) when is_list(S); is_binary(S) ->
    case string:split(bin(S), <<":">>, trailing) of
        [M, C] when M =/= <<>>, C =/= <<>> -> {M, C};
        [M] when M =/= <<>> -> {M, <<"app">>};
        _ -> throw({app, S})
    end;
app(Other) -> throw({app, Other}).

bin(B) when is_binary(B) -> B;
bin(A) when is_atom(A) -> atom_to_binary(A, utf8);
bin(L) when is_list(L) -> unicode:characters_to_binary(L).

ip(any) -> {0, 0, 0, 0};
ip(T) when is_tuple(T) -> T;
ip(S) when is_list(S); is_binary(S) ->
    case inet:parse_address(binary_to_list(bin(S))) of
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

%%====================================================================
%% gen_server
%%====================================================================

%% @private
-spec init(map()) -> {ok, #ls{}} | {stop, term()}.
init(O) ->
    process_flag(trap_exit, true),
    {M, C} = maps:get(app, O),
    try
        Interface = interface(maps:get(interface, O), M, C),
        Backend = case Interface of
                      asgi -> maps:get(asgi_backend, O);
                      wsgi -> maps:get(wsgi_backend, O)
                  end,
        check_app(maps:get(interface, O), Backend, M, C),
        CallOpts = maps:with([runner, timeout], O),
        {Lifespan, State} = lifespan_startup(Interface, maps:get(lifespan, O),
                                             Backend, M, C, CallOpts),
        {Transport, LSock} = listen(O),
        {ok, Port} = port(Transport, LSock),
        Cfg = #cfg{listener = self(),
                   interface = Interface,
                   module = M,
                   callable = C,
                   backend = Backend,
                   call_opts = CallOpts,
                   state = State,
                   root_path = bin(maps:get(root_path, O)),
                   scheme = case Transport of ssl -> <<"https">>; gen_tcp -> <<"http">> end,
                   transport = Transport,
                   server_line = case maps:get(server_header, O) of
                                     false -> <<>>;
                                     S -> <<"server: ", (bin(S))/binary, "\r\n">>
                                 end,
                   access_log = maps:get(access_log, O) =:= true,
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
                   wsgi_hold = maps:get(wsgi_hold, O)},
        Acceptors = maps:from_list(
                      [{spawn_link(?MODULE, acceptor, [LSock, Cfg]), true}
                       || _ <- lists:seq(1, maps:get(acceptors, O))]),
        logger:notice("py_web: serving ~s:~s (~s) on ~s://~s:~B",
                      [M, C, Interface, Cfg#cfg.scheme,
                       inet:ntoa(maps:get(ip, O)), Port],
                      #{py_web => server}),
        {ok, #ls{lsock = LSock, cfg = Cfg, port = Port, acceptors = Acceptors,
                 lifespan = Lifespan,
                 shutdown_timeout = maps:get(shutdown_timeout, O)}}
    catch
        throw:{stop, Reason} -> {stop, Reason}
    end.

interface(auto, M, C) ->
    case py_web:detect_interface(M, C) of
        {ok, I} -> I;
        {error, R} -> throw({stop, {interface_detection_failed, R}})
    end;
interface(I, _, _) -> I.

%% With an explicit interface, still import the app before listening
%% (through the detector) so that a missing module or callable stops the
%% server now rather than failing every request. Only for the real
%% backends (test doubles have no Python behind them).
check_app(auto, _, _, _) -> ok;
check_app(_, Backend, M, C) when Backend =:= py_asgi; Backend =:= py_wsgi ->
    case py_web:detect_interface(M, C) of
        {ok, _} -> ok;
        {error, {python, _, _, _} = R} -> throw({stop, {app_load_failed, R}});
        {error, _} -> ok
    end;
check_app(_, _, _, _) -> ok.

lifespan_startup(wsgi, _, _, _, _, _) -> {undefined, undefined};
lifespan_startup(_, off, _, _, _, _) -> {undefined, undefined};
lifespan_startup(asgi, Mode, Backend, M, C, CallOpts) ->
    case catch Backend:lifespan_startup(M, C, CallOpts) of
        {ok, Lifespan, State} ->
            {Lifespan, State};
        {error, unsupported} when Mode =:= auto ->
            {undefined, undefined};
        {'EXIT', {undef, [{Backend, lifespan_startup, _, _} | _]}} when Mode =:= auto ->
            {undefined, undefined};
        {error, unsupported} ->
            throw({stop, {lifespan, unsupported}});
        {error, Reason} ->
            logger:error("py_web: lifespan startup of ~s:~s failed: ~0p",
                         [M, C, Reason], #{py_web => server}),
            throw({stop, {lifespan_startup_failed, Reason}});
        Other ->
            throw({stop, {lifespan_startup_failed, Other}})
    end.

listen(O) ->
    Ip = maps:get(ip, O),
    Family = case tuple_size(Ip) of 8 -> [inet6]; 4 -> [] end,
    Base = Family ++ [binary, {packet, raw}, {active, false}, {reuseaddr, true},
                      {backlog, maps:get(backlog, O)}, {nodelay, true}, {ip, Ip},
                      {send_timeout, 30000}, {send_timeout_close, true}],
    case ssl_opts(O) of
        [] ->
            case gen_tcp:listen(maps:get(port, O), Base) of
                {ok, L} -> {gen_tcp, L};
                {error, R} -> throw({stop, {listen, R}})
            end;
        SslOpts ->
            _ = application:ensure_all_started(ssl),
            case ssl:listen(maps:get(port, O), Base ++ SslOpts) of
                {ok, L} -> {ssl, L};
                {error, R} -> throw({stop, {listen, R}})
            end
    end.

ssl_opts(O) ->
    Files = [{certfile, F} || F <- [maps:get(certfile, O, undefined)], F =/= undefined]
        ++ [{keyfile, F} || F <- [maps:get(keyfile, O, undefined)], F =/= undefined],
    maps:get(ssl, O, []) ++ Files.

port(gen_tcp, L) -> inet:port(L);
port(ssl, L) ->
    {ok, {_, P}} = ssl:sockname(L),
    {ok, P}.

%% @private
-spec handle_call(term(), gen_server:from(), #ls{}) -> {reply, term(), #ls{}}.
handle_call(port, _From, St) ->
    {reply, St#ls.port, St};
handle_call(info, _From, St = #ls{cfg = Cfg}) ->
    {reply, #{port => St#ls.port,
              interface => Cfg#cfg.interface,
              app => {Cfg#cfg.module, Cfg#cfg.callable},
              scheme => Cfg#cfg.scheme,
              connections => map_size(St#ls.conns),
              lifespan => St#ls.lifespan =/= undefined}, St};
handle_call(_, _From, St) ->
    {reply, {error, badcall}, St}.

%% @private
-spec handle_cast(term(), #ls{}) -> {noreply, #ls{}}.
handle_cast(_, St) ->
    {noreply, St}.

%% @private
-spec handle_info(term(), #ls{}) -> {noreply, #ls{}}.
handle_info({py_web_conn, Pid}, St = #ls{conns = C}) ->
    {noreply, St#ls{conns = C#{Pid => true}}};
handle_info({'EXIT', Pid, Reason}, St = #ls{conns = C, acceptors = A}) ->
    case C of
        #{Pid := _} ->
            {noreply, St#ls{conns = maps:remove(Pid, C)}};
        _ ->
            case A of
                #{Pid := _} when St#ls.open ->
                    logger:error("py_web: acceptor exited: ~0p", [Reason],
                                 #{py_web => server}),
                    New = spawn_link(?MODULE, acceptor, [St#ls.lsock, St#ls.cfg]),
                    {noreply, St#ls{acceptors = (maps:remove(Pid, A))#{New => true}}};
                _ ->
                    {noreply, St#ls{acceptors = maps:remove(Pid, A)}}
            end
    end;
handle_info(_, St) ->
    {noreply, St}.

%% @private
-spec terminate(term(), #ls{}) -> ok.
terminate(_Reason, St = #ls{cfg = Cfg}) ->
    close_listen(Cfg#cfg.transport, St#ls.lsock),
    Conns = St#ls.conns,
    _ = [P ! {py_web, drain} || P <- maps:keys(Conns)],
    Deadline = erlang:monotonic_time(millisecond) + St#ls.shutdown_timeout,
    Left = drain(Conns, Deadline),
    _ = [exit(P, kill) || P <- maps:keys(Left)],
    case map_size(Left) of
        0 -> ok;
        N -> logger:warning("py_web: ~B connection(s) killed at shutdown", [N],
                            #{py_web => server})
    end,
    lifespan_shutdown(Cfg#cfg.backend, St#ls.lifespan),
    ok.

drain(Conns, _Deadline) when map_size(Conns) =:= 0 ->
    Conns;
drain(Conns, Deadline) ->
    T = max(0, Deadline - erlang:monotonic_time(millisecond)),
    receive
        {'EXIT', P, _} -> drain(maps:remove(P, Conns), Deadline);
        {py_web_conn, P} -> P ! {py_web, drain}, drain(Conns#{P => true}, Deadline)
    after T ->
        Conns
    end.

close_listen(gen_tcp, L) -> gen_tcp:close(L);
close_listen(ssl, L) -> ssl:close(L).

lifespan_shutdown(_Backend, undefined) -> ok;
lifespan_shutdown(Backend, Lifespan) ->
    case catch Backend:lifespan_shutdown(Lifespan) of
        ok -> ok;
        Other ->
            logger:error("py_web: lifespan shutdown failed: ~0p", [Other],
                         #{py_web => server})
    end.

%%====================================================================
%% Acceptors
%%====================================================================

%% @private
-spec acceptor(term(), #cfg{}) -> no_return().
acceptor(LSock, Cfg = #cfg{transport = T}) ->
    case accept(T, LSock) of
        {ok, Sock} ->
            {ok, Pid} = py_web_conn:start(Cfg, Sock),
            case controlling_process(T, Sock, Pid) of
                ok -> Pid ! {py_web_go, Sock};
                {error, _} -> exit(Pid, kill), catch close_listen(T, Sock)
            end,
            acceptor(LSock, Cfg);
        {error, closed} ->
            exit(normal);
        {error, Reason} ->
            %% emfile and friends: back off instead of spinning.
            logger:warning("py_web: accept failed: ~p", [Reason],
                           #{py_web => server}),
            timer:sleep(100),
            acceptor(LSock, Cfg)
    end.

accept(gen_tcp, L) -> gen_tcp:accept(L);
accept(ssl, L) -> ssl:transport_accept(L).

controlling_process(gen_tcp, S, P) -> gen_tcp:controlling_process(S, P);
controlling_process(ssl, S, P) -> ssl:controlling_process(S, P).
