%% @doc Access lines: the format (`access_log_format', `--access-log-format')
%% compiled once, and one line per request rendered from it.
%%
%% A format is text with `%(NAME)s' fields (`%%' is a percent sign), the
%% names of gunicorn's `--access-logformat' and of uvicorn's access
%% formatter:
%%
%% <table>
%% <tr><td>`h'</td><td>client address (after a trusted proxy's headers; `-' over a Unix socket)</td></tr>
%% <tr><td>`client_addr'</td><td>uvicorn's `host:port' of the client</td></tr>
%% <tr><td>`l'</td><td>`-'</td></tr>
%% <tr><td>`u'</td><td>user name of Basic authentication, else `-'</td></tr>
%% <tr><td>`t'</td><td>time of the request, `[10/Oct/2000:13:55:36 +0000]' (local time)</td></tr>
%% <tr><td>`r', `request_line'</td><td>request line, `GET /path?q HTTP/1.1' (the target as received)</td></tr>
%% <tr><td>`m'</td><td>method</td></tr>
%% <tr><td>`U'</td><td>path (as received, without the query)</td></tr>
%% <tr><td>`q'</td><td>query string</td></tr>
%% <tr><td>`H'</td><td>protocol, `HTTP/1.1'</td></tr>
%% <tr><td>`s'</td><td>status code</td></tr>
%% <tr><td>`status_code'</td><td>status code and reason, `200 OK' (uvicorn)</td></tr>
%% <tr><td>`B'</td><td>response body bytes</td></tr>
%% <tr><td>`b'</td><td>response body bytes, `-' for none</td></tr>
%% <tr><td>`f'</td><td>Referer</td></tr>
%% <tr><td>`a'</td><td>User-Agent</td></tr>
%% <tr><td>`T', `M', `D', `L'</td><td>time taken in whole seconds, milliseconds, microseconds; seconds with 6 decimals</td></tr>
%% <tr><td>`p'</td><td>`<PID>', the OS process id</td></tr>
%% <tr><td>`{name}i', `{name}o'</td><td>a request or response header (`-' if absent)</td></tr>
%% </table>
%%
%% Status 499 (not an HTTP status: nginx's) is a request whose client left
%% before the response started.
-module(py_web_access).

-include("py_web.hrl").

-export([compile/1, line/2, log/2]).
-export_type([format/0, request/0]).

-type field() :: {field, binary()} | {req_header, binary()} | {resp_header, binary()}.
-opaque format() :: {access_format, [binary() | field()]}.

%% What the connection knows of a request when it ends. `req' is undefined
%% for a request that could not be parsed.
-type request() :: #{req := #req{} | undefined,
                     peer := {binary(), inet:port_number()} | undefined,
                     status := non_neg_integer(),
                     sent := non_neg_integer(),
                     start := integer(),              %% erlang:system_time(microsecond)
                     duration := non_neg_integer(),   %% microseconds
                     headers := [{binary(), binary()}]}.

-define(NAMES, [<<"h">>, <<"client_addr">>, <<"l">>, <<"u">>, <<"t">>, <<"r">>,
                <<"request_line">>, <<"m">>, <<"U">>, <<"q">>, <<"H">>, <<"s">>,
                <<"status_code">>, <<"B">>, <<"b">>, <<"f">>, <<"a">>, <<"T">>, <<"M">>,
                <<"D">>, <<"L">>, <<"p">>]).

%% @doc Compile a format (text); `error' on an unknown field name or a `%'
%% that starts no field.
-spec compile(format() | binary() | string()) -> {ok, format()} | error.
compile({access_format, _} = F) ->
    {ok, F};
compile(Text) when is_list(Text) ->
    case unicode:characters_to_binary(Text) of
        B when is_binary(B) -> compile(B);
        _ -> error
    end;
compile(Text) when is_binary(Text) ->
    try
        {ok, {access_format, parts(Text, <<>>, [])}}
    catch
        throw:bad_format -> error
    end;
compile(_) ->
    error.

parts(<<>>, Lit, Acc) ->
    lists:reverse(lit(Lit, Acc));
parts(<<"%%", T/binary>>, Lit, Acc) ->
    parts(T, <<Lit/binary, "%">>, Acc);
parts(<<"%(", T/binary>>, Lit, Acc) ->
    case binary:split(T, <<")">>) of
        [Name, <<C, Rest/binary>>] when C =:= $s; C =:= $d ->
            parts(Rest, <<>>, [field(Name) | lit(Lit, Acc)]);
        _ ->
            throw(bad_format)
    end;
parts(<<"%", _/binary>>, _, _) ->
    throw(bad_format);
parts(<<C, T/binary>>, Lit, Acc) ->
    parts(T, <<Lit/binary, C>>, Acc).

lit(<<>>, Acc) -> Acc;
lit(L, Acc) -> [L | Acc].

field(<<"{", T/binary>>) ->
    case binary:split(T, <<"}">>) of
        [H, <<"i">>] when H =/= <<>> -> {req_header, py_web_h1_field:lower(H)};
        [H, <<"o">>] when H =/= <<>> -> {resp_header, py_web_h1_field:lower(H)};
        _ -> throw(bad_format)
    end;
field(Name) ->
    case lists:member(Name, ?NAMES) of
        true -> {field, Name};
        false -> throw(bad_format)
    end.

%% @doc Log the access line of a request that ended, at level info with the metadata
%% `py_web => access' (nothing when access lines are off, `false', or info is not
%% logged). `t0': when the request started, `erlang:monotonic_time(microsecond)'.
-spec log(format() | false, #{req := #req{} | undefined,
                              peer := {binary(), inet:port_number()} | undefined,
                              status := non_neg_integer(), sent := non_neg_integer(),
                              t0 := integer(), headers := [{binary(), binary()}]}) -> ok.
