%% @doc HTTP/1.1 field sections (RFC 9112 §5, RFC 9110 §5.5-5.6): the one
%% owner of the field-line grammar, used for the request head
%% (py_web_h1_request) and for the trailer section of a chunked body
%% (py_web_h1_chunked).
%%
%% A field line is `field-name ":" OWS field-value OWS CRLF':
%% <ul>
%% <li>the name is one or more tchar, lower-cased on the way; whitespace
%%     before the colon is 400 (§5.1), and so is a line starting with SP or
%%     HTAB (obs-fold, §5.2; whitespace after the start-line, §2.2);</li>
%% <li>the value is field-vchar (VCHAR and obs-text 0x80-0xFF), SP and
%%     HTAB; OWS is trimmed from both ends; any other CTL (NUL, ESC...),
%%     DEL, or a CR not followed by LF is 400;</li>
%% <li>lines end in CRLF only: a bare LF is 400.</li>
%% </ul>
%%
%% The parser is a single pass of binary pattern matching over the
%% caller's buffer: names and values are sub-binaries of it (no copy), the
%% name is copied only when it has upper-case letters, and the common ones
%% come from a table of literals. Pure: no processes, no state.
-module(py_web_h1_field).

-export([section/4, list_tokens/1, is_token/1, is_tchar/1, is_value/1, lower/1, trim/1]).

-export_type([field/0]).

%% A field as the app sees it: lower-cased name, value without OWS.
-type field() :: {Name :: binary(), Value :: binary()}.

%% A value byte that is not whitespace: VCHAR or obs-text.
-define(VIS(C), (C > 32 andalso C =/= 127)).
%% A value byte, SP included (HTAB is rare and takes the slow clause).
-define(VSP(C), (C >= 32 andalso C =/= 127)).

%% @doc Parse the field section that starts at `Pos' in `Buf': field lines
%% up to and including the empty line that ends it. `{ok, Fields, End}'
%% with End the position just after that empty line; fields in arrival
%% order, duplicates kept. `more' when Buf ends first and nothing so far is
%% invalid. 431 when the section (its CRLFs included) would be longer than
%% `MaxBytes' or has more than `MaxCount' fields; 400 for anything the
%% grammar forbids.
-spec section(binary(), non_neg_integer(), pos_integer(), non_neg_integer()) ->
          {ok, [field()], non_neg_integer()} | more | {error, 400 | 431}.
section(Buf, Pos, MaxBytes, MaxCount) ->
    Avail = byte_size(Buf) - Pos,
    View = binary:part(Buf, Pos, min(Avail, MaxBytes)),
    case line(View, 0, View, MaxCount, []) of
        {ok, Fields, End} -> {ok, Fields, Pos + End};
        more when Avail >= MaxBytes -> {error, 431};
        Other -> Other
    end.

%% The start of a field line, or the empty line that ends the section.
line(<<"\r\n", _/binary>>, P, _V, _N, Acc) ->
    {ok, lists:reverse(Acc), P + 2};
line(<<"\r">>, _P, _V, _N, _Acc) ->
    more;
line(<<>>, _P, _V, _N, _Acc) ->
    more;
line(_R, _P, _V, 0, _Acc) ->
    {error, 431};
line(R, P, V, N, Acc) ->
    name(R, P, P, false, V, N, Acc).

%% The name: tchar up to the colon; Up tells whether it needs lower-casing.
name(<<C, R/binary>>, P, S, Up, V, N, Acc) when C >= $a, C =< $z; C =:= $- ->
    name(R, P + 1, S, Up, V, N, Acc);
name(<<C, R/binary>>, P, S, _Up, V, N, Acc) when C >= $A, C =< $Z ->
    name(R, P + 1, S, true, V, N, Acc);
name(<<$:, R/binary>>, P, S, Up, V, N, Acc) when P > S ->
    Raw = binary:part(V, S, P - S),
    Name = case Up of
               true -> lower_name(Raw);
               false -> Raw
           end,
    ows(R, P + 1, V, N, [Name | Acc]);
