%% py_wsgi:run/3,4 through the real NIF: environ building and types, request bodies and
%% latin-1 bytes, PEP 3333 details (write(), exc_info, close()), Flask and Django apps,
%% every error shape, the runner option, the app cache, timeouts, concurrency and the
%% runtime switches of the optimised path.
%%
%% Every Python app in py_wsgi_SUITE_data is wrapped in wsgiref.validate.validator with
%% WSGIWarning turned into an error, so each successful response also proves that the
%% environ and the runner's handling of the app conform to PEP 3333.
-module(py_wsgi_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-compile(nowarn_missing_spec).

-export([all/0, groups/0, init_per_suite/1, end_per_suite/1,
         init_per_group/2, end_per_group/2, init_per_testcase/2, end_per_testcase/2]).
-export([log/2]).
-export([environ_types/1, environ_defaults_and_overrides/1, wsgi_errors_to_logger/1,
         input_methods/1, stream_body_file/1, stream_coalesce/1, stream_coalesce_last/1,
         stream_native/1,
         bodies_byte_exact/1, latin1_path_and_headers/1, response_headers_order/1,
         write_callable/1, file_wrapper_and_generator/1, names_as_atoms_and_dotted/1,
         flask_routing_json/1, flask_query_utf8/1, flask_json_post/1,
         flask_form_urlencoded/1, flask_multipart_upload/1, flask_cookies/1,
         flask_redirect/1, flask_404/1, flask_500/1,
         django_routing_json/1, django_query_utf8/1, django_form_urlencoded/1,
         django_multipart_upload/1, django_cookies/1, django_redirect/1,
         django_404/1, django_500/1,
         raising_app/1, iterable_raises_close_called/1, close_called_on_success/1,
         exc_info_before_body_replaces_status/1, exc_info_after_body_reraises/1,
         bad_environ_missing_keys/1, bad_environ_wrong_types/1, bad_environ_runs_no_python/1,
         bad_runner/1, missing_app/1, badarg_shapes/1, system_exit/1,
         custom_runner_response_shapes/1,
         custom_runner/1, app_cache_alternating_apps/1, app_cache_keys_on_runner/1,
         timeout_then_next_call_works/1,
         concurrent_200/1,
         options_direct_response_off/1, options_caches_off/1]).

-define(APPS, ep_wsgi_apps).
-define(FLASK, <<"ep_wsgi_flask">>).
-define(DJANGO, <<"ep_wsgi_django">>).
-define(RUNNER, <<"ep_wsgi_custom_runner">>).

all() ->
    [{group, environ}, {group, flask}, {group, django}, {group, errors}, {group, runner},
     {group, load}, {group, options}].

groups() ->
    [{environ, [], [environ_types, environ_defaults_and_overrides, wsgi_errors_to_logger,
                    input_methods, stream_body_file, stream_coalesce, stream_coalesce_last, stream_native,
                    bodies_byte_exact, latin1_path_and_headers, response_headers_order,
                    write_callable, file_wrapper_and_generator, names_as_atoms_and_dotted]},
     {flask, [], [flask_routing_json, flask_query_utf8, flask_json_post,
                  flask_form_urlencoded, flask_multipart_upload, flask_cookies,
                  flask_redirect, flask_404, flask_500]},
     {django, [], [django_routing_json, django_query_utf8, django_form_urlencoded,
                   django_multipart_upload, django_cookies, django_redirect,
                   django_404, django_500]},
     {errors, [], [raising_app, iterable_raises_close_called, close_called_on_success,
                   exc_info_before_body_replaces_status, exc_info_after_body_reraises,
                   bad_environ_missing_keys, bad_environ_wrong_types,
                   bad_environ_runs_no_python, bad_runner, missing_app, badarg_shapes,
                   system_exit, custom_runner_response_shapes]},
     {runner, [], [custom_runner, app_cache_alternating_apps, app_cache_keys_on_runner,
                   timeout_then_next_call_works]},
     {load, [], [concurrent_200]},
     {options, [], [options_direct_response_off, options_caches_off]}].

init_per_suite(Config) ->
    ok = erlang_python_ct:start(Config),
    Config.

end_per_suite(_Config) ->
    erlang_python_ct:stop().

init_per_group(_Group, Config) ->
    Config.

end_per_group(options, _Config) ->
    restore_options();
end_per_group(_Group, _Config) ->
    ok.

init_per_testcase(_TC, Config) ->
    Config.

%% Every test leaves the caller's mailbox empty: no stray or late replies.
end_per_testcase(TC, _Config) when TC =:= options_direct_response_off;
                                   TC =:= options_caches_off ->
    restore_options(),
    ?assertEqual({messages, []}, process_info(self(), messages)),
    ok;
end_per_testcase(_TC, _Config) ->
    ?assertEqual({messages, []}, process_info(self(), messages)),
    ok.

%% ---- environ ---------------------------------------------------------------------------

%% Inside Python: every CGI value is a str, the wsgi.* values have the PEP 3333 types and
%% the defaults, wsgi.errors accepts writes; repeated headers are joined with ", ", Cookie
%% headers with "; ".
environ_types(_Config) ->
    Env = env(<<"GET">>, <<"/types/x?a=1&b=%20">>,
              [{<<"X-Multi">>, <<"one">>}, {<<"x-multi">>, <<"two">>},
               {<<"Cookie">>, <<"a=1">>}, {<<"cookie">>, <<"b=2">>},
               {<<"Accept">>, <<"*/*">>}], <<>>),
    {ok, {Status, Headers, Body}} = py_wsgi:run(?APPS, environ_types, Env),
    ?assertEqual(<<"200 OK">>, Status),
    ?assertEqual([<<"application/octet-stream">>], hdr(<<"content-type">>, Headers)),
    ?assertEqual(lines(
        [<<"cgi_keys=HTTP_ACCEPT,HTTP_COOKIE,HTTP_HOST,HTTP_X_MULTI,PATH_INFO,QUERY_STRING,"
           "REQUEST_METHOD,SCRIPT_NAME,SERVER_NAME,SERVER_PORT,SERVER_PROTOCOL">>,
         <<"cgi_all_str=True">>,
         <<"version=(1, 0)">>,
         <<"version_type=tuple">>,
         <<"multithread=True">>,
         <<"multiprocess=True">>,
         <<"run_once=False">>,
         <<"url_scheme='http'">>,
         <<"query_string='a=1&b=%20'">>,
         <<"custom=None">>,
         <<"errors_methods=True">>,
         <<"HTTP_ACCEPT='*/*'">>,
         <<"HTTP_COOKIE='a=1; b=2'">>,
         <<"HTTP_HOST='localhost:8080'">>,
         <<"HTTP_X_MULTI='one, two'">>,
         <<"PATH_INFO='/types/x'">>,
         <<"QUERY_STRING='a=1&b=%20'">>,
         <<"REQUEST_METHOD='GET'">>,
         <<"SCRIPT_NAME=''">>,
         <<"SERVER_NAME='localhost'">>,
         <<"SERVER_PORT='8080'">>,
         <<"SERVER_PROTOCOL='HTTP/1.1'">>]), Body),
    ?assertEqual([integer_to_binary(byte_size(Body))], hdr(<<"content-length">>, Headers)).

%% QUERY_STRING defaults to "" (the validator warns, hence fails, without it); given
%% wsgi.* values override the defaults; other dotted keys take any term; wsgi.errors given
%% by the caller is still a working stream.
environ_defaults_and_overrides(_Config) ->
    Env0 = maps:remove(<<"QUERY_STRING">>, env(<<"GET">>, <<"/d">>, [], <<>>)),
    {ok, {<<"200 OK">>, _, Body0}} = py_wsgi:run(?APPS, environ_types, Env0),
    ?assertEqual(true, has_line(<<"query_string=''">>, Body0)),
    ?assertEqual(true, has_line(<<"QUERY_STRING=''">>, Body0)),
    Env1 = Env0#{<<"wsgi.multithread">> => false, <<"wsgi.multiprocess">> => false,
                 <<"wsgi.run_once">> => true, <<"wsgi.version">> => {1, 0},
                 <<"wsgi.url_scheme">> => <<"https">>, <<"wsgi.errors">> => whatever,
                 <<"x.custom">> => [1, {2, 3}], <<"REMOTE_ADDR">> => <<"10.0.0.1">>},
    {ok, {<<"200 OK">>, _, Body1}} = py_wsgi:run(?APPS, environ_types, Env1),
    [?assertEqual({L, true}, {L, has_line(L, Body1)})
     || L <- [<<"multithread=False">>, <<"multiprocess=False">>, <<"run_once=True">>,
              <<"version=(1, 0)">>, <<"url_scheme='https'">>, <<"custom=[1, (2, 3)]">>,
              <<"errors_methods=True">>, <<"REMOTE_ADDR='10.0.0.1'">>, <<"cgi_all_str=True">>]].

