%% @doc ASGI 3.0 applications (HTTP spec_version 2.4) through the NIF's ASGI path.
%%
%% ```
%% Scope = #{type => <<"http">>, method => <<"GET">>, path => <<"/api/users">>,
%%           query_string => <<"id=123">>, headers => [{<<"host">>, <<"localhost">>}]},
%% {ok, {200, Headers, Body}} = py_asgi:run(<<"myapp">>, <<"app">>, Scope, <<>>).
%% '''
%%
%% Scope: a map with atom keys.  Required: `type' and `path' (binaries).  `path' is the
%% request path as received (it may be percent-encoded): the app's scope["path"] is its
%% percent-decoded UTF-8 str, and scope["raw_path"] the bytes as given (unless `raw_path'
%% is set).  Optional, with defaults: `asgi' (map, default version "3.0", spec_version
%% "2.4"), `http_version' (`<<"1.1">>'), `method' (`<<"GET">>'), `scheme' (`<<"http">>'),
%% `raw_path' (= path), `query_string' (`<<>>', reaches the app as bytes), `root_path'
%% (`<<>>'), `headers' (`[{Name, Value}]' or `[[Name, Value]]' binaries, arrival order,
%% duplicates kept; names are lower-cased; both reach the app as bytes), `server' and
%% `client' (`{Host, Port}' or `undefined'; default None), `state' (map, default a new
%% dict for each request), `extensions' (map).  Anything else, or a value of the wrong
%% type, is `{error, {bad_scope, Field}}' without running Python.  A websocket scope
%% (see {@link start/4}) runs as a stream only: run/5 refuses it with
%% `{error, {bad_scope, type}}'.
%%
%% Result: `{ok, {Status, Headers, Body}}' (integer status, `[{Name, Value}]' binaries in
%% the app's order with duplicates kept, the whole body).  Errors: `{error, {bad_scope,
%% Field}}', `{error, {python, Type, Message, Traceback}}' (the app raised, or broke the
%% ASGI protocol: the runner raises RuntimeError for body before start, start twice,
%% messages after the end, or returning before the response was complete),
%% `{error, {bad_runner, Message}}', `{error, {bad_response, Message}}',
%% `{error, {badarg, What}}', `{error, timeout}', `{error, not_started}'.
-module(py_asgi).

-export([run/4, run/5, build_scope/1, build_scope/2]).
-export([start/4, send_body/3, ack/2, disconnect/1, ws_receive/2, ws_disconnect/3]).
-export([lifespan_startup/3, lifespan_shutdown/1, lifespan_shutdown/2]).

-include("py_await.hrl").

-define(DEFAULT_RUNNER, <<"hornbeam_asgi_runner">>).

-type scope() :: #{type := binary(), path := binary(), atom() => term()}.
-type scope_ref() :: reference() | py_port:scope_ref().
-type headers() :: [{binary(), binary()}].
-type response() :: {100..999, headers(), binary()}.
-type opts() :: #{runner => py:name(), timeout => timeout()}.
-type error() :: {bad_scope, term()} | {bad_runner, binary()} | {bad_response, binary()}
               | py:error().
-type stream() :: reference() | py_port:stream().
-type lifespan() :: reference().
-type stream_opts() :: #{runner => py:name(), body => binary(), more_body => boolean(),
                         coalesce => boolean()}.
-type event() :: {start, 100..999, headers()} | {body, binary(), boolean()}
               | {start, 100..999, headers(), event()} | {then, event(), event()}
               | {trailers, headers(), boolean()} | need_body | done | {error, error()}
               | ws_event().
%% The events of a websocket stream besides start, body, done and error.
-type ws_event() :: {accept, binary() | undefined, headers()}
                  | {send, text | binary, binary()} | {close, integer(), binary()}
                  | pause_reading | resume_reading.
-type ws_message() :: {text, binary()} | {binary, binary()}.
-export_type([scope/0, scope_ref/0, response/0, opts/0, error/0, stream/0, stream_opts/0,
              event/0, ws_event/0, ws_message/0, lifespan/0]).

