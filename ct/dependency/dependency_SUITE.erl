%% erlang_python as a dependency, as a user gets it: new projects in a temporary directory
%% (copies of examples/rebar3_app and examples/mix_app) depend on a git repository made
%% of this checkout's HEAD (commit first: uncommitted changes are not in it), are built
%% with plain `rebar3 compile' / `mix compile', and must call Python and serve an ASGI and
%% a WSGI app; so must their releases (relx and Mix), moved to another directory.
-module(dependency_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, groups/0, init_per_suite/1, end_per_suite/1,
         init_per_group/2, end_per_group/2]).
-export([rebar3_compile/1, relx_release_moved/1, relx_tar_elsewhere/1,
         mix_compile/1, mix_release_moved/1]).

-define(PLACEHOLDER, "https://example.invalid/erlang_python.git").
-define(MINUTE, 60000).

all() ->
    [{group, rebar3}, {group, mix}].

%% Each group's cases build on the previous one's project.
groups() ->
    [{rebar3, [sequence], [rebar3_compile, relx_release_moved, relx_tar_elsewhere]},
     {mix, [sequence], [mix_compile, mix_release_moved]}].

init_per_suite(Config) ->
    case {os:find_executable("git"), root()} of
        {false, _} -> {skip, "git is not installed"};
        {_, false} -> {skip, "not run from a git checkout of erlang_python"};
        {_, Root} ->
            Tmp = string:trim(os:cmd("mktemp -d -t erlang_python_dep.XXXXXX")),
            Repo = snapshot_repo(Root, Tmp),
            case run("git", ["status", "--porcelain", "--untracked-files=no"], Root) of
                {0, ""} -> ok;
                {0, Changed} -> ct:comment("tests HEAD; not committed: ~ts", [Changed])
            end,
            [{root, Root}, {tmp, Tmp}, {url, "file://" ++ Repo} | Config]
    end.

end_per_suite(Config) ->
    {0, _} = run("rm", ["-rf", ?config(tmp, Config)], "/"),
    ok.

init_per_group(rebar3, Config) ->
    Dir = copy_example(Config, "rebar3_app", "rebar.config"),
    [{project, Dir} | Config];
init_per_group(mix, Config) ->
    case os:find_executable("mix") of
        false -> {skip, "Elixir (mix) is not installed; make test's set-up installs it"};
        _ -> [{project, copy_example(Config, "mix_app", "mix.exs")} | Config]
    end.

end_per_group(_, _Config) ->
    ok.

%% ---- rebar3 ------------------------------------------------------------------------------

%% Plain `rebar3 compile' builds the NIF of the dependency; the app calls Python and serves
%% both apps, leaving no __pycache__ in erlang_python's priv/python (a built dependency is
%% not rebuilt by `rebar3 release', so its priv/ reaches the release as the run left it).
rebar3_compile(Config) ->
    Dir = ?config(project, Config),
    {0, _} = run_ok("rebar3", ["compile"], Dir, [], 10 * ?MINUTE),
    Lib = filename:join(Dir, "_build/default/lib/erlang_python"),
    [?assert(filelib:is_regular(filename:join([Lib, "priv", F])))
     || F <- ["py_nif.so", "py_libpython.so", "py_nif.info", "python/hornbeam_asgi_runner.py"]],
    {0, Paths} = run_ok("rebar3", ["path"], Dir, [], ?MINUTE),
    Eval = "{ok, _} = application:ensure_all_started(hello_py), "
           "#{call := {ok, G}, asgi := {200, A}, wsgi := {200, W}} = hello_py:check(), "
           "io:format(\"CHECK ~ts|~ts|~ts~n\", [G, A, W]), halt().",
    CodePath = string:lexemes(lists:last(string:split(string:trim(Paths), "\n", all)), " "),
    %% Python may write bytecode (PYTHONDONTWRITEBYTECODE unset): into the app's priv/py,
    %% never into erlang_python's priv/python, which a release copies as it is.
    {0, Out} = run_ok("erl", ["-noshell", "-config", "config/sys.config", "-pa" | CodePath]
                             ++ ["-eval", Eval], Dir, [{"PYTHONDONTWRITEBYTECODE", false}],
                      ?MINUTE),
    ?assertEqual(["CHECK hello Erlang, from Python|hello from ASGI|hello from WSGI"],
                 check_lines(Out)),
    ?assert(filelib:is_dir(filename:join(Dir, "_build/default/lib/hello_py/priv/py/__pycache__"))),
    ?assertEqual([], filelib:wildcard(filename:join(Lib, "priv/python/**/__pycache__"))).

