%% @doc Which Python runs: the one rule that picks the interpreter at run time, and the
%% files that go with it (its libpython, its home, the `python/' package).
%%
%% The NIF (`priv/py_nif.so') is compiled against one Python's headers, which fixes the
%% major.minor version (`priv/py_nif.info' records it), but it names no file of the build
%% machine: it is not linked against libpython and has no RUNPATH.  When the application
%% starts, this module picks an interpreter, asks it (by running
%% `priv/python/hornbeam_locate.py' with `-S') where its libpython and home are, and loads
%% that libpython with global symbols before the NIF.  The first match wins:
%%
%% <ol>
%% <li>the application env `python' of `erlang_python': a path to an interpreter, or a
%%     command name looked up on `PATH' (for example
%%     `{erlang_python, [{python, "/opt/python3.12/bin/python3"}]}' in `sys.config');</li>
%% <li>the OS environment variable `ERLANG_PYTHON' (same forms);</li>
%% <li>the virtualenv's interpreter, `VENV/bin/python', where `VENV' is the application env
%%     `venv', else `$VIRTUAL_ENV', when it exists and has the NIF's major.minor;</li>
%% <li>`python3.X' (the NIF's major.minor) on `PATH', then `python3', the first one
%%     with the NIF's major.minor.</li>
%% </ol>
%%
%% An interpreter named by (1) or (2) must exist and have the NIF's major.minor: anything
%% else is an error, not a fallback.  The embedded interpreter's home (where its standard
%% library is) is the chosen interpreter's `sys.base_prefix', which honours `PYTHONHOME'
%% when that is set in the VM's environment.
%%
%% Errors (the application's start fails with them):
%% `{python_not_found, Text}' (no interpreter matched, an explicit one is missing, or it has
%% no shared libpython), `{python_mismatch, Text}' (an explicit interpreter of another
%% major.minor than the NIF's), `{nif_not_built, Text}' (no `priv/py_nif.info');
%% `Text' is a binary that names what was tried.
%%
%% Other parts that need the same Python (the `processes' mode, tools) call {@link find/0}
%% and {@link package_dir/0} instead of repeating the rule.
-module(py_python).

-export([find/0, load/0, package_dir/0, built_for/0, venv/0]).

-export_type([info/0, source/0]).

-type source() :: app_env | os_env | venv | path.
%% Which step of the rule chose the interpreter.

-type info() :: #{interpreter := file:filename(),
                  source := source(),
                  version := string(),
                  executable := file:filename(),
                  home := file:filename(),
                  libpython := file:filename()}.
