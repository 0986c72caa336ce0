%% Which Python runs (py_python's rule), the libpython loader, and where sys.path entries
%% come from (py_runtime:config/0's python_path forms).  The rule is exercised with fake
%% interpreters (shell scripts that answer like python/hornbeam_locate.py), so that every
%% branch is tested whatever Pythons the machine has.
-module(py_python_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").
-include_lib("kernel/include/file.hrl").

-export([all/0, init_per_suite/1, end_per_suite/1, init_per_testcase/2,
         end_per_testcase/2]).
-export([default_rule/1, app_env_wins/1, os_env/1, bare_command_name/1,
         explicit_missing/1, explicit_other_version/1, explicit_without_libpython/1,
         venv_of_other_version_skipped/1, nothing_found/1, load_is_once_per_vm/1,
         loader_refuses_a_second_libpython/1, nif_knows_the_loaded_libpython/1,
         package_dir/1, python_path_forms/1, python_path_bad_entry/1]).

all() ->
    [default_rule, app_env_wins, os_env, bare_command_name, explicit_missing,
     explicit_other_version, explicit_without_libpython, venv_of_other_version_skipped,
     nothing_found, load_is_once_per_vm, loader_refuses_a_second_libpython,
     nif_knows_the_loaded_libpython, package_dir, python_path_forms, python_path_bad_entry].

init_per_suite(Config) ->
    ok = erlang_python_ct:start(Config),
    Config.

end_per_suite(_Config) ->
    erlang_python_ct:stop().

%% Every case starts from: no app env python, no ERLANG_PYTHON, the suite's PATH and
%% VIRTUAL_ENV.
init_per_testcase(_TC, Config) ->
    [{saved_env, [{V, os:getenv(V)} || V <- ["PATH", "VIRTUAL_ENV", "ERLANG_PYTHON"]]},
     {saved_app_env, [{K, application:get_env(erlang_python, K)} || K <- [python, venv,
                                                                        python_path]]}
     | Config].

end_per_testcase(_TC, Config) ->
    [case V of
         false -> os:unsetenv(K);
         _ -> os:putenv(K, V)
     end || {K, V} <- ?config(saved_env, Config)],
    [case V of
         undefined -> application:unset_env(erlang_python, K);
         {ok, Value} -> application:set_env(erlang_python, K, Value)
     end || {K, V} <- ?config(saved_app_env, Config)],
    ok.

%% ---- the rule ------------------------------------------------------------------------

%% make test-ct sets VIRTUAL_ENV to the test venv (of the NIF's Python): step 3.
default_rule(_Config) ->
    os:unsetenv("ERLANG_PYTHON"),
    {ok, Built} = py_python:built_for(),
    {ok, Info} = py_python:find(),
    #{version := V, interpreter := I, executable := E, home := H, libpython := L,
      source := S} = Info,
    ?assertEqual(major_minor(Built), major_minor(V)),
    case os:getenv("VIRTUAL_ENV") of
        Venv when is_list(Venv), Venv =/= "" ->
            ?assertEqual({venv, filename:join([Venv, "bin", "python"])}, {S, I});
        _ ->
            ?assertEqual(path, S)
    end,
    [?assert(filelib:is_regular(F)) || F <- [E, L]],
    ?assert(filelib:is_dir(filename:join([H, "lib", "python" ++ major_minor(V)]))),
    %% The answer is the one the running interpreter gives about itself.
    ?assertEqual({ok, list_to_binary(H)}, py:call(sys, <<"base_prefix.__str__">>, [])).

app_env_wins(Config) ->
    Fake = fake_python(Config, "appenv", same_version()),
    Other = fake_python(Config, "osenv", same_version()),
    os:putenv("ERLANG_PYTHON", Other),
    ok = application:set_env(erlang_python, python, Fake),
    ?assertMatch({ok, #{source := app_env, interpreter := Fake, version := "3." ++ _,
                        libpython := "/fake/appenv/libpython.so", home := "/fake/appenv",
                        executable := "/fake/appenv/bin/python"}},
                 py_python:find()),
    %% Binaries work too.
    ok = application:set_env(erlang_python, python, list_to_binary(Fake)),
    ?assertMatch({ok, #{source := app_env, interpreter := Fake}}, py_python:find()).

os_env(Config) ->
    Fake = fake_python(Config, "osenv", same_version()),
    os:putenv("ERLANG_PYTHON", Fake),
    ?assertMatch({ok, #{source := os_env, interpreter := Fake}}, py_python:find()).

%% A name without a slash is looked up on PATH.
bare_command_name(Config) ->
    Fake = fake_python(Config, "onpath", same_version()),
    os:putenv("PATH", filename:dirname(Fake) ++ ":" ++ os:getenv("PATH")),
    os:putenv("ERLANG_PYTHON", "onpath"),
    ?assertMatch({ok, #{source := os_env, interpreter := Fake}}, py_python:find()).

%% An interpreter named explicitly must exist: no fallback to the next step.
explicit_missing(_Config) ->
    ok = application:set_env(erlang_python, python, "/nonexistent/bin/python3"),
    {error, {python_not_found, Text}} = py_python:find(),
    ?assertMatch({match, _}, re:run(Text, "application env python of erlang_python names "
                                          "/nonexistent/bin/python3, which is not an "
                                          "executable file or a command on PATH")),
    ok = application:unset_env(erlang_python, python),
    os:putenv("ERLANG_PYTHON", "no-such-python-here"),
    ?assertMatch({error, {python_not_found, <<"ERLANG_PYTHON names no-such-python-here", _/binary>>}},
                 py_python:find()).

explicit_other_version(Config) ->
    Fake = fake_python(Config, "old", "3.9.1"),
    os:putenv("ERLANG_PYTHON", Fake),
    {error, {python_mismatch, Text}} = py_python:find(),
    {ok, Built} = py_python:built_for(),
    Expected = iolist_to_binary(["ERLANG_PYTHON names ", Fake, ", which is Python 3.9.1; the NIF "
                                 "was built for ", major_minor(Built), " (rebuild it with PYTHON=",
                                 Fake, ", or name a Python ", major_minor(Built), ")"]),
    ?assertEqual(Expected, Text).

%% What hornbeam_locate.py reports as errors (no shared libpython, too old) comes back.
explicit_without_libpython(Config) ->
    Script = filename:join(?config(priv_dir, Config), "static_python"),
    ok = file:write_file(Script, "#!/bin/sh\necho 'error=static has no shared libpython'\nexit 1\n"),
    ok = file:change_mode(Script, 8#755),
    os:putenv("ERLANG_PYTHON", Script),
    ?assertEqual({error, {python_not_found,
                          iolist_to_binary(["ERLANG_PYTHON names ", Script,
                                            ": static has no shared libpython"])}},
                 py_python:find()).

%% A virtualenv of another Python is skipped (its site-packages then do not import, with a
%% warning at start, as before): the next step finds the interpreter.
venv_of_other_version_skipped(Config) ->
    %% The path step looks for python3.X: this run's interpreter goes first on PATH under
    %% that name (pyenv's shim of another version than the global one does not answer).
    {ok, #{executable := Exe}} = py_python:find(),
    os:putenv("PATH", filename:dirname(Exe) ++ ":" ++ os:getenv("PATH")),
    Venv = filename:join(?config(priv_dir, Config), "venv39"),
    Fake = fake_python(Config, "venv39py", "3.9.1"),
    ok = filelib:ensure_dir(filename:join([Venv, "bin", "x"])),
    _ = file:delete(filename:join([Venv, "bin", "python"])),
    ok = file:make_symlink(Fake, filename:join([Venv, "bin", "python"])),
    os:unsetenv("ERLANG_PYTHON"),
    os:putenv("VIRTUAL_ENV", Venv),
    ?assertMatch({ok, #{source := path}}, py_python:find()),
    %% The app env venv wins over VIRTUAL_ENV.
    ok = application:set_env(erlang_python, venv, Venv),
    os:unsetenv("VIRTUAL_ENV"),
    ?assertEqual(Venv, py_python:venv()),
    ?assertMatch({ok, #{source := path}}, py_python:find()).

nothing_found(Config) ->
    os:unsetenv("ERLANG_PYTHON"),
    os:unsetenv("VIRTUAL_ENV"),
    Empty = filename:join(?config(priv_dir, Config), "empty_path"),
    ok = filelib:ensure_dir(filename:join(Empty, "x")),
    os:putenv("PATH", Empty),
    {ok, Built} = py_python:built_for(),
    Want = major_minor(Built),
    ?assertEqual({error, {python_not_found,
                          iolist_to_binary(["no Python ", Want, " found (tried: nothing); set "
                                            "ERLANG_PYTHON or the application env python of "
                                            "erlang_python to a Python ", Want,
                                            " interpreter"])}},
                 py_python:find()).

%% load/0 answers what was loaded, whatever the configuration says now.
load_is_once_per_vm(Config) ->
    {ok, Loaded} = py_python:load(),
    os:putenv("ERLANG_PYTHON", fake_python(Config, "later", "3.9.1")),
    ?assertEqual({ok, Loaded}, py_python:load()),
    ?assertEqual(ok, py_libpython:load(maps:get(libpython, Loaded))).

loader_refuses_a_second_libpython(_Config) ->
    {ok, #{libpython := Lib}} = py_python:load(),
    Other = filename:join(py_nif:priv_dir(), "py_libpython.so"),
    {error, Text} = py_libpython:load(Other),
    ?assertMatch({match, _}, re:run(Text, "is loaded in this VM already: one libpython per VM, "
                                          "cannot load .*py_libpython.so$")),
    ?assertNotEqual(nomatch, binary:match(Text, list_to_binary(filename:basename(Lib)))),
    ?assertEqual({error, <<"cannot load /nonexistent.so: no such file">>},
                 py_libpython:load("/nonexistent.so")).

%% py:info()'s libpython is the file the loader loaded (not a path recorded at build time).
nif_knows_the_loaded_libpython(_Config) ->
    {ok, #{libpython := Lib}} = py_python:load(),
    #{libpython := Reported} = py:info(),
    %% The same file (device and inode), whatever symlinks lead to it.
    {ok, A} = file:read_file_info(Lib),
    {ok, B} = file:read_file_info(binary_to_list(Reported)),
    ?assertEqual({element(#file_info.major_device, A), element(#file_info.inode, A)},
                 {element(#file_info.major_device, B), element(#file_info.inode, B)}).

package_dir(_Config) ->
    Dir = py_python:package_dir(),
    ?assertEqual(filename:join(py_nif:priv_dir(), "python"), Dir),
    ?assertEqual({ok, list_to_binary(filename:join(Dir, "hornbeam_asgi_runner.py"))},
                 py:call(hornbeam_asgi_runner, <<"__file__.__str__">>, [])).

%% ---- python_path -----------------------------------------------------------------------

python_path_forms(_Config) ->
    {ok, Cwd} = file:get_cwd(),
    ok = application:set_env(erlang_python, python_path,
                             [{priv, erlang_python}, {priv, erlang_python, "python"},
                              "rel/dir", <<"/abs/dir">>]),
    #{paths := [_Package, _Cwd | Extra]} = py_runtime:config(),
    Priv = code:priv_dir(erlang_python),
    ?assertEqual([list_to_binary(P) || P <- [Priv, filename:join(Priv, "python"),
                                            filename:join(Cwd, "rel/dir"), "/abs/dir"]],
                 Extra).

%% A bad entry fails the start with {badarg, {python_path, Entry}}.
python_path_bad_entry(Config) ->
    [begin
         ok = application:set_env(erlang_python, python_path, [Bad]),
         ?assertError({badarg, {python_path, Bad}}, py_runtime:config())
     end || Bad <- [{priv, no_such_app_here}, 42, {priv, "x"}]],
    ok = application:set_env(erlang_python, python_path, [{priv, no_such_app_here}]),
    ok = application:stop(erlang_python),
    ?assertMatch({error, {{shutdown, {failed_to_start_child, py_runtime,
                                      {badarg, {python_path, {priv, no_such_app_here}}}}}, _}},
                 application:start(erlang_python)),
    ok = erlang_python_ct:start(Config).

%% ---- helpers -------------------------------------------------------------------------

%% A script that answers like hornbeam_locate.py for an interpreter of Version.
fake_python(Config, Name, Version) ->
    Dir = filename:join([?config(priv_dir, Config), "fake", Name]),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    Path = filename:join(Dir, Name),
    ok = file:write_file(Path, ["#!/bin/sh\n",
                                "echo version=", Version, "\n",
                                "echo home=/fake/", Name, "\n",
                                "echo executable=/fake/", Name, "/bin/python\n",
                                "echo libpython=/fake/", Name, "/libpython.so\n"]),
    ok = file:change_mode(Path, 8#755),
    Path.

same_version() ->
    {ok, Built} = py_python:built_for(),
    Built.

major_minor(Version) ->
    [Major, Minor | _] = string:split(Version, ".", all),
    Major ++ "." ++ Minor.
