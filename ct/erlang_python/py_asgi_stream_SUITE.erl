%% py_asgi:start/4 streaming through the real NIF: the {asgi, Stream, Event} messages,
%% request body fed with send_body/3 after need_body (and ahead of it), response chunks
%% in order with their more_body flags, ack-based backpressure, disconnect/1 and owner
%% death (the app's receive() returns http.disconnect and its send() raises), trailers,
%% errors, scope refs and lifespan state.
%%
%% Python side: py_asgi_stream_SUITE_data/ep_asgi_stream_apps.py.
-module(py_asgi_stream_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-compile(nowarn_missing_spec).

-export([all/0, groups/0, init_per_suite/1, end_per_suite/1,
         init_per_testcase/2, end_per_testcase/2]).
-export([need_body_round_trips/1, body_fed_ahead/1, large_body_in_chunks/1,
         no_more_body/1, chunks_in_order/1, backpressure/1, backpressure_many_acks/1,
         disconnect_while_waiting/1, disconnect_while_waiting_for_body/1,
         owner_death/1, owner_death_unblocks_backpressure/1,
         trailers_with_extension/1, trailers_without_extension/1,
         error_app_raises/1, error_protocol/1, error_returns_early/1,
         error_missing_app/1, bad_arguments/1, calls_after_done/1,
         scope_ref_stream/1, lifespan_state_stream/1, many_streams/1,
         coalesce_first_step/1, coalesce_not_after_wait/1, coalesce_last_not_after_wait/1,
         coalesce_start_then_end/1,
         coalesce_bad_option/1, native_exchange_when_whole/1]).

-define(APPS, ep_asgi_stream_apps).
-define(T, 5000).

all() ->
    [{group, request_body}, {group, response}, {group, coalesce}, {group, native},
     {group, disconnect},
     {group, trailers},
     {group, errors}, {group, scope}].

groups() ->
    [{request_body, [], [need_body_round_trips, body_fed_ahead, large_body_in_chunks,
                         no_more_body]},
     {response, [], [chunks_in_order, backpressure, backpressure_many_acks, many_streams]},
     {coalesce, [], [coalesce_first_step, coalesce_not_after_wait,
                     coalesce_last_not_after_wait, coalesce_start_then_end, coalesce_bad_option]},
     {native, [], [native_exchange_when_whole]},
     {disconnect, [], [disconnect_while_waiting, disconnect_while_waiting_for_body,
                       owner_death, owner_death_unblocks_backpressure]},
     {trailers, [], [trailers_with_extension, trailers_without_extension]},
     {errors, [], [error_app_raises, error_protocol, error_returns_early, error_missing_app,
                   bad_arguments, calls_after_done]},
     {scope, [], [scope_ref_stream, lifespan_state_stream]}].

init_per_suite(Config) ->
    ok = erlang_python_ct:start(Config),
    Config.

end_per_suite(_Config) ->
    erlang_python_ct:stop().

init_per_testcase(_TC, Config) ->
    Config.

end_per_testcase(_TC, _Config) ->
    ?assertEqual({messages, []}, process_info(self(), messages)),
    ok.

%% ---- coalesce: the start with the event after it ------------------------------------

%% An app that answers and returns in its first step: the start, its body and the end in
%% one message (the processes mode does not coalesce: the same events one by one), on
%% the C exchange and on the runner's Stream alike.
coalesce_first_step(_Config) ->
    Headers = [{<<"x-chunks">>, <<"1">>},
               {<<"x-sha256">>, <<"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad">>}],
    Expected = [{then, {start, 200, Headers, {body, <<"3">>, false}}, done}],
    Events = fun() ->
                     {ok, S} = py_asgi:start(?APPS, read_all, scope(<<"/c1">>),
                                             #{body => <<"abc">>, coalesce => true}),
                     until_done(S)
             end,
    case ep_test_lib:mode() of
        processes ->
            ?assertEqual(unfold(Expected), Events());
        _ ->
            ?assertEqual(Expected, Events()),
            Opts = py_nif:get_options(),
            ok = py_nif:set_options(Opts#{native_runner => false}),
            try
                ?assertEqual(Expected, Events())
            after
                ok = py_nif:set_options(Opts)
            end
    end.

%% A whole response sent in the first step by an app that then waits: the response in
%% one message as soon as the step ends, the end in another.
coalesce_last_not_after_wait(_Config) ->
    {ok, S} = py_asgi:start(?APPS, respond_then_wait, scope(<<"/c4">>), #{coalesce => true}),
    Expected = [{start, 200, [{<<"content-type">>, <<"application/octet-stream">>}],
                 {body, <<"now">>, false}}, done],
    case ep_test_lib:mode() of
        processes -> ?assertEqual(unfold(Expected), until_done(S));
        _ -> ?assertEqual(Expected, until_done(S))
    end.

%% A start held in the first step goes out alone when the app then waits; what the app
%% sends in later steps is not held.
coalesce_not_after_wait(_Config) ->
    {ok, S} = py_asgi:start(?APPS, start_then_wait, scope(<<"/c2">>), #{coalesce => true}),
    ?assertEqual([{start, 200, [{<<"content-type">>, <<"application/octet-stream">>}]},
                  {body, <<"late">>, false}, done], until_done(S)).

%% A held start goes before the end of an app that returns without a body.
coalesce_start_then_end(_Config) ->
    {ok, S} = py_asgi:start(?APPS, returns_early, scope(<<"/c3">>), #{coalesce => true}),
    [Start, {error, _}] = until_done(S),
    ?assertEqual({start, 200, [{<<"content-type">>, <<"application/octet-stream">>}]}, Start).

coalesce_bad_option(_Config) ->
    ?assertEqual({error, {badarg, {coalesce, yes}}},
                 py_asgi:start(?APPS, read_all, scope(<<"/">>), #{coalesce => yes})).

%% A stream whose request body is whole at the start runs on the NIF's C exchange; one
%% fed with send_body, one whose scope offers trailers, and any with the native_runner
%% option off run on the runner's Stream (the processes mode has no C exchange).
native_exchange_when_whole(_Config) ->
    Kind = fun(Scope, Opts, Feed) ->
               {ok, S} = py_asgi:start(?APPS, exchange_kind, Scope, Opts),
               Feed(S),
               %% (need_body when the app asks before the fed piece is there)
               [{start, 200, _}, {body, K, false}, done] = until_done(S) -- [need_body],
               K
           end,
    NoFeed = fun(_) -> ok end,
    Whole = Kind(scope(<<"/k1">>), #{body => <<"all">>}, NoFeed),
    Fed = Kind(scope(<<"/k2">>), #{body => <<"a">>, more_body => true},
               fun(S) -> ok = py_asgi:send_body(S, <<"b">>, false) end),
    Trailers = Kind((scope(<<"/k3">>))#{extensions => #{<<"http.response.trailers">> => #{}}},
                    #{}, NoFeed),
    case ep_test_lib:mode() of
        processes ->
            ?assertEqual([<<"Stream">>, <<"Stream">>, <<"Stream">>], [Whole, Fed, Trailers]);
        _ ->
            ?assertEqual([<<"ASGIExchange">>, <<"Stream">>, <<"Stream">>], [Whole, Fed, Trailers]),
            Opts = py_nif:get_options(),
            ok = py_nif:set_options(Opts#{native_runner => false}),
            try
                ?assertEqual(<<"Stream">>, Kind(scope(<<"/k4">>), #{}, NoFeed))
            after
                ok = py_nif:set_options(Opts)
            end
    end.

unfold([{start, Status, Headers, Next} | T]) -> [{start, Status, Headers} | unfold([Next | T])];
unfold([{then, Last, Next} | T]) -> unfold([Last, Next | T]);
unfold([E | T]) -> [E | unfold(T)];
unfold([]) -> [].

%% ---- request body ------------------------------------------------------------------

%% The first piece comes with start/4 (more_body true); each later piece after a
%% need_body event; the app echoes each piece at once.
need_body_round_trips(_Config) ->
    Path = <<"/rt">>,
    {ok, S} = py_asgi:start(?APPS, echo_chunks, scope(Path),
                            #{body => <<"first">>, more_body => true}),
    ?assertEqual({start, 200, [{<<"x-app">>, <<"echo">>}]}, next(S)),
    ?assertEqual({body, <<"first">>, true}, next(S)),
    ?assertEqual(need_body, next(S)),
    ok = py_asgi:send_body(S, <<"second">>, true),
    ?assertEqual({body, <<"second">>, true}, next(S)),
    ?assertEqual(need_body, next(S)),
    ok = py_asgi:send_body(S, <<"third">>, false),
    ?assertEqual({body, <<"third">>, false}, next(S)),
    ?assertEqual(done, next(S)),
    ?assertEqual(nothing, next(S, 100)),
    ?assertEqual({ok, [[<<"http.request">>, 5, true], [<<"http.request">>, 6, true],
                       [<<"http.request">>, 5, false]]},
                 {ok, ep_test_lib:one(?APPS, record, [Path])}).

%% Pieces sent before the app asked for them are queued in order.
body_fed_ahead(_Config) ->
    {ok, S} = py_asgi:start(?APPS, read_all, scope(<<"/ahead">>), #{more_body => true}),
    Pieces = [<<"a">>, <<"bb">>, <<>>, <<"ccc">>, binary:copy(<<"d">>, 5000)],
    [ok = py_asgi:send_body(S, P, true) || P <- Pieces],
    ok = py_asgi:send_body(S, <<"end">>, false),
    Body = iolist_to_binary(Pieces ++ [<<"end">>]),
    %% need_body events may come (the app may ask before the pieces arrive); the rest is
    %% exact.
    Events = [E || E <- until_done(S), E =/= need_body],
    {start, 200, Headers} = hd(Events),
    %% Five messages: the empty piece with more_body true is no message.
    ?assertEqual([<<"5">>], hdr(<<"x-chunks">>, Headers)),
    ?assertEqual([sha256_hex(Body)], hdr(<<"x-sha256">>, Headers)),
    ?assertEqual([{body, integer_to_binary(byte_size(Body)), false}, done], tl(Events)).

%% 10 MiB of random bytes fed in 64 KiB pieces on demand: byte-exact.
large_body_in_chunks(_Config) ->
    Body = crypto:strong_rand_bytes(10 * 1024 * 1024),
    {ok, S} = py_asgi:start(?APPS, read_all, scope(<<"/large">>), #{more_body => true}),
    Chunks = split(Body, 65536),
    Rest = feed_on_demand(S, Chunks),
    ?assertMatch([{start, 200, _}, {body, _, false}, done], Rest),
    [{start, 200, Headers}, {body, Size, false}, done] = Rest,
    ?assertEqual(integer_to_binary(byte_size(Body)), Size),
    ?assertEqual([integer_to_binary(length(Chunks))], hdr(<<"x-chunks">>, Headers)),
    ?assertEqual([sha256_hex(Body)], hdr(<<"x-sha256">>, Headers)).

%% more_body false (the default): the whole body is there, no need_body.
no_more_body(_Config) ->
    {ok, S} = py_asgi:start(?APPS, read_all, scope(<<"/whole">>), #{body => <<"whole">>}),
    ?assertMatch([{start, 200, _}, {body, <<"5">>, false}, done], until_done(S)),
    {ok, S2} = py_asgi:start(?APPS, read_all, scope(<<"/empty">>), #{}),
    ?assertMatch([{start, 200, _}, {body, <<"0">>, false}, done], until_done(S2)).

%% ---- response ----------------------------------------------------------------------

chunks_in_order(_Config) ->
    {ok, S} = py_asgi:start(?APPS, ten_chunks, scope(<<"/ten">>), #{}),
    ?assertEqual([{start, 201, [{<<"set-cookie">>, <<"a=1">>}, {<<"x-b">>, <<"2">>},
                                {<<"set-cookie">>, <<"b=2">>}]}]
                 ++ [{body, <<"c", (integer_to_binary(I))/binary>>, true} || I <- lists:seq(0, 9)]
                 ++ [{body, <<>>, false}, done],
                 until_done(S)).

%% 20 x 256 KiB without acks: the app stops after about 1 MiB in flight (fewer than all
%% chunks arrive, and its send() does not return); acking what arrived lets the rest
%% through, byte-exact and in order.
backpressure(_Config) ->
    Path = <<"/bp">>,
    {ok, S} = py_asgi:start(?APPS, big_sender, scope(Path), #{}),
    ?assertMatch({start, 200, _}, next(S)),
    Before = collect_bodies(S, 500),
    NBefore = length(Before),
    ct:comment("~b of 20 chunks before the first ack", [NBefore]),
    ?assert(NBefore >= 4 andalso NBefore < 20),
    ?assert(lists:sum([byte_size(B) || {body, B, _} <- Before]) =< 1024 * 1024 + 256 * 1024),
    {ok, #{<<"returned">> := Returned}} = {ok, ep_test_lib:one(?APPS, record, [Path])},
    ?assertEqual(NBefore - 1, Returned),
    %% Still blocked: nothing more arrives.
    ?assertEqual([], collect_bodies(S, 200)),
    [ok = py_asgi:ack(S, byte_size(B)) || {body, B, _} <- Before],
    After = ack_until_done(S),
    Bodies = Before ++ [E || {body, _, _} = E <- After],
    ?assertEqual(done, lists:last(After)),
    ?assertEqual([{body, binary:copy(<<I>>, 256 * 1024), I < 19} || I <- lists:seq(0, 19)], Bodies),
    ?assertEqual({ok, #{<<"returned">> => 20, <<"error">> => none}}, {ok, ep_test_lib:one(?APPS, record, [Path])}).

%% Acks in many small pieces count the same.
backpressure_many_acks(_Config) ->
    Path = <<"/bp2">>,
    {ok, S} = py_asgi:start(?APPS, big_sender, scope(Path), #{}),
    ?assertMatch({start, 200, _}, next(S)),
    Before = collect_bodies(S, 300),
    ?assert(length(Before) < 20),
    [ok = py_asgi:ack(S, 1024) || {body, B, _} <- Before, _ <- lists:seq(1, byte_size(B) div 1024)],
    After = ack_until_done(S),
    ?assertEqual(20, length(Before) + length([E || {body, _, _} = E <- After])),
    ?assertEqual({ok, #{<<"returned">> => 20, <<"error">> => none}}, {ok, ep_test_lib:one(?APPS, record, [Path])}).

%% 100 streams at once, each with its own events.
many_streams(_Config) ->
    Self = self(),
    N = 100,
    [spawn_link(fun() ->
                        {ok, S} = py_asgi:start(?APPS, echo_chunks, scope(<<"/many">>),
                                                #{body => integer_to_binary(I), more_body => true}),
                        {start, 200, _} = next(S),
                        {body, B1, true} = next(S),
                        need_body = next(S),
                        ok = py_asgi:send_body(S, <<"x", B1/binary>>, false),
                        {body, B2, false} = next(S),
                        done = next(S),
                        Self ! {stream_done, I, {B1, B2}}
                end) || I <- lists:seq(1, N)],
    Results = [receive {stream_done, I, R} -> R after 20000 -> {timeout, I} end
               || I <- lists:seq(1, N)],
    ?assertEqual([{integer_to_binary(I), <<"x", (integer_to_binary(I))/binary>>}
                  || I <- lists:seq(1, N)], Results).

%% ---- disconnect ----------------------------------------------------------------------

%% The app waits in receive() after the body; disconnect/1 makes it return
%% http.disconnect, and its next send() raises (an OSError, as uvicorn's).
disconnect_while_waiting(_Config) ->
    Path = <<"/dc">>,
    {ok, S} = py_asgi:start(?APPS, wait_disconnect, scope(Path), #{body => <<"req">>}),
    ?assertMatch({start, 200, _}, next(S)),
    ?assertEqual({body, <<"partial">>, true}, next(S)),
    ?assertEqual(nothing, next(S, 200)),
    ok = py_asgi:disconnect(S),
    ?assertEqual(done, next(S)),
    ?assertEqual(nothing, next(S, 100)),
    ?assertEqual({ok, [[<<"first">>, <<"http.request">>, <<"req">>, false],
                       [<<"received">>, <<"http.disconnect">>],
                       [<<"send">>, <<"ClientDisconnected">>, true]]},
                 {ok, ep_test_lib:one(?APPS, record, [Path])}).

disconnect_while_waiting_for_body(_Config) ->
    Path = <<"/dcb">>,
    {ok, S} = py_asgi:start(?APPS, wait_body_disconnect, scope(Path),
                            #{body => <<"part">>, more_body => true}),
    ?assertEqual(need_body, next(S)),
    ok = py_asgi:disconnect(S),
    ?assertEqual(done, next(S)),
    ?assertEqual({ok, [<<"http.request">>, <<"http.disconnect">>, <<"ClientDisconnected">>]},
                 {ok, ep_test_lib:one(?APPS, record, [Path])}).

%% The owner process dies: the same as disconnect/1.
owner_death(_Config) ->
    Path = <<"/owner">>,
    Self = self(),
    {Pid, Mon} = spawn_monitor(fun() ->
                                       {ok, S} = py_asgi:start(?APPS, wait_disconnect, scope(Path),
                                                               #{body => <<"req">>}),
                                       {start, 200, _} = next(S),
                                       {body, <<"partial">>, true} = next(S),
                                       Self ! {owner_ready, self()},
                                       receive never -> ok end
                               end),
    receive {owner_ready, Pid} -> ok after ?T -> ct:fail(owner_not_ready) end,
    exit(Pid, kill),
    receive {'DOWN', Mon, process, Pid, killed} -> ok end,
    ?assertEqual({ok, [[<<"first">>, <<"http.request">>, <<"req">>, false],
                       [<<"received">>, <<"http.disconnect">>],
                       [<<"send">>, <<"ClientDisconnected">>, true]]},
                 wait_record(Path, 3)).

%% An app blocked in send() by backpressure is released when the owner dies, and its
%% next send() raises.
owner_death_unblocks_backpressure(_Config) ->
    Path = <<"/owner-bp">>,
    Self = self(),
    {Pid, Mon} = spawn_monitor(fun() ->
                                       {ok, S} = py_asgi:start(?APPS, big_sender, scope(Path), #{}),
                                       {start, 200, _} = next(S),
                                       Bodies = collect_bodies(S, 300),
                                       Self ! {owner_ready, self(), length(Bodies)},
                                       receive never -> ok end
                               end),
    NBefore = receive {owner_ready, Pid, N} -> N after ?T -> ct:fail(owner_not_ready) end,
    ?assert(NBefore < 20),
    exit(Pid, kill),
    receive {'DOWN', Mon, process, Pid, killed} -> ok end,
    ?assertEqual({ok, #{<<"returned">> => NBefore, <<"error">> => <<"ClientDisconnected">>,
                        <<"oserror">> => true}},
                 wait_until(fun() -> {ok, ep_test_lib:one(?APPS, record, [Path])} end,
                            fun({ok, #{<<"error">> := E}}) -> E =/= none; (_) -> false end)).

%% ---- trailers ------------------------------------------------------------------------

trailers_with_extension(_Config) ->
    Scope = (scope(<<"/tr">>))#{extensions => #{<<"http.response.trailers">> => #{}}},
    {ok, S} = py_asgi:start(?APPS, trailers, Scope, #{}),
    ?assertEqual([{start, 200, [{<<"trailer">>, <<"x-checksum">>}]},
                  {body, <<"data">>, true},
                  {body, <<"more">>, false},
                  {trailers, [{<<"x-checksum">>, <<"abc">>}, {<<"x-more">>, <<"1">>}], true},
                  {trailers, [{<<"x-last">>, <<"2">>}], false},
                  done],
                 until_done(S)),
    %% Buffered run/4 accepts (and drops) them.
    ?assertEqual({ok, {200, [{<<"trailer">>, <<"x-checksum">>}], <<"datamore">>}},
                 py_asgi:run(?APPS, trailers, Scope, <<>>)).

%% Without the extension "trailers": True is ignored: the response ends with the last
%% body, and sending trailers then is a protocol error.
trailers_without_extension(_Config) ->
    {ok, S} = py_asgi:start(?APPS, trailers, scope(<<"/notr">>), #{}),
    Events = until_done(S),
    ?assertMatch([{start, 200, _}, {body, <<"data">>, true}, {body, <<"more">>, false},
                  {error, {python, <<"RuntimeError">>,
                           <<"ASGI 'http.response.trailers' sent after the response was complete">>,
                           [_ | _]}}],
                 Events).

%% ---- errors --------------------------------------------------------------------------

error_app_raises(_Config) ->
    {ok, S} = py_asgi:start(?APPS, raises_after_start, scope(<<"/raise">>), #{}),
    Events = until_done(S),
    ?assertMatch([{start, 200, _}, {body, <<"x">>, true},
                  {error, {python, <<"ValueError">>, <<"stream app failed">>, [_ | _]}}], Events),
    {error, {python, _, _, TB}} = lists:last(Events),
    ?assertEqual(<<"ValueError: stream app failed">>, lists:last(TB)).

error_protocol(_Config) ->
    {ok, S} = py_asgi:start(?APPS, body_before_start, scope(<<"/proto">>), #{}),
    ?assertMatch([{error, {python, <<"RuntimeError">>,
                           <<"ASGI 'http.response.body' sent before 'http.response.start'">>, [_ | _]}}],
                 until_done(S)).

error_returns_early(_Config) ->
    {ok, S} = py_asgi:start(?APPS, returns_early, scope(<<"/early">>), #{}),
    ?assertMatch([{start, 200, _},
                  {error, {python, <<"RuntimeError">>,
                           <<"ASGI app returned without completing the response">>, [_ | _]}}],
                 until_done(S)).

error_missing_app(_Config) ->
    {ok, S} = py_asgi:start(ep_no_such_stream_module, app, scope(<<"/missing">>), #{}),
    ?assertMatch([{error, {python, <<"ModuleNotFoundError">>, _, _}}], until_done(S)),
    {ok, S2} = py_asgi:start(?APPS, no_such_app, scope(<<"/missing">>), #{}),
    ?assertMatch([{error, {python, <<"AttributeError">>, _, _}}], until_done(S2)).

bad_arguments(_Config) ->
    ?assertEqual({error, {bad_scope, path}}, py_asgi:start(?APPS, read_all, #{type => <<"http">>}, #{})),
    ?assertEqual({error, {bad_scope, method}},
                 py_asgi:start(?APPS, read_all, (scope(<<"/">>))#{method => get}, #{})),
    ?assertEqual({error, {badarg, {options, []}}}, py_asgi:start(?APPS, read_all, scope(<<"/">>), [])),
    ?assertEqual({error, {badarg, {body, "x"}}},
                 py_asgi:start(?APPS, read_all, scope(<<"/">>), #{body => "x"})),
    ?assertEqual({error, {badarg, {more_body, yes}}},
                 py_asgi:start(?APPS, read_all, scope(<<"/">>), #{more_body => yes})),
    ?assertError(badarg, py_asgi:send_body(make_ref(), <<"x">>, true)),
    ?assertError(badarg, py_asgi:ack(make_ref(), 1)),
    ?assertError(badarg, py_asgi:disconnect(make_ref())),
    {ok, S} = py_asgi:start(?APPS, read_all, scope(<<"/">>), #{more_body => true}),
    ?assertError(badarg, py_asgi:send_body(S, "x", true)),
    ?assertError(badarg, py_asgi:send_body(S, <<"x">>, maybe)),
    ?assertError(badarg, py_asgi:ack(S, -1)),
    ok = py_asgi:send_body(S, <<"x">>, false),
    ?assertMatch([{start, 200, _}, {body, <<"1">>, false}, done],
                 [E || E <- until_done(S), E =/= need_body]).

%% After done, send_body/ack/disconnect are harmless no-ops.
calls_after_done(_Config) ->
    {ok, S} = py_asgi:start(?APPS, read_all, scope(<<"/after">>), #{body => <<"b">>}),
    [_, _, done] = until_done(S),
    ?assertEqual(ok, py_asgi:send_body(S, <<"late">>, false)),
    ?assertEqual(ok, py_asgi:ack(S, 100)),
    ?assertEqual(ok, py_asgi:disconnect(S)),
    ?assertEqual(nothing, next(S, 200)),
    ?assert(is_map(py:info())).

%% ---- scope ---------------------------------------------------------------------------

%% A build_scope ref works with start/4, repeatedly, and the app's changes to the scope
%% do not carry over.
scope_ref_stream(_Config) ->
    {ok, Ref} = py_asgi:build_scope(#{type => <<"http">>, path => <<"/ref">>, method => <<"POST">>}),
    [begin
         {ok, S} = py_asgi:start(?APPS, scope_method, Ref, #{}),
         ?assertMatch([{start, 200, _}, {body, <<"POST /ref">>, false}, done], until_done(S))
     end || _ <- lists:seq(1, 5)].

%% Lifespan state reaches streamed requests as a per-request shallow copy.
lifespan_state_stream(_Config) ->
    {ok, Lifespan, State} = py_asgi:lifespan_startup(?APPS, lifespan_app, #{}),
    [begin
         {ok, S} = py_asgi:start(?APPS, lifespan_app, (scope(<<"/ls">>))#{state => State}, #{}),
         ?assertMatch([{start, 200, _}, {body, <<"[('db', 'conn')]">>, false}, done], until_done(S))
     end || _ <- lists:seq(1, 3)],
    ?assertEqual(ok, py_asgi:lifespan_shutdown(Lifespan)).

%% ---- helpers -------------------------------------------------------------------------

scope(Path) ->
    #{type => <<"http">>, path => Path, method => <<"POST">>}.

next(S) ->
    next(S, ?T).

next(S, Timeout) ->
    ep_test_lib:stream_event(S, Timeout).

%% Every event up to and including done or {error, _}.
until_done(S) ->
    ep_test_lib:stream_events(S, ?T).

%% Body events that arrive within Ms of quiet.
collect_bodies(S, Ms) ->
    receive {asgi, S, {body, _, _} = E} -> [E | collect_bodies(S, Ms)]
    after Ms -> []
    end.

%% Acks each body as it arrives, until done.
ack_until_done(S) ->
    case next(S) of
        {body, B, _} = E -> ok = py_asgi:ack(S, byte_size(B)), [E | ack_until_done(S)];
        done -> [done];
        Other -> [Other]
    end.

%% Feeds Chunks, one per need_body; returns the other events.
feed_on_demand(S, Chunks) ->
    case next(S) of
        need_body ->
            case Chunks of
                [C] -> ok = py_asgi:send_body(S, C, false), feed_on_demand(S, []);
                [C | Rest] -> ok = py_asgi:send_body(S, C, true), feed_on_demand(S, Rest)
            end;
        done -> [done];
        {error, _} = E -> [E];
        nothing -> [nothing];
        E -> [E | feed_on_demand(S, Chunks)]
    end.

split(Bin, N) when byte_size(Bin) =< N -> [Bin];
split(Bin, N) -> <<C:N/binary, Rest/binary>> = Bin, [C | split(Rest, N)].

wait_record(Path, Len) ->
    wait_until(fun() -> {ok, ep_test_lib:one(?APPS, record, [Path])} end,
               fun({ok, L}) when is_list(L) -> length(L) >= Len; (_) -> false end).

wait_until(F, Done) ->
    wait_until(F, Done, 50).

wait_until(F, _Done, 0) ->
    F();
wait_until(F, Done, N) ->
    R = F(),
    case Done(R) of
        true -> R;
        false -> timer:sleep(20), wait_until(F, Done, N - 1)
    end.

hdr(Name, Headers) ->
    [V || {N, V} <- Headers, N =:= Name].

sha256_hex(Bin) ->
    string:lowercase(binary:encode_hex(crypto:hash(sha256, Bin))).
