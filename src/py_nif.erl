%% @doc The NIF's Erlang face: loading and the raw functions.  Use `py', `py_wsgi' and
%% `py_asgi' instead of calling these directly.
%%
%% Every function here returns at once: calls are queued to the NIF's Python worker
%% threads and their results arrive as messages.
-module(py_nif).

-export([load/0, priv_dir/0, start/1, stop/1, switch_mode/2, call/6, call_each/6, info/0,
         set_options/1, get_options/0,
         wsgi_run/6, asgi_run/7, asgi_build_scope/1,
         asgi_start/7, asgi_send_body/3, asgi_ack/2, asgi_disconnect/1,
         asgi_ws_receive/3, asgi_ws_disconnect/3,
         timer_fire/2, lifespan_startup/5, lifespan_shutdown/3, wsgi_start/7, wsgi_send_body/3, wsgi_ack/2, wsgi_disconnect/1,
         check_scope/1, check_environ/2, check_names/2]).

-type job() :: reference().
-export_type([job/0, config/0]).

-define(NOT_LOADED, erlang:nif_error({nif_not_loaded, ?MODULE})).

%% @doc Loads priv/py_nif.so.  Idempotent.  First the Python is chosen and its libpython
%% loaded by {@link py_python:load/0} (the documented rule for which Python runs; its
%% errors are returned as they are); then the NIF, which is told that interpreter's home
%% and executable.  A NIF load failure names the library and the interpreter it was built
%% for (from priv/py_nif.info).
-spec load() -> ok | {error, {nif_load_failed, string()} |
                             {python_not_found | python_mismatch | nif_not_built, binary()}}.
load() ->
    case py_python:load() of
        {ok, #{home := Home, executable := Executable}} ->
            Priv = priv_dir(),
            Lib = filename:join(Priv, "py_nif"),
            LoadInfo = #{home => unicode:characters_to_binary(Home),
                         executable => unicode:characters_to_binary(Executable)},
            case erlang:load_nif(Lib, LoadInfo) of
                ok -> ok;
                {error, {reload, _}} -> ok;
                {error, {upgrade, _}} -> ok;
                {error, {_, Text}} ->
                    {error, {nif_load_failed, lists:flatten([Text, build_note(Priv)])}}
            end;
        {error, _} = Error ->
            Error
    end.

%% @doc The application's priv directory, found from this module's own location (so a
%% directory named erlang_python elsewhere on the code path cannot shadow it).
-spec priv_dir() -> file:filename().
priv_dir() ->
    filename:join(filename:dirname(filename:dirname(code:which(?MODULE))), "priv").

build_note(Priv) ->
    case file:read_file(filename:join(Priv, "py_nif.info")) of
        {ok, Info} -> [" (built for: ", string:replace(string:trim(Info), "\n", ", ", all),
                       "; rebuild with `rebar3 compile`)"];
        {error, _} -> " (priv/py_nif.info missing: `rebar3 compile` builds the NIF)"
    end.

-type config() :: #{workers := pos_integer(), paths := [binary()],
                    venv := binary() | undefined, mode := py_mode:mode(),
                    loop => py_runtime:event_loop()}.

%% @doc Initialises the interpreter (once per VM) and starts the worker threads in
%% `mode' (sub-interpreters are created the first time, then kept).  `paths' go first on
%% sys.path; the first must hold the erlang_python package.  Returns warnings worth
%% logging (for example a virtualenv of another Python version).
-spec start(config()) ->
          {ok, [binary()]} | {error, already_started | {init_failed, binary()} |
                              {python_mismatch, binary()} | {badarg, term()}}.
start(_Config) -> ?NOT_LOADED.

%% @doc Stops the worker threads, waiting up to TimeoutMs; the interpreters stay.
-spec stop(non_neg_integer()) -> ok.
stop(_TimeoutMs) -> ?NOT_LOADED.