%% @equiv run(Module, Callable, Scope, Body, #{})
-spec run(py:name(), py:name(), scope() | scope_ref(), binary()) ->
          {ok, response()} | {error, error()}.
run(Module, Callable, Scope, Body) ->
    run(Module, Callable, Scope, Body, #{}).

%% @doc Runs the ASGI app `Module.Callable' for one HTTP request with the whole request
%% `Body', through the runner module's `async run_asgi(app, scope, body)'.  `Scope' is a
%% map or a reference from {@link build_scope/1}.  Options: `runner' (default
%% `<<"hornbeam_asgi_runner">>'), `timeout' (ms or infinity; default the application's
%% `call_timeout').
-spec run(py:name(), py:name(), scope() | scope_ref(), binary(), opts()) ->
          {ok, response()} | {error, error()}.
run(Module, Callable, Scope, Body, Opts) when is_map(Opts) ->
    case py_opts:timeout(Opts) of
        {ok, Timeout} ->
            Runner = maps:get(runner, Opts, ?DEFAULT_RUNNER),
            case py_mode:backend() of
                nif ->
                    py_mode:with_fallback(
                      fun() ->
                              Tag = make_ref(),
                              case py_nif:asgi_run(Tag, Timeout, Module, Callable, Runner, Scope,
                                                   Body) of
                                  {ok, _Job} -> normalise(?PY_AWAIT(Tag));
                                  {error, _} = Error -> Error
                              end
                      end);
                port ->
                    py_port:asgi_run(Module, Callable, Runner, Scope, Body, Timeout)
            end;
        {error, _} = Error -> Error
    end;
run(_Module, _Callable, _Scope, _Body, Opts) ->
    {error, {badarg, {options, Opts}}}.

%% @equiv build_scope(Scope, #{})
-spec build_scope(scope()) -> {ok, scope_ref()} | {error, {bad_scope, term()}}.
build_scope(Scope) ->
    build_scope(Scope, #{}).

%% @doc Validates `Scope' once and returns a reference usable in place of the map in
%% any number of {@link run/4} calls.  The Python dict is built on first use and copied
%% for each request (the dict, headers, state, asgi and extensions are per-request
%% copies), so no request sees another's changes.  No options are defined yet; pass
%% `#{}'.
-spec build_scope(scope(), #{}) -> {ok, scope_ref()} | {error, {bad_scope, term()}}.
build_scope(Scope, Opts) when Opts =:= #{} ->
    case py_mode:backend() of
        nif -> py_nif:asgi_build_scope(Scope);
        port -> py_port:build_scope(Scope)
    end;
build_scope(_Scope, Opts) ->
    {error, {badarg, {options, Opts}}}.

%% @doc Starts `Module.Callable' on one request as a stream: the response arrives as it is
%% produced and the request body can be fed in pieces.  The calling process owns the
%% stream (it is monitored: if it dies, the app sees http.disconnect) and receives
%% `{asgi, Stream, Event}' messages:
%% <ul>
%% <li>`{start, Status, Headers}' once;</li>
%% <li>`{body, Chunk, MoreBody}' per body message of the app; when `MoreBody' is true,
%%     call `ack(Stream, byte_size(Chunk))' once the chunk is written out: the app's
%%     send() waits when more than 1 MiB is unacknowledged (backpressure).  The last body
%%     message (`MoreBody' false) needs no ack;</li>
%% <li>`{trailers, Headers, More}' when the scope offers the http.response.trailers
%%     extension and the app sends trailers;</li>
%% <li>`need_body' when the app's receive() waits for request body: answer with
%%     `send_body(Stream, Chunk, MoreBody)';</li>
%% <li>`done' when the app returned with its response complete, or
%%     `{error, Reason}' (as for run/5; the app raised or broke the protocol).</li>
%% </ul>
%% Options: `runner', `body' (request body already read, default `<<>>'), `more_body'
%% (whether more will follow through send_body, default false), `coalesce' (default
%% false): when true, the start event produced in the app's first step (before it first
%% waits) may arrive together with the event after it, as one
%% `{start, Status, Headers, Next}' message, which means `{start, Status, Headers}' then
%% `Next'; and the response's last event (`{body, Chunk, false}', with the start when
%% that was held too) produced in the first step may arrive together with what follows,
%% the end of an app that returns in that step, as `{then, Last, Next}', which means
%% `Last' then `Next' (a hello-world response is then one message, not three); the owner
%% must handle these forms.  After
%% `disconnect(Stream)' the app's receive() returns http.disconnect and its send()
%% raises.
%%
%% <b>Websocket scopes</b> (`type => <<"websocket">>', ASGI websocket spec 2.4: the scope
%% has `subprotocols' (binaries, default []) and no `method'; `scheme' defaults to
%% `<<"ws">>').  The app's receive() first gives websocket.connect.  The owner receives:
%% <ul>
%% <li>`{accept, Subprotocol, Headers}' (`Subprotocol' a binary or `undefined'): answer
%%     the handshake (the server checks that the client offered the subprotocol);</li>
%% <li>`{close, Code, Reason}' before accept: deny the handshake with 403; after it: send
%%     this close frame (the server checks the code: 1000-1003, 1007-1014, 3000-4999) and
%%     complete the close handshake;</li>
%% <li>`{start, Status, Headers}' and `{body, Chunk, More}' before accept, when the scope's
%%     `extensions' offer `<<"websocket.http.response">>': a denial response, as for
%%     HTTP (ack bodies with `More' true);</li>
%% <li>`{send, text | binary, Data}': a message (text is UTF-8); call
%%     `ack(Stream, byte_size(Data))' once it is written out (in batches of up to 256 KiB
%%     if you like): the app's send() waits while more than 1 MiB is unacknowledged;</li>
%% <li>`pause_reading' when 32 messages wait for the app's receive(): stop reading from
%%     the client; `resume_reading' when the app has taken half of them;</li>
%% <li>`done' when the app returned (after accept without a close: close with 1000);
%%     `{error, Reason}' when it raised or broke the protocol (send before accept, a
%%     message after close, text that is not str, returning without answering the
%%     handshake): answer 500 before accept, close with 1011 after it, and log.  An app
%%     that lets the OSError of a send() after disconnect through ends with `done'.</li>
%% </ul>
%% The owner feeds `ws_receive(Stream, {text | binary, Data})' per message from the client
%% and `ws_disconnect(Stream, Code, Reason)' once the connection has ended
%% (websocket.disconnect; 1006 when it ended without a close frame; `disconnect(Stream)'
%% and the owner's death are 1006).  `send_body/3' is for HTTP streams only.
-spec start(py:name(), py:name(), scope() | scope_ref(), stream_opts()) ->
          {ok, stream()} | {error, error()}.
start(Module, Callable, Scope, Opts) when is_map(Opts) ->
    Runner = maps:get(runner, Opts, ?DEFAULT_RUNNER),
    Body = maps:get(body, Opts, <<>>),
    More = maps:get(more_body, Opts, false),
    case py_opts:coalesce(Opts) of
        {ok, Coalesce} ->
            case py_mode:backend() of
                nif -> py_nif:asgi_start(Module, Callable, Runner, Scope, Body, More, Coalesce);
                port -> py_port:asgi_start(Module, Callable, Runner, Scope, Body, More)
            end;
        {error, _} = Error ->
            Error
    end;
start(_Module, _Callable, _Scope, Opts) ->
    {error, {badarg, {options, Opts}}}.

%% @doc Feeds the next piece of request body (after a `need_body' event, or ahead of it).
-spec send_body(stream(), binary(), boolean()) -> ok.
send_body(Stream, Chunk, MoreBody) ->
    case py_mode:backend() of
        nif -> py_nif:asgi_send_body(Stream, Chunk, MoreBody);
        port -> py_port:send_body(Stream, Chunk, MoreBody)
    end.

%% @doc Acknowledges `Bytes' of response body written to the client.
-spec ack(stream(), non_neg_integer()) -> ok.
ack(Stream, Bytes) ->
    case py_mode:backend() of
        nif -> py_nif:asgi_ack(Stream, Bytes);
        port -> py_port:ack(Stream, Bytes)
    end.

%% @doc The client went away (a websocket: websocket.disconnect with code 1006).
-spec disconnect(stream()) -> ok.
disconnect(Stream) ->
    case py_mode:backend() of
        nif -> py_nif:asgi_disconnect(Stream);
        port -> py_port:disconnect(Stream)
    end.

%% @doc A message from the client of a websocket stream (websocket.receive; text must be
%% UTF-8, as a websocket server has checked).
-spec ws_receive(stream(), ws_message()) -> ok.
ws_receive(Stream, {Kind, Data}) ->
    case py_mode:backend() of
        nif -> py_nif:asgi_ws_receive(Stream, Kind, Data);
        port -> py_port:ws_receive(Stream, Kind, Data)
    end.

%% @doc The websocket has ended with `Code' and `Reason' (websocket.disconnect): the
%% peer's close frame, the code the server failed the connection with, or 1006.
-spec ws_disconnect(stream(), 1000..4999, binary()) -> ok.
ws_disconnect(Stream, Code, Reason) ->
    case py_mode:backend() of
        nif -> py_nif:asgi_ws_disconnect(Stream, Code, Reason);
        port -> py_port:ws_disconnect(Stream, Code, Reason)
    end.

%% @doc Runs the app's lifespan startup (the lifespan scope with lifespan.startup) on a
%% worker's event loop; the app keeps running there until {@link lifespan_shutdown/1}.
%% Returns `{ok, Lifespan, State}': pass `State' as the `state' of each request's scope
%% (map or stream) and the app sees a shallow copy of the lifespan state dict its startup
%% filled in.  `{error, unsupported}' when the app raised or returned without answering
%% lifespan.startup (servers ignore lifespan then, as uvicorn's `--lifespan auto' does);
%% `{error, {python, ...}}' when it answered lifespan.startup.failed (the message is the
%% app's) or raised after it.  Options: `runner', `timeout'.
-spec lifespan_startup(py:name(), py:name(), opts()) ->
          {ok, lifespan(), lifespan()} | {error, unsupported | error()}.
lifespan_startup(Module, Callable, Opts) when is_map(Opts) ->
    case py_opts:timeout(Opts) of
        {ok, Timeout} ->
            Runner = maps:get(runner, Opts, ?DEFAULT_RUNNER),
            case py_mode:backend() of
                nif ->
                    py_mode:with_fallback(
                      fun() ->
                              Tag = make_ref(),
                              case py_nif:lifespan_startup(Tag, Timeout, Module, Callable,
                                                           Runner) of
                                  {ok, _Job} ->
                                      case ?PY_AWAIT(Tag) of
                                          {ok, Lifespan} -> {ok, Lifespan, Lifespan};
                                          {error, _} = Error -> Error
                                      end;
                                  {error, _} = Error -> Error
                              end
                      end);
                port ->
                    py_port:lifespan_startup(Module, Callable, Runner, Timeout)
            end;
        {error, _} = Error -> Error
    end;
lifespan_startup(_Module, _Callable, Opts) ->
    {error, {badarg, {options, Opts}}}.

%% @equiv lifespan_shutdown(Lifespan, #{})
-spec lifespan_shutdown(lifespan()) -> ok | {error, error()}.
lifespan_shutdown(Lifespan) ->
    lifespan_shutdown(Lifespan, #{}).

%% @doc Sends lifespan.shutdown and waits for the app's answer.  Option: `timeout'.
-spec lifespan_shutdown(lifespan(), #{timeout => timeout()}) -> ok | {error, error()}.
lifespan_shutdown(Lifespan, Opts) ->
    case py_opts:timeout(Opts) of
        {ok, Timeout} ->
            case py_mode:backend() of
                nif ->
                    Tag = make_ref(),
                    case py_nif:lifespan_shutdown(Tag, Timeout, Lifespan) of
                        {ok, _Job} -> ?PY_AWAIT(Tag);
                        {error, _} = Error -> Error
                    end;
                port ->
                    py_port:lifespan_shutdown(Lifespan, Timeout)
            end;
        {error, _} = Error -> Error
    end.

%% With the NIF's direct_response option off (benchmark baseline) the result arrives in
%% the generic conversion and is shaped here.
normalise({ok, {generic, {Status, Headers, Body}}}) ->
    {ok, {Status, [{N, V} || {{bytes, N}, {bytes, V}} <- Headers],
          iolist_to_binary([B || {bytes, B} <- Body])}};
normalise(Result) ->
    Result.
