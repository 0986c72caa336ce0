%% @doc HTTP/1.1 wire format for py_web, response side: status lines, the
%% validation of an app's response headers (field names and values by the
%% grammar py_web_h1_field owns), the bytes of a response head, chunks, the
%% server's own error responses; and the percent-decoding of a path.
%% Requests are parsed by py_web_h1_request and py_web_h1_chunked.
%%
%% Everything here is pure (no sockets, no processes).
-module(py_web_http).

-include("py_web.hrl").

-export([percent_decode/1, root_split/2,
         status_line/1, status_code/1,
         response_head/1, head/4, head/5, server_head/4,
         chunk/1, last_chunk/0,
         error_response/1]).

-export_type([resp_head/0]).

-type resp_head() :: #{headers := [{binary(), binary()}],
                       length := undefined | non_neg_integer(),
                       close := boolean(),
                       date := boolean(),
                       server := boolean()}.

%%====================================================================
%% Percent-decoding (path)
%%====================================================================

%% @doc Percent-decode a path. Invalid escapes are kept as they are, like
%% Python's urllib.parse.unquote. The result is raw bytes.
-spec percent_decode(binary()) -> binary().
percent_decode(B) ->
    case binary:match(B, percent_pattern()) of
        nomatch -> B;
        _ -> pd(B, <<>>)
    end.

%% Compiled once per VM (binary:match/2 with an uncompiled pattern compiles
%% it on every call).
percent_pattern() ->
    case persistent_term:get({?MODULE, percent}, undefined) of
        undefined ->
            P = binary:compile_pattern(<<"%">>),
            persistent_term:put({?MODULE, percent}, P),
            P;
        P ->
            P
    end.

pd(<<$%, H, L, R/binary>>, Acc) ->
    case {unhex(H), unhex(L)} of
        {Hi, Lo} when is_integer(Hi), is_integer(Lo) ->
            pd(R, <<Acc/binary, (Hi * 16 + Lo)>>);
        _ ->
            pd(<<H, L, R/binary>>, <<Acc/binary, $%>>)
    end;
pd(<<C, R/binary>>, Acc) -> pd(R, <<Acc/binary, C>>);
pd(<<>>, Acc) -> Acc.

unhex(C) when C >= $0, C =< $9 -> C - $0;
unhex(C) when C >= $a, C =< $f -> C - $a + 10;
unhex(C) when C >= $A, C =< $F -> C - $A + 10;
unhex(_) -> error.

%%====================================================================
%% Responses
%%====================================================================

%% @doc "200 OK" style status text for an integer status (ASGI) or a
%% validated WSGI status binary.
-spec status_line(integer() | binary()) -> binary() | error.
status_line(S) when is_binary(S) ->
    case status_code(S) of
        error -> error;
        _ -> S
    end;
status_line(200) -> <<"200 OK">>;
status_line(S) when is_integer(S), S >= 100, S =< 999 ->
    <<(integer_to_binary(S))/binary, " ", (reason(S))/binary>>;
status_line(_) -> error.

