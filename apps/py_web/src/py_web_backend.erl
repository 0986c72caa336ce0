%% @doc The contract between py_web and what runs the app: `py_asgi' and
%% `py_wsgi' keep it (erlang_python does not depend on py_web, so they do
%% not name this behaviour), and so do the test doubles.
%%
%% start/4 starts the app on one request and returns a stream owned by the
%% caller; the caller then receives `{asgi | wsgi, Stream, Event}' (see
%% event()): `{start, Status, Headers}' once (or, as the `coalesce => true' start option
%% allows, `{start, Status, Headers, Next}': the start and the event after it in one
%% message; and `{then, Last, Next}': a response's last event and what came after it,
%% the end as a rule), then the body (ASGI
%% `{body, Chunk, More}', WSGI `{body, Chunk}', each acknowledged with
%% ack/2 once written), `need_body' when the app waits for request body
%% (answered with send_body/3), and `done' or `{error, Reason}' at the end.
%% If the owner dies or calls disconnect/1 the app sees the client gone.
%% py_web_exchange turns these events into what to send.
-module(py_web_backend).

-include("py_web.hrl").

-export([start/4, start_websocket/3]).
-export_type([stream/0, event/0]).

-type stream() :: term().
-type event() :: {start, integer() | binary(), [{binary(), binary()}]}
               | {start, integer() | binary(), [{binary(), binary()}], event()}
               | {then, event(), event()}
               | {body, binary(), boolean()}        %% ASGI
               | {body, binary()}                   %% WSGI
               | {trailers, [{binary(), binary()}], boolean()}
               | need_body | done | {error, term()}.

%% The options: `body' (the request body read so far) and `more_body'
%% (more follows, `need_body'); or, WSGI only, `body_file': the whole body is
%% in this file (wsgi.input reads it; `body' is empty, `more_body' false);
%% `coalesce' true: the backend may merge the start event, and a response's last event,
%% with the next one.
-callback start(Module :: binary(), Callable :: binary(), ScopeOrEnviron :: map(),
                #{body := binary(), more_body := boolean(), body_file => binary(),
                  coalesce => boolean(), atom() => term()}) ->
    {ok, stream()} | {error, term()}.
-callback send_body(stream(), binary(), More :: boolean()) -> ok.
-callback ack(stream(), Bytes :: non_neg_integer()) -> ok.
-callback disconnect(stream()) -> ok.
%% ASGI backends, websocket streams (py_asgi:start/4 documents the events): a message from
%% the client, and the end of the connection.
-callback ws_receive(stream(), {text | binary, binary()}) -> ok.
-callback ws_disconnect(stream(), Code :: 1000..4999, Reason :: binary()) -> ok.
%% ASGI backends: the lifespan protocol (py_web_listener runs it).
-callback lifespan_startup(Module :: binary(), Callable :: binary(), map()) ->
    {ok, Lifespan :: term(), State :: map()} | {error, unsupported | term()}.
-callback lifespan_shutdown(Lifespan :: term()) -> ok | {error, term()}.
-optional_callbacks([lifespan_startup/3, lifespan_shutdown/1, ws_receive/2,
                     ws_disconnect/3]).

%% @doc Start the configured app on a request: the ASGI scope or the WSGI
%% environ is built from Req, Body is the request body already read (or
%% `{file, Path}', a WSGI body spooled whole to a file) and More whether
%% more will follow (`need_body'). A backend that raises is an error, not a
%% crash of the caller.
-spec start(#req{}, #cfg{}, binary() | {file, binary()}, boolean()) ->
          {ok, stream()} | {error, term()}.
start(Req, Cfg = #cfg{interface = I, backend = B, module = M, callable = C,
                      call_opts = O}, Body, More) ->
    Env = case I of
              asgi -> py_web_asgi:scope(Req, Cfg);
              wsgi -> py_web_wsgi:environ(Req, Cfg)
          end,
    Opts = case Body of
               {file, Path} -> O#{body => <<>>, more_body => false, body_file => Path,
                                  coalesce => true};
               _ -> O#{body => Body, more_body => More, coalesce => true}
           end,
    call_start(B, M, C, Env, Opts).

%% @doc Start the configured ASGI app on a WebSocket opening handshake (its websocket
%% scope, with the subprotocols the client offered).
-spec start_websocket(#req{}, #cfg{}, [binary()]) -> {ok, stream()} | {error, term()}.
start_websocket(Req, Cfg = #cfg{backend = B, module = M, callable = C, call_opts = O},
                Subprotocols) ->
    call_start(B, M, C, py_web_asgi:websocket_scope(Req, Cfg, Subprotocols),
               O#{body => <<>>, more_body => false, coalesce => true}).

call_start(B, M, C, Env, Opts) ->
    try B:start(M, C, Env, Opts) of
        {ok, Stream} -> {ok, Stream};
        {error, _} = E -> E;
        Other -> {error, {bad_return, Other}}
    catch
        Class:Reason:Stack -> {error, {Class, Reason, Stack}}
    end.