%% @doc Replaces the running workers by as many in Config's mode (waiting up to
%% StopTimeoutMs for each old one); calls queued meanwhile wait for the new workers.
-spec switch_mode(config(), non_neg_integer()) ->
          ok | {error, {init_failed, binary()} | {badarg, term()}}.
switch_mode(_Config, _StopTimeoutMs) -> ?NOT_LOADED.

%% The functions that make a call (call, wsgi_run, asgi_run, lifespan_startup,
%% lifespan_shutdown) take the caller's reply tag and timeout first.  They queue the job
%% and return `{ok, Job}'; the caller then receives exactly one `{Tag, Reply}'.  `Job'
%% needs no use: holding it until its garbage collection makes the job's memory be freed
%% on the caller's scheduler rather than on the worker thread.  With a finite
%% timeout, the NIF keeps the deadline (one thread for all jobs): unless the reply comes
%% first, `Reply' is `{error, timeout}' after `Timeout' ms and the job is cancelled (its
%% reply is never sent; an awaited coroutine is cancelled).  So the caller waits with a
%% plain receive and no timer of its own.

%% @doc Queues Module:Function(*Args, **Kwargs); `Reply' is `{ok, Term} | {error, Reason}'.
-spec call(reference(), timeout(), atom() | binary(), atom() | binary(), list(), map()) ->
          {ok, job()} | {error, term()}.
call(_Tag, _Timeout, _Module, _Function, _Args, _Kwargs) -> ?NOT_LOADED.

%% @doc Queues Module:Function(*Args, **Kwargs) once in each interpreter the workers run
%% in (each sub-interpreter, or the one interpreter); `Reply' is `{ok, [Result]}' with one
%% `{ok, Term} | {error, Reason}' per interpreter.
-spec call_each(reference(), timeout(), atom() | binary(), atom() | binary(), list(), map()) ->
          {ok, job()} | {error, term()}.
call_each(_Tag, _Timeout, _Module, _Function, _Args, _Kwargs) -> ?NOT_LOADED.

%% @doc Queues Runner.run_wsgi(App, Environ) for Module:Callable; `Reply' is
%% `{ok, {Status, Headers, Body}} | {error, Reason}'.
-spec wsgi_run(reference(), timeout(), py:name(), py:name(), py:name(), map()) ->
          {ok, job()} | {error, term()}.
wsgi_run(_Tag, _Timeout, _Module, _Callable, _Runner, _Environ) -> ?NOT_LOADED.

%% @doc Queues `await Runner.run_asgi(App, Scope, Body)' for Module:Callable; `Reply' is
%% `{ok, {Status, Headers, Body}} | {error, Reason}'.
-spec asgi_run(reference(), timeout(), py:name(), py:name(), py:name(), map() | reference(),
               binary()) -> {ok, job()} | {error, term()}.
asgi_run(_Tag, _Timeout, _Module, _Callable, _Runner, _Scope, _Body) -> ?NOT_LOADED.

%% @doc Validates a scope map and wraps it as a reusable template.
-spec asgi_build_scope(map()) -> {ok, reference()} | {error, {bad_scope, term()}}.
asgi_build_scope(_Scope) -> ?NOT_LOADED.

%% @doc Starts an ASGI stream owned (and monitored) by the caller; see py_asgi:start/4.
%% `Coalesce': a start event may go out with the event after it (py_asgi's `coalesce').
-spec asgi_start(py:name(), py:name(), py:name(), map() | reference(), binary(), boolean(),
                 boolean()) ->
          {ok, job()} | {error, term()}.
asgi_start(_Module, _Callable, _Runner, _Scope, _Body, _MoreBody, _Coalesce) -> ?NOT_LOADED.

-spec asgi_send_body(job(), binary(), boolean()) -> ok.
asgi_send_body(_Stream, _Chunk, _MoreBody) -> ?NOT_LOADED.

-spec asgi_ack(job(), non_neg_integer()) -> ok.
asgi_ack(_Stream, _Bytes) -> ?NOT_LOADED.

-spec asgi_disconnect(job()) -> ok.
asgi_disconnect(_Stream) -> ?NOT_LOADED.

-spec asgi_ws_receive(job(), text | binary, binary()) -> ok.
asgi_ws_receive(_Stream, _Kind, _Data) -> ?NOT_LOADED.

-spec asgi_ws_disconnect(job(), integer(), binary()) -> ok.
asgi_ws_disconnect(_Stream, _Code, _Reason) -> ?NOT_LOADED.

%% @doc Queues the lifespan startup of Module:Callable; `Reply' is
%% `{ok, Lifespan} | {error, unsupported | Reason}'.
-spec lifespan_startup(reference(), timeout(), py:name(), py:name(), py:name()) ->
          {ok, job()} | {error, term()}.
lifespan_startup(_Tag, _Timeout, _Module, _Callable, _Runner) -> ?NOT_LOADED.

%% @doc Queues the lifespan shutdown; `Reply' is `ok | {error, Reason}'.
-spec lifespan_shutdown(reference(), timeout(), reference()) -> {ok, job()} | {error, term()}.
lifespan_shutdown(_Tag, _Timeout, _Lifespan) -> ?NOT_LOADED.