%% @doc A request path (as received) against a root path (`--root-path',
%% decoded text): the root as a path would carry it (percent-encoded where
%% a path needs it) and the rest of the path. The rest is what follows the
%% root when the path starts with it (at a segment boundary), else the whole
%% path: the proxy in front either strips the prefix (uvicorn's model) or
%% keeps it (gunicorn's SCRIPT_NAME), and both are served.
-spec root_split(binary(), binary()) -> {binary(), binary()}.
root_split(Raw, Root) ->
    Enc = percent_encode_path(Root),
    N = byte_size(Enc),
    case Raw of
        Enc -> {Enc, <<>>};
        <<Enc:N/binary, "/", _/binary>> -> {Enc, binary:part(Raw, N, byte_size(Raw) - N)};
        _ -> {Enc, Raw}
    end.

percent_encode_path(B) ->
    << <<(case C of
              _ when C >= $a, C =< $z; C >= $A, C =< $Z; C >= $0, C =< $9 -> <<C>>;
              _ -> case lists:member(C, "-._~!$&'()*+,;=:@/") of
                       true -> <<C>>;
                       false -> <<$%, (hex(C bsr 4)), (hex(C band 15))>>
                   end
          end)/binary>> || <<C>> <= B >>.

hex(N) when N < 10 -> $0 + N;
hex(N) -> $A + N - 10.

%% @doc The integer code of a status (integer or WSGI "NNN Reason").
-spec status_code(integer() | binary()) -> integer() | error.
status_code(S) when is_integer(S), S >= 100, S =< 999 -> S;
status_code(<<A, B, C>>) -> status_code(<<A, B, C, " ">>);
status_code(<<A, B, C, " ", Reason/binary>>)
  when A >= $1, A =< $9, B >= $0, B =< $9, C >= $0, C =< $9 ->
    %% reason-phrase = *( HTAB / SP / VCHAR / obs-text ): a field value's alphabet
    case py_web_h1_field:is_value(Reason) of
        true -> (A - $0) * 100 + (B - $0) * 10 + (C - $0);
        false -> error
    end;
status_code(_) -> error.

reason(100) -> <<"Continue">>;
reason(101) -> <<"Switching Protocols">>;
reason(200) -> <<"OK">>;
reason(201) -> <<"Created">>;
reason(202) -> <<"Accepted">>;
reason(203) -> <<"Non-Authoritative Information">>;
reason(204) -> <<"No Content">>;
reason(205) -> <<"Reset Content">>;
reason(206) -> <<"Partial Content">>;
reason(300) -> <<"Multiple Choices">>;
reason(301) -> <<"Moved Permanently">>;
reason(302) -> <<"Found">>;
reason(303) -> <<"See Other">>;
reason(304) -> <<"Not Modified">>;
reason(307) -> <<"Temporary Redirect">>;
reason(308) -> <<"Permanent Redirect">>;
reason(400) -> <<"Bad Request">>;
reason(401) -> <<"Unauthorized">>;
reason(403) -> <<"Forbidden">>;
reason(404) -> <<"Not Found">>;
reason(405) -> <<"Method Not Allowed">>;
reason(406) -> <<"Not Acceptable">>;
reason(408) -> <<"Request Timeout">>;
reason(409) -> <<"Conflict">>;
reason(410) -> <<"Gone">>;
reason(411) -> <<"Length Required">>;
reason(412) -> <<"Precondition Failed">>;
reason(413) -> <<"Content Too Large">>;
reason(414) -> <<"URI Too Long">>;
reason(415) -> <<"Unsupported Media Type">>;
reason(416) -> <<"Range Not Satisfiable">>;
reason(417) -> <<"Expectation Failed">>;
reason(418) -> <<"I'm a teapot">>;
reason(422) -> <<"Unprocessable Content">>;
reason(426) -> <<"Upgrade Required">>;
reason(428) -> <<"Precondition Required">>;
reason(429) -> <<"Too Many Requests">>;
reason(431) -> <<"Request Header Fields Too Large">>;
reason(500) -> <<"Internal Server Error">>;
reason(501) -> <<"Not Implemented">>;
reason(502) -> <<"Bad Gateway">>;
reason(503) -> <<"Service Unavailable">>;
reason(504) -> <<"Gateway Timeout">>;
reason(505) -> <<"HTTP Version Not Supported">>;
reason(_) -> <<"Unknown">>.

%% @doc Validate and classify an app's response headers in one pass: the
%% headers to send (order, case and duplicates kept; Transfer-Encoding,
%% Connection and Content-Length left out: the framing and the connection
%% are py_web_exchange's to decide), the app's Content-Length, whether it
%% asked to close the connection, and whether it set Date or Server.
%% `error' on a name or value that is not a binary, a name that is not a
%% token, a value with a control character other than HTAB (CR, LF, NUL...)
%% or DEL, or a Content-Length that is not 1*DIGIT (the request grammar's
%% rules, py_web_h1_field and py_web_h1_request).
-spec response_head([{binary(), binary()}]) -> resp_head() | error.
response_head(Headers) ->
    rhead(Headers, [], undefined, false, false, false).

rhead([{N, V} = H | T], Acc, CL, Close, Date, Server)
  when is_binary(N), is_binary(V) ->
    case py_web_h1_field:is_value(V) andalso py_web_h1_field:is_token(N) of
        false -> error;
        true ->
            case byte_size(N) of
                14 ->
                    case py_web_h1_field:lower(N) of
                        <<"content-length">> ->
                            case py_web_h1_request:content_length(V) of
                                error -> error;
                                L when CL =:= undefined; CL =:= L ->
                                    rhead(T, Acc, L, Close, Date, Server);
                                _ -> error
                            end;
                        _ -> rhead(T, [H | Acc], CL, Close, Date, Server)
                    end;
                17 ->
                    case py_web_h1_field:lower(N) of
                        <<"transfer-encoding">> -> rhead(T, Acc, CL, Close, Date, Server);
                        _ -> rhead(T, [H | Acc], CL, Close, Date, Server)
                    end;
                10 ->
                    case py_web_h1_field:lower(N) of
                        <<"connection">> ->
                            C = Close orelse
                                lists:member(<<"close">>, py_web_h1_field:list_tokens(V)),
                            rhead(T, Acc, CL, C, Date, Server);
                        _ -> rhead(T, [H | Acc], CL, Close, Date, Server)
                    end;
                4 ->
                    D = Date orelse py_web_h1_field:lower(N) =:= <<"date">>,
                    rhead(T, [H | Acc], CL, Close, D, Server);
                6 ->
                    S = Server orelse py_web_h1_field:lower(N) =:= <<"server">>,
                    rhead(T, [H | Acc], CL, Close, Date, S);
                _ ->
                    rhead(T, [H | Acc], CL, Close, Date, Server)
            end
    end;
rhead([], Acc, CL, Close, Date, Server) ->
    #{headers => lists:reverse(Acc), length => CL, close => Close,
      date => Date, server => Server};
