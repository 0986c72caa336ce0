%% @doc WSGI (PEP 3333) applications through the NIF's WSGI path.
%%
%% ```
%% Environ = #{<<"REQUEST_METHOD">> => <<"GET">>, <<"SCRIPT_NAME">> => <<>>,
%%             <<"PATH_INFO">> => <<"/">>, <<"SERVER_NAME">> => <<"localhost">>,
%%             <<"SERVER_PORT">> => <<"8080">>, <<"SERVER_PROTOCOL">> => <<"HTTP/1.1">>,
%%             <<"wsgi.url_scheme">> => <<"http">>, <<"wsgi.input">> => <<>>},
%% {ok, {<<"200 OK">>, Headers, Body}} = py_wsgi:run(<<"myapp">>, <<"application">>, Environ).
%% '''
%%
%% Environ: a map with binary keys.  Required (no default): REQUEST_METHOD, SCRIPT_NAME,
%% PATH_INFO, SERVER_NAME, SERVER_PORT, SERVER_PROTOCOL, wsgi.url_scheme, wsgi.input (the
%% request body).  Defaults: wsgi.version {1,0}, wsgi.multithread true,
%% wsgi.multiprocess true, wsgi.run_once false, QUERY_STRING `<<>>'.  CGI keys (no dot in the
%% name: REQUEST_METHOD, HTTP_*, ...) must have binary values and reach Python as native
%% strings decoded as latin-1; wsgi.version is {Major, Minor}; the wsgi.* flags booleans;
%% wsgi.errors may be anything and is always the Erlang logger's stream; other dotted keys
%% take any term (converted as in docs/types.md, binaries as latin-1 str).  HTTP headers go
%% in as HTTP_* keys (repeated headers joined with ", ", Cookie with "; ") and
%% Content-Type/Content-Length as CONTENT_TYPE/CONTENT_LENGTH.
%%
%% Result: `{ok, {Status, Headers, Body}}' with Status a binary like `<<"200 OK">>',
%% Headers `[{Name, Value}]' binaries in the app's order with duplicates kept, Body one
%% binary.  Errors: `{error, {bad_environ, Key}}' (missing required key or a value of the
%% wrong type; Python is not run), `{error, {python, Type, Message, Traceback}}' (the app
%% or the runner raised, including PEP 3333 violations the runner detects),
%% `{error, {bad_runner, Message}}' (the runner module has no run_wsgi),
%% `{error, {bad_response, Message}}' (a custom runner returned something other than
%% (str status, [(str, str)] headers, bytes or [bytes] body)), `{error, {badarg, What}}'
%% (options or names of the wrong type), `{error, timeout}', `{error, not_started}'.
-module(py_wsgi).

-export([run/3, run/4]).
-export([start/4, send_body/3, ack/2, disconnect/1]).

-include("py_await.hrl").

-define(DEFAULT_RUNNER, <<"hornbeam_wsgi_runner">>).
%% The environ key that tells the runner's stream_wsgi to open the body file.
-define(INPUT_FILE, <<"erlang_python.input_file">>).

-type environ() :: #{binary() => term()}.
-type status() :: binary().
-type headers() :: [{binary(), binary()}].
-type response() :: {status(), headers(), binary()}.
-type opts() :: #{runner => py:name(), timeout => timeout()}.
-type error() :: {bad_environ, term()} | {bad_runner, binary()} | {bad_response, binary()}
               | py:error().
-type stream() :: reference() | py_port:stream().
-type stream_opts() :: #{runner => py:name(), body => binary(), more_body => boolean(),
                         body_file => binary(), coalesce => boolean()}.
-type event() :: {start, status(), headers()} | {body, binary()} | need_body | done
               | {error, error()}
               | {start, status(), headers(), event()} | {then, event(), event()}.
-export_type([environ/0, response/0, opts/0, error/0, stream/0, stream_opts/0, event/0]).

