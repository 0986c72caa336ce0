%% @doc Decoder of the chunked transfer coding of request bodies (RFC 9112
%% §7.1), strict and incremental: feed it what the socket gave, get the
%% data decoded so far, the bytes it did not consume, and the state to
%% pass back with more bytes.
%%
%% <pre>
%% chunked-body = *chunk last-chunk trailer-section CRLF
%% chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
%% last-chunk   = 1*("0") [ chunk-ext ] CRLF
%% chunk-ext    = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] )
%% ext-val      = token / quoted-string
%% </pre>
%%
%% Rules: the size is 1*HEXDIG below 2^60 (leading zeros allowed); a
%% chunk line, extensions included, is at most 4096 bytes; extensions
%% are checked against the grammar above (a NUL, CTL, bare CR or bare LF
%% in them is an error, so is whitespace not followed by ";" or "=") and
%% dropped; the data is followed by exactly CRLF; trailer fields are
%% checked like header fields by py_web_h1_field (same size and count
%% limits as the head: `max_header_size', `max_headers') and dropped.
%% Any violation is 400, trailers over the limits 431.
-module(py_web_h1_chunked).

-export([init/1, decode/3]).

-export_type([state/0]).

%% The longest chunk line (size, extensions and CRLF).
-define(MAX_LINE, 4096).
%% Chunk sizes stay below 2^60 (small integers).
-define(MAX_SIZE, (1 bsl 60)).

-record(chunked, {phase = size :: size | {data, pos_integer()} | crlf | trailers,
                  max_bytes :: pos_integer(),
                  max_count :: pos_integer()}).

-opaque state() :: #chunked{}.

%% @doc The state before the first chunk line. The limits bound the trailer
%% section as they bound the header section.
-spec init(#{max_header_size := pos_integer(), max_headers := pos_integer(),
             _ => _}) -> state().
init(#{max_header_size := MaxBytes, max_headers := MaxCount}) ->
    #chunked{max_bytes = MaxBytes, max_count = MaxCount}.

%% @doc Decode as much of a chunked body as `Buf' holds, producing at most
%% about `Max' bytes of data (the caller's flow control). Returns the data
%% (sub-binaries of Buf), the unconsumed bytes, and the new state, `done'
%% once the last chunk and the trailer section are read (the bytes after
%% them are in Rest). `{error, Status}': answer Status and close.
-spec decode(binary(), state() | done, pos_integer()) ->
          {ok, [binary()], Rest :: binary(), state() | done} | {error, 400 | 431}.
decode(Buf, State, Max) ->
    decode(Buf, State, Max, []).

decode(Buf, done, _Max, Acc) ->
    {ok, lists:reverse(Acc), Buf, done};
decode(Buf, State, Max, Acc) when Max =< 0 ->
    {ok, lists:reverse(Acc), Buf, State};