rhead(_, _, _, _, _, _) ->
    error.

%% @doc The bytes of a response head as the embedded server sends it: the
%% status line, the app's headers, the framing header (Content-Length or
%% Transfer-Encoding), Connection (close, or keep-alive to HTTP/1.0), and
%% Date and Server unless the app set them (Server is left out when the
%% server_header option is `false').
-spec head(py_web_exchange:head(), boolean(), {1, 0} | {1, 1}, binary() | false) -> iodata().
head(Head, Close, Version, Server) ->
    head(Head, Close, Version, Server, []).

%% @doc head/4 with default headers of the server's (`--header'), sent
%% before the app's, as uvicorn does (an app's header of the same name is
%% sent too).
-spec head(py_web_exchange:head(), boolean(), {1, 0} | {1, 1}, binary() | false,
           [{binary(), binary()}]) -> iodata().
head(#{line := Line, headers := Hs, framing := F, length := Len, date := D, server := S},
     Close, Version, Server, Defaults) ->
    [<<"HTTP/1.1 ">>, Line, <<"\r\n">>,
     [[N, <<": ">>, V, <<"\r\n">>] || {N, V} <- Defaults],
     [[N, <<": ">>, V, <<"\r\n">>] || {N, V} <- Hs],
     case F of
         length -> [<<"content-length: ">>, integer_to_binary(Len), <<"\r\n">>];
         chunked -> <<"transfer-encoding: chunked\r\n">>;
         _ -> <<>>
     end,
     case {Close, Version} of
         {true, _} -> <<"connection: close\r\n">>;
         {false, {1, 0}} -> <<"connection: keep-alive\r\n">>;
         {false, _} -> <<>>
     end,
     case D of
         true -> <<>>;
         false -> py_web_date:header()
     end,
     case {S, Server} of
         {false, Name} when is_binary(Name) -> [<<"server: ">>, Name, <<"\r\n">>];
         _ -> <<>>
     end,
     <<"\r\n">>].

%% @doc head/5 as the embedded server sends a head: with its Server name, its Date
%% (unless `date_header' is off: then as if the app had sent one) and its default
%% headers (`--header').
-spec server_head(py_web_exchange:head(), boolean(), {1, 0} | {1, 1}, #cfg{}) -> iodata().
server_head(Head, Close, Version, #cfg{server_header = S, headers = Defaults,
                                      date_header = Date}) ->
    head(case Date of true -> Head; false -> Head#{date := true} end,
         Close, Version, S, Defaults).

%% @doc One chunk of a chunked response (empty data gives nothing: an
%% empty chunk would end the body).
-spec chunk(iodata()) -> iodata().
chunk(Data) ->
    case iolist_size(Data) of
        0 -> [];
        N -> [integer_to_binary(N, 16), <<"\r\n">>, Data, <<"\r\n">>]
    end.

-spec last_chunk() -> binary().
last_chunk() -> <<"0\r\n\r\n">>.

%% @doc A response made by py_web itself (4xx and 5xx): its head (the
%% connection is to be closed) and its body, the reason phrase as text.
-spec error_response(100..999) -> {py_web_exchange:head(), binary()}.
error_response(Status) ->
    Body = reason(Status),
    {#{status => Status, line => status_line(Status),
       headers => [{<<"content-type">>, <<"text/plain; charset=utf-8">>}],
       framing => length, length => byte_size(Body), body => true, close => true,
       date => false, server => false},
     Body}.