name(<<C, R/binary>>, P, S, Up, V, N, Acc) ->
    case tchar(C) of
        true -> name(R, P + 1, S, Up, V, N, Acc);
        false -> {error, 400}
    end;
name(<<>>, _P, _S, _Up, _V, _N, _Acc) ->
    more.

%% Leading OWS of the value. The name waits at the head of Acc.
ows(<<C, R/binary>>, P, V, N, Acc) when C =:= $\s; C =:= $\t ->
    ows(R, P + 1, V, N, Acc);
ows(R, P, V, N, Acc) ->
    value(R, P, P, P, V, N, Acc).

%% The value from VS; VE is the end of its last non-whitespace byte.
value(<<A, B, C, D, R/binary>>, P, VS, _VE, V, N, Acc)
  when ?VSP(A), ?VSP(B), ?VSP(C), ?VIS(D) ->
    value(R, P + 4, VS, P + 4, V, N, Acc);
value(<<C, R/binary>>, P, VS, _VE, V, N, Acc) when ?VIS(C) ->
    value(R, P + 1, VS, P + 1, V, N, Acc);
value(<<C, R/binary>>, P, VS, VE, V, N, Acc) when C =:= $\s; C =:= $\t ->
    value(R, P + 1, VS, VE, V, N, Acc);
value(<<"\r\n", R/binary>>, P, VS, VE, V, N, [Name | Acc]) ->
    line(R, P + 2, V, N - 1, [{Name, binary:part(V, VS, VE - VS)} | Acc]);
value(<<"\r">>, _P, _VS, _VE, _V, _N, _Acc) ->
    more;
value(<<>>, _P, _VS, _VE, _V, _N, _Acc) ->
    more;
value(_, _P, _VS, _VE, _V, _N, _Acc) ->
    {error, 400}.