%% @equiv run(Module, Callable, Environ, #{})
-spec run(py:name(), py:name(), environ()) -> {ok, response()} | {error, error()}.
run(Module, Callable, Environ) ->
    run(Module, Callable, Environ, #{}).

%% @doc Runs the WSGI app `Module.Callable' with `Environ' through the runner module's
%% `run_wsgi(app, environ)'.  Options: `runner' (module name, default
%% `<<"hornbeam_wsgi_runner">>'), `timeout' (ms or infinity; default the application's
%% `call_timeout').  Module and Callable may be atoms or binaries; Callable may be dotted.
-spec run(py:name(), py:name(), environ(), opts()) -> {ok, response()} | {error, error()}.
run(Module, Callable, Environ, Opts) when is_map(Opts) ->
    case py_opts:timeout(Opts) of
        {ok, Timeout} ->
            Runner = maps:get(runner, Opts, ?DEFAULT_RUNNER),
            case py_mode:backend() of
                nif ->
                    py_mode:with_fallback(
                      fun() ->
                              Tag = make_ref(),
                              case py_nif:wsgi_run(Tag, Timeout, Module, Callable, Runner,
                                                   Environ) of
                                  {ok, _Job} -> normalise(?PY_AWAIT(Tag));
                                  {error, _} = Error -> Error
                              end
                      end);
                port ->
                    py_port:wsgi_run(Module, Callable, Runner, Environ, Timeout)
            end;
        {error, _} = Error -> Error
    end;
run(_Module, _Callable, _Environ, Opts) ->
    {error, {badarg, {options, Opts}}}.

%% @doc Starts `Module.Callable' on one request as a stream, on a worker thread of its
%% own for the app's duration.  `wsgi.input' may be left out of `Environ': the app reads
%% the body given with the `body' option (default `<<>>') and, with `more_body => true',
%% what the owner feeds with {@link send_body/3}.  With `body_file' (a path) the body is
%% that file instead, read whole before the app starts: the runner's stream_wsgi
%% (hornbeam_wsgi_runner's; a custom runner must hand the environ to it or honour the
%% environ key `erlang_python.input_file' itself) opens it read-only as wsgi.input, a
%% real file (read, readline, readlines, iteration, seek), and closes it when the app
%% returns; `body' and `more_body' are then not used.  The caller owns the file and may
%% delete it at any time once the app has opened it.  The calling process owns the stream
%% (monitored: if it dies, the app's reads and writes raise ConnectionResetError) and
%% receives `{wsgi, Stream, Event}':
%% <ul>
%% <li>`{start, Status, Headers}' once, before the first body chunk (or before `done'
%%     for an empty body);</li>
%% <li>`{body, Chunk}' per non-empty chunk the app yields or writes; acknowledge with
%%     `ack(Stream, byte_size(Chunk))' once written: the app blocks while more than
%%     1 MiB is unacknowledged;</li>
%% <li>`need_body' when wsgi.input needs more of the request body;</li>
%% <li>`done', or `{error, Reason}' as for run/4; `{error, not_started}' when the stream
%%     was disconnected (or its owner died) before a worker took it: the app never
%%     ran.</li>
%% </ul>
%% With `coalesce => true' the start event may arrive together with the event after it,
%% as one `{start, Status, Headers, Next}' message meaning `{start, Status, Headers}'
%% then `Next' (PEP 3333 sends the head with the first body chunk anyway), and the last
%% chunk of a list or tuple body (the runner's `emit("last", Chunk)') together with
%% what comes next, the end as a rule, as `{then, Last, Next}' meaning `Last' then
%% `Next' (a one-chunk response is then one message, not two); the owner must handle
%% every form.
-spec start(py:name(), py:name(), environ(), stream_opts()) -> {ok, stream()} | {error, error()}.
start(Module, Callable, Environ, Opts = #{body_file := Path}) when is_binary(Path) ->
    Env = case is_map(Environ) of
              true -> Environ#{?INPUT_FILE => Path};
              false -> Environ                      %% the environ check reports it
          end,
    start_stream(Module, Callable, Env, Opts#{body => <<>>, more_body => false});
start(Module, Callable, Environ, Opts) when is_map(Opts), not is_map_key(body_file, Opts) ->
    start_stream(Module, Callable, Environ, Opts);
start(_Module, _Callable, _Environ, Opts) ->
    {error, {badarg, {options, Opts}}}.

start_stream(Module, Callable, Environ, Opts) ->
    Runner = maps:get(runner, Opts, ?DEFAULT_RUNNER),
    Body = maps:get(body, Opts, <<>>),
    More = maps:get(more_body, Opts, false),
    case py_opts:coalesce(Opts) of
        {ok, Coalesce} ->
            case py_mode:backend() of
                nif -> py_nif:wsgi_start(Module, Callable, Runner, Environ, Body, More, Coalesce);
                port -> py_port:wsgi_start(Module, Callable, Runner, Environ, Body, More)
            end;
        {error, _} = Error ->
            Error
    end.

%% @doc Feeds the next piece of request body.
-spec send_body(stream(), binary(), boolean()) -> ok.
send_body(Stream, Chunk, MoreBody) ->
    case py_mode:backend() of
        nif -> py_nif:wsgi_send_body(Stream, Chunk, MoreBody);
        port -> py_port:send_body(Stream, Chunk, MoreBody)
    end.

%% @doc Acknowledges `Bytes' of response body written to the client.
-spec ack(stream(), non_neg_integer()) -> ok.
ack(Stream, Bytes) ->
    case py_mode:backend() of
        nif -> py_nif:wsgi_ack(Stream, Bytes);
        port -> py_port:ack(Stream, Bytes)
    end.

%% @doc The client went away.
-spec disconnect(stream()) -> ok.
disconnect(Stream) ->
    case py_mode:backend() of
        nif -> py_nif:wsgi_disconnect(Stream);
        port -> py_port:disconnect(Stream)
    end.

%% With the NIF's direct_response option off (benchmark baseline) the result arrives in
%% the generic conversion and is shaped here.
%% Native strings come back from the generic path as UTF-8: re-encode them as latin-1.
normalise({ok, {generic, {Status, Headers, Body}}}) ->
    {ok, {latin1(Status), [{latin1(N), latin1(V)} || {N, V} <- Headers],
          iolist_to_binary([B || {bytes, B} <- bodylist(Body)])}};
normalise(Result) ->
    Result.

latin1(Utf8) ->
    unicode:characters_to_binary(Utf8, utf8, latin1).

bodylist(L) when is_list(L) -> L;
bodylist(B) -> [B].
