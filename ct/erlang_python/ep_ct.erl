%% Shared set-up for the erlang_python Common Test suites.
-module(ep_ct).

-export([start/1, stop/0, flush/0, each/3, one/3, sum/1, mode/0, pmap/2, wait_until/1,
         log/2]).

%% Starts erlang_python with DataDir (the suite's data directory, which holds its Python
%% helper module) prepended to sys.path.
-spec start(file:filename()) -> ok.
start(DataDir) ->
    demote_suite_dir(),
    case application:load(erlang_python) of
        ok -> ok;
        {error, {already_loaded, erlang_python}} -> ok
    end,
    ok = application:set_env(erlang_python, python_path, [DataDir]),
    {ok, _} = application:ensure_all_started(erlang_python),
    ok.

-spec stop() -> ok.
stop() ->
    _ = application:stop(erlang_python),
    ok = application:set_env(erlang_python, python_path, []),
    ok.

%% Module:Function(Args) once in each interpreter the workers run in (each sub-interpreter
%% in subinterpreters mode, the one interpreter otherwise): the results.  Module globals
%% are per interpreter, so a test that reads back what an app recorded asks all of them.
-spec each(atom(), atom(), list()) -> [term()].
each(Module, Function, Args) ->
    Tag = make_ref(),
    {ok, _} = py_nif:call_each(Tag, 30000, Module, Function, Args, #{}),
    receive
        {Tag, {ok, Replies}} ->
            [case R of {ok, V} -> V; _ -> ct:fail({call_each, Module, Function, R}) end
             || R <- Replies];
        {Tag, Other} ->
            ct:fail({call_each, Module, Function, Other})
    end.

%% The one result of each/3 other than `none' (what the interpreter that ran a request
%% recorded), or `none'.
-spec one(atom(), atom(), list()) -> term().
one(Module, Function, Args) ->
    case [R || R <- each(Module, Function, Args), R =/= none] of
        [] -> none;
        [R] -> R;
        Several -> ct:fail({several_interpreters_recorded, Module, Function, Several})
    end.

%% Maps of counters (and lists) from each/3 merged: numbers added, lists appended.
-spec sum([map()]) -> map().
sum(Maps) ->
    lists:foldl(fun(M, Acc) ->
                        maps:fold(fun(K, V, A) when is_number(V) -> A#{K => maps:get(K, A, 0) + V};
                                     (K, V, A) when is_list(V) -> A#{K => maps:get(K, A, []) ++ V}
                                  end, Acc, M)
                end, #{}, Maps).

%% The mode the workers run in.
-spec mode() -> gil | subinterpreters | free_threaded.
mode() ->
    maps:get(mode, py:info()).

%% F applied to each element, each in a process of its own, all at once: the results in
%% order.
-spec pmap(fun((term()) -> term()), list()) -> list().
pmap(F, List) ->
    Parent = self(),
    Refs = [begin
                Ref = make_ref(),
                spawn_link(fun() -> Parent ! {Ref, F(X)} end),
                Ref
            end || X <- List],
    [receive {Ref, R} -> R after 60000 -> ct:fail({pmap_timeout, Ref}) end || Ref <- Refs].

%% Waits (up to 3 s) until F() is true.
-spec wait_until(fun(() -> boolean())) -> ok.
wait_until(F) ->
    wait_until(F, 300).

wait_until(_F, 0) ->
    ct:fail(condition_never_true);
wait_until(F, N) ->
    case F() of
        true -> ok;
        false -> timer:sleep(10), wait_until(F, N - 1)
    end.

%% A logger handler (logger:add_handler(Id, ep_ct, #{config => #{pid => Pid}})) that sends
%% erlang_python's records to Pid as {log, Level, Text}.
-spec log(logger:log_event(), logger:handler_config()) -> ok.
log(#{level := Level, msg := Msg, meta := Meta}, #{config := #{pid := Pid}}) ->
    case maps:is_key(erlang_python, Meta) of
        true ->
            Text = case Msg of
                       {string, S} -> S;
                       {report, R} -> io_lib:format("~tp", [R]);
                       {F, A} -> io_lib:format(F, A)
                   end,
            Pid ! {log, Level, unicode:characters_to_list(Text)},
            ok;
        false ->
            ok
    end.

%% Messages in the caller's mailbox (and removes them).
-spec flush() -> [term()].
flush() ->
    receive M -> [M | flush()] after 0 -> [] end.

%% `rebar3 ct --dir ct/erlang_python' puts the directory of these suites, whose name is
%% `erlang_python', on the code path ahead of the application.  code:priv_dir(erlang_python)
%% (used to find py_nif.so and the python/ package) would then resolve to the suites'
%% directory.  Move it to the end of the path so that the application's own directory wins.
demote_suite_dir() ->
    Dir = filename:dirname(code:which(?MODULE)),
    case filename:basename(Dir) of
        "erlang_python" ->
            true = code:del_path(Dir),
            true = code:add_pathz(Dir),
            ok;
        _ ->
            ok
    end.
