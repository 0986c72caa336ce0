%% @doc The WebSocket opening handshake, server side (RFC 6455 §4.2). Pure.
%%
%% `parse/3' looks at a request head as py_web parses it (method, version, headers with
%% lower-cased names in arrival order, duplicates kept) and says whether it asks for a
%% WebSocket (an `Upgrade' header with the `websocket' token; in an HTTP/1.0 request the
%% Upgrade header is ignored, RFC 9110 §7.8) and, if it does, whether it is a valid opening
%% handshake (§4.2.1):
%% <ul>
%% <li>GET, a Host header, `Connection' with the `upgrade' token (case-insensitive token
%%     lists, several headers allowed), one `Sec-WebSocket-Key' that is the base64 of 16
%%     bytes, subprotocols and extensions that follow their grammar: else 400;</li>
%% <li>exactly one `Sec-WebSocket-Version: 13': a missing header is 400, another version
%%     426 Upgrade Required with `Sec-WebSocket-Version: 13' (§4.2.2 item 4).</li>
%% </ul>
%% It returns what the ASGI scope and the accept need: the key, the subprotocols offered
%% (Sec-WebSocket-Protocol, in order, §4.2.1 item 8) and the extensions offered
%% (Sec-WebSocket-Extensions, §9.1). `response/2' gives the 101 head once the app accepts
%% (a py_web_exchange:head(), turned into bytes by the server as any response head).
-module(py_web_ws_handshake).

-export([parse/3, response/2, accept_key/1, parse_extensions/1]).
-export_type([request/0, extension/0, rejection/0]).

