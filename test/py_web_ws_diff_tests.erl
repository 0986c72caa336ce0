%% Differential test of the WebSocket core against the websockets library (PyPI), the
%% implementation behind uvicorn's default: test/ws_diff.py runs its sans-I/O client and
%% drives this module's server (py_web_ws and the handshake) through a port. Random
%% permessage-deflate offers and server settings, random messages both ways (sizes across
%% the 7/16/64-bit length boundaries, multi-byte text, client fragmentation with pings
%% between fragments, bytes delivered in random pieces, server fragmentation), and the
%% close handshake from either side. Fixed seeds: a failure names its seed to replay it.
%% Needs the test venv (VIRTUAL_ENV, as `make test-eunit' sets it) with websockets installed.
-module(py_web_ws_diff_tests).

-include_lib("eunit/include/eunit.hrl").

-define(SEEDS, [1, 2, 3, 4]).
-define(CONNECTIONS, 8).
-define(MESSAGES, 10).

diff_test_() ->
    %% Each case gets its own timeout: a {timeout, T, List} around the list leaves every
    %% case in it at EUnit's default of 5 s, too short on a loaded machine.
    [{integer_to_list(Seed), {timeout, 300, fun() -> run(Seed) end}} || Seed <- ?SEEDS].

run(Seed) ->
    Python = python(),
    Script = filename:join(filename:dirname(?FILE), "ws_diff.py"),
    ?assert(filelib:is_regular(Script)),
    Port = open_port({spawn_executable, Python},
                     [{args, [Script, integer_to_list(Seed), integer_to_list(?CONNECTIONS),
                              integer_to_list(?MESSAGES)]},
                      {packet, 4}, binary, exit_status, use_stdio]),
    Prefix = iolist_to_binary(["ok ", integer_to_list(?CONNECTIONS), " deflate="]),
    Verdict = loop(Port, undefined),
    ?assertMatch({Prefix, _}, split_prefix(Prefix, Verdict)),
    {_, Compressed} = split_prefix(Prefix, Verdict),
    %% some connections negotiated permessage-deflate, some did not
    ?assert(binary_to_integer(Compressed) > 0),
    ?assert(binary_to_integer(Compressed) < ?CONNECTIONS).

split_prefix(Prefix, Bin) ->
    case Bin of
        <<Prefix:(byte_size(Prefix))/binary, Rest/binary>> -> {Prefix, Rest};
        _ -> {no_match, Bin}
    end.

python() ->
    case os:getenv("VIRTUAL_ENV") of
        false -> error("VIRTUAL_ENV is not set: run through `make test-eunit'");
        Venv ->
            Python = filename:join([Venv, "bin", "python"]),
            Check = os:cmd(Python ++ " -c 'import websockets; print(\"yes\")'"),
            ?assertEqual({websockets_in, Venv, "yes\n"}, {websockets_in, Venv, Check}),
            Python
    end.

loop(Port, Ws) ->
    receive
        {Port, {data, <<"D ", Verdict/binary>>}} ->
            receive {Port, {exit_status, _}} -> ok after 5000 -> ok end,
            Verdict;
        {Port, {data, Command}} ->
            {Reply, Ws1} = command(Command, Ws),
            true = port_command(Port, Reply),
            loop(Port, Ws1);
        {Port, {exit_status, Status}} ->
            {python_exited, Status}
    after 120000 ->
            port_close(Port),
            python_timeout
    end.

command(<<"H", Deflate, SNCT, CNCT, SBits, CBits, Frag:32, Request/binary>>, _Ws) ->
    {ok, Req} = py_web_ws_handshake:parse(<<"GET">>, {1, 1}, headers(Request)),
    Config = maps:from_list([{server_no_context_takeover, true} || SNCT =:= 1]
                            ++ [{client_no_context_takeover, true} || CNCT =:= 1]
                            ++ [{server_max_window_bits, SBits} || SBits =/= 0]
                            ++ [{client_max_window_bits, CBits} || CBits =/= 0]),
    {ok, Config} = py_web_ws_deflate:config(Config),
    Opts = #{deflate => Deflate =:= 1 andalso Config,
             fragment_size => case Frag of 0 -> infinity; _ -> Frag end,
             max_message_size => infinity},
    {ok, Head, Ws} = py_web_ws:accept(Req, #{now => 0}, Opts),
    {py_web_http:head(Head#{date := true}, false, {1, 1}, false), Ws};
command(<<"R", Bytes/binary>>, Ws) ->
    {Events, Out, Ws1} = py_web_ws:recv(Bytes, 0, Ws),
    {[<<(length(Events)):32>>, [event(E) || E <- Events], Out], Ws1};
command(<<"S", Kind, Payload/binary>>, Ws) ->
    Op = case Kind of $t -> text; $b -> binary end,
    {Out, Ws1} = py_web_ws:send({Op, Payload}, 0, Ws),
    {Out, Ws1};
command(<<"C", Code:16, Reason/binary>>, Ws) ->
    {Out, Ws1} = py_web_ws:send({close, Code, Reason}, 0, Ws),
    {Out, Ws1}.

event({text, B}) -> [$t, <<(byte_size(B)):32>>, B];
event({binary, B}) -> [$b, <<(byte_size(B)):32>>, B];
event({close, Code, Reason}) -> [$c, <<(2 + byte_size(Reason)):32, Code:16>>, Reason].

%% The request head as py_web's parser gives it: lower-cased names, arrival order.
headers(Request) ->
    [Head | _] = binary:split(Request, <<"\r\n\r\n">>),
    [_RequestLine | Lines] = binary:split(Head, <<"\r\n">>, [global]),
    [begin
         [Name, Value] = binary:split(Line, <<":">>),
         {string:lowercase(Name), string:trim(Value)}
     end || Line <- Lines].
