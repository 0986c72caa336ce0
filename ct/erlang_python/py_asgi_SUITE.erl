%% py_asgi:run/4,5, build_scope/1,2 and lifespan_startup/3 / lifespan_shutdown/1,2
%% through the real NIF: scope types as the app sees them, every default and every
%% bad_scope, byte-exact request and response bodies (zero-copy binaries and GC),
%% receive() after the body, ASGI protocol violations, Starlette and FastAPI apps,
%% concurrency, stepping vs the event loop, timeouts with cancellation, reusable scope
%% refs and lifespan state.
%%
%% Python side: py_asgi_SUITE_data/ep_asgi_apps.py (raw apps that echo their scope as
%% typed JSON: every value comes back with its Python type name), ep_asgi_starlette.py,
%% ep_asgi_fastapi.py.
-module(py_asgi_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-compile(nowarn_missing_spec).

-export([all/0, groups/0, init_per_suite/1, end_per_suite/1,
         init_per_group/2, end_per_group/2, init_per_testcase/2, end_per_testcase/2]).
-export([scope_types/1, scope_headers_tuples_and_lists/1, scope_defaults/1,
         scope_every_field_given/1, scope_client_server/1, scope_state_fresh_per_request/1,
         scope_extensions_passed_through/1,
         bad_scope_missing_fields/1, bad_scope_wrong_types/1, bad_scope_runs_no_python/1,
         bad_options/1,
         request_bodies_byte_exact/1, response_bodies_byte_exact/1,
         response_chunks_joined/1, zero_copy_survives_gc/1, zero_copy_10000/1,
         receive_waits_for_response/1, receive_waits_with_body/1,
         protocol_violations/1, app_raises/1, violation_caught_by_app/1,
         starlette_routing_json/1, starlette_404/1, starlette_json_post/1,
         starlette_form/1, starlette_multipart/1, starlette_headers/1,
         starlette_cookies/1, starlette_streaming/1, starlette_background/1,
         starlette_http_exception/1, starlette_unhandled/1, starlette_lifespan/1,
         fastapi_routing_query/1, fastapi_validation_422/1, fastapi_json_body/1,
         fastapi_form/1, fastapi_multipart/1, fastapi_headers/1, fastapi_cookies/1,
         fastapi_streaming/1, fastapi_background/1, fastapi_http_exception/1,
         fastapi_unhandled/1,
         concurrent_200_sleepers/1, stepping_same_as_loop/1, stepping_concurrent_mix/1,
         timeout_cancels_task/1, timeouts_concurrent/1,
         ref_reused/1, ref_mutations_do_not_leak/1, ref_nested_mutations_do_not_leak/1,
         two_refs_never_mix/1, ref_state_fresh_per_request/1,
         lifespan_state_shallow_copy/1, lifespan_state_through_ref/1,
         lifespan_unsupported/1, lifespan_startup_failed/1,
         options_each_off/1, options_all_off/1]).

-define(APPS, ep_asgi_apps).
-define(STAR, ep_asgi_starlette).
-define(FAPI, ep_asgi_fastapi).

all() ->
    [{group, scope}, {group, bodies}, {group, receive_after_body}, {group, protocol},
     {group, starlette}, {group, fastapi}, {group, concurrency}, {group, timeouts},
     {group, build_scope}, {group, lifespan}, {group, options}].

groups() ->
    [{scope, [], [scope_types, scope_headers_tuples_and_lists, scope_defaults,
                  scope_every_field_given, scope_client_server,
                  scope_state_fresh_per_request, scope_extensions_passed_through,
                  bad_scope_missing_fields, bad_scope_wrong_types, bad_scope_runs_no_python,
                  bad_options]},
     {bodies, [], [request_bodies_byte_exact, response_bodies_byte_exact,
                   response_chunks_joined, zero_copy_survives_gc, zero_copy_10000]},
     {receive_after_body, [], [receive_waits_for_response, receive_waits_with_body]},
     {protocol, [], [protocol_violations, app_raises, violation_caught_by_app]},
     {starlette, [], [starlette_routing_json, starlette_404, starlette_json_post,
                      starlette_form, starlette_multipart, starlette_headers,
                      starlette_cookies, starlette_streaming, starlette_background,
                      starlette_http_exception, starlette_unhandled, starlette_lifespan]},
     {fastapi, [], [fastapi_routing_query, fastapi_validation_422, fastapi_json_body,
                    fastapi_form, fastapi_multipart, fastapi_headers, fastapi_cookies,
                    fastapi_streaming, fastapi_background, fastapi_http_exception,
                    fastapi_unhandled]},
     {concurrency, [], [concurrent_200_sleepers, stepping_same_as_loop,
                        stepping_concurrent_mix]},
     {timeouts, [], [timeout_cancels_task, timeouts_concurrent]},
     {build_scope, [], [ref_reused, ref_mutations_do_not_leak,
                        ref_nested_mutations_do_not_leak, two_refs_never_mix,
                        ref_state_fresh_per_request]},
     {lifespan, [], [lifespan_state_shallow_copy, lifespan_state_through_ref,
                     lifespan_unsupported, lifespan_startup_failed]},
     %% The NIF's runtime switches (benchmark baselines): each off alone, then all off.
     {options, [], [options_each_off, options_all_off]}].

init_per_suite(Config) ->
    ok = erlang_python_ct:start(Config),
    Config.

end_per_suite(_Config) ->
    erlang_python_ct:stop().

%% FastAPI's pydantic-core refuses sub-interpreters: in subinterpreters mode its requests
%% fail with that ImportError (py_mode_SUITE checks it, and auto's fall back to gil).
init_per_group(fastapi, Config) ->
    case ep_test_lib:mode() of
        subinterpreters -> {skip, "pydantic-core refuses sub-interpreters (see py_mode_SUITE)"};
        _ -> Config
    end;
init_per_group(_Group, Config) ->
    Config.

end_per_group(options, _Config) ->
    restore_options();
end_per_group(_Group, _Config) ->
    ok.

init_per_testcase(_TC, Config) ->
    _ = erlang_python_ct:each(?APPS, reset, []),
    Config.

%% Every test leaves the caller's mailbox empty: no stray or late replies.
end_per_testcase(_TC, _Config) ->
    ?assertEqual({messages, []}, process_info(self(), messages)),
    ok.

%% ---- scope --------------------------------------------------------------------------

%% Types exactly per the ASGI spec, as the app sees them.
scope_types(_Config) ->
    Scope = #{type => <<"http">>,
              path => <<"/caf%C3%A9/a%2Fb">>,
              method => <<"POST">>,
              query_string => <<"q=caf%C3%A9&x=%20&x=2">>,
              headers => [{<<"Content-Type">>, <<"text/plain">>},
                          {<<"X-Dup">>, <<"one">>},
                          {<<"AUTHORIZATION">>, <<"Bearer AbC">>},
                          {<<"x-dup">>, <<"two">>},
                          {<<"X-Bin">>, <<255, 0, 1, "é"/utf8>>}],
              client => {<<"10.1.2.3">>, 50123},
              server => {<<"example.org">>, 443},
              scheme => <<"https">>},
    S = echo(Scope),
    ?assertEqual({str, <<"http">>}, field(<<"type">>, S)),
    ?assertEqual({str, <<"/café/a/b"/utf8>>}, field(<<"path">>, S)),
    ?assertEqual({bytes, <<"/caf%C3%A9/a%2Fb">>}, field(<<"raw_path">>, S)),
    ?assertEqual({bytes, <<"q=caf%C3%A9&x=%20&x=2">>}, field(<<"query_string">>, S)),
    ?assertEqual({str, <<"POST">>}, field(<<"method">>, S)),
    ?assertEqual({str, <<"https">>}, field(<<"scheme">>, S)),
    ?assertEqual({list, [{tuple, [{bytes, <<"content-type">>}, {bytes, <<"text/plain">>}]},
                         {tuple, [{bytes, <<"x-dup">>}, {bytes, <<"one">>}]},
                         {tuple, [{bytes, <<"authorization">>}, {bytes, <<"Bearer AbC">>}]},
                         {tuple, [{bytes, <<"x-dup">>}, {bytes, <<"two">>}]},
                         {tuple, [{bytes, <<"x-bin">>}, {bytes, <<255, 0, 1, "é"/utf8>>}]}]},
                 field(<<"headers">>, S)),
    ?assertEqual({tuple, [{str, <<"10.1.2.3">>}, {int, 50123}]}, field(<<"client">>, S)),
    ?assertEqual({tuple, [{str, <<"example.org">>}, {int, 443}]}, field(<<"server">>, S)),
    ?assertEqual({dict, [{{str, <<"version">>}, {str, <<"3.0">>}},
                         {{str, <<"spec_version">>}, {str, <<"2.4">>}}]},
                 field(<<"asgi">>, S)),
    %% More percent-decoding: multi-byte, lower-case hex, a '%' that is not an escape,
    %% '+' kept (only query strings use it for space), invalid UTF-8 replaced.
    ?assertEqual({str, <<"/日本/ü/100%/a+b/x%zz"/utf8>>},
                 field(<<"path">>, echo(#{type => <<"http">>,
                                         path => <<"/%E6%97%A5%E6%9C%AC/%c3%bc/100%/a+b/x%zz">>}))),
    ?assertEqual({str, <<"/bad/", 16#EF, 16#BF, 16#BD, "/end">>},
                 field(<<"path">>, echo(#{type => <<"http">>, path => <<"/bad/%FF/end">>}))),
    %% A path that is already UTF-8 (not percent-encoded) stays as it is.
    ?assertEqual({str, <<"/café"/utf8>>},
                 field(<<"path">>, echo(#{type => <<"http">>, path => <<"/café"/utf8>>}))),
    ?assertEqual({bytes, <<"/café"/utf8>>},
                 field(<<"raw_path">>, echo(#{type => <<"http">>, path => <<"/café"/utf8>>}))).

%% Headers given as {N, V} tuples, [N, V] lists, or both mixed: the same list of
%% 2-tuples of bytes, in order, duplicates kept, names lower-cased, values untouched.
scope_headers_tuples_and_lists(_Config) ->
    Expected = {list, [{tuple, [{bytes, <<"x-a">>}, {bytes, <<"1">>}]},
                       {tuple, [{bytes, <<"host">>}, {bytes, <<"Example.ORG">>}]},
                       {tuple, [{bytes, <<"x-a">>}, {bytes, <<"2">>}]},
                       {tuple, [{bytes, <<"cookie">>}, {bytes, <<"a=1">>}]},
                       {tuple, [{bytes, <<"cookie">>}, {bytes, <<"b=2">>}]},
                       {tuple, [{bytes, <<"x-empty">>}, {bytes, <<>>}]}]},
    Pairs = [{<<"X-A">>, <<"1">>}, {<<"Host">>, <<"Example.ORG">>}, {<<"x-A">>, <<"2">>},
             {<<"Cookie">>, <<"a=1">>}, {<<"COOKIE">>, <<"b=2">>}, {<<"X-Empty">>, <<>>}],
    Tuples = Pairs,
    Lists = [[N, V] || {N, V} <- Pairs],
    Mixed = [case I rem 2 of 0 -> [N, V]; 1 -> {N, V} end
             || {I, {N, V}} <- lists:zip(lists:seq(1, length(Pairs)), Pairs)],
    [?assertEqual(Expected, field(<<"headers">>, echo(#{type => <<"http">>, path => <<"/h">>,
                                                         headers => H})))
     || H <- [Tuples, Lists, Mixed]],
    %% 200 headers, long names (over any stack buffer), in order.
    Many = [{<<"X-H", (integer_to_binary(I))/binary>>, integer_to_binary(I)}
            || I <- lists:seq(1, 200)],
    LongName = binary:copy(<<"AbC">>, 200),
    {list, Got} = field(<<"headers">>, echo(#{type => <<"http">>, path => <<"/h">>,
                                              headers => Many ++ [{LongName, <<"v">>}]})),
    ?assertEqual([{tuple, [{bytes, <<"x-h", (integer_to_binary(I))/binary>>},
                           {bytes, integer_to_binary(I)}]} || I <- lists:seq(1, 200)]
                 ++ [{tuple, [{bytes, binary:copy(<<"abc">>, 200)}, {bytes, <<"v">>}]}],
                 Got).

%% Only type and path given: every default of the edoc, and no other key.
scope_defaults(_Config) ->
    S = echo(#{type => <<"http">>, path => <<"/d%20x">>}),
    ?assertEqual(lists:sort([<<"type">>, <<"path">>, <<"asgi">>, <<"http_version">>,
                             <<"method">>, <<"scheme">>, <<"raw_path">>, <<"query_string">>,
                             <<"root_path">>, <<"headers">>, <<"server">>, <<"client">>,
                             <<"state">>]),
                 lists:sort([K || {K, _} <- S])),
    ?assertEqual({str, <<"http">>}, field(<<"type">>, S)),
    ?assertEqual({str, <<"/d x">>}, field(<<"path">>, S)),
    ?assertEqual({dict, [{{str, <<"version">>}, {str, <<"3.0">>}},
                         {{str, <<"spec_version">>}, {str, <<"2.4">>}}]},
                 field(<<"asgi">>, S)),
    ?assertEqual({str, <<"1.1">>}, field(<<"http_version">>, S)),
    ?assertEqual({str, <<"GET">>}, field(<<"method">>, S)),
    ?assertEqual({str, <<"http">>}, field(<<"scheme">>, S)),
    ?assertEqual({bytes, <<"/d%20x">>}, field(<<"raw_path">>, S)),
    ?assertEqual({bytes, <<>>}, field(<<"query_string">>, S)),
    ?assertEqual({str, <<>>}, field(<<"root_path">>, S)),
    ?assertEqual({list, []}, field(<<"headers">>, S)),
    ?assertEqual(none, field(<<"server">>, S)),
    ?assertEqual(none, field(<<"client">>, S)),
    ?assertEqual({dict, []}, field(<<"state">>, S)).

%% Every optional field given: each reaches the app with the spec's type, nothing
%% replaced by a default.
scope_every_field_given(_Config) ->
    Scope = #{type => <<"http">>, path => <<"/app/x">>,
              asgi => #{<<"version">> => <<"3.0">>, <<"spec_version">> => <<"2.3">>},
              http_version => <<"2">>, method => <<"DELETE">>, scheme => <<"https">>,
              raw_path => <<"/app/%78">>, query_string => <<"a=%FF">>,
              root_path => <<"/app">>, headers => [{<<"a">>, <<"b">>}],
              server => {<<"::1">>, 8443}, client => {<<"127.0.0.1">>, 1},
              state => #{<<"k">> => <<"v">>, <<"n">> => 1, <<"b">> => {bytes, <<0>>}},
              extensions => #{<<"http.response.trailers">> => #{}}},
    S = echo(Scope),
    ?assertEqual(lists:sort([atom_to_binary(K) || K <- maps:keys(Scope)]),
                 lists:sort([K || {K, _} <- S])),
    {dict, Asgi} = field(<<"asgi">>, S),
    ?assertEqual(lists:sort([{{str, <<"version">>}, {str, <<"3.0">>}},
                             {{str, <<"spec_version">>}, {str, <<"2.3">>}}]),
                 lists:sort(Asgi)),
    ?assertEqual({str, <<"2">>}, field(<<"http_version">>, S)),
    ?assertEqual({str, <<"DELETE">>}, field(<<"method">>, S)),
    ?assertEqual({str, <<"https">>}, field(<<"scheme">>, S)),
    ?assertEqual({str, <<"/app/x">>}, field(<<"path">>, S)),
    ?assertEqual({bytes, <<"/app/%78">>}, field(<<"raw_path">>, S)),
    ?assertEqual({bytes, <<"a=%FF">>}, field(<<"query_string">>, S)),
    ?assertEqual({str, <<"/app">>}, field(<<"root_path">>, S)),
    ?assertEqual({list, [{tuple, [{bytes, <<"a">>}, {bytes, <<"b">>}]}]}, field(<<"headers">>, S)),
    ?assertEqual({tuple, [{str, <<"::1">>}, {int, 8443}]}, field(<<"server">>, S)),
    ?assertEqual({tuple, [{str, <<"127.0.0.1">>}, {int, 1}]}, field(<<"client">>, S)),
    {dict, State} = field(<<"state">>, S),
    ?assertEqual(lists:sort([{{str, <<"k">>}, {str, <<"v">>}}, {{str, <<"n">>}, {int, 1}},
                             {{str, <<"b">>}, {bytes, <<0>>}}]),
                 lists:sort(State)),
    ?assertEqual({dict, [{{str, <<"http.response.trailers">>}, {dict, []}}]},
                 field(<<"extensions">>, S)).

%% client/server: {Host, Port} -> (str, int); undefined or none -> None.
scope_client_server(_Config) ->
    [begin
         S = echo(#{type => <<"http">>, path => <<"/cs">>, client => V, server => V}),
         ?assertEqual(Expected, field(<<"client">>, S)),
         ?assertEqual(Expected, field(<<"server">>, S))
     end
     || {V, Expected} <- [{undefined, none}, {none, none},
                          {{<<"1.2.3.4">>, 80}, {tuple, [{str, <<"1.2.3.4">>}, {int, 80}]}},
                          {{<<"unix.sock">>, 0}, {tuple, [{str, <<"unix.sock">>}, {int, 0}]}},
                          {{<<"h">>, 65535}, {tuple, [{str, <<"h">>}, {int, 65535}]}}]].

%% The default state is a new dict for each request: a key set by one request is not
%% seen by the next, and the dicts are distinct objects.
%% (state_identity keeps every state it saw, per interpreter: each request's is new.)
scope_state_fresh_per_request(_Config) ->
    Results = [json(body(py_asgi:run(?APPS, state_identity, #{type => <<"http">>,
                                                              path => <<"/s">>}, <<>>)))
               || _ <- lists:seq(1, 5)],
    ?assertEqual([[#{<<"keys">> => [], <<"ids">> => N, <<"n">> => N} || N <- lists:seq(1, K)]
                  || K <- group_sizes(Results)],
                 by_interpreter(Results)),
    %% A given state map is converted afresh for each request as well.
    Given = [json(body(py_asgi:run(?APPS, state_identity,
                                   #{type => <<"http">>, path => <<"/s">>,
                                     state => #{<<"given">> => 1}}, <<>>)))
             || _ <- lists:seq(1, 3)],
    ?assertEqual([], [G || #{<<"keys">> := Keys, <<"ids">> := Ids, <<"n">> := N} = G <- Given,
                           Keys =/= [<<"given">>] orelse Ids =/= N]),
    ?assertEqual(8, lists:sum(erlang_python_ct:each(?APPS, states_seen, []))).

%% extensions are passed through as given (and absent unless given).
scope_extensions_passed_through(_Config) ->
    S = echo(#{type => <<"http">>, path => <<"/e">>,
               extensions => #{<<"http.response.trailers">> => #{},
                               <<"x.custom">> => #{<<"list">> => [1, <<"a">>],
                                                   <<"bytes">> => {bytes, <<"b">>}}}}),
    {dict, Ext} = field(<<"extensions">>, S),
    ?assertEqual(lists:sort([{{str, <<"http.response.trailers">>}, {dict, []}},
                             {{str, <<"x.custom">>},
                              {dict, lists:sort([{{str, <<"list">>}, {list, [{int, 1}, {str, <<"a">>}]}},
                                                 {{str, <<"bytes">>}, {bytes, <<"b">>}}])}}]),
                 lists:sort([{K, sort_dict(V)} || {K, V} <- Ext])),
    ?assertEqual(undefined, field(<<"extensions">>, echo(#{type => <<"http">>, path => <<"/e">>}))).

bad_scope_missing_fields(_Config) ->
    Cases = [{#{}, type},
             {#{path => <<"/">>}, type},
             {#{type => <<"http">>}, path},
             {#{method => <<"GET">>}, type},
             {#{type => <<"http">>, method => <<"GET">>, headers => []}, path}],
    [begin
         ?assertEqual({error, {bad_scope, Field}}, py_asgi:run(?APPS, hello, Scope, <<>>)),
         ?assertEqual({error, {bad_scope, Field}}, py_asgi:build_scope(Scope)),
         ?assertEqual({error, {bad_scope, Field}},
                      py_asgi:run(?APPS, hello, Scope, <<>>, #{timeout => 1000}))
     end || {Scope, Field} <- Cases].

%% Each field with a value of the wrong type (and unknown keys, and non-map scopes).
bad_scope_wrong_types(_Config) ->
    Base = #{type => <<"http">>, path => <<"/">>},
    Cases = [{type, http}, {type, "http"}, {type, 1},
             {path, "/"}, {path, '/'}, {path, <<1:1>>},
             {asgi, [{version, <<"3.0">>}]}, {asgi, <<"3.0">>},
             {http_version, 1.1}, {http_version, "1.1"},
             {method, get}, {method, "GET"},
             {scheme, https}, {scheme, 1},
             {raw_path, "/"}, {raw_path, undefined},
             {query_string, "a=1"}, {query_string, #{a => 1}},
             {root_path, root}, {root_path, ["/a"]},
             {headers, #{<<"a">> => <<"b">>}}, {headers, <<"a: b">>},
             {headers, [{<<"a">>}]}, {headers, [{<<"a">>, <<"b">>, <<"c">>}]},
             {headers, [{a, <<"b">>}]}, {headers, [{<<"a">>, "b"}]},
             {headers, [[<<"a">>]]}, {headers, [[<<"a">>, <<"b">>, <<"c">>]]},
             {headers, [[<<"a">> | <<"b">>]]}, {headers, [{<<"a">>, <<"b">>} | tail]},
             {headers, [{<<"ok">>, <<"1">>}, <<"bad">>]},
             {server, {<<"h">>, <<"80">>}}, {server, {"h", 80}}, {server, <<"h:80">>},
             {server, {<<"h">>, 80, x}}, {server, {<<"h">>, 1.0}},
             {client, [<<"h">>, 80]}, {client, false}, {client, {<<"h">>, 1 bsl 40}},
             {state, []}, {state, state},
             {extensions, [<<"http.response.trailers">>]}, {extensions, none},
             {unknown_key, 1}],
    [?assertEqual({{Field, Value}, {error, {bad_scope, Field}}},
                  {{Field, Value}, py_asgi:run(?APPS, hello, Base#{Field => Value}, <<>>)})
     || {Field, Value} <- Cases],
    [?assertEqual({{Field, Value}, {error, {bad_scope, Field}}},
                  {{Field, Value}, py_asgi:build_scope(Base#{Field => Value})})
     || {Field, Value} <- Cases],
    ?assertEqual({error, {bad_scope, <<"x">>}}, py_asgi:run(?APPS, hello, Base#{<<"x">> => 1}, <<>>)),
    %% A scope that is neither a map nor a ref.
    [?assertEqual({error, {bad_scope, NotMap}}, py_asgi:run(?APPS, hello, NotMap, <<>>))
     || NotMap <- [[], [{type, <<"http">>}], <<"scope">>, make_ref(), self()]].

%% A bad scope never reaches Python: the counting app is not called, and a module that
%% does not exist is not even imported.
bad_scope_runs_no_python(_Config) ->
    Bad = #{type => <<"http">>, path => <<"/runs-no-python">>, method => get},
    ?assertEqual({error, {bad_scope, method}}, py_asgi:run(?APPS, counted, Bad, <<>>)),
    ?assertEqual({error, {bad_scope, method}},
                 py_asgi:run(no_such_module_xyz, app, Bad, <<>>)),
    ?assertEqual(0, count(<<"/runs-no-python">>)),
    %% The same scope, fixed, does run it.
    {ok, {200, _, <<"value|">>}} =
        py_asgi:run(?APPS, counted, Bad#{method => <<"GET">>, query_string => <<"plain">>}, <<>>),
    ?assertEqual(1, count(<<"/runs-no-python">>)).

bad_options(_Config) ->
    S = #{type => <<"http">>, path => <<"/">>},
    ?assertEqual({error, {badarg, {options, [x]}}}, py_asgi:run(?APPS, hello, S, <<>>, [x])),
    ?assertEqual({error, {badarg, {options, #{x => 1}}}}, py_asgi:build_scope(S, #{x => 1})),
    ?assertEqual({error, {badarg, {body, "abc"}}}, py_asgi:run(?APPS, hello, S, "abc")),
    %% Names: the shapes of py:call ({badarg, {module, M}}), one per argument.
    ?assertEqual({error, {badarg, {module, "ep_asgi_apps"}}},
                 py_asgi:run("ep_asgi_apps", hello, S, <<>>)),
    ?assertEqual({error, {badarg, {callable, 1}}}, py_asgi:run(?APPS, 1, S, <<>>)),
    ?assertEqual({error, {badarg, {runner, [r]}}},
                 py_asgi:run(?APPS, hello, S, <<>>, #{runner => [r]})),
    ?assertEqual({error, {badarg, {module, 1}}}, py_asgi:start(1, hello, S, #{})),
    ?assertEqual({error, {badarg, {module, 1}}}, py_asgi:lifespan_startup(1, hello, #{})),
    ?assertEqual({ok, {200, [{<<"content-type">>, <<"text/plain">>}], <<"hello">>}},
                 py_asgi:run(<<"ep_asgi_apps">>, <<"hello">>, S, <<>>)).

%% ---- bodies -------------------------------------------------------------------------

-define(SIZES, [0, 1, 1023, 1024, 4095, 4096, 65536, 10 * 1024 * 1024]).

%% Request bodies of every size through receive(), byte-exact (the app echoes the body
%% and reports its length, SHA-256 and Python type).
request_bodies_byte_exact(_Config) ->
    [begin
         Body = crypto:strong_rand_bytes(N),
         {ok, {200, Headers, Echo}} =
             py_asgi:run(?APPS, echo_body, #{type => <<"http">>, path => <<"/echo">>,
                                             method => <<"POST">>}, Body),
         ?assertEqual({N, true}, {N, Echo =:= Body}),
         ?assertEqual([{<<"x-len">>, integer_to_binary(N)},
                       {<<"x-sha256">>, sha256_hex(Body)},
                       {<<"x-type">>, <<"bytes">>}], Headers)
     end || N <- ?SIZES],
    %% A sub-binary of a larger binary (offset not 0) as the body.
    <<_:3/binary, Sub:2000/binary, _/binary>> = crypto:strong_rand_bytes(3000),
    ?assertMatch({ok, {200, _, Sub}},
                 py_asgi:run(?APPS, echo_body, #{type => <<"http">>, path => <<"/e">>}, Sub)).

%% Response bodies of every size, byte-exact.
response_bodies_byte_exact(_Config) ->
    [begin
         {ok, {200, [], Body}} = run_sized(sized_body, N),
         ?assertEqual({N, true}, {N, Body =:= pattern(N)})
     end || N <- ?SIZES].

%% A body sent in several messages (bytes, bytearray, memoryview) arrives joined.
response_chunks_joined(_Config) ->
    [begin
         {ok, {200, [], Body}} = run_sized(chunked_body, N),
         ?assertEqual({N, true}, {N, Body =:= pattern(N)})
     end || N <- [3, 1024, 4096 * 3, 65536, 10 * 1024 * 1024]].

%% Bodies of 4 KiB and more are binaries over the Python bytes: they stay intact after
%% garbage collection of the caller, after Python has built many other bodies, and in
%% another process after the caller dropped them.
zero_copy_survives_gc(_Config) ->
    Sizes = [4096, 65536, 10 * 1024 * 1024],
    Bodies = [begin {ok, {200, [], B}} = run_sized(sized_body, N), B end || N <- Sizes],
    Check = fun() -> [?assertEqual({N, true}, {N, B =:= pattern(N)})
                      || {N, B} <- lists:zip(Sizes, Bodies)] end,
    Check(),
    true = erlang:garbage_collect(),
    Check(),
    %% Churn Python's allocator with other bodies of the same sizes, then GC again.
    [begin {ok, {200, [], _}} = run_sized(App, N), ok end
     || N <- Sizes, App <- [sized_body, chunked_body], _ <- lists:seq(1, 3)],
    {ok, _} = py:call(gc, collect, []),
    true = erlang:garbage_collect(),
    Check(),
    %% Handed to another process, dropped here, checked there after GC on both sides.
    Self = self(),
    Pid = spawn_link(fun() ->
                             receive {bodies, Bs} ->
                                     receive go -> ok end,
                                     true = erlang:garbage_collect(),
                                     Self ! {checked, [B =:= pattern(N)
                                                       || {N, B} <- lists:zip(Sizes, Bs)]}
                             end
                     end),
    Pid ! {bodies, Bodies},
    true = erlang:garbage_collect(),
    Pid ! go,
    receive {checked, Results} -> ?assertEqual([true, true, true], Results)
    after 10000 -> ct:fail(no_check)
    end.

%% 10,000 zero-copy responses (4 KiB .. 64 KiB) from 10 processes; every 100th is kept
%% and checked after all the others were garbage collected; the runtime still answers.
zero_copy_10000(_Config) ->
    Self = self(),
    Sizes = [4096, 5000, 16384, 65536],
    Workers = 10,
    Per = 1000,
    [spawn_link(fun() ->
                        Kept = lists:foldl(
                                 fun(I, Acc) ->
                                         N = lists:nth(1 + (I rem length(Sizes)), Sizes),
                                         {ok, {200, [], B}} = run_sized(sized_body, N),
                                         N = byte_size(B),
                                         case I rem 100 of
                                             0 -> [{N, B} | Acc];
                                             _ -> Acc
                                         end
                                 end, [], lists:seq(1, Per)),
                        Self ! {kept, W, Kept}
                end) || W <- lists:seq(1, Workers)],
    Kept = lists:append([receive {kept, W, K} -> K after 120000 -> ct:fail({worker, W}) end
                         || W <- lists:seq(1, Workers)]),
    ?assertEqual(Workers * Per div 100, length(Kept)),
    true = erlang:garbage_collect(),
    timer:sleep(100),
    ?assertEqual([], [N || {N, B} <- Kept, B =/= pattern(N)]),
    Info = py:info(),
    ?assert(is_map(Info)),
    ?assertEqual({ok, {200, [{<<"content-type">>, <<"text/plain">>}], <<"hello">>}},
                 hello()),
    ?assertEqual({ok, 4.0}, py:call(math, sqrt, [16.0])).

%% ---- receive() after the body ------------------------------------------------------

%% receive() after the whole body waits: a task awaiting it is still pending before the
%% start and before the last body message, and gets http.disconnect once the response
%% is complete.
receive_waits_for_response(_Config) ->
    Key = <<"/rw1">>,
    ?assertEqual({ok, {200, [], <<"part1part2">>}},
                 py_asgi:run(?APPS, receive_waits, #{type => <<"http">>, path => Key}, <<>>)),
    #{<<"first">> := First, <<"events">> := Events} = ep_test_lib:one(?APPS, record, [Key]),
    ?assertEqual([<<"http.request">>, <<>>, false], First),
    check_receive_events(Events).

receive_waits_with_body(_Config) ->
    Key = <<"/rw2">>,
    ?assertEqual({ok, {200, [], <<"part1part2">>}},
                 py_asgi:run(?APPS, receive_waits, #{type => <<"http">>, path => Key,
                                                     method => <<"POST">>}, <<"abc">>)),
    #{<<"first">> := First, <<"events">> := Events} = ep_test_lib:one(?APPS, record, [Key]),
    ?assertEqual([<<"http.request">>, <<"616263">>, false], First),
    check_receive_events(Events).

check_receive_events(Events) ->
    ?assertMatch([[<<"before_start">>, false], [<<"before_last_body">>, false] | _], Events),
    [_, _ | Rest] = Events,
    %% after_last_body is noted right after send() returned; whether the waiting task
    %% ran by then depends on whether send() yields, so only the order of the other two
    %% is pinned: receive() returned http.disconnect after the last body, then the app
    %% saw its watcher done.
    ?assertEqual([<<"receive_returned">>, <<"watcher_done">>],
                 [N || [N, _] <- Rest, N =/= <<"after_last_body">>]),
    ?assertEqual([[<<"receive_returned">>, <<"http.disconnect">>]],
                 [E || [<<"receive_returned">>, _] = E <- Rest]),
    ?assertEqual([<<"watcher_done">>, true], lists:last(Rest)).

%% ---- protocol ------------------------------------------------------------------------

protocol_violations(_Config) ->
    Cases = [{body_before_start, <<"ASGI 'http.response.body' sent before 'http.response.start'">>},
             {start_twice, <<"ASGI 'http.response.start' sent twice">>},
             {send_after_end, <<"ASGI 'http.response.body' sent after the response was complete">>},
             {no_response, <<"ASGI app returned without completing the response">>},
             {start_only, <<"ASGI app returned without completing the response">>},
             {body_unfinished, <<"ASGI app returned without completing the response">>},
             {unknown_type, <<"ASGI message type 'http.response.foo' is not supported in an HTTP response">>},
             {not_a_dict, <<"ASGI message must be a dict, got list">>},
             {status_str, <<"ASGI 'http.response.start': 'status' must be an int, got '200'">>},
             {headers_str, <<"ASGI 'http.response.start': each header must be a [bytes, bytes] pair, got ('x-a', 'b')">>},
             {body_str, <<"ASGI 'http.response.body': 'body' must be bytes, got str">>},
             {more_body_str, <<"ASGI 'http.response.body': 'more_body' must be a bool, got 'yes'">>}],
    [begin
         R = py_asgi:run(?APPS, App, #{type => <<"http">>, path => <<"/p">>}, <<>>),
         ?assertMatch({App, {error, {python, <<"RuntimeError">>, Msg, [_ | _]}}}, {App, R}),
         {error, {python, _, _, TB}} = R,
         ?assert(lists:all(fun is_binary/1, TB)),
         ?assertEqual(<<"RuntimeError: ", Msg/binary>>, lists:last(TB))
     end || {App, Msg} <- Cases],
    %% Nothing crashed: the runtime and the ASGI path still work.
    ?assert(is_map(py:info())),
    ?assertEqual({ok, {200, [{<<"content-type">>, <<"text/plain">>}], <<"hello">>}}, hello()).

app_raises(_Config) ->
    {error, {python, Type, Msg, TB}} =
        py_asgi:run(?APPS, app_raises, #{type => <<"http">>, path => <<"/r">>}, <<>>),
    ?assertEqual(<<"ValueError">>, Type),
    ?assertEqual(<<"app failed on purpose">>, Msg),
    ?assertEqual(<<"Traceback (most recent call last):">>, hd(TB)),
    ?assertEqual(<<"ValueError: app failed on purpose">>, lists:last(TB)),
    ?assertMatch([_ | _], [L || L <- TB, binary:match(L, <<"in app_raises">>) =/= nomatch]),
    ?assertEqual({ok, {200, [{<<"content-type">>, <<"text/plain">>}], <<"hello">>}}, hello()).

%% send() raises inside the app, which can catch it and answer properly.
violation_caught_by_app(_Config) ->
    ?assertEqual({ok, {500, [], <<"ASGI 'http.response.body' sent before 'http.response.start'">>}},
                 py_asgi:run(?APPS, violation_caught, #{type => <<"http">>, path => <<"/v">>}, <<>>)).

%% ---- Starlette -----------------------------------------------------------------------

starlette_routing_json(_Config) ->
    {ok, {200, Headers, Body}} = http_get(?STAR, <<"/items/42">>, <<"q=caf%C3%A9&tag=a&tag=b+c">>, []),
    ?assertEqual([<<"application/json">>], hdr(<<"content-type">>, Headers)),
    ?assertEqual([integer_to_binary(byte_size(Body))], hdr(<<"content-length">>, Headers)),
    ?assertEqual(#{<<"id">> => 42, <<"q">> => <<"café"/utf8>>, <<"tags">> => [<<"a">>, <<"b c">>],
                   <<"path">> => <<"/items/42">>, <<"method">> => <<"GET">>},
                 json(Body)).

starlette_404(_Config) ->
    ?assertMatch({ok, {404, _, <<"Not Found">>}}, http_get(?STAR, <<"/nope">>, <<>>, [])),
    %% A path parameter that does not match its convertor is not routed either.
    ?assertMatch({ok, {404, _, <<"Not Found">>}}, http_get(?STAR, <<"/items/abc">>, <<>>, [])),
    %% Wrong method.
    ?assertMatch({ok, {405, _, <<"Method Not Allowed">>}},
                 request(?STAR, <<"DELETE">>, <<"/json">>, <<>>, [], <<>>)).

starlette_json_post(_Config) ->
    Body = <<"{\"name\": \"caf\\u00e9\", \"n\": [1, 2.5, null, true]}">>,
    {ok, {201, Headers, Resp}} =
        request(?STAR, <<"POST">>, <<"/json">>, <<>>,
                [{<<"content-type">>, <<"application/json">>}], Body),
    ?assertEqual([<<"application/json">>], hdr(<<"content-type">>, Headers)),
    ?assertEqual(#{<<"got">> => #{<<"name">> => <<"café"/utf8>>, <<"n">> => [1, 2.5, none, true]}},
                 json(Resp)).

starlette_form(_Config) ->
    {ok, {200, _, Resp}} =
        request(?STAR, <<"POST">>, <<"/form">>, <<>>,
                [{<<"Content-Type">>, <<"application/x-www-form-urlencoded">>}],
                <<"a=1&b=caf%C3%A9&b=two+words&empty=">>),
    ?assertEqual(#{<<"a">> => [<<"1">>], <<"b">> => [<<"café"/utf8>>, <<"two words">>],
                   <<"empty">> => [<<>>]},
                 json(Resp)).

starlette_multipart(_Config) ->
    File = file_content(),
    {CT, Body} = multipart([{field, <<"field">>, <<"value é"/utf8>>},
                            {file, <<"file">>, <<"data.bin">>, <<"application/octet-stream">>, File},
                            {field, <<"other">>, <<"1">>},
                            {field, <<"other">>, <<"2">>}]),
    {ok, {200, _, Resp}} =
        request(?STAR, <<"POST">>, <<"/upload">>, <<>>,
                [{<<"content-type">>, CT},
                 {<<"content-length">>, integer_to_binary(byte_size(Body))}], Body),
    ?assertEqual(#{<<"filename">> => <<"data.bin">>,
                   <<"content_type">> => <<"application/octet-stream">>,
                   <<"size">> => byte_size(File), <<"sha256">> => sha256_hex(File),
                   <<"field">> => <<"value é"/utf8>>, <<"other">> => [<<"1">>, <<"2">>]},
                 json(Resp)).

starlette_headers(_Config) ->
    {ok, {200, Headers, Body}} =
        http_get(?STAR, <<"/headers">>, <<>>,
            [{<<"X-Test">>, <<"hello">>}, {<<"X-Multi">>, <<"a">>}, {<<"x-multi">>, <<"b">>},
             {<<"Authorization">>, <<"Basic dXNlcjpwYXNz">>}]),
    ?assertEqual(<<"x-test=hello;multi=a,b;auth=Basic dXNlcjpwYXNz">>, Body),
    ?assertEqual([<<"custom value">>], hdr(<<"x-custom">>, Headers)),
    ?assertEqual([<<"2">>], hdr(<<"x-other">>, Headers)),
    ?assertEqual([<<"text/plain; charset=utf-8">>], hdr(<<"content-type">>, Headers)),
    %% Every header name and value is a binary; the names are the app's (lower-case).
    ?assert(lists:all(fun({N, V}) -> is_binary(N) andalso is_binary(V)
                                         andalso N =:= string:lowercase(N) end, Headers)).

starlette_cookies(_Config) ->
    {ok, {200, Headers, Body}} =
        http_get(?STAR, <<"/cookies">>, <<>>, [{<<"cookie">>, <<"b=2; a=1">>}]),
    ?assertEqual(<<"cookies:a=1;b=2">>, Body),
    %% Two Set-Cookie headers, kept as two, in the app's order.
    ?assertMatch([<<"first=1; Path=/; SameSite=lax">>, <<"second=2; HttpOnly; Path=/; SameSite=lax">>],
                 hdr(<<"set-cookie">>, Headers)),
    Names = [N || {N, _} <- Headers],
    ?assertEqual(2, length([N || N <- Names, N =:= <<"set-cookie">>])).

%% StreamingResponse whose async generator awaits asyncio.sleep: the full body.
starlette_streaming(_Config) ->
    {ok, {200, Headers, Body}} = http_get(?STAR, <<"/stream">>, <<>>, []),
    ?assertEqual(<<"chunk0;chunk1;chunk2;chunk3;chunk4;">>, Body),
    ?assertEqual([<<"text/plain; charset=utf-8">>], hdr(<<"content-type">>, Headers)).

starlette_background(_Config) ->
    Tag = unique(<<"bg">>),
    ?assertMatch({ok, {200, _, <<"queued">>}}, http_get(?STAR, <<"/background">>, <<"tag=", Tag/binary>>, [])),
    Log = lists:append(erlang_python_ct:each(?STAR, background_log, [])),
    ?assertEqual(1, length([T || T <- Log, T =:= Tag])).

starlette_http_exception(_Config) ->
    ?assertMatch({ok, {418, _, <<"short and stout">>}}, http_get(?STAR, <<"/teapot">>, <<>>, [])).

%% ServerErrorMiddleware sends a 500 and re-raises: the caller gets the exception.
starlette_unhandled(_Config) ->
    {error, {python, Type, Msg, TB}} = http_get(?STAR, <<"/boom">>, <<>>, []),
    ?assertEqual({<<"ValueError">>, <<"starlette boom">>}, {Type, Msg}),
    ?assertEqual(<<"ValueError: starlette boom">>, lists:last(TB)),
    ?assertMatch({ok, {200, _, _}}, http_get(?STAR, <<"/items/1">>, <<>>, [])).

%% A Starlette lifespan context manager's state reaches request.state.
starlette_lifespan(_Config) ->
    {ok, Lifespan, State} = py_asgi:lifespan_startup(?STAR, app, #{}),
    {ok, {200, _, Body}} =
        py_asgi:run(?STAR, app, #{type => <<"http">>, path => <<"/state">>, state => State}, <<>>),
    ?assertEqual(#{<<"greeting">> => <<"hello from lifespan">>}, json(Body)),
    Log1 = lists:append(erlang_python_ct:each(?STAR, background_log, [])),
    ?assertEqual(true, lists:member(<<"lifespan-start">>, Log1)),
    ?assertEqual(false, lists:member(<<"lifespan-stop">>, Log1)),
    ?assertEqual(ok, py_asgi:lifespan_shutdown(Lifespan)),
    Log2 = lists:append(erlang_python_ct:each(?STAR, background_log, [])),
    ?assertEqual(true, lists:member(<<"lifespan-stop">>, Log2)).

%% ---- FastAPI -------------------------------------------------------------------------

fastapi_routing_query(_Config) ->
    {ok, {200, Headers, Body}} = http_get(?FAPI, <<"/items/5">>, <<"q=caf%C3%A9&limit=3">>, []),
    ?assertEqual([<<"application/json">>], hdr(<<"content-type">>, Headers)),
    ?assertEqual(#{<<"item_id">> => 5, <<"q">> => <<"café"/utf8>>, <<"limit">> => 3}, json(Body)),
    {ok, {200, _, Body2}} = http_get(?FAPI, <<"/items/6">>, <<>>, []),
    ?assertEqual(#{<<"item_id">> => 6, <<"q">> => none, <<"limit">> => 10}, json(Body2)),
    ?assertMatch({ok, {404, _, _}}, http_get(?FAPI, <<"/nope">>, <<>>, [])).

fastapi_validation_422(_Config) ->
    {ok, {422, _, Body}} = http_get(?FAPI, <<"/items/abc">>, <<>>, []),
    #{<<"detail">> := [#{<<"loc">> := [<<"path">>, <<"item_id">>]}]} = json(Body),
    {ok, {422, _, _}} = http_get(?FAPI, <<"/items/1">>, <<"limit=x">>, []).

fastapi_json_body(_Config) ->
    {ok, {201, _, Body}} =
        request(?FAPI, <<"POST">>, <<"/items">>, <<>>,
                [{<<"content-type">>, <<"application/json">>}],
                <<"{\"name\": \"widget\", \"price\": 9.5, \"tags\": [\"a\", \"b\"]}">>),
    ?assertEqual(#{<<"name">> => <<"widget">>, <<"price">> => 9.5, <<"tags">> => [<<"a">>, <<"b">>]},
                 json(Body)),
    ?assertMatch({ok, {422, _, _}},
                 request(?FAPI, <<"POST">>, <<"/items">>, <<>>,
                         [{<<"content-type">>, <<"application/json">>}], <<"{\"name\": 1}">>)).

fastapi_form(_Config) ->
    {ok, {200, _, Body}} =
        request(?FAPI, <<"POST">>, <<"/form">>, <<>>,
                [{<<"content-type">>, <<"application/x-www-form-urlencoded">>}],
                <<"name=Ana+Maria&city=S%C3%A3o+Paulo">>),
    ?assertEqual(#{<<"name">> => <<"Ana Maria">>, <<"city">> => <<"São Paulo"/utf8>>}, json(Body)).

fastapi_multipart(_Config) ->
    File = file_content(),
    {CT, Body} = multipart([{file, <<"file">>, <<"report.bin">>, <<"application/x-thing">>, File},
                            {field, <<"field">>, <<"v">>}]),
    {ok, {200, _, Resp}} =
        request(?FAPI, <<"POST">>, <<"/upload">>, <<>>, [{<<"content-type">>, CT}], Body),
    ?assertEqual(#{<<"filename">> => <<"report.bin">>, <<"content_type">> => <<"application/x-thing">>,
                   <<"size">> => byte_size(File), <<"sha256">> => sha256_hex(File),
                   <<"field">> => <<"v">>},
                 json(Resp)).

fastapi_headers(_Config) ->
    {ok, {200, Headers, Body}} = http_get(?FAPI, <<"/headers">>, <<>>, [{<<"X-Test">>, <<"abc">>}]),
    ?assertEqual(#{<<"x_test">> => <<"abc">>}, json(Body)),
    ?assertEqual([<<"abc">>], hdr(<<"x-echo">>, Headers)).

fastapi_cookies(_Config) ->
    {ok, {200, Headers, _}} = http_get(?FAPI, <<"/cookies">>, <<>>, []),
    ?assertMatch([<<"first=1;", _/binary>>, <<"second=2;", _/binary>>],
                 hdr(<<"set-cookie">>, Headers)).

fastapi_streaming(_Config) ->
    ?assertMatch({ok, {200, _, <<"part0\npart1\npart2\npart3\npart4\n">>}},
                 http_get(?FAPI, <<"/stream">>, <<>>, [])).

fastapi_background(_Config) ->
    Tag = unique(<<"fbg">>),
    {ok, {200, _, Body}} = http_get(?FAPI, <<"/background">>, <<"tag=", Tag/binary>>, []),
    ?assertEqual(#{<<"queued">> => Tag}, json(Body)),
    Log = lists:append(erlang_python_ct:each(?FAPI, background_log, [])),
    ?assertEqual([Tag], [T || T <- Log, T =:= Tag]).

fastapi_http_exception(_Config) ->
    {ok, {404, _, Body}} = http_get(?FAPI, <<"/missing">>, <<>>, []),
    ?assertEqual(#{<<"detail">> => <<"Item not found">>}, json(Body)).

fastapi_unhandled(_Config) ->
    ?assertMatch({error, {python, <<"KeyError">>, <<"'fastapi boom'">>, [_ | _]}},
                 http_get(?FAPI, <<"/boom">>, <<>>, [])).

%% ---- concurrency ----------------------------------------------------------------------

%% 200 concurrent requests to an app that awaits asyncio.sleep(0.1) all finish, and the
%% whole batch takes far less than 200 x 0.1 s.
concurrent_200_sleepers(_Config) ->
    N = 200,
    T0 = erlang:monotonic_time(millisecond),
    Results = ep_test_lib:pmap(fun(I) ->
                           Path = <<"/c/", (integer_to_binary(I))/binary>>,
                           {I, py_asgi:run(?APPS, sleep_100ms, #{type => <<"http">>, path => Path},
                                           <<>>)}
                   end, lists:seq(1, N)),
    Ms = erlang:monotonic_time(millisecond) - T0,
    ?assertEqual([{I, {ok, {200, [], <<"/c/", (integer_to_binary(I))/binary>>}}}
                  || I <- lists:seq(1, N)], Results),
    ct:comment("200 x sleep(0.1): ~b ms", [Ms]),
    ?assert(Ms < 2000).

%% Whether the app completes without suspending (plain await, an already-done future,
%% a task) or suspends (sleep(0) bare yield, a real sleep), the result is the same and
%% the app's side effects happen exactly once per request.
%% (The app counts per interpreter: its count grows 1, 2, 3 in each interpreter that ran
%% the path.)
stepping_same_as_loop(_Config) ->
    Hows = [<<"plain">>, <<"done_future">>, <<"task">>, <<"sleep0">>, <<"sleep">>],
    [begin
         Key = <<"/step/", How/binary>>,
         Runs = [py_asgi:run(?APPS, counted, #{type => <<"http">>, path => Key, query_string => How},
                             <<"body">>)
                 || _ <- lists:seq(1, 3)],
         ?assertEqual({How, []}, {How, [R || R <- Runs, not is_counted(R)]}),
         Seen = [#{<<"interp">> => Interp, <<"n">> => binary_to_integer(Count)}
                 || {ok, {200, [{<<"x-count">>, Count}, {<<"x-interp">>, Interp}], _}} <- Runs],
         ?assertEqual([lists:seq(1, K) || K <- group_sizes(Seen)],
                      [[N || #{<<"n">> := N} <- G] || G <- by_interpreter(Seen)]),
         ?assertEqual({How, 3}, {How, count(Key)}),
         ?assertEqual({How, 3}, {How, count(<<Key/binary, ":after">>)})
     end || How <- Hows].

is_counted({ok, {200, [{<<"x-count">>, _}, {<<"x-interp">>, _}], <<"value|body">>}}) -> true;
is_counted(_) -> false.

%% The same, 250 requests at once, mixing all five.
stepping_concurrent_mix(_Config) ->
    Hows = [<<"plain">>, <<"done_future">>, <<"task">>, <<"sleep0">>, <<"sleep">>],
    Results = ep_test_lib:pmap(fun(I) ->
                           How = lists:nth(1 + I rem 5, Hows),
                           Key = <<"/mix/", How/binary>>,
                           case py_asgi:run(?APPS, counted, #{type => <<"http">>, path => Key,
                                                              query_string => How},
                                            integer_to_binary(I)) of
                               {ok, {200, [{<<"x-count">>, _}, {<<"x-interp">>, _}], Body}} ->
                                   Body =:= <<"value|", (integer_to_binary(I))/binary>>;
                               Other -> Other
                           end
                   end, lists:seq(1, 250)),
    ?assertEqual([], [R || R <- Results, R =/= true]),
    [?assertEqual({How, 50}, {How, count(<<"/mix/", How/binary>>)}) || How <- Hows],
    [?assertEqual({How, 50}, {How, count(<<"/mix/", How/binary, ":after">>)}) || How <- Hows].

%% ---- timeouts -------------------------------------------------------------------------

timeout_cancels_task(_Config) ->
    Key = <<"/timeout/1">>,
    T0 = erlang:monotonic_time(millisecond),
    ?assertEqual({error, timeout},
                 py_asgi:run(?APPS, sleep_long, #{type => <<"http">>, path => Key}, <<>>,
                             #{timeout => 100})),
    Ms = erlang:monotonic_time(millisecond) - T0,
    ?assert(Ms >= 100 andalso Ms < 1000),
    timer:sleep(200),
    ?assertEqual([<<"started">>, <<"cancelled">>, <<"finally">>], ep_test_lib:one(?APPS, record, [Key])),
    %% The next call works, and no late reply shows up.
    ?assertEqual({ok, {200, [{<<"content-type">>, <<"text/plain">>}], <<"hello">>}}, hello()),
    timer:sleep(100),
    ?assertEqual([], erlang_python_ct:flush()).

%% 50 requests time out at once: each task is cancelled, nothing arrives late.
timeouts_concurrent(_Config) ->
    Keys = [<<"/timeout/c", (integer_to_binary(I))/binary>> || I <- lists:seq(1, 50)],
    Self = self(),
    Results = ep_test_lib:pmap(fun(Key) ->
                           R = py_asgi:run(?APPS, sleep_long, #{type => <<"http">>, path => Key},
                                           <<>>, #{timeout => 150}),
                           timer:sleep(300),
                           {R, erlang_python_ct:flush()}
                   end, Keys),
    ?assertEqual([{{error, timeout}, []} || _ <- Keys], Results),
    timer:sleep(100),
    ?assertEqual([[<<"started">>, <<"cancelled">>, <<"finally">>] || _ <- Keys],
                 [ep_test_lib:one(?APPS, record, [K]) || K <- Keys]),
    ?assertEqual([], erlang_python_ct:flush()),
    _ = Self.

%% ---- build_scope ----------------------------------------------------------------------

%% A ref gives the same scope as the map, every time.
ref_reused(_Config) ->
    Scope = #{type => <<"http">>, path => <<"/ref/caf%C3%A9">>, method => <<"PUT">>,
              query_string => <<"a=1">>, headers => [{<<"X-A">>, <<"1">>}, [<<"x-a">>, <<"2">>]],
              client => {<<"1.1.1.1">>, 1}},
    {ok, Ref} = py_asgi:build_scope(Scope),
    FromMap = echo(Scope),
    [?assertEqual(FromMap, echo(Ref)) || _ <- lists:seq(1, 100)],
    ?assertEqual({ok, {200, [{<<"content-type">>, <<"text/plain">>}], <<"hello">>}},
                 py_asgi:run(?APPS, hello, Ref, <<>>)),
    %% A ref with the default options map, and from several processes at once.
    {ok, Ref2} = py_asgi:build_scope(Scope, #{}),
    ?assertEqual(lists:duplicate(50, FromMap),
                 ep_test_lib:pmap(fun(_) -> echo(Ref2) end, lists:seq(1, 50))).

%% The app appends a header, sets state keys, changes method, path, asgi and
%% extensions and adds a key: the next request with the same ref sees none of it.
ref_mutations_do_not_leak(_Config) ->
    Scope = #{type => <<"http">>, path => <<"/m">>, method => <<"POST">>,
              headers => [{<<"a">>, <<"1">>}], state => #{<<"k">> => <<"v">>},
              extensions => #{<<"x.flag">> => 1}},
    {ok, Ref} = py_asgi:build_scope(Scope),
    First = mutate(Scope),
    Views = [mutate(Ref) || _ <- lists:seq(1, 5)],
    ?assertEqual(lists:duplicate(5, First), Views),
    ?assertEqual({str, <<"POST">>}, field(<<"method">>, First)),
    ?assertEqual({list, [{tuple, [{bytes, <<"a">>}, {bytes, <<"1">>}]}]}, field(<<"headers">>, First)),
    ?assertEqual({dict, [{{str, <<"k">>}, {str, <<"v">>}}]}, field(<<"state">>, First)),
    ?assertEqual(undefined, field(<<"new_key">>, lists:last(Views))),
    %% The defaults of a ref are fresh each time too (headers [], state {}, asgi).
    {ok, Bare} = py_asgi:build_scope(#{type => <<"http">>, path => <<"/bare">>}),
    BareViews = [mutate(Bare) || _ <- lists:seq(1, 3)],
    ?assertEqual(lists:duplicate(3, hd(BareViews)), BareViews),
    ?assertEqual({list, []}, field(<<"headers">>, hd(BareViews))),
    ?assertEqual({dict, []}, field(<<"state">>, hd(BareViews))),
    ?assertEqual({str, <<"GET">>}, field(<<"method">>, hd(BareViews))),
    ?assertEqual({dict, [{{str, <<"spec_version">>}, {str, <<"2.4">>}},
                         {{str, <<"version">>}, {str, <<"3.0">>}}]},
                 field(<<"asgi">>, hd(BareViews))).

%% Mutable values nested inside state and extensions (a list, a dict) are the
%% request's own as well: a map scope gives each request fresh objects, and "each run
%% gets its own copy of everything mutable" holds for a ref too.
ref_nested_mutations_do_not_leak(_Config) ->
    Scope = #{type => <<"http">>, path => <<"/n">>,
              state => #{<<"list">> => [1], <<"dict">> => #{<<"a">> => 1}},
              extensions => #{<<"http.response.trailers">> => #{}}},
    MapViews = [mutate(Scope) || _ <- lists:seq(1, 3)],
    ?assertEqual(lists:duplicate(3, hd(MapViews)), MapViews),
    {ok, Ref} = py_asgi:build_scope(Scope),
    RefViews = [mutate(Ref) || _ <- lists:seq(1, 3)],
    ?assertEqual(lists:duplicate(3, hd(MapViews)), RefViews).

%% Two refs with different methods, paths and headers, used alternately and
%% concurrently: each request sees its own ref's scope.
two_refs_never_mix(_Config) ->
    A = #{type => <<"http">>, path => <<"/a">>, method => <<"GET">>,
          headers => [{<<"x-which">>, <<"a">>}]},
    B = #{type => <<"http">>, path => <<"/b">>, method => <<"POST">>,
          headers => [{<<"x-which">>, <<"b">>}], query_string => <<"b=1">>},
    {ok, RA} = py_asgi:build_scope(A),
    {ok, RB} = py_asgi:build_scope(B),
    EA = mutate(A),
    EB = mutate(B),
    ?assertNotEqual(EA, EB),
    Results = ep_test_lib:pmap(fun(I) ->
                           case I rem 2 of
                               0 -> {a, mutate(RA) =:= EA};
                               1 -> {b, mutate(RB) =:= EB}
                           end
                   end, lists:seq(1, 200)),
    ?assertEqual([], [R || {_, false} = R <- Results]),
    %% And strictly alternating in one process.
    [?assertEqual({EA, EB}, {mutate(RA), mutate(RB)}) || _ <- lists:seq(1, 20)].

ref_state_fresh_per_request(_Config) ->
    {ok, Ref} = py_asgi:build_scope(#{type => <<"http">>, path => <<"/sr">>}),
    Results = [json(body(py_asgi:run(?APPS, state_identity, Ref, <<>>))) || _ <- lists:seq(1, 4)],
    ?assertEqual([[#{<<"keys">> => [], <<"ids">> => N, <<"n">> => N} || N <- lists:seq(1, K)]
                  || K <- group_sizes(Results)],
                 by_interpreter(Results)).

%% ---- lifespan -------------------------------------------------------------------------

%% The startup state reaches each request as a shallow copy: top-level changes made
%% by one request are not seen by the next; a mutable object inside is shared (by the
%% requests of one interpreter: each interpreter runs the lifespan once and has its own
%% state).
lifespan_state_shallow_copy(_Config) ->
    {ok, Lifespan, State} = py_asgi:lifespan_startup(?APPS, lifespan_app, #{}),
    ?assertEqual([[<<"startup">>] || _ <- interpreters()], erlang_python_ct:each(?APPS, record, [<<"lifespan">>])),
    Scope = #{type => <<"http">>, path => <<"/ls">>, state => State},
    Seen = [json(body(py_asgi:run(?APPS, lifespan_app, Scope, <<>>))) || _ <- lists:seq(1, 3)],
    check_lifespan_states(Seen),
    ?assertEqual(ok, py_asgi:lifespan_shutdown(Lifespan)),
    ?assertEqual([[<<"startup">>, <<"shutdown">>] || _ <- interpreters()],
                 erlang_python_ct:each(?APPS, record, [<<"lifespan">>])).

%% The same through a build_scope ref and with a timeout option.
lifespan_state_through_ref(_Config) ->
    {ok, Lifespan, State} = py_asgi:lifespan_startup(?APPS, lifespan_app, #{timeout => 5000}),
    {ok, Ref} = py_asgi:build_scope(#{type => <<"http">>, path => <<"/lr">>, state => State}),
    Seen = [json(body(py_asgi:run(?APPS, lifespan_app, Ref, <<>>))) || _ <- lists:seq(1, 2)],
    check_lifespan_states(Seen),
    ?assertEqual(ok, py_asgi:lifespan_shutdown(Lifespan, #{timeout => 5000})),
    ?assertEqual([[<<"startup">>, <<"shutdown">>] || _ <- interpreters()],
                 erlang_python_ct:each(?APPS, record, [<<"lifespan">>])).

%% In each interpreter, the requests saw the startup state, its shared list grown by one
%% per earlier request there.
check_lifespan_states(Seen) ->
    ?assertEqual([[#{<<"keys">> => [<<"name">>, <<"shared">>], <<"name">> => <<"db">>,
                     <<"shared">> => lists:seq(0, I), <<"type">> => <<"dict">>}
                   || I <- lists:seq(0, K - 1)]
                  || K <- group_sizes(Seen)],
                 [[maps:remove(<<"interp">>, S) || S <- G] || G <- by_interpreter(Seen)]).

lifespan_unsupported(_Config) ->
    ?assertEqual({error, unsupported}, py_asgi:lifespan_startup(?APPS, lifespan_raises, #{})),
    %% An app that answers the lifespan scope as if it were HTTP breaks the protocol.
    ?assertEqual({error, unsupported}, py_asgi:lifespan_startup(?APPS, hello, #{})),
    %% The app still serves requests.
    ?assertEqual({ok, {200, [], <<"ok">>}},
                 py_asgi:run(?APPS, lifespan_raises, #{type => <<"http">>, path => <<"/">>}, <<>>)).

lifespan_startup_failed(_Config) ->
    {error, {python, Type, Msg, TB}} = py_asgi:lifespan_startup(?APPS, lifespan_fails, #{}),
    ?assertEqual(<<"no database here">>, Msg),
    ?assert(is_binary(Type)),
    ?assertEqual(<<Type/binary, ": no database here">>, lists:last(TB)).

%% ---- runtime options ----------------------------------------------------------------

%% Every switch of the optimised path (interned keys, cached constants, direct response,
%% app cache, header cache, zero-copy) off alone gives exactly the same results.
options_each_off(_Config) ->
    restore_options(),
    Baseline = option_requests(),
    Names = maps:keys(py_nif:get_options()),
    ?assert(length(Names) >= 6),
    [begin
         ok = py_nif:set_options(#{Name => false}),
         ?assertEqual({Name, false}, {Name, maps:get(Name, py_nif:get_options())}),
         Results = option_requests(),
         restore_options(),
         [?assertEqual({Name, What, Expected}, {Name, What, Got})
          || {{What, Expected}, {What, Got}} <- lists:zip(Baseline, Results)]
     end || Name <- Names].

options_all_off(_Config) ->
    restore_options(),
    Baseline = option_requests(),
    ok = py_nif:set_options(maps:map(fun(_, _) -> false end, py_nif:get_options())),
    Results = option_requests(),
    restore_options(),
    [?assertEqual({What, Expected}, {What, Got})
     || {{What, Expected}, {What, Got}} <- lists:zip(Baseline, Results)].

option_requests() ->
    Scope = #{type => <<"http">>, path => <<"/opt/caf%C3%A9">>, method => <<"POST">>,
              query_string => <<"a=1">>, scheme => <<"https">>, http_version => <<"1.1">>,
              headers => [{<<"Host">>, <<"h">>}, {<<"Content-Type">>, <<"text/plain">>},
                          {<<"X-Odd">>, <<"1">>}, {<<"cookie">>, <<"a=1">>}]},
    {ok, Ref} = py_asgi:build_scope(Scope),
    Body = pattern(70000),
    [{echo_map, echo(Scope)},
     {echo_ref, echo(Ref)},
     {echo_ref_again, echo(Ref)}]
    ++ [{{echo_body, N}, py_asgi:run(?APPS, echo_body, Scope, binary:part(Body, 0, N))}
        || N <- [0, 1, 4095, 4096, 70000]]
    ++ [{{App, N}, run_sized(App, N)} || App <- [sized_body, chunked_body], N <- [10, 4096, 65536]]
    ++ [{hello, hello()},
        {violation, without_runner_frames(py_asgi:run(?APPS, start_twice, Scope, <<>>))},
        {starlette_cookies, http_get(?STAR, <<"/cookies">>, <<>>, [{<<"cookie">>, <<"a=1">>}])},
        {starlette_stream, http_get(?STAR, <<"/stream">>, <<>>, [])},
        {fastapi_item, case ep_test_lib:mode() of
                           subinterpreters -> skipped; % pydantic-core refuses them
                           _ -> http_get(?FAPI, <<"/items/7">>, <<"q=x">>, [])
                       end}].

%% A protocol error's traceback has the runner's frames around the app's when the Python
%% runner handles the request (native_runner off), and only the app's frame with the
%% NIF's C exchange (where Python also adds a ^^^ marker under the call): compare what is
%% common, the app's frame, the type and the message.
without_runner_frames({error, {python, Type, Msg, TB}}) ->
    {error, {python, Type, Msg, app_frames(TB)}};
without_runner_frames(Other) ->
    Other.

app_frames([File, _Source | Rest]) when binary_part(File, 0, 7) =:= <<"  File ">> ->
    case binary:match(File, <<"hornbeam_asgi_runner">>) of
        nomatch -> [File, _Source | app_frames(Rest)];
        _ -> app_frames(lists:dropwhile(fun is_source_line/1, Rest))
    end;
app_frames([Line | Rest]) ->
    case string:trim(Line, both, " ^~") of
        <<>> -> app_frames(Rest);
        _ -> [Line | app_frames(Rest)]
    end;
app_frames([]) ->
    [].

%% The lines of a frame's source (3.13 shows every line of a call spread over several).
is_source_line(<<"    ", _/binary>>) -> true;
is_source_line(_) -> false.

restore_options() ->
    ok = py_nif:set_options(maps:map(fun(_, _) -> true end, py_nif:get_options())).

%% ---- helpers --------------------------------------------------------------------------

%% The app's count for Key, over every interpreter.
count(Key) ->
    lists:sum(erlang_python_ct:each(?APPS, count, [Key])).

%% One element per interpreter the workers run in.
interpreters() ->
    erlang_python_ct:each(?APPS, count, [<<"no such key">>]).

%% Results (maps with <<"interp">>) grouped by the interpreter that answered them, each
%% group in order; the groups in order of first appearance, without the interp key.
by_interpreter(Results) ->
    Order = lists:foldl(fun(#{<<"interp">> := I}, Acc) ->
                                case lists:member(I, Acc) of true -> Acc; false -> Acc ++ [I] end
                        end, [], Results),
    [[maps:remove(<<"interp">>, R) || #{<<"interp">> := J} = R <- Results, J =:= I] || I <- Order].

group_sizes(Results) ->
    [length(G) || G <- by_interpreter(Results)].

hello() ->
    py_asgi:run(?APPS, hello, #{type => <<"http">>, path => <<"/hello">>}, <<>>).

run_sized(App, N) ->
    py_asgi:run(?APPS, App, #{type => <<"http">>, path => <<"/sized">>,
                              query_string => integer_to_binary(N)}, <<>>).

%% The app's scope as [{Key, Typed}] in the app's key order.
echo(Scope) ->
    {ok, {200, [{<<"content-type">>, <<"application/json">>}], Body}} =
        py_asgi:run(?APPS, echo_scope, Scope, <<>>),
    [{K, untype(V)} || [K, V] <- json(Body)].

mutate(Scope) ->
    {ok, {200, [], Body}} = py_asgi:run(?APPS, mutate_scope, Scope, <<>>),
    [{K, sort_dict(untype(V))} || [K, V] <- json(Body)].

field(Key, Scope) ->
    case lists:keyfind(Key, 1, Scope) of
        {Key, V} -> V;
        false -> undefined
    end.

untype([<<"None">>]) -> none;
untype([<<"bytes">>, Hex]) -> {bytes, binary:decode_hex(Hex)};
untype([<<"tuple">>, L]) -> {tuple, [untype(X) || X <- L]};
untype([<<"list">>, L]) -> {list, [untype(X) || X <- L]};
untype([<<"dict">>, Pairs]) -> {dict, [{untype(K), untype(V)} || [K, V] <- Pairs]};
untype([Type, V]) -> {binary_to_atom(Type), V}.

sort_dict({dict, Pairs}) -> {dict, lists:sort([{K, sort_dict(V)} || {K, V} <- Pairs])};
sort_dict(V) -> V.

json(Bin) ->
    {ok, Term} = py:call(json, loads, [Bin]),
    Term.

body({ok, {200, _, Body}}) -> Body.

http_get(Mod, Path, Query, Headers) ->
    request(Mod, <<"GET">>, Path, Query, Headers, <<>>).

request(Mod, Method, Path, Query, Headers, Body) ->
    py_asgi:run(Mod, app, #{type => <<"http">>, method => Method, path => Path,
                            query_string => Query,
                            headers => [{<<"host">>, <<"testserver">>} | Headers],
                            server => {<<"testserver">>, 80},
                            client => {<<"127.0.0.1">>, 40000}}, Body).

hdr(Name, Headers) ->
    [V || {N, V} <- Headers, N =:= Name].

pattern(N) ->
    P = list_to_binary(lists:seq(0, 250)),
    binary:part(binary:copy(P, N div 251 + 1), 0, N).

sha256_hex(Bin) ->
    string:lowercase(binary:encode_hex(crypto:hash(sha256, Bin))).

unique(Prefix) ->
    <<Prefix/binary, (integer_to_binary(erlang:unique_integer([positive])))/binary>>.

%% Binary content with every byte value and a line that looks like a boundary.
file_content() ->
    iolist_to_binary([binary:copy(list_to_binary(lists:seq(0, 255)), 300),
                      <<"\r\n--not-the-boundary\r\n">>, <<0, 13, 10>>]).

multipart(Parts) ->
    Boundary = <<"----ep-boundary-7f3a9c">>,
    Body = iolist_to_binary(
             [[[<<"--">>, Boundary, <<"\r\n">>, part(P), <<"\r\n">>] || P <- Parts],
              <<"--">>, Boundary, <<"--\r\n">>]),
    {<<"multipart/form-data; boundary=", Boundary/binary>>, Body}.

part({field, Name, Value}) ->
    [<<"Content-Disposition: form-data; name=\"">>, Name, <<"\"\r\n\r\n">>, Value];
part({file, Name, Filename, CT, Data}) ->
    [<<"Content-Disposition: form-data; name=\"">>, Name, <<"\"; filename=\"">>, Filename,
     <<"\"\r\nContent-Type: ">>, CT, <<"\r\n\r\n">>, Data].