log(false, _R) ->
    ok;
log(Format, #{t0 := T0} = R) ->
    case logger:allow(info, ?MODULE) of
        true ->
            Now = erlang:monotonic_time(microsecond),
            Start = erlang:system_time(microsecond) - (Now - T0),
            Line = line(Format, (maps:remove(t0, R))#{start => Start, duration => Now - T0}),
            logger:info("~ts", [Line], #{py_web => access});
        false ->
            ok
    end.

%% @doc The access line of a request.
-spec line(format(), request()) -> iodata().
line({access_format, Parts}, R) ->
    [part(P, R) || P <- Parts].

part(B, _) when is_binary(B) -> B;
part({req_header, N}, #{req := #req{headers = Hs}}) -> dash(header(N, Hs));
part({req_header, _}, _) -> <<"-">>;
part({resp_header, N}, #{headers := Hs}) -> dash(header(N, [{py_web_h1_field:lower(K), V} || {K, V} <- Hs]));
part({field, Name}, R) -> value(Name, R).

value(<<"h">>, #{peer := undefined}) -> <<"-">>;
value(<<"h">>, #{peer := {H, _}}) -> H;
value(<<"client_addr">>, #{peer := undefined}) -> <<"-">>;
value(<<"client_addr">>, #{peer := {H, P}}) -> [H, $:, integer_to_binary(P)];
value(<<"l">>, _) -> <<"-">>;
value(<<"u">>, #{req := #req{headers = Hs}}) -> user(header(<<"authorization">>, Hs));
value(<<"u">>, _) -> <<"-">>;
value(<<"t">>, #{start := T}) -> clf_time(T);
value(Name, #{req := undefined}) when Name =:= <<"r">>; Name =:= <<"request_line">> -> <<"-">>;
value(Name, #{req := #req{method = M, raw_path = P, qs = Q, version = V}})
  when Name =:= <<"r">>; Name =:= <<"request_line">> ->
    [M, $\s, P, case Q of <<>> -> <<>>; _ -> [$?, Q] end, $\s, protocol(V)];
value(<<"m">>, #{req := #req{method = M}}) -> M;
value(<<"U">>, #{req := #req{raw_path = P}}) -> P;
value(<<"q">>, #{req := #req{qs = Q}}) -> Q;
value(<<"H">>, #{req := #req{version = V}}) -> protocol(V);
value(Name, #{req := undefined}) when Name =:= <<"m">>; Name =:= <<"U">>; Name =:= <<"q">>;
                                      Name =:= <<"H">> -> <<"-">>;
value(<<"s">>, #{status := S}) -> integer_to_binary(S);
value(<<"status_code">>, #{status := 499}) -> <<"499 Client Closed Request">>;
value(<<"status_code">>, #{status := S}) -> py_web_http:status_line(S);
value(<<"B">>, #{sent := N}) -> integer_to_binary(N);
value(<<"b">>, #{sent := 0}) -> <<"-">>;
value(<<"b">>, #{sent := N}) -> integer_to_binary(N);
value(<<"f">>, R) -> part({req_header, <<"referer">>}, R);
value(<<"a">>, R) -> part({req_header, <<"user-agent">>}, R);
value(<<"T">>, #{duration := D}) -> integer_to_binary(D div 1000000);
value(<<"M">>, #{duration := D}) -> integer_to_binary(D div 1000);
value(<<"D">>, #{duration := D}) -> integer_to_binary(D);
value(<<"L">>, #{duration := D}) -> io_lib:format("~.6f", [D / 1000000]);
value(<<"p">>, _) -> [$<, os:getpid(), $>].

protocol({Maj, Min}) -> [<<"HTTP/">>, integer_to_binary(Maj), $., integer_to_binary(Min)].

header(N, Hs) ->
    case lists:keyfind(N, 1, Hs) of
        {_, V} -> V;
        false -> undefined
    end.

dash(undefined) -> <<"-">>;
dash(V) -> V.

user(undefined) -> <<"-">>;
user(Auth) ->
    case binary:split(Auth, <<" ">>) of
        [Scheme, Cred] ->
            case py_web_h1_field:lower(Scheme) of
                <<"basic">> ->
                    try base64:decode(string:trim(Cred)) of
                        Dec -> hd(binary:split(Dec, <<":">>))
                    catch
                        error:_ -> <<"-">>
                    end;
                _ -> <<"-">>
            end;
        _ -> <<"-">>
    end.

%% Common Log Format time: [10/Oct/2000:13:55:36 -0700], local time.
clf_time(Us) ->
    Secs = Us div 1000000,
    Local = calendar:system_time_to_local_time(Secs, second),
    Utc = calendar:system_time_to_universal_time(Secs, second),
    Off = (calendar:datetime_to_gregorian_seconds(Local)
           - calendar:datetime_to_gregorian_seconds(Utc)) div 60,
    {{Y, Mo, D}, {H, Mi, S}} = Local,
    Sign = case Off < 0 of true -> $-; false -> $+ end,
    io_lib:format("[~2..0B/~s/~4..0B:~2..0B:~2..0B:~2..0B ~c~2..0B~2..0B]",
                  [D, month(Mo), Y, H, Mi, S, Sign, abs(Off) div 60, abs(Off) rem 60]).

month(M) ->
    element(M, {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
                "Nov", "Dec"}).
