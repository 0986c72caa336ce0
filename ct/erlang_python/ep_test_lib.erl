%% Helpers of the erlang_python suites that users' suites do not need (those are in
%% erlang_python_ct): per-interpreter results combined, the mode, concurrent callers,
%% waiting for a condition, capturing erlang_python's log records.
-module(ep_test_lib).

-export([one/3, sum/1, mode/0, pmap/2, wait_until/1, log/2, stream_event/2,
         stream_events/2]).

%% The one result of erlang_python_ct:each/3 other than `none' (what the interpreter
%% that ran a request recorded), or `none'.
-spec one(atom(), atom(), list()) -> term().
one(Module, Function, Args) ->
    case [R || R <- erlang_python_ct:each(Module, Function, Args), R =/= none] of
        [] -> none;
        [R] -> R;
        Several -> ct:fail({several_interpreters_recorded, Module, Function, Several})
    end.

%% Maps of counters (and lists) from erlang_python_ct:each/3 merged: numbers added, lists
%% appended.
-spec sum([map()]) -> map().
sum(Maps) ->
    lists:foldl(fun(M, Acc) ->
                        maps:fold(fun(K, V, A) when is_number(V) -> A#{K => maps:get(K, A, 0) + V};
                                     (K, V, A) when is_list(V) -> A#{K => maps:get(K, A, []) ++ V}
                                  end, Acc, M)
                end, #{}, Maps).

%% The mode the workers run in.
-spec mode() -> gil | subinterpreters | free_threaded | processes.
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

%% Waits (up to 10 s: worker processes restart with a backoff) until F() is true.
-spec wait_until(fun(() -> boolean())) -> ok.
wait_until(F) ->
    wait_until(F, 1000).

wait_until(_F, 0) ->
    ct:fail(condition_never_true);
wait_until(F, N) ->
    case F() of
        true -> ok;
        false -> timer:sleep(10), wait_until(F, N - 1)
    end.

%% A logger handler (logger:add_handler(Id, ep_test_lib, #{config => #{pid => Pid}})) that
%% sends erlang_python's records to Pid as {log, Level, Text}.
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

%% The next `{asgi, Stream, Event}' message's Event, or `nothing' after Timeout ms.
-spec stream_event(py_asgi:stream(), timeout()) -> py_asgi:event() | nothing.
stream_event(Stream, Timeout) ->
    receive {asgi, Stream, Event} -> Event after Timeout -> nothing end.

%% Every event of Stream up to and including `done' or `{error, _}', alone or as the
%% `Next' of a `{then, Last, Next}' (or `nothing', when Timeout ms pass without one).
-spec stream_events(py_asgi:stream(), timeout()) -> [py_asgi:event() | nothing].
stream_events(Stream, Timeout) ->
    case stream_event(Stream, Timeout) of
        done -> [done];
        {error, _} = E -> [E];
        {then, _, End} = E when End =:= done; element(1, End) =:= error -> [E];
        nothing -> [nothing];
        E -> [E | stream_events(Stream, Timeout)]
    end.
