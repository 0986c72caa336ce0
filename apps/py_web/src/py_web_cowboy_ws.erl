%% @doc The WebSocket side of py_web_cowboy: once the app has accepted an opening handshake
%% (py_web_cowboy waits for its answer and answers denials and errors as HTTP), the
%% connection runs through cowboy_websocket with this module as its handler, with the same
%% events for the app as the embedded server gives (py_web_ws_conn).
%%
%% Cowboy does the framing, the close handshake, UTF-8 validation and permessage-deflate
%% (its `compress' option) itself; what this module maps:
%% <ul>
%% <li>options: `ws_max_size' is Cowboy's `max_frame_size' (a message over it closes with
%%     1009), `ws_ping_interval' a ping sent after that long without a frame from the
%%     client, `ws_ping_interval' + `ws_ping_timeout' Cowboy's `idle_timeout',
%%     `ws_per_message_deflate' its `compress';</li>
%% <li>the app's messages become frames; each is acknowledged to the app when the handler
%%     hands the next command over (Cowboy writes a command's frames before it calls the
%%     handler again); `pause_reading'/`resume_reading' are Cowboy's `{active, false}' and
%%     `{active, true}';</li>
%% <li>the app returning closes with 1000 (unless it closed), raising with 1011 (logged), a
%%     close code it may not use with 1011 (logged);</li>
%% <li>terminate/3 tells the app the end: the peer's code (1005 without one), or 1006.</li>
%% </ul>
%% Cowboy runs init/2 in a request process and the websocket in the connection process,
%% and a stream's events go to the process that started it: so the app is started by a
%% relay process (start/3) that forwards its events to the request process until the
%% accept, then to the connection process once websocket_init/1 attaches it (one more
%% message hop per event than the embedded server).  The relay stops with the stream, and
%% tells the app 1006 if the process it serves dies.
-module(py_web_cowboy_ws).

-include("py_web.hrl").

%% Cowboy is optional (not a dependency): its calls are unresolved here.
-ignore_xref([cowboy_req]).

-export([start/3, options/1, init_state/5]).
-export([websocket_init/1, websocket_handle/2, websocket_info/2, terminate/3]).

-record(s, {
    backend :: module(),
    stream :: term(),
    relay :: pid(),
    label :: {binary(), binary()},
    ping_interval :: pos_integer() | infinity,
    last_frame :: integer(),
    app_done = false :: boolean(),
    closing = false :: boolean(),
    close_code = 1006 :: 1000..4999  %% what the app hears when the server closed
}).

%% @doc Start the app on a handshake (py_web_backend:start_websocket/3) from a relay
%% process; its events arrive as `{asgi, Stream, Event}' to the caller.
-spec start(#req{}, #cfg{}, [binary()]) -> {ok, term(), pid()} | {error, term()}.
start(R, Cfg, Offered) ->
    Parent = self(),
    Tag = make_ref(),
    {Pid, Mon} = spawn_monitor(fun() -> relay_init(Parent, Tag, R, Cfg, Offered) end),
    receive
        {Tag, {ok, Stream}} -> demonitor(Mon, [flush]), {ok, Stream, Pid};
        {Tag, Error} -> demonitor(Mon, [flush]), Error;
        {'DOWN', Mon, process, Pid, Why} -> {error, {websocket_relay, Why}}
    end.

relay_init(Parent, Tag, R, Cfg = #cfg{backend = B}, Offered) ->
    Mon = monitor(process, Parent),
    case py_web_backend:start_websocket(R, Cfg, Offered) of
        {ok, Stream} ->
            Parent ! {Tag, {ok, Stream}},
            relay(B, Stream, Parent, Mon, handshake);
        Error ->
            Parent ! {Tag, Error}
    end.

%% handshake: to the request process; attach: the accept went out, waiting for the
%% connection process; open: to the connection process.
relay(B, S, To, Mon, Phase) ->
    receive
        {asgi, S, Ev} when Phase =/= attach ->
            To ! {asgi, S, Ev},
            case Ev of
                done -> ok;
                {error, _} -> ok;
                {accept, _, _} -> relay(B, S, To, Mon, attach);
                _ -> relay(B, S, To, Mon, Phase)
            end;
        {py_web_cowboy_ws, attach, Conn} when Phase =:= attach ->
            demonitor(Mon, [flush]),
            relay(B, S, Conn, monitor(process, Conn), open);
        {'DOWN', Mon, process, _, _} when Phase =/= attach ->
            catch B:disconnect(S)
    after relay_timeout(Phase) ->
        catch B:disconnect(S)   %% the upgrade never happened
    end.

relay_timeout(attach) -> 10000;
relay_timeout(_) -> infinity.

%% @doc cowboy_websocket's options for the websocket options of a route.
-spec options(py_web_ws:opts()) -> map().
options(#{max_message_size := Max, ping_interval := I, ping_timeout := T, deflate := D}) ->
    #{max_frame_size => Max,
      idle_timeout => case {I, T} of
                          {infinity, _} -> infinity;
                          {_, infinity} -> infinity;
                          _ -> I + T
                      end,
      compress => D =/= false}.

%% @doc The handler state of an accepted websocket.
-spec init_state(module(), term(), pid(), {binary(), binary()}, py_web_ws:opts()) -> #s{}.
init_state(Backend, Stream, Relay, Label, #{ping_interval := I}) ->
    #s{backend = Backend, stream = Stream, relay = Relay, label = Label, ping_interval = I,
       last_frame = now_ms()}.

-type commands() :: [{text | binary, binary()} | {close, 1000..4999, binary()} | ping
                    | {active, boolean()}].

%% @private The connection process hibernates once the websocket is open (its heap shrinks
%% to what it holds, not the heap the HTTP exchange grew), and again each time the
%% keepalive finds it idle (a ping after `ws_ping_interval' without a frame), as the
%% embedded server's connections do (py_web_ws_conn).
-spec websocket_init(#s{}) -> {commands(), #s{}, hibernate}.
websocket_init(S = #s{relay = Relay}) ->
    Relay ! {py_web_cowboy_ws, attach, self()},
    {[], ping_timer(S#s{last_frame = now_ms()}), hibernate}.

%% @private
-spec websocket_handle(term(), #s{}) -> {commands(), #s{}}.
websocket_handle({Kind, Data}, S = #s{backend = B, stream = St}) when Kind =:= text;
                                                                   Kind =:= binary ->
    B:ws_receive(St, {Kind, Data}),
    {[], S#s{last_frame = now_ms()}};
websocket_handle(_Frame, S) ->
    {[], S#s{last_frame = now_ms()}}.

%% @private
-spec websocket_info(term(), #s{}) -> {commands(), #s{}} | {commands(), #s{}, hibernate}.
websocket_info({asgi, St, Event}, S = #s{stream = St}) ->
    app_event(Event, S);
websocket_info({py_web_cowboy_ws, ping}, S = #s{last_frame = Last, ping_interval = I}) ->
    case now_ms() - Last >= I of
        true -> {[ping], ping_timer(S), hibernate};
        false -> {[], ping_timer(S)}
    end;
websocket_info(_Other, S) ->
    {[], S}.

app_event({send, Kind, Data}, S = #s{backend = B, stream = St, closing = false}) ->
    B:ack(St, byte_size(Data)),
    {[{Kind, Data}], S};
app_event({send, _, Data}, S = #s{backend = B, stream = St}) ->
    B:ack(St, byte_size(Data)),
    {[], S};
app_event({close, Code, Reason}, S = #s{label = {M, P}, closing = false}) ->
    case is_integer(Code) andalso py_web_ws_frame:valid_close_code(Code) of
        true ->
            {[{close, Code, Reason}], S#s{closing = true, close_code = Code}};
        false ->
            py_web_log:app_error(M, P, {bad_websocket_close_code, Code}),
            {[{close, 1011, <<>>}], S#s{closing = true}}
    end;
app_event(pause_reading, S) ->
    {[{active, false}], S};
app_event(resume_reading, S) ->
    {[{active, true}], S};
app_event(done, S) ->
    close(1000, S#s{app_done = true});
app_event({error, Reason}, S = #s{label = {M, P}}) ->
    py_web_log:app_error(M, P, Reason),
    close(1011, S#s{app_done = true});
app_event(_Other, S) ->
    {[], S}.

close(_Code, S = #s{closing = true}) -> {[], S};
close(Code, S) -> {[{close, Code, <<>>}], S#s{closing = true, close_code = Code}}.

%% @private The end: the app hears the code (unless it has returned).
-spec terminate(term(), map(), term()) -> ok.
terminate(_Reason, _Req, #s{app_done = true}) ->
    ok;
terminate(Reason, _Req, #s{backend = B, stream = St, close_code = Closed}) ->
    {Code, Text} = case Reason of
                       {remote, C, R} -> {C, R};
                       remote -> {1005, <<>>};
                       stop -> {Closed, <<>>};
                       {error, badframe} -> {1002, <<>>};
                       {error, badencoding} -> {1007, <<>>};
                       {error, badsize} -> {1009, <<>>};
                       _ -> {1006, <<>>}
                   end,
    B:ws_disconnect(St, Code, Text),
    ok;
terminate(_Reason, _Req, _HttpState) ->
    ok.

ping_timer(S = #s{ping_interval = infinity}) ->
    S;
ping_timer(S = #s{ping_interval = I}) ->
    erlang:send_after(I, self(), {py_web_cowboy_ws, ping}),
    S.

now_ms() -> erlang:monotonic_time(millisecond).