%% `interpreter' is the interpreter as the rule found it (a venv's `bin/python', a command
%% resolved on `PATH'); `executable' is the real binary behind it (`sys.executable' with
%% symlinks resolved); `version' is "X.Y.Z"; `home' is the value for `PYTHONHOME'
%% (`sys.base_prefix', or `prefix:exec_prefix' when they differ); `libpython' is the
%% shared library's path.

-type reason() :: {python_not_found | python_mismatch | nif_not_built, binary()}.

-define(LOADED, {?MODULE, loaded}).
-define(QUERY_TIMEOUT, 30000).

%% @doc Applies the rule: the interpreter to embed and its files.  Runs each candidate
%% interpreter once (tens of milliseconds each); no side effects.
-spec find() -> {ok, info()} | {error, reason()}.
find() ->
    case built_for() of
        {ok, Version} -> find(major_minor(Version));
        {error, _} = Error -> Error
    end.

%% @doc Finds the interpreter (see {@link find/0}) and loads its libpython into the VM with
%% global symbols, once: a VM holds one libpython, so later calls return what the first
%% successful one loaded, whatever the configuration says by then.
-spec load() -> {ok, info()} | {error, reason() | {nif_load_failed, string()}}.
load() ->
    case persistent_term:get(?LOADED, undefined) of
        undefined ->
            case find() of
                {ok, #{libpython := Lib} = Info} ->
                    case py_libpython:load(Lib) of
                        ok ->
                            persistent_term:put(?LOADED, Info),
                            {ok, Info};
                        {error, Text} ->
                            {error, {nif_load_failed, unicode:characters_to_list(Text)}}
                    end;
                {error, _} = Error ->
                    Error
            end;
        Info ->
            {ok, Info}
    end.

%% @doc The `python/' package as the application ships it (`priv/python': the runner
%% modules and `erlang_asyncio'), an absolute path.
-spec package_dir() -> file:filename().
package_dir() ->
    filename:absname(filename:join(py_nif:priv_dir(), "python")).

%% @doc The Python version ("X.Y.Z") the NIF was built for, from `priv/py_nif.info'.
-spec built_for() -> {ok, string()} | {error, {nif_not_built, binary()}}.
built_for() ->
    File = filename:join(py_nif:priv_dir(), "py_nif.info"),
    case file:read_file(File) of
        {ok, Text} ->
            case re:run(Text, "^python_version=([0-9.]+)$", [multiline, {capture, [1], list}]) of
                {match, [Version]} -> {ok, Version};
                nomatch -> {error, {nif_not_built, text("~ts has no python_version", [File])}}
            end;
        {error, Why} ->
            {error, {nif_not_built,
                     text("~ts: ~ts (the NIF is not built: rebar3 compile builds it)",
                          [File, file:format_error(Why)])}}
    end.

%% @doc The virtualenv whose site-packages the interpreter imports: the application env
%% `venv', else `$VIRTUAL_ENV', as an absolute path (a relative one is taken from the
%% current directory at the time of the call: the application's start), or `undefined'.
-spec venv() -> file:filename() | undefined.
venv() ->
    case application:get_env(erlang_python, venv, undefined) of
        undefined ->
            case os:getenv("VIRTUAL_ENV") of
                false -> undefined;
                "" -> undefined;
                Dir -> filename:absname(Dir)
            end;
        Dir ->
            filename:absname(str(Dir))
    end.

%% ---- the rule ------------------------------------------------------------------------

find(Want) ->
    case explicit() of
        {Source, Name} -> explicit(Source, Name, Want);
        none -> candidates(Want)
    end.

explicit() ->
    case application:get_env(erlang_python, python) of
        {ok, Name} when Name =/= undefined -> {app_env, Name};
        _ ->
            case os:getenv("ERLANG_PYTHON") of
                false -> none;
                "" -> none;
                Name -> {os_env, Name}
            end
    end.

explicit(Source, Name, Want) ->
    What = case Source of
               app_env -> "the application env python of erlang_python";
               os_env -> "ERLANG_PYTHON"
           end,
    case executable(Name) of
        false ->
            {error, {python_not_found, text("~ts names ~ts, which is not an executable "
                                             "file or a command on PATH", [What, str(Name)])}};
        Path ->
            case query(Path) of
                {ok, #{version := V} = Info} ->
                    case major_minor(V) of
                        Want -> {ok, Info#{interpreter => Path, source => Source}};
                        _ -> {error, {python_mismatch,
                                      text("~ts names ~ts, which is Python ~ts; the NIF was "
                                           "built for ~ts (rebuild it with PYTHON=~ts, or name a "
                                           "Python ~ts)", [What, Path, V, Want, Path, Want])}}
                    end;
                {error, Text} ->
                    {error, {python_not_found, text("~ts names ~ts: ~ts", [What, Path, Text])}}
            end
    end.

%% Steps 3 and 4: the first candidate of the NIF's major.minor.
candidates(Want) ->
    Candidates = [{venv, filename:join([V, "bin", "python"])} || V <- [venv()], V =/= undefined] ++
                 [{path, P} || N <- ["python" ++ Want, "python3"],
                               P <- [os:find_executable(N)], P =/= false],
    first_match(Candidates, Want, []).

first_match([], Want, Tried) ->
    {error, {python_not_found,
             text("no Python ~ts found (tried: ~ts); set ERLANG_PYTHON or the application "
                  "env python of erlang_python to a Python ~ts interpreter",
                  [Want, tried(lists:reverse(Tried)), Want])}};
first_match([{Source, Path} | Rest], Want, Tried) ->
    case filelib:is_regular(Path) andalso query(Path) of
        false ->
            first_match(Rest, Want, [{Path, "missing"} | Tried]);
        {ok, #{version := V} = Info} ->
            case major_minor(V) of
                Want -> {ok, Info#{interpreter => Path, source => Source}};
                _ -> first_match(Rest, Want, [{Path, "Python " ++ V} | Tried])
            end;
        {error, Text} ->
            first_match(Rest, Want, [{Path, Text} | Tried])
    end.

tried([]) -> "nothing";
tried(List) -> lists:join(", ", [io_lib:format("~ts (~ts)", [P, W]) || {P, W} <- List]).

%% A name with a slash is a path (made absolute); a bare name is looked up on PATH.
executable(Name0) ->
    Name = str(Name0),
    case lists:member($/, Name) of
        true ->
            Path = filename:absname(Name),
            filelib:is_regular(Path) andalso Path;
        false ->
            os:find_executable(Name)
    end.

%% Runs the interpreter on hornbeam_locate.py: {ok, Facts} or {error, Text}.
query(Python) ->
    Script = filename:join(package_dir(), "hornbeam_locate.py"),
    try open_port({spawn_executable, Python},
                  [{args, ["-S", Script]}, exit_status, stderr_to_stdout, binary,
                   {line, 65536}, hide]) of
        Port -> collect(Port, [])
    catch
        error:Why -> {error, io_lib:format("cannot run it: ~tp", [Why])}
    end.

collect(Port, Lines) ->
    receive
        {Port, {data, {eol, Line}}} -> collect(Port, [Line | Lines]);
        {Port, {data, {noeol, Line}}} -> collect(Port, [Line | Lines]);
        {Port, {exit_status, Status}} -> facts(Status, lists:reverse(Lines))
    after ?QUERY_TIMEOUT ->
        catch port_close(Port),
        {error, "no answer in 30 s"}
    end.

facts(Status, Lines) ->
    Pairs = [list_to_tuple(string:split(unicode:characters_to_list(L), "=")) || L <- Lines],
    Errors = [E || {"error", E} <- Pairs],
    Facts = maps:from_list([{K, V} || {K, V} <- Pairs,
                                      lists:member(K, ["version", "executable", "home",
                                                       "libpython"])]),
    case {Status, Errors, Facts} of
        {0, [], #{"version" := V, "executable" := E, "home" := H, "libpython" := L}} ->
            {ok, #{version => V, executable => E, home => H, libpython => L}};
        {_, [_ | _], _} ->
            {error, lists:join("; ", Errors)};
        _ ->
            {error, io_lib:format("unexpected answer (exit status ~b): ~ts",
                                  [Status, lists:join(" | ", Lines)])}
    end.

%% ---- helpers -------------------------------------------------------------------------

major_minor(Version) ->
    [Major, Minor | _] = string:split(Version, ".", all),
    Major ++ "." ++ Minor.

str(B) when is_binary(B) -> unicode:characters_to_list(B);
str(A) when is_atom(A) -> atom_to_list(A);
str(L) -> L.

text(Fmt, Args) ->
    unicode:characters_to_binary(io_lib:format(Fmt, Args)).