%% `rebar3 release', the release directory moved elsewhere, run as a daemon with no
%% virtualenv and the default rule (python3.X on PATH) when that finds the build's Python
%% version, else ERLANG_PYTHON naming the build's interpreter.
relx_release_moved(Config) ->
    Dir = ?config(project, Config),
    {0, _} = run_ok("rebar3", ["release"], Dir, [], 10 * ?MINUTE),
    Built = filename:join(Dir, "_build/default/rel/hello_py"),
    Moved = filename:join(?config(tmp, Config), "moved/hello_py"),
    ok = filelib:ensure_dir(Moved),
    ok = file:rename(Built, Moved),
    false = filelib:is_dir(Built),
    check_release_files(Moved, Config),
    Python = build_python(Moved),
    case same_minor_on_path(Python) of
        true -> serve_from_release(Moved, [], path, undefined);
        false -> serve_from_release(Moved, [{"ERLANG_PYTHON", Python}], os_env, undefined)
    end.

%% `rebar3 tar', unpacked in a third directory, run with ERLANG_PYTHON naming another
%% installation of the build's Python version when the machine has one (Debian's
%% /usr/bin/python3.X beside pyenv's, here): its libpython, not the build's, is loaded.
relx_tar_elsewhere(Config) ->
    Dir = ?config(project, Config),
    {0, _} = run_ok("rebar3", ["tar"], Dir, [], 10 * ?MINUTE),
    [Tar] = filelib:wildcard(filename:join(Dir, "_build/default/rel/hello_py/hello_py-*.tar.gz")),
    Target = filename:join(?config(tmp, Config), "unpacked"),
    ok = filelib:ensure_dir(filename:join(Target, "x")),
    {0, _} = run_ok("tar", ["-xzf", Tar, "-C", Target], Dir, [], ?MINUTE),
    check_release_files(Target, Config),
    Python = build_python(Target),
    case other_installation(Python) of
        {Other, Libpython} ->
            ct:comment("ran on ~ts", [Other]),
            serve_from_release(Target, [{"ERLANG_PYTHON", Other}], os_env, Libpython);
        false ->
            ct:comment("no other installation of the build's Python: ran on ~ts", [Python]),
            serve_from_release(Target, [{"ERLANG_PYTHON", Python}], os_env, undefined)
    end.

%% ---- Mix ---------------------------------------------------------------------------------

mix_compile(Config) ->
    Dir = ?config(project, Config),
    Env = mix_env(Config),
    {0, _} = run_ok("mix", ["deps.get"], Dir, Env, 5 * ?MINUTE),
    {0, _} = run_ok("mix", ["compile"], Dir, Env, 10 * ?MINUTE),
    {0, Out} = run_ok("mix", ["run", "-e", mix_check_expr()], Dir, Env, ?MINUTE),
    ?assertEqual(["CHECK hello Elixir, from Python|hello from ASGI|hello from WSGI"],
                 check_lines(Out)).

%% `mix release' moved elsewhere; `bin/hello_py eval' boots it and runs the same check,
%% with no virtualenv and, as relx_release_moved, the default rule when python3.X on PATH
%% is the build's Python version, else ERLANG_PYTHON naming the build's interpreter.
mix_release_moved(Config) ->
    Dir = ?config(project, Config),
    Env = [{"MIX_ENV", "prod"} | mix_env(Config)],
    {0, _} = run_ok("mix", ["release", "--overwrite"], Dir, Env, 10 * ?MINUTE),
    Moved = filename:join(?config(tmp, Config), "mix_moved/hello_py"),
    ok = filelib:ensure_dir(Moved),
    ok = file:rename(filename:join(Dir, "_build/prod/rel/hello_py"), Moved),
    check_release_files(Moved, Config),
    Python = build_python(Moved),
    PythonEnv = case same_minor_on_path(Python) of
                    true -> [];
                    false -> [{"ERLANG_PYTHON", Python}]
                end,
    Expr = "{:ok, _} = Application.ensure_all_started(:hello_py); " ++ mix_check_expr(),
    {0, Out} = run_ok(filename:join(Moved, "bin/hello_py"), ["eval", Expr], Moved,
                      [{"VIRTUAL_ENV", false} | PythonEnv], ?MINUTE),
    ?assertEqual(["CHECK hello Elixir, from Python|hello from ASGI|hello from WSGI"],
                 check_lines(Out)).

mix_check_expr() ->
    "%{call: {:ok, g}, asgi: {200, a}, wsgi: {200, w}} = HelloPy.check(); "
    "IO.puts(\"CHECK \" <> Enum.join([g, a, w], \"|\"))".