%% wsgi.errors: write(), writelines() and flush() succeed, and each non-blank write
%% reaches the Erlang logger at level error.
wsgi_errors_to_logger(_Config) ->
    Tag = integer_to_binary(erlang:unique_integer([positive])),
    ok = logger:add_handler(py_wsgi_suite_capture, ?MODULE,
                            #{level => all, config => #{pid => self()}}),
    try
        ?assertEqual({ok, {<<"200 OK">>, [{<<"Content-Type">>, <<"application/octet-stream">>},
                                          {<<"Content-Length">>, <<"7">>}], <<"written">>}},
                     py_wsgi:run(?APPS, errors_write,
                                 env(<<"GET">>, <<"/?", Tag/binary>>, [], <<>>))),
        Prefix = <<"py_wsgi_SUITE ", Tag/binary, ": ">>,
        ?assertEqual([{error, <<Prefix/binary, "written">>},
                      {error, <<Prefix/binary, "line a">>},
                      {error, <<Prefix/binary, "line b">>}],
                     captured_logs(Prefix, 3))
    after
        ok = logger:remove_handler(py_wsgi_suite_capture),
        flush_captured()
    end.

%% logger handler callback: forwards the events to the test process.
log(#{level := Level, msg := Msg}, #{config := #{pid := Pid}}) ->
    Text = case Msg of
               {string, S} -> unicode:characters_to_binary(S);
               {report, R} -> iolist_to_binary(io_lib:format("~p", [R]));
               {Format, Args} -> unicode:characters_to_binary(io_lib:format(Format, Args))
           end,
    Pid ! {captured_log, Level, Text},
    ok.

%% N captured log events whose text starts with Prefix (others are dropped), in order.
captured_logs(_Prefix, 0) ->
    flush_captured(),
    [];
captured_logs(Prefix, N) ->
    receive
        {captured_log, Level, Text} ->
            case binary:longest_common_prefix([Prefix, Text]) =:= byte_size(Prefix) of
                true -> [{Level, Text} | captured_logs(Prefix, N - 1)];
                false -> captured_logs(Prefix, N)
            end
    after 2000 ->
        flush_captured(),
        []
    end.

flush_captured() ->
    receive {captured_log, _, _} -> flush_captured() after 100 -> ok end.

%% wsgi.input: read(n), readline(), readline(n), readlines(), iteration, read()/read(-1),
%% both through the validator's wrapper and on the NIF's stream itself.
input_methods(_Config) ->
    Body = <<"line one\nline two\r\n\nlast without newline">>,
    Run = fun(Mode) ->
              Env = env(<<"POST">>, <<"/input?", Mode/binary>>,
                        [{<<"content-type">>, <<"text/plain">>}], Body),
              {ok, {<<"200 OK">>, _, Out}} = py_wsgi:run(?APPS, input_methods, Env),
              Out
          end,
    Chunks = <<"[b'lin', b'e o', b'ne\\n', b'lin', b'e t', b'wo\\r', b'\\n\\nl', b'ast', "
               "b' wi', b'tho', b'ut ', b'new', b'lin', b'e']">>,
    Lines = <<"[b'line one\\n', b'line two\\r\\n', b'\\n', b'last without newline']">>,
    ?assertEqual(Chunks, Run(<<"read">>)),
    ?assertEqual(<<"[b'line one\\n', b'li', b'ne two\\r\\n', b'\\nlast without newline']">>,
                 Run(<<"readline">>)),
    ?assertEqual(Lines, Run(<<"readlines">>)),
    ?assertEqual(Lines, Run(<<"iter">>)),
    ?assertEqual(Chunks, Run(<<"raw_read">>)),
    ?assertEqual(<<"[b'line one\\n', b'li', b'ne two\\r\\n', b'\\nlast without newline']">>,
                 Run(<<"raw_readline">>)),
    ?assertEqual(Lines, Run(<<"raw_readlines">>)),
    ?assertEqual(Lines, Run(<<"raw_iter">>)),
    ?assertEqual(<<"[b'line one\\nline two\\r\\n\\nlast without newline', b'', b'']">>,
                 Run(<<"raw_readall">>)).

%% py_wsgi:start/4 with `body_file': wsgi.input is that file, with the methods of the
%% in-memory input and the same results; a path that is not a binary is badarg.
stream_body_file(Config) ->
    Body = <<"line one\nline two\r\n\nlast without newline">>,
    Path = filename:join(?config(priv_dir, Config), "body"),
    ok = file:write_file(Path, Body),
    Run = fun(Mode) ->
              Env = maps:remove(<<"wsgi.input">>,
                                env(<<"POST">>, <<"/input?", Mode/binary>>,
                                    [{<<"content-type">>, <<"text/plain">>}], Body)),
              {ok, S} = py_wsgi:start(?APPS, input_methods, Env,
                                      #{body_file => list_to_binary(Path)}),
              stream_body(S, [])
          end,
    Lines = <<"[b'line one\\n', b'line two\\r\\n', b'\\n', b'last without newline']">>,
    ?assertEqual(Lines, Run(<<"readlines">>)),
    ?assertEqual(Lines, Run(<<"iter">>)),
    ?assertEqual(<<"[b'line one\\n', b'li', b'ne two\\r\\n', b'\\nlast without newline']">>,
                 Run(<<"readline">>)),
    ?assertEqual({error, {badarg, {options, #{body_file => "body"}}}},
                 py_wsgi:start(?APPS, input_methods, env(<<"GET">>, <<"/">>, [], <<>>),
                               #{body_file => "body"})).

%% With `coalesce', the start goes out with the first body chunk in one message (the
%% processes mode does not coalesce: the same events one by one); `coalesce' must be a
%% boolean.
stream_coalesce(_Config) ->
    Env = maps:remove(<<"wsgi.input">>, env(<<"POST">>, <<"/">>, [], <<"hey">>)),
    {ok, S} = py_wsgi:start(?APPS, echo, Env, #{body => <<"hey">>, coalesce => true}),
    Events = stream_events(S),
    Headers = [{<<"Content-Type">>, <<"application/octet-stream">>},
               {<<"Content-Length">>, <<"3">>}, {<<"X-Len">>, <<"3">>},
               {<<"X-Sha256">>, <<"fa690b82061edfd2852629aeba8a8977b57e40fcb77d1a7a28b26cba62591204">>},
               {<<"X-Rest">>, <<"0">>}],
    case maps:get(mode, py:info()) of
        processes ->
            ?assertEqual([{start, <<"200 OK">>, Headers}, {body, <<"hey">>}, done], Events);
        _ ->
            ?assertEqual([{start, <<"200 OK">>, Headers, {body, <<"hey">>}}, done], Events)
    end,
    ?assertEqual({error, {badarg, {coalesce, 1}}},
                 py_wsgi:start(?APPS, echo, Env, #{coalesce => 1})).

%% With coalesce, a list or tuple body's last chunk goes with the stream's end: a
%% one-chunk response is one message, on the C runner and on the Python one; a generator's
%% chunks are not known to be the last (the processes mode does not coalesce).
stream_coalesce_last(_Config) ->
    Events = fun(Query) ->
                     Env = maps:remove(<<"wsgi.input">>,
                                       env(<<"GET">>, <<"/?", Query/binary>>, [], <<>>)),
                     {ok, S} = py_wsgi:start(?APPS, sequence_body, Env, #{coalesce => true}),
                     stream_events(S)
             end,
    H = [{<<"Content-Type">>, <<"text/plain">>}],
    Queries = [<<"=hello">>, <<"tuple=a,b">>, <<"list=a,">>, <<"gen=g">>],
    case maps:get(mode, py:info()) of
        processes ->
            ?assertEqual([[{start, <<"200 OK">>, H}, {body, <<"hello">>}, done],
                          [{start, <<"200 OK">>, H}, {body, <<"a">>}, {body, <<"b">>}, done],
                          [{start, <<"200 OK">>, H}, {body, <<"a">>}, done],
                          [{start, <<"200 OK">>, H}, {body, <<"g">>}, done]],
                         [Events(Q) || Q <- Queries]);
        _ ->
            Expected = [[{then, {start, <<"200 OK">>, H, {body, <<"hello">>}}, done}],
                        [{start, <<"200 OK">>, H, {body, <<"a">>}}, {then, {body, <<"b">>}, done}],
                        [{start, <<"200 OK">>, H, {body, <<"a">>}}, done],
                        [{start, <<"200 OK">>, H, {body, <<"g">>}}, done]],
            ?assertEqual(Expected, [Events(Q) || Q <- Queries]),
            Opts = py_nif:get_options(),
            ok = py_nif:set_options(Opts#{native_runner => false}),
            try
                ?assertEqual(Expected, [Events(Q) || Q <- Queries])
            after
                ok = py_nif:set_options(Opts)
            end
    end.

%% A stream runs the default runner's protocol in C, unless its body is a file or the
%% native_runner option is off (the processes mode has no C runner).
stream_native(Config) ->
    Path = filename:join(?config(priv_dir, Config), "native_body"),
    ok = file:write_file(Path, <<"abc">>),
    Env = maps:remove(<<"wsgi.input">>, env(<<"POST">>, <<"/">>, [], <<"abc">>)),
    Kind = fun(Opts) ->
               {ok, S} = py_wsgi:start(?APPS, response_kind, Env, Opts),
               [{start, <<"200 OK">>, _}, {body, K}, done] = stream_events(S),
               K
           end,
    Memory = Kind(#{body => <<"abc">>}),
    File = Kind(#{body_file => list_to_binary(Path)}),
    case maps:get(mode, py:info()) of
        processes ->
            ?assertEqual([<<"method">>, <<"method">>], [Memory, File]);
        _ ->
            ?assertEqual([<<"WSGIResponse">>, <<"method">>], [Memory, File]),
            Opts = py_nif:get_options(),
            ok = py_nif:set_options(Opts#{native_runner => false}),
            try
                ?assertEqual(<<"method">>, Kind(#{body => <<"abc">>}))
            after
                ok = py_nif:set_options(Opts)
            end
    end.

%% The stream's messages as they came, each body acknowledged.
stream_events(S) ->
    receive
        {wsgi, S, E} ->
            ack_bodies(S, E),
            case ends(E) of
                true -> [E];
                false -> [E | stream_events(S)]
            end
    after 10000 -> ct:fail(no_stream_event)
    end.

ends(done) -> true;
ends({error, _}) -> true;
ends({then, _, Next}) -> ends(Next);
ends(_) -> false.

ack_bodies(S, {body, B}) -> py_wsgi:ack(S, byte_size(B));
ack_bodies(S, {start, _, _, Next}) -> ack_bodies(S, Next);
ack_bodies(S, {then, Last, Next}) -> ack_bodies(S, Last), ack_bodies(S, Next);
ack_bodies(_, _) -> ok.

stream_body(S, Acc) ->
    receive
        {wsgi, S, {start, <<"200 OK">>, _}} -> stream_body(S, Acc);
        {wsgi, S, {body, B}} -> py_wsgi:ack(S, byte_size(B)), stream_body(S, [Acc, B]);
        {wsgi, S, done} -> iolist_to_binary(Acc);
        {wsgi, S, Other} -> ct:fail({unexpected, Other})
    after 10000 -> ct:fail(no_stream_event)
    end.

%% Bodies arrive byte-exact in wsgi.input (length and sha256 computed in Python, nothing
%% left after CONTENT_LENGTH bytes) and come back byte-exact.
bodies_byte_exact(_Config) ->
    lists:foreach(
      fun(Size) ->
              Body = pattern(Size),
              Env = env(<<"POST">>, <<"/echo">>,
                        [{<<"content-type">>, <<"application/octet-stream">>},
                         {<<"content-length">>, integer_to_binary(Size)}], Body),
              {ok, {Status, Headers, Out}} = py_wsgi:run(?APPS, echo, Env),
              ?assertEqual({Size, <<"200 OK">>}, {Size, Status}),
              ?assertEqual({Size, [integer_to_binary(Size)]}, {Size, hdr(<<"x-len">>, Headers)}),
              ?assertEqual({Size, [sha256_hex(Body)]}, {Size, hdr(<<"x-sha256">>, Headers)}),
              ?assertEqual({Size, [<<"0">>]}, {Size, hdr(<<"x-rest">>, Headers)}),
              ?assertEqual({Size, [integer_to_binary(Size)]},
                           {Size, hdr(<<"content-length">>, Headers)}),
              ?assertEqual(Size, byte_size(Out)),
              ?assert(Out =:= Body)
      end, [0, 1, 1023, 1024, 64 * 1024, 10 * 1024 * 1024]),
    %% A GET with no CONTENT_LENGTH at all reads nothing.
    {ok, {<<"200 OK">>, H, <<>>}} = py_wsgi:run(?APPS, echo, env(<<"GET">>, <<"/echo">>, [], <<>>)),
    ?assertEqual([<<"0">>], hdr(<<"x-len">>, H)).

%% PATH_INFO (percent-decoded bytes) and header values with bytes 0x80-0xFF reach Python
%% as latin-1 str and come back with the same bytes, in a header and in the body.
latin1_path_and_headers(_Config) ->
    High = list_to_binary(lists:seq(16#80, 16#FF)),
    Path = <<"/caf", 16#E9, "/", High/binary>>,
    Target = <<"/caf%E9/", (pct_encode(High))/binary>>,
    Utf8 = <<"Jürgen é"/utf8>>,
    Cases = [{High, <<"x-bin">>}, {Utf8, <<"X-Bin">>}, {<<"plain ascii">>, <<"x-bin">>}],
    lists:foreach(
      fun({Value, Name}) ->
              Env = env(<<"GET">>, Target, [{Name, Value}], <<>>),
              ?assertEqual(Path, maps:get(<<"PATH_INFO">>, Env)),
              {ok, {Status, Headers, Body}} = py_wsgi:run(?APPS, latin1, Env),
              ?assertEqual(<<"200 OK">>, Status),
              ?assertEqual([Path], hdr(<<"x-path">>, Headers)),
              ?assertEqual([Value], hdr(<<"x-bin">>, Headers)),
              ?assertEqual([<<"str,str">>], hdr(<<"x-types">>, Headers)),
              ?assertEqual(<<Path/binary, "|", Value/binary>>, Body)
      end, Cases).

%% Response headers keep the app's order and duplicates.
response_headers_order(_Config) ->
    {ok, {<<"200 OK">>, Headers, <<"ok">>}} =
        py_wsgi:run(?APPS, headers_order, env(<<"GET">>, <<"/">>, [], <<>>)),
    ?assertEqual([{<<"Content-Type">>, <<"text/plain">>},
                  {<<"Set-Cookie">>, <<"a=1; Path=/">>},
                  {<<"X-Dup">>, <<"one">>},
                  {<<"Set-Cookie">>, <<"b=2; Path=/">>},
                  {<<"X-Dup">>, <<"two">>}], Headers).

%% The write() callable of start_response, then the returned iterable (empty chunks kept
%% out).
write_callable(_Config) ->
    ?assertEqual({ok, {<<"200 OK">>, [{<<"Content-Type">>, <<"text/plain">>}],
                       <<"written;returned;end">>}},
                 py_wsgi:run(?APPS, write_callable, env(<<"GET">>, <<"/">>, [], <<>>))).

%% wsgi.file_wrapper (the runner's default) in blocks, closing its file; a generator app.
file_wrapper_and_generator(_Config) ->
    _ = erlang_python_ct:each(?APPS, reset_closed, []),
    Body = pattern(1000),
    ?assertEqual({ok, {<<"200 OK">>, [{<<"Content-Type">>, <<"application/octet-stream">>}], Body}},
                 py_wsgi:run(?APPS, file_wrapper, env(<<"POST">>, <<"/?fw">>, [], Body))),
    ?assertEqual([<<"fw">>], closed()),
    ?assertEqual({ok, {<<"200 OK">>, [{<<"Content-Type">>, <<"text/plain">>}],
                       <<"g0;g1;g2;g3;g4;end">>}},
                 py_wsgi:run(?APPS, generator, env(<<"GET">>, <<"/">>, [], <<>>))).

%% Module and callable as atoms or binaries, in any mix; a dotted callable.
names_as_atoms_and_dotted(_Config) ->
    Env = env(<<"GET">>, <<"/n">>, [], <<>>),
    Expected = {ok, {<<"200 OK">>, [{<<"Content-Type">>, <<"application/octet-stream">>},
                                    {<<"Content-Length">>, <<"4">>}, {<<"X-App">>, <<"a">>}],
                     <<"A:/n">>}},
    ?assertEqual(Expected, py_wsgi:run(ep_wsgi_apps, app_a, Env)),
    ?assertEqual(Expected, py_wsgi:run(<<"ep_wsgi_apps">>, <<"app_a">>, Env)),
    ?assertEqual(Expected, py_wsgi:run(ep_wsgi_apps, <<"app_a">>, Env)),
    ?assertEqual(Expected, py_wsgi:run(<<"ep_wsgi_apps">>, app_a, Env)),
    ?assertEqual(Expected, py_wsgi:run(ep_wsgi_apps, app_a, Env, #{})),
    ?assertEqual(Expected, py_wsgi:run(ep_wsgi_apps, app_a, Env,
                                       #{runner => hornbeam_wsgi_runner})),
    ?assertEqual(Expected, py_wsgi:run(ep_wsgi_apps, <<"Nested.inner">>, Env)),
    ?assertEqual(Expected, py_wsgi:run(ep_wsgi_apps, 'Nested.inner', Env)).

%% ---- Flask -------------------------------------------------------------------------------

flask_routing_json(_Config) ->
    ?assertEqual({ok, {<<"200 OK">>, [{<<"Content-Type">>, <<"text/html; charset=utf-8">>},
                                      {<<"Content-Length">>, <<"11">>}],
                       <<"flask index">>}},
                 http_get(?FLASK, <<"/">>)),
    Json = <<"{\"id\":7,\"name\":\"item 7\",\"tags\":[\"a\",\"b\"]}\n">>,
    ?assertEqual({ok, {<<"200 OK">>, [{<<"Content-Type">>, <<"application/json">>},
                                      {<<"Content-Length">>, blen(Json)}], Json}},
                 http_get(?FLASK, <<"/items/7">>)),
    %% The method is routed too: GET on a POST-only route.
    {ok, {<<"405 METHOD NOT ALLOWED">>, H, _}} = http_get(?FLASK, <<"/json">>),
    %% Werkzeug builds Allow from a set: the order changes with the hash seed.
    [Allow] = hdr(<<"allow">>, H),
    ?assertEqual([<<"OPTIONS">>, <<"POST">>], lists:sort(binary:split(Allow, <<", ">>, [global]))).

flask_query_utf8(_Config) ->
    Json = <<"{\"all\":[\"\\u00e9t\\u00e9\",\"x y\"],\"len\":3,\"q\":\"\\u00e9t\\u00e9\"}\n">>,
    ?assertEqual({ok, {<<"200 OK">>, [{<<"Content-Type">>, <<"application/json">>},
                                      {<<"Content-Length">>, blen(Json)}], Json}},
                 http_get(?FLASK, <<"/search?q=%C3%A9t%C3%A9&q=x+y">>)).

flask_json_post(_Config) ->
    Req = <<"{\"a\": [1, 2], \"b\": \"é\"}"/utf8>>,
    Json = <<"{\"method\":\"POST\",\"received\":{\"a\":[1,2],\"b\":\"\\u00e9\"}}\n">>,
    ?assertEqual({ok, {<<"201 CREATED">>, [{<<"Content-Type">>, <<"application/json">>},
                                           {<<"Content-Length">>, blen(Json)}], Json}},
                 request(?FLASK, <<"POST">>, <<"/json">>,
                         [{<<"Content-Type">>, <<"application/json">>}], Req)).

flask_form_urlencoded(_Config) ->
    Json = <<"{\"city\":\"K\\u00f6ln\",\"multi\":[\"1\",\"2\"],\"name\":\"J\\u00fcrgen X\"}\n">>,
    ?assertEqual({ok, {<<"200 OK">>, [{<<"Content-Type">>, <<"application/json">>},
                                      {<<"Content-Length">>, blen(Json)}], Json}},
                 request(?FLASK, <<"POST">>, <<"/form">>,
                         [{<<"Content-Type">>, <<"application/x-www-form-urlencoded">>}],
                         <<"name=J%C3%BCrgen+X&city=K%C3%B6ln&m=1&m=2">>)).

flask_multipart_upload(_Config) ->
    {CT, Body, Data} = upload_request(),
    Json = iolist_to_binary(
             [<<"{\"content_type\":\"application/octet-stream\",\"field\":\"Title \\u00e9\","
                "\"filename\":\"data.bin\",\"sha256\":\"">>, sha256_hex(Data),
              <<"\",\"size\":">>, integer_to_binary(byte_size(Data)), <<"}\n">>]),
    ?assertEqual({ok, {<<"200 OK">>, [{<<"Content-Type">>, <<"application/json">>},
                                      {<<"Content-Length">>, blen(Json)}], Json}},
                 request(?FLASK, <<"POST">>, <<"/upload">>, [{<<"Content-Type">>, CT}], Body)).

flask_cookies(_Config) ->
    ?assertEqual({ok, {<<"200 OK">>, [{<<"Content-Type">>, <<"text/html; charset=utf-8">>},
                                      {<<"Content-Length">>, <<"11">>},
                                      {<<"Set-Cookie">>, <<"first=1; Path=/">>},
                                      {<<"Set-Cookie">>, <<"second=2; HttpOnly; Path=/">>}],
                       <<"cookies set">>}},
                 http_get(?FLASK, <<"/cookies/set">>)),
    %% Two Cookie request headers are joined with "; ".
    Json = <<"[[\"first\",\"1\"],[\"second\",\"2\"]]\n">>,
    ?assertEqual({ok, {<<"200 OK">>, [{<<"Content-Type">>, <<"application/json">>},
                                      {<<"Content-Length">>, blen(Json)}], Json}},
                 request(?FLASK, <<"GET">>, <<"/cookies/get">>,
                         [{<<"Cookie">>, <<"first=1">>}, {<<"cookie">>, <<"second=2">>}], <<>>)).

flask_redirect(_Config) ->
    {ok, {Status, Headers, Body}} = http_get(?FLASK, <<"/redirect">>),
    ?assertEqual(<<"302 FOUND">>, Status),
    ?assertEqual([<<"/items/7">>], hdr(<<"location">>, Headers)),
    ?assertEqual([blen(Body)], hdr(<<"content-length">>, Headers)),
    ?assertMatch({_, _}, binary:match(Body, <<"<a href=\"/items/7\">/items/7</a>">>)).

flask_404(_Config) ->
    Html = <<"<!doctype html>\n<html lang=en>\n<title>404 Not Found</title>\n"
             "<h1>Not Found</h1>\n<p>The requested URL was not found on the server. If you "
             "entered the URL manually please check your spelling and try again.</p>\n">>,
    Expected = {ok, {<<"404 NOT FOUND">>, [{<<"Content-Type">>, <<"text/html; charset=utf-8">>},
                                           {<<"Content-Length">>, blen(Html)}], Html}},
    ?assertEqual(Expected, http_get(?FLASK, <<"/no/such/route">>)),
    ?assertEqual(Expected, http_get(?FLASK, <<"/missing">>)).

flask_500(_Config) ->
    Html = <<"<!doctype html>\n<html lang=en>\n<title>500 Internal Server Error</title>\n"
             "<h1>Internal Server Error</h1>\n<p>The server encountered an internal error and "
             "was unable to complete your request. Either the server is overloaded or there is "
             "an error in the application.</p>\n">>,
    ?assertEqual({ok, {<<"500 INTERNAL SERVER ERROR">>,
                       [{<<"Content-Type">>, <<"text/html; charset=utf-8">>},
                        {<<"Content-Length">>, blen(Html)}], Html}},
                 http_get(?FLASK, <<"/boom">>)).

%% ---- Django ------------------------------------------------------------------------------

django_routing_json(_Config) ->
    ?assertEqual({ok, {<<"200 OK">>, [{<<"Content-Type">>, <<"text/plain">>},
                                      {<<"Content-Length">>, <<"12">>}],
                       <<"django index">>}},
                 http_get(?DJANGO, <<"/">>)),
    Json = <<"{\"id\": 7, \"name\": \"item 7\"}">>,
    ?assertEqual({ok, {<<"200 OK">>, [{<<"Content-Type">>, <<"application/json">>},
                                      {<<"Content-Length">>, blen(Json)}], Json}},
                 http_get(?DJANGO, <<"/items/7/">>)),
    %% CommonMiddleware's APPEND_SLASH.
    ?assertEqual({ok, {<<"301 Moved Permanently">>,
                       [{<<"Content-Type">>, <<"text/html; charset=utf-8">>},
                        {<<"Location">>, <<"/items/7/">>}], <<>>}},
                 http_get(?DJANGO, <<"/items/7">>)).

django_query_utf8(_Config) ->
    Json = <<"{\"q\": \"\\u00e9t\\u00e9\", \"len\": 3, \"all\": [\"\\u00e9t\\u00e9\"]}">>,
    ?assertEqual({ok, {<<"200 OK">>, [{<<"Content-Type">>, <<"application/json">>},
                                      {<<"Content-Length">>, blen(Json)}], Json}},
                 http_get(?DJANGO, <<"/search/?q=%C3%A9t%C3%A9">>)).

django_form_urlencoded(_Config) ->
    Json = <<"{\"name\": \"J\\u00fcrgen X\", \"city\": \"K\\u00f6ln\", \"multi\": [\"1\", \"2\"]}">>,
    ?assertEqual({ok, {<<"200 OK">>, [{<<"Content-Type">>, <<"application/json">>},
                                      {<<"Content-Length">>, blen(Json)}], Json}},
                 request(?DJANGO, <<"POST">>, <<"/form/">>,
                         [{<<"Content-Type">>, <<"application/x-www-form-urlencoded">>}],
                         <<"name=J%C3%BCrgen+X&city=K%C3%B6ln&m=1&m=2">>)).

django_multipart_upload(_Config) ->
    {CT, Body, Data} = upload_request(),
    Json = iolist_to_binary(
             [<<"{\"field\": \"Title \\u00e9\", \"filename\": \"data.bin\", "
                "\"content_type\": \"application/octet-stream\", \"size\": ">>,
              integer_to_binary(byte_size(Data)), <<", \"sha256\": \"">>, sha256_hex(Data),
              <<"\"}">>]),
    ?assertEqual({ok, {<<"200 OK">>, [{<<"Content-Type">>, <<"application/json">>},
                                      {<<"Content-Length">>, blen(Json)}], Json}},
                 request(?DJANGO, <<"POST">>, <<"/upload/">>, [{<<"Content-Type">>, CT}], Body)).

%% Django's WSGIHandler itself sends each cookie as c.output(header=""), with a leading space.
django_cookies(_Config) ->
    ?assertEqual({ok, {<<"200 OK">>, [{<<"Content-Type">>, <<"text/plain">>},
                                      {<<"Content-Length">>, <<"11">>},
                                      {<<"Set-Cookie">>, <<" first=1; Path=/">>},
                                      {<<"Set-Cookie">>, <<" second=2; HttpOnly; Path=/">>}],
                       <<"cookies set">>}},
                 http_get(?DJANGO, <<"/cookies/set/">>)),
    Json = <<"{\"cookies\": [[\"first\", \"1\"], [\"second\", \"2\"]]}">>,
    ?assertEqual({ok, {<<"200 OK">>, [{<<"Content-Type">>, <<"application/json">>},
                                      {<<"Content-Length">>, blen(Json)}], Json}},
                 request(?DJANGO, <<"GET">>, <<"/cookies/get/">>,
                         [{<<"Cookie">>, <<"first=1">>}, {<<"cookie">>, <<"second=2">>}], <<>>)).

django_redirect(_Config) ->
    ?assertEqual({ok, {<<"302 Found">>, [{<<"Content-Type">>, <<"text/html; charset=utf-8">>},
                                         {<<"Location">>, <<"/items/7/">>},
                                         {<<"Content-Length">>, <<"0">>}], <<>>}},
                 http_get(?DJANGO, <<"/redirect/">>)).

django_404(_Config) ->
    Html = <<"\n<!doctype html>\n<html lang=\"en\">\n<head>\n  <title>Not Found</title>\n"
             "</head>\n<body>\n  <h1>Not Found</h1><p>The requested resource was not found "
             "on this server.</p>\n</body>\n</html>\n">>,
    ?assertEqual({ok, {<<"404 Not Found">>, [{<<"Content-Type">>, <<"text/html; charset=utf-8">>},
                                             {<<"Content-Length">>, blen(Html)}], Html}},
                 http_get(?DJANGO, <<"/no/such/route/">>)).

django_500(_Config) ->
    Html = <<"\n<!doctype html>\n<html lang=\"en\">\n<head>\n  <title>Server Error (500)</title>\n"
             "</head>\n<body>\n  <h1>Server Error (500)</h1><p></p>\n</body>\n</html>\n">>,
    ?assertEqual({ok, {<<"500 Internal Server Error">>,
                       [{<<"Content-Type">>, <<"text/html; charset=utf-8">>},
                        {<<"Content-Length">>, blen(Html)}], Html}},
                 http_get(?DJANGO, <<"/boom/">>)).

%% ---- errors ------------------------------------------------------------------------------

%% {error, {python, Type, Message, Traceback}} with the app's own frame and source line.
raising_app(Config) ->
    {error, {python, Type, Msg, TB}} =
        py_wsgi:run(?APPS, raising, env(<<"GET">>, <<"/">>, [], <<>>)),
    ?assertEqual(<<"ep_wsgi_apps.MyAppError">>, Type),
    ?assertEqual(<<"app failed on purpose">>, Msg),
    ?assertEqual(<<"Traceback (most recent call last):">>, hd(TB)),
    ?assertEqual(<<"ep_wsgi_apps.MyAppError: app failed on purpose">>, lists:last(TB)),
    File = filename:join(?config(data_dir, Config), "ep_wsgi_apps.py"),
    Frame = iolist_to_binary(["  File \"", File, "\", line "]),
    ?assertMatch([_], [L || L <- TB, binary:match(L, Frame) =/= nomatch,
                            binary:match(L, <<", in _raising">>) =/= nomatch]),
    ?assertEqual(true, lists:member(
                         <<"    raise MyAppError(\"app failed on purpose\")  "
                           "# ep_wsgi_apps raising line">>, TB)),
    ?assertEqual(true, lists:all(fun is_binary/1, TB)),
    %% Through the Python runner (the NIF's C start_response switched off) the runner's
    %% frames are there too, and the same app frame, type and message.
    ok = py_nif:set_options(#{native_runner => false}),
    try
        {error, {python, Type, Msg, TB2}} =
            py_wsgi:run(?APPS, raising, env(<<"GET">>, <<"/">>, [], <<>>)),
        ?assertMatch([_ | _], [L || L <- TB2, binary:match(L, <<"hornbeam_wsgi_runner.py">>) =/= nomatch]),
        ?assertEqual(lists:last(TB), lists:last(TB2))
    after
        ok = py_nif:set_options(#{native_runner => true})
    end.

%% close() is called on the iterable when its iteration raises (second chunk or first).
iterable_raises_close_called(_Config) ->
    _ = erlang_python_ct:each(?APPS, reset_closed, []),
    ?assertMatch({error, {python, <<"RuntimeError">>, <<"iterable failed at chunk 2">>, _}},
                 py_wsgi:run(?APPS, close_raising, env(<<"GET">>, <<"/?second">>, [], <<>>))),
    ?assertEqual([<<"second">>], closed()),
    ?assertMatch({error, {python, <<"RuntimeError">>, <<"iterable failed at chunk 1">>, _}},
                 py_wsgi:run(?APPS, close_raising_first, env(<<"GET">>, <<"/?first">>, [], <<>>))),
    ?assertEqual([<<"first">>, <<"second">>], lists:sort(closed())).

close_called_on_success(_Config) ->
    _ = erlang_python_ct:each(?APPS, reset_closed, []),
    ?assertEqual({ok, {<<"200 OK">>, [{<<"Content-Type">>, <<"text/plain">>}],
                       <<"chunk1;chunk2;chunk3;">>}},
                 py_wsgi:run(?APPS, close_ok, env(<<"GET">>, <<"/?ok">>, [], <<>>))),
    ?assertEqual([<<"ok">>], closed()).

%% start_response(..., exc_info) before any body: the new status and headers replace the
%% first ones (PEP 3333), no error.
exc_info_before_body_replaces_status(_Config) ->
    ?assertEqual({ok, {<<"500 Internal Server Error">>,
                       [{<<"Content-Type">>, <<"text/plain">>}, {<<"X-Replaced">>, <<"yes">>}],
                       <<"replaced">>}},
                 py_wsgi:run(?APPS, exc_info_replace, env(<<"GET">>, <<"/">>, [], <<>>))).

%% After body data was sent, start_response(..., exc_info) re-raises the exception.
exc_info_after_body_reraises(_Config) ->
    {error, {python, Type, Msg, TB}} =
        py_wsgi:run(?APPS, exc_info_after_body, env(<<"GET">>, <<"/">>, [], <<>>)),
    ?assertEqual({<<"LookupError">>, <<"too late to replace">>}, {Type, Msg}),
    ?assertEqual(<<"LookupError: too late to replace">>, lists:last(TB)).

bad_environ_missing_keys(_Config) ->
    Env = env(<<"GET">>, <<"/">>, [], <<>>),
    Required = [<<"REQUEST_METHOD">>, <<"SCRIPT_NAME">>, <<"PATH_INFO">>, <<"SERVER_NAME">>,
                <<"SERVER_PORT">>, <<"SERVER_PROTOCOL">>, <<"wsgi.url_scheme">>,
                <<"wsgi.input">>],
    [?assertEqual({Key, {error, {bad_environ, Key}}},
                  {Key, py_wsgi:run(?APPS, app_a, maps:remove(Key, Env))})
     || Key <- Required],
    %% All of them missing: some required key is named.
    {error, {bad_environ, K}} = py_wsgi:run(?APPS, app_a, #{}),
    ?assertEqual(true, lists:member(K, Required)),
    %% The optional keys really are optional.
    Optional = [<<"QUERY_STRING">>, <<"HTTP_HOST">>],
    ?assertMatch({ok, {<<"200 OK">>, _, <<"A:/">>}},
                 py_wsgi:run(?APPS, app_a, maps:without(Optional, Env))).

bad_environ_wrong_types(_Config) ->
    Env = env(<<"GET">>, <<"/">>, [], <<>>),
    Bad = [{<<"REQUEST_METHOD">>, 'GET'}, {<<"SCRIPT_NAME">>, ""}, {<<"PATH_INFO">>, "/"},
           {<<"SERVER_NAME">>, localhost}, {<<"SERVER_PORT">>, 8080},
           {<<"SERVER_PROTOCOL">>, {1, 1}}, {<<"wsgi.url_scheme">>, http},
           {<<"wsgi.input">>, [<<"io">>, <<"list">>]}, {<<"wsgi.input">>, undefined},
           {<<"QUERY_STRING">>, 42}, {<<"CONTENT_TYPE">>, 'text/plain'},
           {<<"CONTENT_LENGTH">>, 3}, {<<"HTTP_X_CUSTOM">>, [1, 2]},
           {<<"REMOTE_ADDR">>, {127, 0, 0, 1}},
           {<<"wsgi.version">>, {1, 0, 0}}, {<<"wsgi.version">>, <<"1.0">>},
           {<<"wsgi.version">>, {1, a}},
           {<<"wsgi.multithread">>, 1}, {<<"wsgi.multiprocess">>, <<"true">>},
           {<<"wsgi.run_once">>, yes}],
    [?assertEqual({Key, Value, {error, {bad_environ, Key}}},
                  {Key, Value, py_wsgi:run(?APPS, app_a, Env#{Key => Value})})
     || {Key, Value} <- Bad],
    %% A key that is not a binary, and an environ that is not a map.
    ?assertEqual({error, {bad_environ, 'PATH_INFO'}},
                 py_wsgi:run(?APPS, app_a, Env#{'PATH_INFO' => <<"/">>})),
    ?assertEqual({error, {bad_environ, [a]}}, py_wsgi:run(?APPS, app_a, [a])).

%% A bad environ is refused before Python runs: the custom runner never sees it.
bad_environ_runs_no_python(_Config) ->
    N0 = runner_calls(),
    Env = env(<<"GET">>, <<"/counted">>, [], <<>>),
    ?assertEqual({error, {bad_environ, <<"SERVER_PORT">>}},
                 py_wsgi:run(?APPS, app_a, Env#{<<"SERVER_PORT">> => 80}, #{runner => ?RUNNER})),
    ?assertEqual({error, {bad_environ, <<"wsgi.input">>}},
                 py_wsgi:run(?APPS, app_a, maps:remove(<<"wsgi.input">>, Env),
                             #{runner => ?RUNNER})),
    ?assertEqual(N0, runner_calls()),
    ?assertMatch({ok, {<<"200 OK">>, _, <<"A:/counted">>}},
                 py_wsgi:run(?APPS, app_a, Env, #{runner => ?RUNNER})),
    ?assertEqual(N0 + 1, runner_calls()).

bad_runner(_Config) ->
    Env = env(<<"GET">>, <<"/">>, [], <<>>),
    ?assertEqual({error, {bad_runner, <<"runner module 'ep_wsgi_no_entry' has no callable run_wsgi()">>}},
                 py_wsgi:run(?APPS, app_a, Env, #{runner => <<"ep_wsgi_no_entry">>})),
    ?assertEqual({error, {bad_runner, <<"runner module 'ep_wsgi_no_runner' has no callable run_wsgi()">>}},
                 py_wsgi:run(?APPS, app_a, Env, #{runner => ep_wsgi_no_runner})),
    %% Twice: a failed resolution is not cached as a success.
    ?assertEqual({error, {bad_runner, <<"runner module 'ep_wsgi_no_entry' has no callable run_wsgi()">>}},
                 py_wsgi:run(?APPS, app_a, Env, #{runner => <<"ep_wsgi_no_entry">>})),
    %% A runner module that does not exist is the import error.
    ?assertMatch({error, {python, <<"ModuleNotFoundError">>,
                          <<"No module named 'ep_wsgi_no_such_runner'">>, [_ | _]}},
                 py_wsgi:run(?APPS, app_a, Env, #{runner => <<"ep_wsgi_no_such_runner">>})).

missing_app(_Config) ->
    Env = env(<<"GET">>, <<"/">>, [], <<>>),
    ?assertMatch({error, {python, <<"ModuleNotFoundError">>,
                          <<"No module named 'ep_wsgi_no_such_app'">>, [_ | _]}},
                 py_wsgi:run(ep_wsgi_no_such_app, application, Env)),
    ?assertMatch({error, {python, <<"AttributeError">>,
                          <<"module 'ep_wsgi_apps' has no attribute 'no_such_callable'">>, [_ | _]}},
                 py_wsgi:run(?APPS, no_such_callable, Env)).

badarg_shapes(_Config) ->
    Env = env(<<"GET">>, <<"/">>, [], <<>>),
    ?assertEqual({error, {badarg, {options, [{timeout, 5}]}}},
                 py_wsgi:run(?APPS, app_a, Env, [{timeout, 5}])),
    ?assertEqual({error, {badarg, {timeout, -1}}},
                 py_wsgi:run(?APPS, app_a, Env, #{timeout => -1})),
    %% Names: the shapes of py:call ({badarg, {module, M}}), one per argument.
    ?assertEqual({error, {badarg, {module, 42}}}, py_wsgi:run(42, app_a, Env)),
    ?assertEqual({error, {badarg, {callable, "app_a"}}}, py_wsgi:run(?APPS, "app_a", Env)),
    ?assertEqual({error, {badarg, {runner, {runner}}}},
                 py_wsgi:run(?APPS, app_a, Env, #{runner => {runner}})),
    ?assertEqual({error, {badarg, {module, <<"a", 0, "b">>}}},
                 py_wsgi:run(<<"a", 0, "b">>, app_a, Env)),
    Long = binary:copy(<<"x">>, 600),
    ?assertEqual({error, {badarg, {callable, Long}}}, py_wsgi:run(?APPS, Long, Env)),
    ?assertEqual({error, {badarg, {module, 42}}},
                 py_wsgi:start(42, app_a, Env, #{})),
    ?assertEqual({error, {badarg, {module, 42}}}, py:call(42, f, [])).

%% SystemExit raised by an app is an error result; the VM and the workers carry on.
system_exit(_Config) ->
    ?assertMatch({error, {python, <<"SystemExit">>, <<"app called sys.exit">>, [_ | _]}},
                 py_wsgi:run(?APPS, system_exit, env(<<"GET">>, <<"/">>, [], <<>>))),
    ?assertMatch({ok, {<<"200 OK">>, _, <<"A:/">>}},
                 py_wsgi:run(?APPS, app_a, env(<<"GET">>, <<"/">>, [], <<>>))).

%% What a custom runner may return: (str, [(str, str)], bytes | [bytes]); anything else is
%% {bad_response, Message}.
custom_runner_response_shapes(_Config) ->
    Run = fun(Mode) ->
                  py_wsgi:run(?APPS, headers_order, env(<<"GET">>, <<"/?", Mode/binary>>, [], <<>>),
                              #{runner => <<"ep_wsgi_shape_runner">>})
          end,
    {ok, {<<"200 OK">>, Headers, <<"ok">>}} = Run(<<"list">>),
    ?assertEqual(5, length(Headers)),
    ?assertEqual({ok, {<<"200 OK">>, Headers, <<"ok">>}}, Run(<<"bytes">>)),
    Shape = <<"run_wsgi must return (status, headers, body)">>,
    ?assertEqual({error, {bad_response, Shape}}, Run(<<"none">>)),
    ?assertEqual({error, {bad_response, Shape}}, Run(<<"pair">>)),
    ?assertEqual({error, {bad_response, <<"status must be a latin-1 str">>}}, Run(<<"bytes_status">>)),
    ?assertEqual({error, {bad_response, <<"status must be a latin-1 str">>}},
                 Run(<<"non_latin1_status">>)),
    ?assertEqual({error, {bad_response, <<"headers must be a list">>}}, Run(<<"tuple_headers">>)),
    ?assertEqual({error, {bad_response, <<"headers must be (str, str) tuples of latin-1 text">>}},
                 Run(<<"bad_header">>)),
    Body = <<"body must be bytes or a list of bytes">>,
    ?assertEqual({error, {bad_response, Body}}, Run(<<"str_body">>)),
    ?assertEqual({error, {bad_response, Body}}, Run(<<"mixed_body">>)).

%% ---- runner, app cache, timeout --------------------------------------------------------

%% The reference's custom runner: sets environ['custom.key'], then default_wsgi_handler.
custom_runner(_Config) ->
    Env = env(<<"GET">>, <<"/custom">>, [], <<>>),
    N0 = runner_calls(),
    ?assertMatch({ok, {<<"200 OK">>, _, <<"custom.key='value'">>}},
                 py_wsgi:run(?APPS, custom_key, Env, #{runner => ?RUNNER})),
    ?assertMatch({ok, {<<"200 OK">>, _, <<"custom.key='value'">>}},
                 py_wsgi:run(ep_wsgi_apps, custom_key, Env, #{runner => ep_wsgi_custom_runner})),
    ?assertEqual(N0 + 2, runner_calls()),
    ?assertMatch({ok, {<<"200 OK">>, _, <<"custom.key=None">>}},
                 py_wsgi:run(?APPS, custom_key, Env)),
    ?assertEqual(N0 + 2, runner_calls()),
    %% A framework through the custom runner.
    ?assertMatch({ok, {<<"200 OK">>, _, <<"flask index">>}},
                 py_wsgi:run(?FLASK, application, env(<<"GET">>, <<"/">>, [], <<>>),
                             #{runner => ?RUNNER})).

%% Two apps of one module called alternately: each call gets its own app's response.
app_cache_alternating_apps(_Config) ->
    lists:foreach(
      fun(I) ->
              Path = <<"/", (integer_to_binary(I))/binary>>,
              Env = env(<<"GET">>, Path, [], <<>>),
              ?assertEqual({ok, {<<"200 OK">>,
                                 [{<<"Content-Type">>, <<"application/octet-stream">>},
                                  {<<"Content-Length">>, blen(<<"A:", Path/binary>>)},
                                  {<<"X-App">>, <<"a">>}], <<"A:", Path/binary>>}},
                           py_wsgi:run(?APPS, app_a, Env)),
              ?assertEqual({ok, {<<"201 Created">>,
                                 [{<<"Content-Type">>, <<"application/octet-stream">>},
                                  {<<"Content-Length">>, blen(<<"B:", Path/binary>>)},
                                  {<<"X-App">>, <<"b">>}], <<"B:", Path/binary>>}},
                           py_wsgi:run(?APPS, app_b, Env))
      end, lists:seq(1, 100)),
    %% Different modules alternating too.
    lists:foreach(
      fun(_) ->
              ?assertMatch({ok, {<<"200 OK">>, _, <<"flask index">>}}, http_get(?FLASK, <<"/">>)),
              ?assertMatch({ok, {<<"200 OK">>, _, <<"django index">>}}, http_get(?DJANGO, <<"/">>))
      end, lists:seq(1, 20)).

%% Same module and callable, different runners: the cache keys on the runner too.
app_cache_keys_on_runner(_Config) ->
    Env = env(<<"GET">>, <<"/">>, [], <<>>),
    lists:foreach(
      fun(_) ->
              ?assertMatch({ok, {_, _, <<"custom.key='value'">>}},
                           py_wsgi:run(?APPS, custom_key, Env, #{runner => ?RUNNER})),
              ?assertMatch({ok, {_, _, <<"custom.key=None">>}},
                           py_wsgi:run(?APPS, custom_key, Env))
      end, lists:seq(1, 50)).

%% An app sleeping 2 s with timeout 100 gives {error, timeout} quickly; the next call
%% works; the late reply never reaches the mailbox.
timeout_then_next_call_works(_Config) ->
    T0 = erlang:monotonic_time(millisecond),
    ?assertEqual({error, timeout},
                 py_wsgi:run(?APPS, sleep, env(<<"GET">>, <<"/?2">>, [], <<>>), #{timeout => 100})),
    Elapsed = erlang:monotonic_time(millisecond) - T0,
    ?assert(Elapsed >= 100 andalso Elapsed < 1000),
    ?assertMatch({ok, {<<"200 OK">>, _, <<"slept 0">>}},
                 py_wsgi:run(?APPS, sleep, env(<<"GET">>, <<"/?0">>, [], <<>>))),
    ?assertMatch({ok, {<<"200 OK">>, _, <<"slept 0.05">>}},
                 py_wsgi:run(?APPS, sleep, env(<<"GET">>, <<"/?0.05">>, [], <<>>),
                             #{timeout => 5000})),
    ?assertMatch({ok, {<<"200 OK">>, _, <<"A:/">>}},
                 py_wsgi:run(?APPS, app_a, env(<<"GET">>, <<"/">>, [], <<>>), #{timeout => infinity})),
    receive Late -> ct:fail({late_message, Late}) after 2500 -> ok end.

%% ---- load --------------------------------------------------------------------------------

%% 200 processes at once, each with its own body, path and header: every one gets exactly
%% its own response.
concurrent_200(_Config) ->
    Self = self(),
    N = 200,
    Pids = [spawn_link(fun() -> Self ! {done, I, one_echo(I)} end) || I <- lists:seq(1, N)],
    Results = [receive {done, I, R} -> R after 60000 -> {timeout, I} end
               || I <- lists:seq(1, N)],
    ?assertEqual(N, length(Pids)),
    ?assertEqual([], [R || R <- Results, R =/= ok]).

one_echo(I) ->
    Body = <<(integer_to_binary(I))/binary, ":", (pattern(I * 37))/binary>>,
    Env = env(<<"POST">>, <<"/echo/", (integer_to_binary(I))/binary>>,
              [{<<"content-type">>, <<"application/octet-stream">>}], Body),
    case py_wsgi:run(?APPS, echo, Env) of
        {ok, {<<"200 OK">>, Headers, Body}} ->
            case {hdr(<<"x-len">>, Headers), hdr(<<"x-sha256">>, Headers)} of
                {[L], [S]} ->
                    case {L =:= blen(Body), S =:= sha256_hex(Body)} of
                        {true, true} -> ok;
                        Bad -> {bad_len_or_hash, I, Bad}
                    end;
                Other -> {bad_headers, I, Other}
            end;
        Other ->
            {bad_response, I, Other}
    end.

%% ---- runtime options -------------------------------------------------------------------

%% The generic conversion path for the response gives the same responses.
options_direct_response_off(_Config) ->
    compare_with_options(#{direct_response => false}).

%% No interned keys, no cached constants, no app cache: the same responses.
options_caches_off(_Config) ->
    compare_with_options(#{interned_keys => false, cached_constants => false,
                           app_cache => false}).

compare_with_options(Options) ->
    restore_options(),
    Baseline = [{Name, F()} || {Name, F} <- option_requests()],
    %% Sanity: the baseline itself is right.
    [?assertMatch({Name, {ok, {_, _, _}}}, {Name, R}) || {Name, R} <- Baseline, Name =/= raising],
    try
        ok = py_nif:set_options(Options),
        Opts = py_nif:get_options(),
        [?assertEqual({K, V}, {K, maps:get(K, Opts)}) || {K, V} <- maps:to_list(Options)],
        Got = [{Name, F()} || {Name, F} <- option_requests()],
        %% All the differences at once, each as {Name, Baseline, WithOptions}.
        ?assertEqual([], [{Name, B, G} || {{Name, B}, {Name, G}} <- lists:zip(Baseline, Got),
                                          B =/= G])
    after
        restore_options()
    end,
    ?assertEqual([true], lists:usort(maps:values(py_nif:get_options()))).

option_requests() ->
    High = list_to_binary(lists:seq(16#80, 16#FF)),
    Body = pattern(70000),
    [{echo_small, fun() -> py_wsgi:run(?APPS, echo, env(<<"POST">>, <<"/e">>, [], <<"x">>)) end},
     {echo_64k, fun() -> py_wsgi:run(?APPS, echo, env(<<"POST">>, <<"/e">>, [], Body)) end},
     {latin1, fun() -> py_wsgi:run(?APPS, latin1, env(<<"GET">>, <<"/caf%E9">>,
                                                       [{<<"x-bin">>, High}], <<>>)) end},
     {environ_types, fun() -> py_wsgi:run(?APPS, environ_types,
                                          env(<<"PATCH">>, <<"/t?q=1">>,
                                              [{<<"Accept">>, <<"*/*">>}], <<>>)) end},
     {headers_order, fun() -> py_wsgi:run(?APPS, headers_order, env(<<"GET">>, <<"/">>, [], <<>>)) end},
     {write_callable, fun() -> py_wsgi:run(?APPS, write_callable, env(<<"GET">>, <<"/">>, [], <<>>)) end},
     {exc_info, fun() -> py_wsgi:run(?APPS, exc_info_replace, env(<<"GET">>, <<"/">>, [], <<>>)) end},
     {app_a, fun() -> py_wsgi:run(?APPS, app_a, env(<<"GET">>, <<"/x">>, [], <<>>)) end},
     {app_b, fun() -> py_wsgi:run(?APPS, app_b, env(<<"GET">>, <<"/x">>, [], <<>>)) end},
     {app_a_again, fun() -> py_wsgi:run(?APPS, app_a, env(<<"GET">>, <<"/y">>, [], <<>>)) end},
     {custom_runner, fun() -> py_wsgi:run(?APPS, custom_key, env(<<"GET">>, <<"/">>, [], <<>>),
                                          #{runner => ?RUNNER}) end},
     {default_runner, fun() -> py_wsgi:run(?APPS, custom_key, env(<<"GET">>, <<"/">>, [], <<>>)) end},
     {raising, fun() -> py_wsgi:run(?APPS, raising, env(<<"GET">>, <<"/">>, [], <<>>)) end},
     {flask_search, fun() -> http_get(?FLASK, <<"/search?q=%C3%A9t%C3%A9">>) end},
     {flask_cookies, fun() -> http_get(?FLASK, <<"/cookies/set">>) end},
     {flask_404, fun() -> http_get(?FLASK, <<"/nope">>) end},
     {django_form, fun() -> request(?DJANGO, <<"POST">>, <<"/form/">>,
                                    [{<<"Content-Type">>, <<"application/x-www-form-urlencoded">>}],
                                    <<"name=J%C3%BCrgen&city=K%C3%B6ln">>) end},
     {django_cookies, fun() -> http_get(?DJANGO, <<"/cookies/set/">>) end}].

restore_options() ->
    ok = py_nif:set_options(maps:map(fun(_, _) -> true end, py_nif:get_options())).

%% ---- helpers -----------------------------------------------------------------------------

%% Calls of the custom runner, in every interpreter.
runner_calls() ->
    lists:sum(erlang_python_ct:each(?RUNNER, call_count, [])).

%% What the apps recorded as closed, in every interpreter.
closed() ->
    lists:append(erlang_python_ct:each(?APPS, get_closed, [])).

http_get(Module, Target) ->
    request(Module, <<"GET">>, Target, [], <<>>).

request(Module, Method, Target, Headers, Body) ->
    py_wsgi:run(Module, <<"application">>, env(Method, Target, Headers, Body)).

%% The environ a server builds for `Method Target' with Headers ({Name, Value} in arrival
%% order) and Body: PATH_INFO is the percent-decoded path (raw bytes), QUERY_STRING the raw
%% query, Content-Type/Content-Length become CONTENT_TYPE/CONTENT_LENGTH (the length from
%% the body when the client did not send one), the other headers HTTP_* keys with repeated
%% headers joined with ", " (Cookie with "; ").
env(Method, Target, Headers, Body) ->
    {RawPath, QS} = case binary:split(Target, <<"?">>) of
                        [P] -> {P, <<>>};
                        [P, Q] -> {P, Q}
                    end,
    Base = #{<<"REQUEST_METHOD">> => Method,
             <<"SCRIPT_NAME">> => <<>>,
             <<"PATH_INFO">> => pct_decode(RawPath),
             <<"QUERY_STRING">> => QS,
             <<"SERVER_NAME">> => <<"localhost">>,
             <<"SERVER_PORT">> => <<"8080">>,
             <<"SERVER_PROTOCOL">> => <<"HTTP/1.1">>,
             <<"wsgi.url_scheme">> => <<"http">>,
             <<"wsgi.input">> => Body},
    Lower = [{string:lowercase(N), V} || {N, V} <- Headers],
    WithHost = case lists:keymember(<<"host">>, 1, Lower) of
                   true -> Lower;
                   false -> [{<<"host">>, <<"localhost:8080">>} | Lower]
               end,
    WithLength = case Body =/= <<>> andalso not lists:keymember(<<"content-length">>, 1, Lower) of
                     true -> WithHost ++ [{<<"content-length">>, integer_to_binary(byte_size(Body))}];
                     false -> WithHost
                 end,
    lists:foldl(fun add_header/2, Base, WithLength).

