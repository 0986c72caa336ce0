%% @doc One py_web server: owns the listening sockets, the acceptor
%% processes, the ASGI lifespan, and knows its connections (each one
%% registers and links itself) so that it can drain them.
%%
%% Start order (init/1): read the TLS files, load the app (an app factory
%% called), run lifespan startup, then listen and start accepting. Stop
%% order (terminate/2): close the listening sockets (acceptors exit), ask
%% every connection to finish its current request and close, wait up to
%% `shutdown_timeout', cut the requests still in flight (a 503 if their
%% response had not started), then run lifespan shutdown. Retiring
%% (py_web:retire/1) is the same, except that idle keep-alive connections
%% are not closed at once: each answers one more request if its client
%% sends one before the keep-alive timeout (the socket is shared with the
%% server taking over).
-module(py_web_listener).
-behaviour(gen_server).

-include("py_web.hrl").

-export([start_link/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).
-export([acceptor/2]).

%% Requests still running this long after the shutdown time is up are
%% killed with their connection process.
-define(CUT_GRACE, 1000).

-record(ls, {
    listeners :: [py_web_bind:listener()],
    cfg :: #cfg{},
    acceptors = #{} :: #{pid() => inet:socket()},
    conns = #{} :: #{pid() => true},
    lifespan :: undefined | term(),
    shutdown_timeout :: timeout(),
    on_max_requests :: stop | pid(),
    open = true :: boolean(),
    retiring = false :: boolean()
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
        Tls = case py_web_tls:options(O) of
                  {ok, T} -> T;
                  {error, E} -> throw({stop, E})
              end,
        {Interface, Served} = load(maps:get(interface, O), maps:get(factory, O), O, M, C),
        Backend = py_web_opts:backend(Interface, O),
        {SM, SC} = Served,
        {Lifespan, State} = lifespan_startup(Interface, maps:get(lifespan, O),
                                             Backend, SM, SC, maps:with([runner, timeout], O)),
        Listeners = listen(O),
        Transport = case Tls of [] -> gen_tcp; _ -> ssl end,
        Scheme = case Transport of ssl -> <<"https">>; gen_tcp -> <<"http">> end,
        Limits = py_web_limits:new(maps:get(limit_concurrency, O), maps:get(max_requests, O),
                                   self()),
        Cfg = py_web_opts:cfg(O, #{listener => self(), interface => Interface,
                                   backend => Backend, state => State, served => Served,
                                   transport => Transport, tls => Tls, scheme => Scheme,
                                   limits => Limits, multiprocess => py_web:multiprocess()}),
        Acceptors = maps:from_list(
                      [{spawn_link(?MODULE, acceptor, [S, Cfg]), S}
                       || #{socket := S} <- Listeners, _ <- lists:seq(1, maps:get(acceptors, O))]),
        logger:notice("py_web: serving ~ts:~ts (~s) on ~ts",
                      [M, C, Interface,
                       lists:join(", ", [py_web_bind:url({Scheme, L}) || L <- Listeners])],
                      #{py_web => server}),
        {ok, #ls{listeners = Listeners, cfg = Cfg, acceptors = Acceptors,
                 lifespan = Lifespan, shutdown_timeout = maps:get(shutdown_timeout, O),
                 on_max_requests = maps:get(on_max_requests, O)}}
    catch
        throw:{stop, Reason} -> {stop, Reason}
    end.

%% The interface and the names to serve the app under. Python is asked when
%% the interface is to be detected, for an app factory, and for the real
%% backends anyway (so that an app that cannot be imported stops the start
%% rather than failing every request); not for test doubles with an
%% explicit interface.
load(auto, Factory, _O, M, C) ->
    ask(auto, Factory, M, C);
load(I, Factory, O, M, C) ->
    case Factory orelse lists:member(py_web_opts:backend(I, O), [py_asgi, py_wsgi]) of
        true -> ask(I, Factory, M, C);
        false -> {I, {M, C}}
    end.

ask(I, Factory, M, C) ->
    case py_web:load_app(M, C, Factory) of
        {ok, #{interface := Detected, module := M1, callable := C1, factory := How}} ->
            How =:= detected andalso
                logger:warning("py_web: ~ts:~ts takes no arguments: taken for an app factory, "
                               "the app is what it returns (say so with --factory, or "
                               "factory => true)", [M, C], #{py_web => server}),
            {case I of auto -> Detected; _ -> I end, {M1, C1}};
        {error, {app_load_failed, _, _, _} = R} ->
            throw({stop, R});
        {error, R} when I =:= auto ->
            throw({stop, {interface_detection_failed, R}});
        {error, R} when Factory ->
            throw({stop, R});
        {error, _} ->
            %% no Python to ask (erlang_python not running): requests will say why
            {I, {M, C}}
    end.

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
            logger:error("py_web: lifespan startup of ~ts:~ts failed: ~ts",
                         [M, C, startup_error(Reason)], #{py_web => app}),
            throw({stop, {lifespan_startup_failed, Reason}});
        Other ->
            throw({stop, {lifespan_startup_failed, Other}})
    end.

startup_error({python, <<"hornbeam_asgi_runner.LifespanFailure">>, Msg, _}) ->
    Msg;     %% the app's own report (often its traceback)
startup_error({python, _, _, Tb} = P) when Tb =/= [] ->
    [py_web_log:reason(P), $\n, [[L, $\n] || L <- Tb]];
startup_error(R) ->
    py_web_log:reason(R).

%% The listening sockets: the `bind' addresses, else `ip' and `port'.
listen(O) ->
    Binds = case maps:get(bind, O) of
                [] ->
                    Ip = maps:get(ip, O),
                    [{tcp, Ip, maps:get(port, O), list_to_binary(inet:ntoa(Ip))}];
                Bs ->
                    Bs
            end,
    %% `buffer': the driver reads up to this much at a time (1460 bytes by default:
    %% a 1 MiB upload would be 718 messages). An idle connection holds none of it.
    %% Measured (bin/pyweb, 1 MiB POST echoed, 10 connections, 5 interleaved wrk
    %% rounds): CPU per request 7.3 ms with 1460, 2.1 ms with 65536; hello requests and
    %% the RSS of 2,000 idle keep-alive connections unchanged.
    Opts = #{backlog => maps:get(backlog, O), reuse_port => maps:get(reuse_port, O),
             socket_opts => [binary, {packet, raw}, {active, false}, {nodelay, true},
                             {buffer, maps:get(read_buffer, O)},
                             {send_timeout, 30000}, {send_timeout_close, true}]},
    lists:foldl(fun(B, Acc) ->
                        case py_web_bind:listen(B, Opts) of
                            {ok, L} -> Acc ++ [L];
                            {error, R} ->
                                _ = [py_web_bind:close(L) || L <- Acc],
                                throw({stop, R})
                        end
                end, [], Binds).