%% Mix builds rebar3 dependencies with the rebar3 named by MIX_REBAR3 (hex.pm, where
%% `mix local.rebar' would fetch one, is not needed).
mix_env(Config) ->
    [{"MIX_HOME", filename:join(?config(tmp, Config), "mix_home")},
     {"HEX_OFFLINE", "1"},
     {"MIX_REBAR3", os:find_executable("rebar3")}].

%% ---- releases ----------------------------------------------------------------------------

%% What erlang_python ships in a release: the NIF without a RUNPATH or a libpython of the
%% build machine, the loader, and the python/ package's modules and packages (the
%% processes mode's hornbeam_port, with its C extension), nothing else (no tests, caches,
%% egg-info, symlinks).
check_release_files(Rel, Config) ->
    [Lib] = filelib:wildcard(filename:join(Rel, "lib/erlang_python-*")),
    Priv = filename:join(Lib, "priv"),
    {0, Links} = run("find", [Rel, "-type", "l"], Rel),
    ?assertEqual("", Links),
    {0, Junk} = run("find", [Lib, "-name", "__pycache__", "-o", "-name", "*.egg-info",
                             "-o", "-name", "tests", "-o", "-name", "pyproject.toml"], Rel),
    ?assertEqual("", Junk),
    Root = ?config(root, Config),
    {ok, Pyproject} = file:read_file(filename:join(Root, "python/pyproject.toml")),
    Listed = fun(Key) ->
                     {match, [L]} = re:run(Pyproject, "\n" ++ Key ++ " = \\[([^]]*)\\]",
                                           [dotall, {capture, [1], binary}]),
                     [binary_to_list(M) || M <- re:split(L, "[\\s,\"]+", [trim]), M =/= <<>>]
             end,
    Packages = Listed("packages"),
    ?assertEqual(["hornbeam_port"], Packages),
    Modules = [M ++ ".py" || M <- Listed("py-modules")],
    {ok, Shipped} = file:list_dir(filename:join(Priv, "python")),
    ?assertEqual(lists:sort(Modules ++ Packages), lists:sort(Shipped)),
    [begin
         Sources = [filename:basename(F)
                    || F <- filelib:wildcard(filename:join([Root, "python", P, "*.py"]))],
         {ok, InPackage} = file:list_dir(filename:join([Priv, "python", P])),
         {Python, Extensions} = lists:partition(fun(F) -> filename:extension(F) =:= ".py" end,
                                                InPackage),
         ?assertEqual(lists:sort(Sources), lists:sort(Python)),
         ?assertMatch(["_codec.cpython-" ++ _], Extensions)
     end || P <- Packages],
    {0, Dynamic} = run("readelf", ["-d", filename:join(Priv, "py_nif.so")], Rel),
    ?assertEqual(nomatch, re:run(Dynamic, "RPATH|RUNPATH|libpython")),
    ok.

%% Starts the release as a daemon (a node name of its own), checks it from inside
%% (hello_py:check/0) and from outside (an HTTP request from this node), stops it.
serve_from_release(Rel, Env0, Source, Libpython) ->
    Bin = filename:join(Rel, "bin/hello_py"),
    Env = [{"VIRTUAL_ENV", false} | Env0],
    ok = unique_node_name(Rel),
    {0, _} = run_ok(Bin, ["daemon"], Rel, Env, ?MINUTE),
    try
        ok = wait_for_ping(Bin, Rel, Env, 100),
        ok = wait_for_app(Bin, Rel, Env, 100),
        Check = "#{call := {ok, G}, asgi := {200, A}, wsgi := {200, W}} = hello_py:check(), "
                "lists:flatten(io_lib:format(\"CHECK ~ts|~ts|~ts\", [G, A, W])).",
        {0, Out} = run_ok(Bin, ["eval", Check], Rel, Env, ?MINUTE),
        ?assertEqual("\"CHECK hello Erlang, from Python|hello from ASGI|hello from WSGI\"",
                     string:trim(Out)),
        {0, Src} = run_ok(Bin, ["eval", "maps:get(source, element(2, py_python:load()))."],
                          Rel, Env, ?MINUTE),
        ?assertEqual(atom_to_list(Source), string:trim(Src)),
        [begin
             {0, Lib} = run_ok(Bin, ["eval", "binary_to_list(maps:get(libpython, py_nif:info()))."],
                               Rel, Env, ?MINUTE),
             ?assertEqual("\"" ++ Libpython ++ "\"", string:trim(Lib))
         end || Libpython =/= undefined],
        ok = same_python_in_workers(Bin, Rel, Env),
        {0, Url} = run_ok(Bin, ["eval", "maps:get(asgi, hello_py:urls())."], Rel, Env, ?MINUTE),
        {ok, _} = application:ensure_all_started(inets),
        {ok, {{_, 200, _}, _, "hello from ASGI"}} =
            httpc:request(get, {string:trim(string:trim(Url), both, "\"") ++ "/", []},
                          [{timeout, 10000}], [])
    after
        run(Bin, ["stop"], Rel, Env, ?MINUTE)
    end.

%% In the processes mode (ERLANG_PYTHON_MODE=processes, which the release inherits), the
%% worker processes run the interpreter the rule chose for the NIF.
same_python_in_workers(Bin, Rel, Env) ->
    case os:getenv("ERLANG_PYTHON_MODE") of
        "processes" ->
            {0, Workers} = run_ok(Bin, ["eval", "#{mode := processes, executable := E} = "
                                                "py:info(), binary_to_list(E)."],
                                  Rel, Env, ?MINUTE),
            {0, Chosen} = run_ok(Bin, ["eval", "maps:get(executable, "
                                               "element(2, py_python:load()))."],
                                 Rel, Env, ?MINUTE),
            ct:log("worker processes: ~ts", [Workers]),
            ?assertEqual(string:trim(Chosen), string:trim(Workers));
        _ ->
            ok
    end.

%% relx's vm.args names the node hello_py: give this run's release a name of its own, so
%% that it cannot meet another run's node on this host.
unique_node_name(Rel) ->
    [VmArgs] = filelib:wildcard(filename:join(Rel, "releases/*/vm.args")),
    {ok, Text} = file:read_file(VmArgs),
    Name = "hello_py_" ++ integer_to_list(erlang:unique_integer([positive])) ++ "_"
           ++ os:getpid(),
    New = re:replace(Text, "^-s?name .*$", "-sname " ++ Name, [multiline, {return, binary}]),
    ok = file:write_file(VmArgs, New).

wait_for_ping(Bin, Rel, Env, N) ->
    wait_for(Bin, Rel, Env, ["ping"], any, N, release_did_not_start).

%% The node answers pings while its boot still starts the applications: hello_py's servers
%% are up once it is among the started ones (in the processes mode, say, its worker
%% processes take a while).
wait_for_app(Bin, Rel, Env, N) ->
    wait_for(Bin, Rel, Env,
             ["eval", "lists:keymember(hello_py, 1, application:which_applications())."],
             "true", N, hello_py_did_not_start).

%% Runs the release's command Args every 200 ms until it exits 0 with output Want (or any
%% output), at most N times.
wait_for(_Bin, _Rel, _Env, _Args, _Want, 0, Fail) ->
    ct:fail(Fail);
wait_for(Bin, Rel, Env, Args, Want, N, Fail) ->
    Done = case run(Bin, Args, Rel, Env, ?MINUTE) of
               {0, Out} -> Want =:= any orelse string:trim(Out) =:= Want;
               _ -> false
           end,
    case Done of
        true -> ok;
        false -> timer:sleep(200), wait_for(Bin, Rel, Env, Args, Want, N - 1, Fail)
    end.

%% The interpreter the NIF was built with (priv/py_nif.info's executable).
build_python(Rel) ->
    [Info] = filelib:wildcard(filename:join(Rel, "lib/erlang_python-*/priv/py_nif.info")),
    {ok, Text} = file:read_file(Info),
    {match, [Exe]} = re:run(Text, "^executable=(.*)$", [multiline, {capture, [1], list}]),
    Exe.

%% /usr/bin/python3.X (X from Python) when it is another installation than Python's with
%% a shared libpython: {Interpreter, Libpython}, else false.
other_installation(Python) ->
    Other = filename:join("/usr/bin", filename:basename(Python)),
    Facts = fun(Exe) ->
                    Script = filename:join([code:priv_dir(erlang_python), "python",
                                            "hornbeam_locate.py"]),
                    case run(Exe, ["-S", Script], "/") of
                        {0, Out} -> maps:from_list([list_to_tuple(string:split(L, "="))
                                                    || L <- string:lexemes(Out, "\n")]);
                        _ -> #{}
                    end
            end,
    case filelib:is_regular(Other) andalso {Facts(Python), Facts(Other)} of
        {#{"version" := V1, "libpython" := L1}, #{"version" := V2, "libpython" := L2}}
          when L1 =/= L2 ->
            case {major_minor(V1), major_minor(V2)} of
                {Same, Same} -> {Other, L2};
                _ -> false
            end;
        _ ->
            false
    end.

major_minor(Version) ->
    [Major, Minor | _] = string:split(Version, ".", all),
    {Major, Minor}.

%% Does `python3.X' on PATH (X from Python) have Python's major.minor?
same_minor_on_path(Python) ->
    Ask = fun(Exe) -> string:trim(os:cmd(Exe ++ " -c 'import sys; print(sys.version_info[:2])'"))
          end,
    Want = Ask(Python),
    [Minor] = [M || M <- [filename:basename(Python)], lists:prefix("python3.", M)],
    case os:find_executable(Minor) of
        false -> false;
        Exe -> Ask(Exe) =:= Want
    end.

%% ---- helpers -----------------------------------------------------------------------------

%% The checkout this suite belongs to (its source file's repository).
root() ->
    Source = proplists:get_value(source, ?MODULE:module_info(compile)),
    case run("git", ["rev-parse", "--show-toplevel"], filename:dirname(Source)) of
        {0, Top} -> string:trim(Top);
        _ -> false
    end.

%% A repository whose branch main holds HEAD's files in one commit (made from
%% `git archive', so that a shallow clone, as CI may make, works too).
snapshot_repo(Root, Tmp) ->
    Repo = filename:join(Tmp, "erlang_python.git"),
    ok = file:make_dir(Repo),
    Tar = filename:join(Tmp, "head.tar"),
    {0, _} = run("git", ["archive", "--format=tar", "-o", Tar, "HEAD"], Root),
    {0, _} = run("tar", ["-xf", Tar, "-C", Repo], Tmp),
    Git = fun(Args) ->
                  {0, _} = run("git", ["-c", "user.name=dependency_SUITE",
                                       "-c", "user.email=dependency_SUITE@localhost" | Args],
                               Repo)
          end,
    Git(["init", "-q", "-b", "main"]),
    Git(["add", "-A"]),
    Git(["commit", "-q", "-m", "HEAD of the checkout under test"]),
    Repo.

%% Copies examples/NAME into the temporary directory, with the repository URL replaced.
copy_example(Config, Name, UrlFile) ->
    Dir = filename:join(?config(tmp, Config), Name),
    {0, _} = run("cp", ["-r", filename:join([?config(root, Config), "examples", Name]), Dir],
                 "/"),
    [{0, _} = run("rm", ["-rf", filename:join(Dir, D)], "/") || D <- ["_build", "deps"]],
    File = filename:join(Dir, UrlFile),
    {ok, Text} = file:read_file(File),
    ok = file:write_file(File, string:replace(Text, ?PLACEHOLDER, ?config(url, Config), all)),
    Dir.

check_lines(Out) ->
    [L || L <- string:split(Out, "\n", all), lists:prefix("CHECK ", L)].

%% Like run/5, but a non-zero status fails the test with the command's output.
run_ok(Cmd, Args, Dir, Env, Timeout) ->
    case run(Cmd, Args, Dir, Env, Timeout) of
        {0, _} = Ok -> Ok;
        {Status, Out} -> ct:fail({command_failed, Cmd, Args, Dir, Status, Out})
    end.

run(Cmd, Args, Dir) ->
    run(Cmd, Args, Dir, [], ?MINUTE).

%% {ExitStatus, Output (stdout and stderr)}; the command is killed after Timeout ms.
run(Cmd, Args, Dir, Env, Timeout) ->
    Exe = case lists:member($/, Cmd) of
              true -> Cmd;
              false -> os:find_executable(Cmd)
          end,
    ct:log("~ts ~ts~n(in ~ts, env ~tp)", [Cmd, lists:join(" ", Args), Dir, Env]),
    Port = open_port({spawn_executable, Exe},
                     [{args, Args}, {cd, Dir}, {env, Env}, exit_status, stderr_to_stdout,
                      binary, hide]),
    Deadline = erlang:monotonic_time(millisecond) + Timeout,
    collect(Port, Deadline, []).

collect(Port, Deadline, Acc) ->
    Left = max(0, Deadline - erlang:monotonic_time(millisecond)),
    receive
        {Port, {data, Data}} -> collect(Port, Deadline, [Data | Acc]);
        {Port, {exit_status, Status}} ->
            Out = unicode:characters_to_list(lists:reverse(Acc)),
            ct:log("exit status ~b:~n~ts", [Status, Out]),
            {Status, Out}
    after Left ->
        {os_pid, Pid} = erlang:port_info(Port, os_pid),
        _ = os:cmd("kill -9 " ++ integer_to_list(Pid)),
        catch port_close(Port),
        ct:fail({timeout, lists:reverse(Acc)})
    end.