decode(Buf, State = #chunked{phase = size}, Max, Acc) ->
    View = case byte_size(Buf) > ?MAX_LINE of
               true -> binary:part(Buf, 0, ?MAX_LINE);
               false -> Buf
           end,
    case chunk_size(View, 0, 0) of
        {ok, Size, Len} ->
            <<_:Len/binary, Rest/binary>> = Buf,
            Phase = case Size of
                        0 -> trailers;
                        _ -> {data, Size}
                    end,
            decode(Rest, State#chunked{phase = Phase}, Max, Acc);
        more when byte_size(Buf) >= ?MAX_LINE ->
            {error, 400};
        more ->
            {ok, lists:reverse(Acc), Buf, State};
        error ->
            {error, 400}
    end;
decode(<<>>, State = #chunked{phase = {data, _}}, _Max, Acc) ->
    {ok, lists:reverse(Acc), <<>>, State};
decode(Buf, State = #chunked{phase = {data, Left}}, Max, Acc) ->
    Take = min(min(Left, byte_size(Buf)), Max),
    <<Data:Take/binary, Rest/binary>> = Buf,
    Phase = case Left - Take of
                0 -> crlf;
                L -> {data, L}
            end,
    decode(Rest, State#chunked{phase = Phase}, Max - Take, [Data | Acc]);
decode(<<"\r\n", Rest/binary>>, State = #chunked{phase = crlf}, Max, Acc) ->
    decode(Rest, State#chunked{phase = size}, Max, Acc);
decode(Buf, State = #chunked{phase = crlf}, _Max, Acc)
  when Buf =:= <<>>; Buf =:= <<"\r">> ->
    {ok, lists:reverse(Acc), Buf, State};
decode(_Buf, #chunked{phase = crlf}, _Max, _Acc) ->
    {error, 400};
decode(Buf, State = #chunked{phase = trailers, max_bytes = MaxB, max_count = MaxN},
       _Max, Acc) ->
    case py_web_h1_field:section(Buf, 0, MaxB, MaxN) of
        {ok, _Trailers, End} ->
            <<_:End/binary, Rest/binary>> = Buf,
            {ok, lists:reverse(Acc), Rest, done};
        more ->
            {ok, lists:reverse(Acc), Buf, State};
        Error ->
            Error
    end.

%%====================================================================
%% Chunk line: returns {ok, Size, LineLength} | more | error
%%====================================================================

chunk_size(<<C, R/binary>>, N, Acc) when C >= $0, C =< $9 ->
    size_digit(R, N, Acc, C - $0);
chunk_size(<<C, R/binary>>, N, Acc) when C >= $a, C =< $f ->
    size_digit(R, N, Acc, C - $a + 10);
chunk_size(<<C, R/binary>>, N, Acc) when C >= $A, C =< $F ->
    size_digit(R, N, Acc, C - $A + 10);
chunk_size(<<>>, _N, _Acc) ->
    more;
chunk_size(R, N, Acc) when N > 0 ->
    case ext_after(R, N, false) of
        {ok, Len} -> {ok, Acc, Len};
        Other -> Other
    end;
chunk_size(_, _, _) ->
    error.

size_digit(R, N, Acc, D) ->
    case Acc * 16 + D of
        S when S >= ?MAX_SIZE -> error;
        S -> chunk_size(R, N + 1, S)
    end.

%% After the size, an extension's name or its value: CRLF ends the line,
%% ";" starts an extension, "=" (after a name) its value; whitespace (BWS)
%% only before ";" or "=".
ext_after(<<"\r\n", _/binary>>, N, _Eq) -> {ok, N + 2};
ext_after(<<$;, R/binary>>, N, _Eq) -> ext_name(R, N + 1);
ext_after(<<$=, R/binary>>, N, true) -> ext_value(R, N + 1);
ext_after(<<C, R/binary>>, N, Eq) when C =:= $\s; C =:= $\t -> ext_bws(R, N + 1, Eq);
ext_after(R, _N, _Eq) -> incomplete(R, <<"\r">>).

ext_bws(<<C, R/binary>>, N, Eq) when C =:= $\s; C =:= $\t -> ext_bws(R, N + 1, Eq);
ext_bws(<<$;, R/binary>>, N, _Eq) -> ext_name(R, N + 1);
ext_bws(<<$=, R/binary>>, N, true) -> ext_value(R, N + 1);
ext_bws(<<>>, _N, _Eq) -> more;
ext_bws(_, _N, _Eq) -> error.

%% BWS then the name (a token).
ext_name(<<C, R/binary>>, N) when C =:= $\s; C =:= $\t -> ext_name(R, N + 1);
ext_name(R, N) -> ext_token(R, N, 0, true).

%% BWS then the value: a token or a quoted-string.
ext_value(<<C, R/binary>>, N) when C =:= $\s; C =:= $\t -> ext_value(R, N + 1);
ext_value(<<$", R/binary>>, N) -> ext_quoted(R, N + 1);
ext_value(R, N) -> ext_token(R, N, 0, false).

ext_token(<<C, R/binary>> = B, N, Len, Eq) ->
    case py_web_h1_field:is_tchar(C) of
        true -> ext_token(R, N + 1, Len + 1, Eq);
        false when Len > 0 -> ext_after(B, N, Eq);
        false -> error
    end;
ext_token(<<>>, _N, _Len, _Eq) ->
    more.

%% quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE
ext_quoted(<<$", R/binary>>, N) ->
    ext_after(R, N + 1, false);
ext_quoted(<<$\\, C, R/binary>>, N) when C =:= $\t; C >= 32, C =/= 127 ->
    ext_quoted(R, N + 2);
ext_quoted(<<$\\>>, _N) ->
    more;
ext_quoted(<<$\\, _/binary>>, _N) ->
    error;
ext_quoted(<<C, R/binary>>, N) when C =:= $\t; C >= 32, C =/= 127 ->
    ext_quoted(R, N + 1);
ext_quoted(<<>>, _N) ->
    more;
ext_quoted(_, _N) ->
    error.

%% `more' when R is a proper prefix of Expected (a CR waiting for its LF).
incomplete(<<>>, _) -> more;
incomplete(R, Expected) when R =:= Expected -> more;
incomplete(_, _) -> error.