%% @private
-spec handle_call(term(), gen_server:from(), #ls{}) -> {reply, term(), #ls{}}.
handle_call(port, _From, St) ->
    {reply, port(St), St};
handle_call(info, _From, St = #ls{cfg = Cfg}) ->
    {reply, #{port => port(St),
              listeners => [py_web_bind:url({Cfg#cfg.scheme, L}) || L <- St#ls.listeners],
              interface => Cfg#cfg.interface,
              app => {Cfg#cfg.module, Cfg#cfg.callable},
              scheme => Cfg#cfg.scheme,
              connections => map_size(St#ls.conns),
              requests => py_web_limits:requests(Cfg#cfg.limits),
              lifespan => St#ls.lifespan =/= undefined}, St};
handle_call(_, _From, St) ->
    {reply, {error, badcall}, St}.

%% The first TCP port (undefined when only Unix sockets are listened on).
port(#ls{listeners = Ls}) ->
    case [P || #{port := P} <- Ls] of
        [P | _] -> P;
        [] -> undefined
    end.

%% @private
-spec handle_cast(term(), #ls{}) -> {noreply, #ls{}} | {stop, normal, #ls{}}.
handle_cast(retire, St) ->
    St1 = close_listeners(St),
    _ = [P ! {py_web, retire} || P <- maps:keys(St1#ls.conns)],
    {stop, normal, St1#ls{retiring = true}};
handle_cast(_, St) ->
    {noreply, St}.

%% @private
-spec handle_info(term(), #ls{}) -> {noreply, #ls{}} | {stop, normal, #ls{}}.
handle_info({py_web_conn, Pid}, St = #ls{conns = C}) ->
    %% from the connection itself: its exit comes after it
    {noreply, St#ls{conns = C#{Pid => true}}};
handle_info({py_web_accepted, Pid}, St = #ls{conns = C}) ->
    %% from its acceptor (see terminate/2): maybe after the connection's exit
    case is_process_alive(Pid) of
        true -> {noreply, St#ls{conns = C#{Pid => true}}};
        false -> {noreply, St}
    end;
handle_info({py_web, max_requests}, St = #ls{on_max_requests = stop, cfg = Cfg}) ->
    logger:notice("py_web: ~B requests served (max_requests): stopping",
                  [py_web_limits:requests(Cfg#cfg.limits)], #{py_web => server}),
    {stop, normal, St};
handle_info({py_web, max_requests}, St = #ls{on_max_requests = Pid}) ->
    Pid ! {py_web, max_requests, self()},
    {noreply, St};
handle_info({'EXIT', Pid, Reason}, St = #ls{conns = C, acceptors = A, cfg = Cfg}) ->
    case C of
        #{Pid := _} ->
            py_web_limits:closed(Cfg#cfg.limits),
            {noreply, St#ls{conns = maps:remove(Pid, C)}};
        _ ->
            case A of
                #{Pid := S} when St#ls.open ->
                    logger:error("py_web: acceptor exited: ~ts", [py_web_log:reason(Reason)],
                                 #{py_web => server}),
                    New = spawn_link(?MODULE, acceptor, [S, Cfg]),
                    {noreply, St#ls{acceptors = (maps:remove(Pid, A))#{New => S}}};
                _ ->
                    {noreply, St#ls{acceptors = maps:remove(Pid, A)}}
            end
    end;
handle_info(_, St) ->
    {noreply, St}.

close_listeners(St = #ls{open = false}) ->
    St;
close_listeners(St = #ls{listeners = Ls}) ->
    _ = [py_web_bind:close(L) || L <- Ls],
    St#ls{open = false}.

%% @private
-spec terminate(term(), #ls{}) -> ok.
terminate(_Reason, St0 = #ls{cfg = Cfg}) ->
    St = case St0#ls.open of
             true ->
                 St1 = close_listeners(St0),
                 _ = [P ! {py_web, drain} || P <- maps:keys(St1#ls.conns)],
                 St1;
             false ->
                 St0     %% retiring: the connections were told already
         end,
    Deadline = case St#ls.shutdown_timeout of
                   infinity -> infinity;
                   T -> erlang:monotonic_time(millisecond) + T
               end,
    Left = drain(acceptors_gone(St#ls.acceptors, St#ls.conns, St), Deadline, St),
    case map_size(Left) of
        0 -> ok;
        N ->
            logger:warning("py_web: shutdown timeout: ~B request(s) still in flight cut",
                           [N], #{py_web => server}),
            _ = [P ! {py_web, cut} || P <- maps:keys(Left)],
            Killed = drain(Left, erlang:monotonic_time(millisecond) + ?CUT_GRACE, St),
            _ = [exit(P, kill) || P <- maps:keys(Killed)]
    end,
    lifespan_shutdown(Cfg#cfg.backend, St#ls.lifespan),
    ok.

%% The acceptors end once the listening sockets are closed; one may have
%% accepted a connection just before, which it registers before it ends:
%% wait for them all, so that no such connection is left out of the drain
%% (retiring, its client is owed an answer; the server taking over never
%% sees it). Bounded: an acceptor is ended after ?CUT_GRACE.
acceptors_gone(Acceptors, Conns, _St) when map_size(Acceptors) =:= 0 ->
    Conns;
acceptors_gone(Acceptors, Conns, St) ->
    receive
        {'EXIT', P, _} when is_map_key(P, Acceptors) ->
            acceptors_gone(maps:remove(P, Acceptors), Conns, St);
        {'EXIT', P, _} when is_map_key(P, Conns) ->
            acceptors_gone(Acceptors, maps:remove(P, Conns), St);
        {py_web_conn, P} ->
            acceptors_gone(Acceptors, late_conn(P, Conns, St), St);
        {py_web_accepted, P} ->
            acceptors_gone(Acceptors, late_accepted(P, Conns, St), St)
    after ?CUT_GRACE ->
        _ = [exit(P, kill) || P <- maps:keys(Acceptors)],
        Conns
    end.

drain(Conns, _Deadline, _St) when map_size(Conns) =:= 0 ->
    Conns;
drain(Conns, Deadline, St) ->
    T = case Deadline of
            infinity -> infinity;
            _ -> max(0, Deadline - erlang:monotonic_time(millisecond))
        end,
    receive
        {'EXIT', P, _} -> drain(maps:remove(P, Conns), Deadline, St);
        {py_web_conn, P} -> drain(late_conn(P, Conns, St), Deadline, St);
        {py_web_accepted, P} -> drain(late_accepted(P, Conns, St), Deadline, St)
    after T ->
        Conns
    end.

%% A connection accepted before the sockets closed, registered while the
%% server stops: told what the others were told. Its own registration
%% (py_web_conn) comes before its exit; its acceptor's (py_web_accepted)
%% may come after it, and is then left out.
late_conn(P, Conns, _St) when is_map_key(P, Conns) ->
    Conns;
late_conn(P, Conns, St) ->
    P ! case St#ls.retiring of true -> {py_web, retire}; false -> {py_web, drain} end,
    Conns#{P => true}.

late_accepted(P, Conns, St) ->
    case is_process_alive(P) of
        true -> late_conn(P, Conns, St);
        false -> Conns
    end.

lifespan_shutdown(_Backend, undefined) -> ok;
lifespan_shutdown(Backend, Lifespan) ->
    case catch Backend:lifespan_shutdown(Lifespan) of
        ok -> ok;
        Other ->
            logger:error("py_web: lifespan shutdown failed: ~ts", [py_web_log:reason(Other)],
                         #{py_web => server})
    end.

%%====================================================================
%% Acceptors
%%====================================================================

%% @private
-spec acceptor(inet:socket(), #cfg{}) -> no_return().
acceptor(LSock, Cfg) ->
    case py_web_transport:accept(LSock, infinity) of
        {ok, Sock} ->
            {ok, Pid} = py_web_conn:start(Cfg, Sock),
            _ = case gen_tcp:controlling_process(Sock, Pid) of
                ok ->
                    Pid ! {py_web_go, Sock},
                    %% also said by the connection itself; this one reaches the
                    %% listener before this acceptor's exit (see terminate/2)
                    Cfg#cfg.listener ! {py_web_accepted, Pid};
                {error, _} -> exit(Pid, kill), gen_tcp:close(Sock)
            end,
            acceptor(LSock, Cfg);
        {error, closed} ->
            exit(normal);
        {error, Reason} ->
            %% emfile and friends: back off instead of spinning.
            logger:warning("py_web: accept failed: ~ts", [py_web_log:reason(Reason)],
                           #{py_web => server}),
            timer:sleep(100),
            acceptor(LSock, Cfg)
    end.