add_header({Name, Value}, Env) ->
    Key = cgi_key(Name),
    Sep = case Name of
              <<"cookie">> -> <<"; ">>;
              _ -> <<", ">>
          end,
    case Env of
        #{Key := Old} -> Env#{Key := <<Old/binary, Sep/binary, Value/binary>>};
        _ -> Env#{Key => Value}
    end.

cgi_key(<<"content-type">>) -> <<"CONTENT_TYPE">>;
cgi_key(<<"content-length">>) -> <<"CONTENT_LENGTH">>;
cgi_key(Name) ->
    Up = << <<(case C of $- -> $_; _ when C >= $a, C =< $z -> C - 32; _ -> C end)>>
            || <<C>> <= Name >>,
    <<"HTTP_", Up/binary>>.

pct_decode(<<$%, H, L, Rest/binary>>) ->
    <<(list_to_integer([H, L], 16)), (pct_decode(Rest))/binary>>;
pct_decode(<<C, Rest/binary>>) ->
    <<C, (pct_decode(Rest))/binary>>;
pct_decode(<<>>) ->
    <<>>.

pct_encode(Bin) ->
    << <<(iolist_to_binary(io_lib:format("%~2.16.0B", [C])))/binary>> || <<C>> <= Bin >>.

%% All values of the response header Name (case-insensitive), in order.
hdr(Name, Headers) ->
    [V || {N, V} <- Headers, string:lowercase(N) =:= Name].

