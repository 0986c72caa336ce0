%% EUnit tests of py_web_spool: the file of a spooled request body.
-module(py_web_spool_tests).

-include_lib("eunit/include/eunit.hrl").
-include_lib("kernel/include/file.hrl").

parent() ->
    Dir = filename:join(os:getenv("TMPDIR", "/tmp"),
                        "py_web_spool_tests-" ++ os:getpid() ++ "-" ++
                            integer_to_list(erlang:unique_integer([positive]))),
    ok = file:make_dir(Dir),
    list_to_binary(Dir).

cleanup(Parent) ->
    py_web_spool:remove_dirs(),
    ok = file:del_dir_r(Parent).

files(Parent) ->
    filelib:wildcard(binary_to_list(Parent) ++ "/*/*.body").

%% Poll (bounded) until the spool files of Parent are gone.
gone(Parent) -> gone(Parent, 500).

gone(Parent, 0) -> files(Parent);
gone(Parent, N) ->
    case files(Parent) of
        [] -> [];
        _ -> timer:sleep(10), gone(Parent, N - 1)
    end.

write_read_delete_test() ->
    Parent = parent(),
    {ok, S0} = py_web_spool:open(Parent),
    ok = py_web_spool:write(S0, <<"hello ">>),
    ok = py_web_spool:write(S0, [<<"wor">>, "ld"]),
    {ok, S} = py_web_spool:close(S0),
    Path = py_web_spool:path(S),
    ?assertEqual({ok, <<"hello world">>}, file:read_file(Path)),
    ?assertEqual([binary_to_list(Path)], files(Parent)),
    %% the directory is this VM's, private
    Dir = filename:dirname(Path),
    {ok, #file_info{mode = Mode}} = file:read_file_info(Dir),
    ?assertEqual(8#700, Mode band 8#777),
    ?assertMatch("py_web-" ++ _, filename:basename(binary_to_list(Dir))),
    %% a second file goes to the same directory
    {ok, S2} = py_web_spool:open(Parent),
    ?assertEqual(Dir, filename:dirname(py_web_spool:path(S2))),
    ok = py_web_spool:delete(S),
    ok = py_web_spool:delete(S2),
    ?assertEqual([], files(Parent)),
    cleanup(Parent).

%% Deleting a file the reader still has open: the reader keeps its bytes.
delete_while_open_test() ->
    Parent = parent(),
    {ok, S0} = py_web_spool:open(Parent),
    ok = py_web_spool:write(S0, <<"still here">>),
    {ok, S} = py_web_spool:close(S0),
    {ok, Fd} = file:open(py_web_spool:path(S), [read, raw, binary]),
    ok = py_web_spool:delete(S),
    ?assertEqual([], files(Parent)),
    ?assertEqual({ok, <<"still here">>}, file:read(Fd, 100)),
    ok = file:close(Fd),
    cleanup(Parent).

%% The owner dies without deleting its file, killed or not: the watcher does.
owner_death_test_() ->
    [fun() -> owner_dies(Exit) end || Exit <- [normal, kill]].

owner_dies(How) ->
    Parent = parent(),
    Self = self(),
    Owner = spawn(fun() ->
                          {ok, S} = py_web_spool:open(Parent),
                          ok = py_web_spool:write(S, <<"x">>),
                          Self ! {opened, self()},
                          receive _ -> ok end
                  end),
    receive {opened, Owner} -> ok end,
    ?assertMatch([_], files(Parent)),
    case How of
        kill -> exit(Owner, kill);
        normal -> Owner ! stop      %% returns without delete/1
    end,
    ?assertEqual([], gone(Parent)),
    cleanup(Parent).

%% The private directory removed under the server's feet (a tmp cleaner):
%% the next file makes another one.
directory_removed_test() ->
    Parent = parent(),
    {ok, S} = py_web_spool:open(Parent),
    Dir = filename:dirname(py_web_spool:path(S)),
    ok = py_web_spool:delete(S),
    ok = file:del_dir_r(Dir),
    {ok, S2} = py_web_spool:open(Parent),
    Dir2 = filename:dirname(py_web_spool:path(S2)),
    ?assertNotEqual(Dir, Dir2),
    ?assert(filelib:is_regular(py_web_spool:path(S2))),
    ok = py_web_spool:delete(S2),
    cleanup(Parent).

no_directory_test() ->
    ?assertEqual({error, enoent}, py_web_spool:open(<<"/nonexistent/py_web_spool">>)).

remove_dirs_test() ->
    Parent = parent(),
    {ok, S} = py_web_spool:open(Parent),
    Dir = filename:dirname(py_web_spool:path(S)),
    ok = py_web_spool:delete(S),
    ok = py_web_spool:remove_dirs(),
    ?assertNot(filelib:is_dir(Dir)),
    ok = file:del_dir_r(Parent).