%% One extension of a Sec-WebSocket-Extensions header: its name and parameters (names
%% lower-cased, values unquoted; `true' for a parameter without a value).
-type extension() :: {binary(), [{binary(), binary() | true}]}.
-type request() :: #{key := binary(),
                     subprotocols := [binary()],
                     extensions := [extension()]}.
%% A handshake refused: the status, the reason (for the log) and the headers to send.
-type rejection() :: {Status :: 400 | 426, Why :: atom(), [{binary(), binary()}]}.

-define(GUID, "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").

%% @doc Classify a request head: `http' when it does not ask for a WebSocket,
%% `{ok, Request}' for a valid opening handshake, `{error, Rejection}' otherwise.
-spec parse(binary(), {1, 0} | {1, 1}, [{binary(), binary()}]) ->
          http | {ok, request()} | {error, rejection()}.
parse(_Method, {1, 0}, _Headers) ->
    http;
parse(Method, _Version, Headers) ->
    case lists:member(<<"websocket">>, tokens(<<"upgrade">>, Headers)) of
        false -> http;
        true -> check(Method, Headers)
    end.

check(Method, Headers) ->
    try
        Method =:= <<"GET">> orelse throw(bad_method),
        values(<<"host">>, Headers) =/= [] orelse throw(no_host),
        lists:member(<<"upgrade">>, tokens(<<"connection">>, Headers))
            orelse throw(no_connection_upgrade),
        Key = case values(<<"sec-websocket-key">>, Headers) of
                  [K] -> valid_key(trim(K));
                  [] -> throw(no_key);
                  _ -> throw(bad_key)
              end,
        case values(<<"sec-websocket-version">>, Headers) of
            [] -> throw(no_version);
            [V] -> trim(V) =:= <<"13">> orelse throw(bad_version);
            _ -> throw(bad_version)
        end,
        Protocols = subprotocols(values(<<"sec-websocket-protocol">>, Headers)),
        Extensions = case parse_extensions(values(<<"sec-websocket-extensions">>, Headers)) of
                         {ok, E} -> E;
                         error -> throw(bad_extensions)
                     end,
        {ok, #{key => Key, subprotocols => Protocols, extensions => Extensions}}
    catch
        throw:bad_version ->
            {error, {426, bad_version, [{<<"sec-websocket-version">>, <<"13">>}]}};
        throw:Why ->
            {error, {400, Why, []}}
    end.

valid_key(Key) ->
    case byte_size(Key) =:= 24 andalso (catch base64:decode(Key)) of
        <<_:16/binary>> -> Key;
        _ -> throw(bad_key)
    end.

%% @doc Sec-WebSocket-Accept for a key (§4.2.2 item 5.4): base64(SHA-1(key ++ GUID)).
-spec accept_key(binary()) -> binary().
accept_key(Key) ->
    base64:encode(crypto:hash(sha, [Key, <<?GUID>>])).

%% @doc The 101 response head (§4.2.2 item 5) for an accepted request. `subprotocol': the
%% app's choice, one of those the client offered (§4.2.2 item 5.4: the server selects
%% "one of the values from the client's handshake"); `extensions': the value of the
%% Sec-WebSocket-Extensions response header (py_web_ws_deflate:negotiate/2) or none;
%% `headers': the app's extra headers. These pass the check of an HTTP response's headers
%% (py_web_http:response_head/1: a name that is not a token or a value with a control
%% character is an error), and the app may not set the headers this handshake owns
%% (upgrade, connection, sec-websocket-*, content-length, transfer-encoding): such a
%% header is an error too. The head's `date' and `server' say whether the app set Date or
%% Server (the server then adds none of its own).
-spec response(request(), #{subprotocol => binary() | undefined,
                            extensions => binary() | none,
                            headers => [{binary(), binary()}]}) ->
          {ok, py_web_exchange:head()}
        | {error, {bad_subprotocol, term()} | {bad_header, term()}}.
response(#{key := Key, subprotocols := Offered}, Accept) ->
    Protocol = maps:get(subprotocol, Accept, undefined),
    Extensions = maps:get(extensions, Accept, none),
    AppHeaders = maps:get(headers, Accept, []),
    case Protocol =:= undefined orelse lists:member(Protocol, Offered) of
        false ->
            {error, {bad_subprotocol, Protocol}};
        true ->
            case app_headers(AppHeaders) of
                {error, _} = Error ->
                    Error;
                {ok, #{date := Date, server := Server}} ->
                    Own = [{<<"upgrade">>, <<"websocket">>}, {<<"connection">>, <<"Upgrade">>},
                           {<<"sec-websocket-accept">>, accept_key(Key)}]
                        ++ [{<<"sec-websocket-protocol">>, Protocol} || Protocol =/= undefined]
                        ++ [{<<"sec-websocket-extensions">>, Extensions}
                            || Extensions =/= none],
                    {ok, #{status => 101, line => py_web_http:status_line(101),
                           headers => Own ++ AppHeaders, framing => none,
                           length => undefined, body => false, close => false,
                           date => Date, server => Server}}
            end
    end.

%% The app's headers: the HTTP response check, and none of those the handshake owns.
app_headers(Headers) when is_list(Headers) ->
    case lists:search(fun({N, _}) when is_binary(N) -> owned(lower(N));
                         (_) -> false
                      end, Headers) of
        {value, H} ->
            {error, {bad_header, H}};
        false ->
            case py_web_http:response_head(Headers) of
                error -> {error, {bad_header, first_bad(Headers)}};
                Head -> {ok, Head}
            end
    end;
app_headers(Headers) ->
    {error, {bad_header, Headers}}.

%% The header that response_head/1 refused (for the error).
first_bad([H | Rest]) ->
    case py_web_http:response_head([H]) of
        error -> H;
        _ -> first_bad(Rest)
    end.

owned(<<"sec-websocket-", _/binary>>) -> true;
owned(Name) ->
    lists:member(Name, [<<"upgrade">>, <<"connection">>, <<"content-length">>,
                        <<"transfer-encoding">>]).

%%====================================================================
%% Header grammar
%%====================================================================

%% The values of every header with this (lower-case) name, in order.
values(Name, Headers) ->
    [V || {N, V} <- Headers, N =:= Name].

%% The comma-separated tokens of every header with this name, lower-cased.
tokens(Name, Headers) ->
    lists:append([py_web_h1_field:list_tokens(V) || V <- values(Name, Headers)]).

trim(Bin) -> py_web_h1_field:trim(Bin).

%% Sec-WebSocket-Protocol: 1#token (§4.3), several headers joined; empty list elements are
%% ignored (RFC 9110 §5.6.1).
subprotocols(Values) ->
    Tokens = [T || V <- Values, T0 <- binary:split(V, <<",">>, [global]),
                   (T = trim(T0)) =/= <<>>],
    case lists:all(fun is_token/1, Tokens) of
        true -> Tokens;
        false -> throw(bad_subprotocols)
    end.

is_token(<<>>) -> false;
is_token(Bin) -> token_len(Bin, 0) =:= byte_size(Bin).

%% @doc Parse the values of the Sec-WebSocket-Extensions request headers (RFC 6455 §9.1):
%% `1#( extension-token *( ";" extension-param ) )', a parameter being
%% `token [ "=" ( token | quoted-string ) ]' whose quoted value must be a token once
%% unquoted. Extensions in order, names lower-cased.
-spec parse_extensions([binary()]) -> {ok, [extension()]} | error.
parse_extensions(Values) ->
    try
        {ok, lists:append([extension_list(V) || V <- Values])}
    catch
        throw:bad_extensions -> error
    end.

extension_list(V) ->
    case ows(V) of
        <<>> -> [];
        <<",", Rest/binary>> -> extension_list(Rest);
        V1 ->
            {Name, Rest} = token(V1),
            {Params, Rest1} = ext_params(ows(Rest), []),
            Ext = {lower(Name), Params},
            case ows(Rest1) of
                <<>> -> [Ext];
                <<",", Rest2/binary>> -> [Ext | extension_list(Rest2)];
                _ -> throw(bad_extensions)
            end
    end.

ext_params(<<";", Rest/binary>>, Acc) ->
    {Name, Rest1} = token(ows(Rest)),
    case ows(Rest1) of
        <<"=", Rest2/binary>> ->
            {Value, Rest3} = ext_value(ows(Rest2)),
            ext_params(ows(Rest3), [{lower(Name), Value} | Acc]);
        Rest2 ->
            ext_params(Rest2, [{lower(Name), true} | Acc])
    end;
ext_params(Rest, Acc) ->
    {lists:reverse(Acc), Rest}.

ext_value(<<"\"", Rest/binary>>) ->
    {Value, Rest1} = quoted(Rest, <<>>),
    case token(Value) of
        {Value, <<>>} -> {Value, Rest1};
        _ -> throw(bad_extensions)
    end;
ext_value(V) ->
    token(V).

quoted(<<"\"", Rest/binary>>, Acc) -> {Acc, Rest};
quoted(<<"\\", C, Rest/binary>>, Acc) -> quoted(Rest, <<Acc/binary, C>>);
quoted(<<C, Rest/binary>>, Acc) when C =/= $\\ -> quoted(Rest, <<Acc/binary, C>>);
quoted(_, _) -> throw(bad_extensions).

token(Bin) ->
    case token_len(Bin, 0) of
        0 -> throw(bad_extensions);
        N -> <<T:N/binary, Rest/binary>> = Bin, {T, Rest}
    end.

token_len(Bin, N) ->
    case Bin of
        <<_:N/binary, C, _/binary>> when C > 32, C < 127 ->
            case lists:member(C, "()<>@,;:\\\"/[]?={}") of
                true -> N;
                false -> token_len(Bin, N + 1)
            end;
        _ -> N
    end.

ows(<<C, Rest/binary>>) when C =:= $\s; C =:= $\t -> ows(Rest);
ows(Bin) -> Bin.

lower(Bin) -> py_web_h1_field:lower(Bin).

