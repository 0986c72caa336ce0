%% Raw HTTP/1.1 test client on gen_tcp: exact bytes out, responses parsed
%% strictly (status, headers in order, body by Content-Length, chunked or
%% close) so that pipelining and framing can be checked.
-module(py_web_tc).
-compile(nowarn_missing_spec).

-export([connect/1, connect/2, send/2, recv/1, recv/2, closed/1, closed/2,
         get/2, req/4, header/2, headers/2]).

-define(T, 5000).

connect(Port) -> connect(Port, []).

connect(Port, Extra) ->
    {ok, S} = gen_tcp:connect({127, 0, 0, 1}, Port,
                              [binary, {active, false}, {packet, raw} | Extra], ?T),
    put({buf, S}, <<>>),
    S.

send(S, Data) -> ok = gen_tcp:send(S, Data).

%% A simple request with Host (and Content-Length when there is a body).
req(Method, Path, Headers, Body) ->
    CL = case {Body, lists:keymember(<<"transfer-encoding">>, 1, Headers)} of
             {<<>>, _} -> [];
             {_, true} -> [];
             _ -> [{<<"content-length">>, integer_to_binary(iolist_size(Body))}]
         end,
    [Method, " ", Path, " HTTP/1.1\r\nhost: localhost\r\n",
     [[N, ": ", V, "\r\n"] || {N, V} <- Headers ++ CL], "\r\n", Body].

get(S, Path) ->
    send(S, req("GET", Path, [], <<>>)),
    recv(S).

header(Name, Hs) ->
    case lists:keyfind(Name, 1, Hs) of
        {_, V} -> V;
        false -> undefined
    end.

headers(Name, Hs) -> [V || {N, V} <- Hs, N =:= Name].

%% {ok, Code, Headers, Body} | {error, closed}. Opts: head => true (no
%% body), chunks => true (Body is the list of chunks).
recv(S) -> recv(S, #{}).

recv(S, Opts) ->
    case read(S, fun status/1) of
        {error, _} = E -> E;
        {ok, Code} ->
            case read_headers(S, []) of
                {error, _} = E -> E;
                {ok, Hs} ->
                    case body(S, Code, Hs, Opts) of
                        {error, _} = E -> E;
                        {ok, Body} -> {ok, Code, Hs, Body}
                    end
            end
    end.

status(Buf) ->
    case erlang:decode_packet(http_bin, Buf, []) of
        {ok, {http_response, _, Code, _}, Rest} -> {ok, Code, Rest};
        {ok, Other, _} -> error({bad_status_line, Other, Buf});
        {more, _} -> more;
        {error, R} -> error({bad_status_line, R, Buf})
    end.

read_headers(S, Acc) ->
    F = fun(Buf) ->
                case erlang:decode_packet(httph_bin, Buf, []) of
                    {ok, {http_header, _, _, Raw, V}, Rest} ->
                        {ok, {py_web_h1_field:lower(Raw), V}, Rest};
                    {ok, http_eoh, Rest} -> {ok, eoh, Rest};
                    {more, _} -> more;
                    Other -> error({bad_header, Other})
                end
        end,
    case read(S, F) of
        {ok, eoh} -> {ok, lists:reverse(Acc)};
        {ok, H} -> read_headers(S, [H | Acc]);
        E -> E
    end.

body(_S, Code, _Hs, _Opts) when Code < 200; Code =:= 204; Code =:= 304 ->
    {ok, <<>>};
body(_S, _Code, _Hs, #{head := true}) ->
    {ok, <<>>};
body(S, _Code, Hs, Opts) ->
    case {header(<<"transfer-encoding">>, Hs), header(<<"content-length">>, Hs)} of
        {<<"chunked">>, _} -> chunks(S, [], Opts);
        {undefined, undefined} -> until_close(S);
        {undefined, CL} -> bytes(S, binary_to_integer(CL))
    end.

bytes(S, N) ->
    read(S, fun(Buf) when byte_size(Buf) >= N ->
                    <<B:N/binary, R/binary>> = Buf,
                    {ok, B, R};
               (_) -> more
            end).

chunks(S, Acc, Opts) ->
    Line = read(S, fun(Buf) ->
                           case binary:split(Buf, <<"\r\n">>) of
                               [L, R] -> {ok, L, R};
                               _ -> more
                           end
                   end),
    case Line of
        {ok, L} ->
            case binary_to_integer(hd(binary:split(L, <<";">>)), 16) of
                0 ->
                    {ok, <<>>} = bytes(S, 0),
                    {ok, <<"\r\n">>} = bytes(S, 2),
                    case Opts of
                        #{chunks := true} -> {ok, lists:reverse(Acc)};
                        _ -> {ok, iolist_to_binary(lists:reverse(Acc))}
                    end;
                N ->
                    case bytes(S, N + 2) of
                        {ok, <<C:N/binary, "\r\n">>} -> chunks(S, [C | Acc], Opts);
                        E -> E
                    end
            end;
        E -> E
    end.

until_close(S) ->
    case gen_tcp:recv(S, 0, ?T) of
        {ok, D} -> put({buf, S}, <<(get({buf, S}))/binary, D/binary>>), until_close(S);
        {error, closed} ->
            B = get({buf, S}),
            put({buf, S}, <<>>),
            {ok, B}
    end.

%% Run a parser on the buffer, reading more until it succeeds.
read(S, F) ->
    Buf = get({buf, S}),
    case F(Buf) of
        {ok, V, Rest} -> put({buf, S}, Rest), {ok, V};
        more ->
            case gen_tcp:recv(S, 0, ?T) of
                {ok, D} -> put({buf, S}, <<Buf/binary, D/binary>>), read(S, F);
                {error, _} = E -> E
            end
    end.

%% True if the server closes the connection (nothing more to read).
closed(S) -> closed(S, ?T).

closed(S, T) ->
    case get({buf, S}) of
        <<>> ->
            case gen_tcp:recv(S, 0, T) of
                {error, closed} -> true;
                {error, econnreset} -> true;
                {error, enotconn} -> true;
                {ok, D} -> {unexpected, D};
                {error, timeout} -> false
            end;
        B -> {unexpected, B}
    end.
