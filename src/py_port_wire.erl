%% @doc The frames between Erlang and a worker process of the processes mode (the one
%% owner of their layout on the Erlang side; python/hornbeam_port/wire.py owns the Python
%% side).  docs/processes.md describes the wire.
%%
%% Every frame, inside the port's 4-byte length prefix (`{packet, 4}'), is
%% `<<Op:8, Id:64, HeadLen:32, Head:HeadLen/binary, Payload/binary>>': fixed fields and
%% external-format terms in the head, raw bytes (a request or response body) as the
%% payload.  Frames to Python are iolists: the port writes a body binary as it is
%% (writev), and a body from Python is a sub-binary of the port's message: neither is
%% copied by Erlang.
-module(py_port_wire).

-export([init/1, call/6, wsgi_run/5, asgi_run/5, wsgi_start/5, asgi_start/5,
         feed/3, ack/2, disconnect/1, ws_receive/3, ws_disconnect/3, cancel/1,
         lifespan_startup/4, lifespan_shutdown/3, drain/0, decode/1, scope/2]).

%% Erlang -> Python
-define(CALL, 1).
-define(WSGI_RUN, 2).
-define(ASGI_RUN, 3).
-define(WSGI_START, 4).
-define(ASGI_START, 5).
-define(FEED, 6).
-define(ACK, 7).
-define(DISCONNECT, 8).
-define(CANCEL, 9).
-define(LIFESPAN_STARTUP, 10).
-define(LIFESPAN_SHUTDOWN, 11).
-define(DRAIN, 12).
-define(INIT, 13).
-define(WS_RECEIVE, 14).
-define(WS_DISCONNECT, 15).

-define(INFINITY, 16#FFFFFFFF).

-type id() :: non_neg_integer().
-type names() :: {py:name(), py:name(), py:name()}.
-type event() :: reply | response | start | body | trailers | need_body | done | cancelled
               | log | ready | exiting | ws_event | ws_send.
-export_type([id/0, names/0, event/0]).

-spec init(map()) -> iodata().
init(Config) ->
    frame(?INIT, 0, term_to_binary(Config), <<>>).

-spec call(id(), timeout(), py:name(), py:name(), list(), map()) -> iodata().
call(Id, Timeout, Module, Function, Args, Kwargs) ->
    frame(?CALL, Id, [timeout(Timeout), term_to_binary({Module, Function}),
                      term_to_binary(Args), term_to_binary(Kwargs)], <<>>).

%% The environ without wsgi.input (that is the payload) and wsgi.errors (always the
%% logger's stream).
-spec wsgi_run(id(), timeout(), names(), map(), binary()) -> iodata().
wsgi_run(Id, Timeout, Names, Environ, Input) ->
    frame(?WSGI_RUN, Id, [timeout(Timeout), term_to_binary(Names), environ(Environ)], Input).

%% Scope: the encoded scope from scope/2.
-spec asgi_run(id(), timeout(), names(), binary(), binary()) -> iodata().
asgi_run(Id, Timeout, Names, Scope, Body) ->
    frame(?ASGI_RUN, Id, [timeout(Timeout), term_to_binary(Names), Scope], Body).

-spec wsgi_start(id(), names(), map(), binary(), boolean()) -> iodata().
wsgi_start(Id, Names, Environ, Body, More) ->
    frame(?WSGI_START, Id, [flag(More), term_to_binary(Names), environ(Environ)], Body).

-spec asgi_start(id(), names(), binary(), binary(), boolean()) -> iodata().
asgi_start(Id, Names, Scope, Body, More) ->
    frame(?ASGI_START, Id, [flag(More), term_to_binary(Names), Scope], Body).

-spec feed(id(), binary(), boolean()) -> iodata().
feed(Id, Chunk, More) ->
    frame(?FEED, Id, flag(More), Chunk).

-spec ack(id(), non_neg_integer()) -> iodata().
ack(Id, Bytes) ->
    frame(?ACK, Id, <<Bytes:64>>, <<>>).

-spec disconnect(id()) -> iodata().
disconnect(Id) ->
    frame(?DISCONNECT, Id, <<>>, <<>>).

%% A websocket stream's message from the client (text: UTF-8, as the server checked).
-spec ws_receive(id(), text | binary, binary()) -> iodata().
ws_receive(Id, Kind, Data) ->
    frame(?WS_RECEIVE, Id, case Kind of text -> <<0>>; binary -> <<1>> end, Data).

%% A websocket stream's end: the close code and reason (websocket.disconnect).
-spec ws_disconnect(id(), integer(), binary()) -> iodata().
ws_disconnect(Id, Code, Reason) ->
    frame(?WS_DISCONNECT, Id, <<Code:32/signed>>, Reason).

-spec cancel(id()) -> iodata().
cancel(Id) ->
    frame(?CANCEL, Id, <<>>, <<>>).

-spec lifespan_startup(id(), timeout(), non_neg_integer(), names()) -> iodata().
lifespan_startup(Id, Timeout, Lifespan, Names) ->
    frame(?LIFESPAN_STARTUP, Id, [timeout(Timeout), <<Lifespan:64>>, term_to_binary(Names)], <<>>).

-spec lifespan_shutdown(id(), timeout(), non_neg_integer()) -> iodata().
lifespan_shutdown(Id, Timeout, Lifespan) ->
    frame(?LIFESPAN_SHUTDOWN, Id, [timeout(Timeout), <<Lifespan:64>>], <<>>).

%% Finish every request, then exit.
-spec drain() -> iodata().
drain() ->
    frame(?DRAIN, 0, <<>>, <<>>).

%% @doc A scope map (validated) in its wire form: a `state' that is a lifespan of the
%% processes mode becomes `{lifespan, Id}' (the worker's own copy of that lifespan's
%% state).  `Lifespan' maps a state to that Id, or `none'.
-spec scope(map(), fun((term()) -> non_neg_integer() | none)) -> binary().
scope(#{state := State} = Scope, Lifespan) when not is_map(State) ->
    case Lifespan(State) of
        none -> term_to_binary(Scope);
        Id -> term_to_binary(Scope#{state := {lifespan, Id}})
    end;
scope(Scope, _Lifespan) ->
    term_to_binary(Scope).

%% @doc A frame from Python.  Crashes on anything else (the worker treats that as a
%% protocol error).
-spec decode(binary()) -> {event(), id(), binary(), binary()}.
decode(<<Op, Id:64, HeadLen:32, Head:HeadLen/binary, Payload/binary>>) ->
    {event(Op), Id, Head, Payload}.

event(1) -> reply;
event(2) -> response;
event(3) -> start;
event(4) -> body;
event(5) -> trailers;
event(6) -> need_body;
event(7) -> done;
event(8) -> cancelled;
event(9) -> log;
event(10) -> ready;
event(11) -> exiting;
event(12) -> ws_event;
event(13) -> ws_send.

frame(Op, Id, Head, Payload) ->
    [<<Op, Id:64, (iolist_size(Head)):32>>, Head, Payload].

timeout(infinity) -> <<?INFINITY:32>>;
timeout(T) when T >= ?INFINITY -> <<(?INFINITY - 1):32>>;
timeout(T) -> <<T:32>>.

flag(true) -> <<1>>;
flag(false) -> <<0>>.

environ(Environ) ->
    term_to_binary(maps:without([<<"wsgi.input">>, <<"wsgi.errors">>], Environ)).