%% tchar (RFC 9110 §5.6.2).
tchar(C) when C >= $a, C =< $z; C >= $A, C =< $Z; C >= $0, C =< $9 -> true;
tchar(C) -> C =:= $! orelse C =:= $# orelse C =:= $$ orelse C =:= $% orelse
                C =:= $& orelse C =:= $' orelse C =:= $* orelse C =:= $+ orelse
                C =:= $- orelse C =:= $. orelse C =:= $^ orelse C =:= $_ orelse
                C =:= $` orelse C =:= $| orelse C =:= $~.

%% @doc A tchar (RFC 9110 §5.6.2).
-spec is_tchar(byte()) -> boolean().
is_tchar(C) -> tchar(C).

%% @doc A token (RFC 9110 §5.6.2): one or more tchar.
-spec is_token(binary()) -> boolean().
is_token(<<>>) -> false;
is_token(B) -> all_tchar(B).

all_tchar(<<C, R/binary>>) ->
    case tchar(C) of
        true -> all_tchar(R);
        false -> false
    end;
all_tchar(<<>>) -> true.

%% @doc A field value's bytes (RFC 9110 §5.5): field-vchar (VCHAR,
%% obs-text), SP and HTAB; no other control character, no DEL. The rule
%% value/7 applies while parsing, for values that do not come from a
%% parse (an app's response headers, a reason phrase).
-spec is_value(binary()) -> boolean().
is_value(<<C, R/binary>>) when ?VSP(C); C =:= $\t -> is_value(R);
is_value(<<_, _/binary>>) -> false;
is_value(<<>>) -> true.

%% @doc The elements of a comma-separated list value (RFC 9110 §5.6.1),
%% lower-cased, OWS trimmed, empty elements dropped (a recipient must
%% accept them). The elements themselves are not checked here.
-spec list_tokens(binary()) -> [binary()].
list_tokens(V) -> elements(V, 0, V, []).

elements(<<$,, R/binary>>, N, V, Acc) ->
    <<E:N/binary, _/binary>> = V,
    elements(R, 0, R, list_element(E, Acc));
elements(<<_, R/binary>>, N, V, Acc) ->
    elements(R, N + 1, V, Acc);
elements(<<>>, _N, V, Acc) ->
    lists:reverse(list_element(V, Acc)).

list_element(E0, Acc) ->
    case trim(E0) of
        <<>> -> Acc;
        E -> [lower(E) | Acc]
    end.

%% @doc A value without OWS (SP and HTAB) at either end; bytes, not UTF-8 (a
%% field value may hold any octet, RFC 9110 §5.5).
-spec trim(binary()) -> binary().
trim(<<C, R/binary>>) when C =:= $\s; C =:= $\t -> trim(R);
trim(B) -> trim_right(B, byte_size(B)).

trim_right(B, 0) -> binary:part(B, 0, 0);
trim_right(B, N) ->
    case binary:at(B, N - 1) of
        C when C =:= $\s; C =:= $\t -> trim_right(B, N - 1);
        _ -> binary:part(B, 0, N)
    end.

%% @doc ASCII lower-casing.
-spec lower(binary()) -> binary().
lower(B) ->
    case has_upper(B) of
        true -> list_to_binary(lower_list(B));
        false -> B
    end.

has_upper(<<C, _/binary>>) when C >= $A, C =< $Z -> true;
has_upper(<<_, R/binary>>) -> has_upper(R);
has_upper(<<>>) -> false.

%% (list_to_binary of a list is about twice as fast as a binary
%% comprehension here.)
lower_list(<<C, R/binary>>) when C >= $A, C =< $Z -> [C + 32 | lower_list(R)];
lower_list(<<C, R/binary>>) -> [C | lower_list(R)];
lower_list(<<>>) -> [].

%% Field names as browsers, curl and the common HTTP libraries spell them:
%% their lower-case forms are literals (about 20 times cheaper than
%% building a binary per request).
lower_name(<<"Host">>) -> <<"host">>;
lower_name(<<"Connection">>) -> <<"connection">>;
lower_name(<<"User-Agent">>) -> <<"user-agent">>;
lower_name(<<"Accept">>) -> <<"accept">>;
lower_name(<<"Accept-Encoding">>) -> <<"accept-encoding">>;
lower_name(<<"Accept-Language">>) -> <<"accept-language">>;
lower_name(<<"Cache-Control">>) -> <<"cache-control">>;
lower_name(<<"Content-Length">>) -> <<"content-length">>;
lower_name(<<"Content-Type">>) -> <<"content-type">>;
lower_name(<<"Cookie">>) -> <<"cookie">>;
lower_name(<<"Referer">>) -> <<"referer">>;
lower_name(<<"Origin">>) -> <<"origin">>;
lower_name(<<"Authorization">>) -> <<"authorization">>;
lower_name(<<"Upgrade-Insecure-Requests">>) -> <<"upgrade-insecure-requests">>;
lower_name(<<"Sec-Fetch-Site">>) -> <<"sec-fetch-site">>;
lower_name(<<"Sec-Fetch-Mode">>) -> <<"sec-fetch-mode">>;
lower_name(<<"Sec-Fetch-User">>) -> <<"sec-fetch-user">>;
lower_name(<<"Sec-Fetch-Dest">>) -> <<"sec-fetch-dest">>;
lower_name(<<"If-None-Match">>) -> <<"if-none-match">>;
lower_name(<<"If-Modified-Since">>) -> <<"if-modified-since">>;
lower_name(<<"Transfer-Encoding">>) -> <<"transfer-encoding">>;
lower_name(<<"Expect">>) -> <<"expect">>;
lower_name(<<"Upgrade">>) -> <<"upgrade">>;
lower_name(<<"X-Forwarded-For">>) -> <<"x-forwarded-for">>;
lower_name(<<"X-Forwarded-Proto">>) -> <<"x-forwarded-proto">>;
lower_name(<<"X-Requested-With">>) -> <<"x-requested-with">>;
lower_name(<<"Pragma">>) -> <<"pragma">>;
lower_name(<<"DNT">>) -> <<"dnt">>;
lower_name(Name) -> list_to_binary(lower_list(Name)).
