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
%% "2.4"), `http_version' (<<"1.1">>), `method' (<<"GET">>), `scheme' (<<"http">>),
%% `raw_path' (= path), `query_string' (<<>>, reaches the app as bytes), `root_path'
%% (<<>>), `headers' (`[{Name, Value}]' or `[[Name, Value]]' binaries, arrival order,
%% duplicates kept; names are lower-cased; both reach the app as bytes), `server' and
%% `client' (`{Host, Port}' or `undefined'; default None), `state' (map, default a new
%% dict for each request), `extensions' (map).  Anything else, or a value of the wrong
%% type, is `{error, {bad_scope, Field}}' without running Python.
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

-include("py_await.hrl").

-define(DEFAULT_RUNNER, <<"hornbeam_asgi_runner">>).

-type scope() :: #{type := binary(), path := binary(), atom() => term()}.
-type scope_ref() :: reference().
-type headers() :: [{binary(), binary()}].
-type response() :: {100..999, headers(), binary()}.
-type opts() :: #{runner => py:name(), timeout => timeout()}.
-type error() :: {bad_scope, term()} | {bad_runner, binary()} | {bad_response, binary()}
               | py:error().
-export_type([scope/0, scope_ref/0, response/0, opts/0, error/0]).

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
            Tag = make_ref(),
            case py_nif:asgi_run(Tag, Module, Callable, Runner, Scope, Body) of
                {ok, Job} -> normalise(?PY_AWAIT(Tag, Job, Timeout));
                {error, _} = Error -> Error
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
    py_nif:asgi_build_scope(Scope);
build_scope(_Scope, Opts) ->
    {error, {badarg, {options, Opts}}}.

%% With the NIF's direct_response option off (benchmark baseline) the result arrives in
%% the generic conversion and is shaped here.
normalise({ok, {generic, {Status, Headers, Body}}}) ->
    {ok, {Status, [{N, V} || {{bytes, N}, {bytes, V}} <- Headers],
          iolist_to_binary([B || {bytes, B} <- Body])}};
normalise(Result) ->
    Result.