blen(Bin) ->
    integer_to_binary(byte_size(Bin)).

%% Size bytes cycling through every byte value.
pattern(Size) ->
    All = list_to_binary(lists:seq(0, 255)),
    Full = binary:copy(All, Size div 256),
    <<Full/binary, (binary:part(All, 0, Size rem 256))/binary>>.

sha256_hex(Bin) ->
    string:lowercase(binary:encode_hex(crypto:hash(sha256, Bin))).

lines(Ls) ->
    iolist_to_binary([[L, $\n] || L <- Ls]).

has_line(Line, Body) ->
    lists:member(Line, binary:split(Body, <<"\n">>, [global])).

%% A multipart/form-data upload built here: a UTF-8 text field and a binary file with
%% every byte value (CR LF and "--" sequences included).
upload_request() ->
    Boundary = <<"----pywsgiSUITEboundary7MA4YWxk">>,
    Data = <<(pattern(70000))/binary, "\r\n--not-the-boundary\r\n", (pattern(300))/binary>>,
    Body = iolist_to_binary(
             [<<"--">>, Boundary, <<"\r\n">>,
              <<"Content-Disposition: form-data; name=\"title\"\r\n\r\n">>,
              <<"Title é"/utf8>>, <<"\r\n">>,
              <<"--">>, Boundary, <<"\r\n">>,
              <<"Content-Disposition: form-data; name=\"file\"; filename=\"data.bin\"\r\n">>,
              <<"Content-Type: application/octet-stream\r\n\r\n">>,
              Data, <<"\r\n">>,
              <<"--">>, Boundary, <<"--\r\n">>]),
    {<<"multipart/form-data; boundary=", Boundary/binary>>, Body, Data}.
