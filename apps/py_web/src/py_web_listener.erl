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

-export([start_link/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).
-export([acceptor/2]).

-record(ls, {
    lsock :: py_web_transport:socket(),
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
    case py_web_opts:validate(Opts) of
        {ok, Opts1} ->
            case maps:get(name, Opts1, undefined) of
                undefined -> gen_server:start_link(?MODULE, Opts1, []);
                Name -> gen_server:start_link({local, Name}, ?MODULE, Opts1, [])
            end;
        {error, _} = E ->
            E
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
        Backend = py_web_opts:backend(Interface, O),
        check_app(maps:get(interface, O), Backend, M, C),
        {Lifespan, State} = lifespan_startup(Interface, maps:get(lifespan, O),
                                             Backend, M, C, maps:with([runner, timeout], O)),
        {Transport, LSock} = listen(O),
        {ok, Port} = py_web_transport:port(Transport, LSock),
        Cfg = py_web_opts:cfg(O, #{listener => self(), interface => Interface,
                                   backend => Backend, state => State,
                                   transport => Transport,
                                   scheme => case Transport of
                                                 ssl -> <<"https">>;
                                                 gen_tcp -> <<"http">>
                                             end}),
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
                         [M, C, Reason], #{py_web => app}),
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
    case py_web_transport:listen(maps:get(port, O), Base, ssl_opts(O)) of
        {ok, T, L} -> {T, L};
        {error, R} -> throw({stop, {listen, R}})
    end.

ssl_opts(O) ->
    Files = [{certfile, F} || F <- [maps:get(certfile, O, undefined)], F =/= undefined]
        ++ [{keyfile, F} || F <- [maps:get(keyfile, O, undefined)], F =/= undefined],
    maps:get(ssl, O, []) ++ Files.

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
    py_web_transport:close(Cfg#cfg.transport, St#ls.lsock),
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
-spec acceptor(py_web_transport:socket(), #cfg{}) -> no_return().
acceptor(LSock, Cfg = #cfg{transport = T}) ->
    case py_web_transport:accept(T, LSock, infinity) of
        {ok, Sock} ->
            {ok, Pid} = py_web_conn:start(Cfg, Sock),
            _ = case py_web_transport:controlling_process(T, Sock, Pid) of
                ok -> Pid ! {py_web_go, Sock};
                {error, _} -> exit(Pid, kill), py_web_transport:close(T, Sock)
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