%% @doc An Erlang timer asked for by _erlang.schedule_timer fired: run its callback on
%% the worker that scheduled it (called by py_runtime).
-spec timer_fire(non_neg_integer(), non_neg_integer()) -> ok.
timer_fire(_Worker, _TimerId) -> ?NOT_LOADED.

%% @doc Starts a WSGI stream owned (and monitored) by the caller; see py_wsgi:start/4.
-spec wsgi_start(py:name(), py:name(), py:name(), map(), binary(), boolean(), boolean()) ->
          {ok, job()} | {error, term()}.
wsgi_start(_Module, _Callable, _Runner, _Environ, _Body, _MoreBody, _Coalesce) -> ?NOT_LOADED.

-spec wsgi_send_body(job(), binary(), boolean()) -> ok.
wsgi_send_body(_Stream, _Chunk, _MoreBody) -> ?NOT_LOADED.

-spec wsgi_ack(job(), non_neg_integer()) -> ok.
wsgi_ack(_Stream, _Bytes) -> ?NOT_LOADED.

-spec wsgi_disconnect(job()) -> ok.
wsgi_disconnect(_Stream) -> ?NOT_LOADED.

%% @doc Switches web-path optimisations on or off (for benchmarks); all are on by default.
-spec set_options(#{atom() => boolean()}) -> ok | {error, {badarg, term()}}.
set_options(_Options) -> ?NOT_LOADED.

-spec get_options() -> #{atom() => boolean()}.
get_options() -> ?NOT_LOADED.

-spec info() -> #{atom() => term()}.
info() -> ?NOT_LOADED.

%% @doc The scope rule of py_asgi (no Python, no runtime needed): for the processes mode,
%% which sends the map to a worker process instead of building it here.  `{ok, Kind}':
%% a websocket scope (`type' `<<"websocket">>') or an HTTP one.
-spec check_scope(term()) -> {ok, http | websocket} | {error, {bad_scope, term()}}.
check_scope(_Scope) -> ?NOT_LOADED.

%% @doc The environ rule of py_wsgi (`wsgi.input' required when `NeedInput'), as
%% check_scope/1 for the processes mode.
-spec check_environ(term(), boolean()) -> ok | {error, {bad_environ, term()}}.
check_environ(_Environ, _NeedInput) -> ?NOT_LOADED.

%% @doc The names rule of the NIF paths, for the processes mode: `Names' are
%% `{Module, Callable, Runner}'; with `Entry' `none' (py_asgi) each must be an atom or a
%% binary, with `run_wsgi' or `stream_wsgi' (py_wsgi) also hold no NUL byte and stay
%% under the app cache's key length together with that runner entry.
-spec check_names({term(), term(), term()}, none | run_wsgi | stream_wsgi) ->
          ok | {error, {badarg, {module | callable | runner, term()}}}.
check_names(_Names, _Entry) -> ?NOT_LOADED.
