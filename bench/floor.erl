%% @doc The BEAM's floor for the hello workloads: a pure-Erlang HTTP/1.1 keep-alive server,
%% no Python, that answers every request with the bytes bin/pyweb sends for
%% bench_apps:hello_asgi and hello_wsgi (status line, content-type, content-length, the
%% cached date line of py_web_date, server: py_web, the 13-byte body) in one send.  What
%% bin/pyweb costs above it is the price of the app's hop and of py_web's own path.
%%
%% Started by bench/run.py (`make bench', servers `floor-once', `floor-activeN',
%% `floor-socket', `floor-strict') as bin/pyweb starts its server VM (`erl -noinput +Bi',
%% default schedulers):
%%   erl -noinput +Bi -pa _build/default/lib/*/ebin -pa bench/work/ebin \
%%       -eval 'floor:main(["once", "8080"])'
%% Variants (the socket is listened on with py_web_listener's options and accepted by 10
%% acceptors, one process per connection as py_web_conn):
%%   once     gen_tcp, `{active, once}' re-armed before each read, the head read by
%%            erlang:decode_packet/3 (http_bin, then httph_bin to the end of the head)
%%   activeN  gen_tcp, `{active, 100}' re-armed on `tcp_passive', same parsing
%%   socket   the `socket' module: recv(S, 0, nowait), a select message when it would block
%%   strict   as `once', the head read by py_web_h1_request:parse/2 (py_web_conn's parser)
%% Requests are answered in order (pipelining), a Content-Length body is skipped, HTTP/1.0
%% or `connection: close' closes after the response; a head that does not parse gets a
%% 400 and the connection closed.  Nothing here is a test.
-module(floor).

-export([main/1]).

-define(ACCEPTORS, 10).
-define(IDLE_MS, 60000).
-define(HEAD, <<"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 13\r\n">>).
-define(TAIL, <<"server: py_web\r\n\r\nHello, World!">>).
-define(BAD, <<"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n">>).

-type variant() :: once | activeN | socket | strict.

-spec main([string()]) -> no_return().
main([VariantStr, PortStr]) ->
    Variant = variant(VariantStr),
    Port = list_to_integer(PortStr),
    {ok, _} = py_web_date:start_link(),
    Limits = #{max_request_line => py_web_opts:default(max_request_line),
               max_header_size => py_web_opts:default(max_header_size),
               max_headers => py_web_opts:default(max_headers)},
    Parse = parser(Variant, Limits),
    L = listen(Variant, Port),
    _ = [spawn_link(fun() -> acceptor(Variant, L, Parse) end) || _ <- lists:seq(1, ?ACCEPTORS)],
    io:format("floor ~s listening on 127.0.0.1:~b~n", [Variant, Port]),
    receive after infinity -> halt(0) end.

variant("once") -> once;
variant("activeN") -> activeN;
variant("socket") -> socket;
variant("strict") -> strict.

-spec listen(variant(), inet:port_number()) -> term().
listen(socket, Port) ->
    {ok, L} = socket:open(inet, stream, tcp),
    ok = socket:setopt(L, {socket, reuseaddr}, true),
    ok = socket:bind(L, #{family => inet, addr => {127, 0, 0, 1}, port => Port}),
    ok = socket:listen(L, 2048),
    L;
listen(_, Port) ->
    %% py_web_listener's options, then py_web_bind's
    {ok, L} = gen_tcp:listen(Port, [inet, {ip, {127, 0, 0, 1}}, {reuseaddr, true},
                                    {backlog, 2048}, binary, {packet, raw}, {active, false},
                                    {nodelay, true}, {send_timeout, 30000},
                                    {send_timeout_close, true}]),
    L.

acceptor(socket, L, Parse) ->
    {ok, S} = socket:accept(L),
    Pid = spawn(fun() -> receive {go, S} -> conn(socket, S, Parse) end end),
    case socket:setopt(S, {otp, controlling_process}, Pid) of
        ok -> Pid ! {go, S};
        {error, _} -> exit(Pid, kill), socket:close(S)
    end,
    acceptor(socket, L, Parse);
acceptor(Variant, L, Parse) ->
    {ok, S} = gen_tcp:accept(L),
    Pid = spawn(fun() -> receive {go, S} -> conn(Variant, S, Parse) end end),
    case gen_tcp:controlling_process(S, Pid) of
        ok -> Pid ! {go, S};
        {error, _} -> exit(Pid, kill), gen_tcp:close(S)
    end,
    acceptor(Variant, L, Parse).

conn(socket, S, Parse) ->
    ok = socket:setopt(S, {tcp, nodelay}, true),
    sock_loop(S, Parse, <<>>);
conn(activeN, S, Parse) ->
    ok = inet:setopts(S, [{active, 100}]),
    active_loop(S, Parse, <<>>);
conn(_, S, Parse) ->
    once_loop(S, Parse, <<>>).

%% gen_tcp, {active, once}: what py_web_conn does.
once_loop(S, Parse, Buf) ->
    case answer(Parse, Buf, fun(R) -> gen_tcp:send(S, R) end) of
        {more, Buf1} ->
            ok = inet:setopts(S, [{active, once}]),
            receive
                {tcp, S, Data} -> once_loop(S, Parse, <<Buf1/binary, Data/binary>>);
                {tcp_closed, S} -> ok;
                {tcp_error, S, _} -> gen_tcp:close(S)
            after ?IDLE_MS -> gen_tcp:close(S)
            end;
        close ->
            gen_tcp:close(S)
    end.

%% gen_tcp, {active, 100}: re-armed when the socket says it went passive.
active_loop(S, Parse, Buf) ->
    case answer(Parse, Buf, fun(R) -> gen_tcp:send(S, R) end) of
        {more, Buf1} ->
            receive
                {tcp, S, Data} -> active_loop(S, Parse, <<Buf1/binary, Data/binary>>);
                {tcp_passive, S} ->
                    ok = inet:setopts(S, [{active, 100}]),
                    active_loop(S, Parse, Buf1);
                {tcp_closed, S} -> ok;
                {tcp_error, S, _} -> gen_tcp:close(S)
            after ?IDLE_MS -> gen_tcp:close(S)
            end;
        close ->
            gen_tcp:close(S)
    end.

%% The socket module: recv what is there, else wait for the select message.
sock_loop(S, Parse, Buf) ->
    case answer(Parse, Buf, fun(R) -> socket:send(S, R) end) of
        {more, Buf1} ->
            case socket:recv(S, 0, nowait) of
                {ok, Data} ->
                    sock_loop(S, Parse, <<Buf1/binary, Data/binary>>);
                {select, {select_info, _, Ref}} ->
                    receive
                        {'$socket', S, select, Ref} -> sock_loop(S, Parse, Buf1);
                        {'$socket', S, abort, _} -> socket:close(S)
                    after ?IDLE_MS -> socket:close(S)
                    end;
                {error, _} ->
                    socket:close(S)
            end;
        close ->
            socket:close(S)
    end.

%% Answer every complete request at the start of Buf: `{more, Rest}' when the rest is
%% not a whole request yet, `close' when the connection is to be closed.
answer(Parse, Buf, Send) ->
    case Parse(Buf) of
        {ok, KeepAlive, Rest} ->
            case Send([?HEAD, py_web_date:header(), ?TAIL]) of
                ok when KeepAlive -> answer(Parse, Rest, Send);
                _ -> close
            end;
        more ->
            {more, Buf};
        error ->
            _ = Send(?BAD),
            close
    end.

%% A request head (and its Content-Length body) from the start of a buffer:
%% `{ok, KeepAlive, Rest}', `more' or `error'.
parser(strict, Limits) ->
    fun(Buf) ->
            case py_web_h1_request:parse(Buf, Limits) of
                {ok, #{chunked := true}, _} -> error;
                {ok, #{keepalive := KA, clen := CL}, Rest} -> body(KA, CL, Rest);
                {more, _} -> more;
                {error, _} -> error
            end
    end;
parser(_, _) ->
    fun(Buf) ->
            case erlang:decode_packet(http_bin, Buf, []) of
                {ok, {http_request, _, _, {1, 1}}, Rest} -> fields(Rest, true, undefined);
                {ok, {http_request, _, _, _}, Rest} -> fields(Rest, false, undefined);
                {more, _} -> more;
                _ -> error
            end
    end.

fields(Buf, KA, CL) ->
    case erlang:decode_packet(httph_bin, Buf, []) of
        {ok, {http_header, _, 'Connection', _, V}, Rest} ->
            fields(Rest, KA andalso string:lowercase(V) =/= <<"close">>, CL);
        {ok, {http_header, _, 'Content-Length', _, V}, Rest} ->
            try binary_to_integer(V) of
                N when N >= 0 -> fields(Rest, KA, N);
                _ -> error
            catch error:badarg -> error
            end;
        {ok, {http_header, _, 'Transfer-Encoding', _, _}, _} -> error;
        {ok, {http_header, _, _, _, _}, Rest} -> fields(Rest, KA, CL);
        {ok, http_eoh, Rest} -> body(KA, CL, Rest);
        {more, _} -> more;
        _ -> error
    end.

body(KA, undefined, Rest) -> {ok, KA, Rest};
body(KA, CL, Rest) when byte_size(Rest) >= CL ->
    <<_:CL/binary, Rest1/binary>> = Rest,
    {ok, KA, Rest1};
body(_, _, _) -> more.
