%% @doc Elli handler serving a Python ASGI or WSGI app through the
%% streaming API of py_asgi/py_wsgi.
%%
%% ```
%% elli:start_link([{callback, py_web_elli},
%%                  {callback_args, #{app => {<<"myapp">>, <<"app">>},
%%                                    interface => wsgi}},
%%                  {port, 8080}]).
%% '''
%% Args keys as in py_web_cowboy. Elli reads the whole request body before
%% calling the handler, and its chunked responses are always 200: a
%% streamed 200 response is relayed with Elli's chunk API
%% (elli_request:send_chunk/2) as the app produces it; other streamed
%% statuses are collected and sent whole. Compiles without Elli (remote
%% calls only).
-module(py_web_elli).

-include("py_web.hrl").

%% Elli is optional (not a dependency): its calls are unresolved here.
-ignore_xref([elli_request]).


-export([handle/2, handle_event/3]).

-spec handle(term(), map()) -> {integer(), [{binary(), binary()}], iodata()}
                                 | {chunk, [{binary(), binary()}], iodata()}.
handle(Req, Args) ->
    Cfg = cfg(Args),
    R = request(Req),
    Body = elli_request:body(Req),
    Ref = elli_request:chunk_ref(Req),
    Self = self(),
    {W, Mon} = spawn_monitor(fun() -> worker(Self, Ref, Cfg, R, Body) end),
    receive
        {W, {full, Status, Headers, RespBody}} ->
            erlang:demonitor(Mon, [flush]),
            {Status, Headers, RespBody};
        {W, {chunk, Headers, First}} ->
            erlang:demonitor(Mon, [flush]),
            {chunk, Headers, First};
        {'DOWN', Mon, process, W, Reason} ->
            logger:error("py_web_elli: worker died: ~0p", [Reason], #{py_web => server}),
            {500, [], <<"Internal Server Error">>}
    after Cfg#cfg.request_timeout ->
        exit(W, kill),
        {504, [], <<"Gateway Timeout">>}
    end.

-spec handle_event(atom(), list(), term()) -> ok.
handle_event(_Event, _Data, _Args) -> ok.

cfg(Args) ->
    {M, C} = maps:get(app, Args),
    I = maps:get(interface, Args, asgi),
    #cfg{interface = I, module = bin(M), callable = bin(C),
         backend = maps:get(backend, Args, case I of asgi -> py_asgi; wsgi -> py_wsgi end),
         call_opts = maps:with([runner, timeout], Args),
         state = maps:get(state, Args, undefined),
         root_path = maps:get(root_path, Args, <<>>),
         request_timeout = maps:get(request_timeout, Args, 60000)}.

bin(B) when is_binary(B) -> B;
bin(A) when is_atom(A) -> atom_to_binary(A, utf8);
bin(L) when is_list(L) -> list_to_binary(L).

request(Req) ->
    Method = case elli_request:method(Req) of
                 M when is_atom(M) -> atom_to_binary(M, utf8);
                 M -> M
             end,
    RawPath = elli_request:raw_path(Req),
    [Path | _] = binary:split(RawPath, <<"?">>),
    py_web_req:new(#{method => Method,
                     raw_path => Path,
                     qs => elli_request:query_str(Req),
                     headers => elli_request:headers(Req),
                     peer => {peer(elli_request:peer(Req)), 0}}).

peer(P) when is_binary(P) -> P;
peer(P) when is_tuple(P) -> list_to_binary(inet:ntoa(P));
peer(_) -> <<"127.0.0.1">>.

worker(H, Ref, Cfg = #cfg{interface = I}, R, Body) ->
    Start = case I of
                asgi -> py_web_asgi:start(R, Cfg, Body, false);
                wsgi -> py_web_wsgi:start(R, Cfg, Body, false)
            end,
    case Start of
        {ok, S} -> wloop(H, Ref, Cfg, S, none, []);
        {error, Reason} -> fail(H, Reason)
    end.

%% Resp: none | {Code, Headers} | streaming
wloop(H, Ref, Cfg = #cfg{backend = B}, S, Resp, Acc) ->
    receive
        {_, S, {start, Status, Headers}} ->
            Code = case Status of
                       _ when is_integer(Status) -> Status;
                       _ -> py_web_http:status_code(Status)
                   end,
            wloop(H, Ref, Cfg, S, {Code, Headers}, []);
        {asgi, S, {body, C, More}} ->
            B:ack(S, byte_size(C)),
            chunk(H, Ref, Cfg, S, Resp, Acc, C, More);
        {wsgi, S, {body, C}} ->
            B:ack(S, byte_size(C)),
            %% stream from the second chunk on (one chunk: sent whole)
            case {Resp, Acc} of
                {streaming, _} -> chunk(H, Ref, Cfg, S, Resp, Acc, C, true);
                {_, []} -> wloop(H, Ref, Cfg, S, Resp, [C]);
                _ -> chunk(H, Ref, Cfg, S, Resp, [], iolist_to_binary(lists:reverse([C | Acc])), true)
            end;
        {_, S, need_body} ->
            B:send_body(S, <<>>, false),
            wloop(H, Ref, Cfg, S, Resp, Acc);
        {_, S, {trailers, _, _}} ->
            wloop(H, Ref, Cfg, S, Resp, Acc);
        {_, S, done} ->
            case Resp of
                streaming -> elli_request:close_chunk(Ref);
                {Code, Headers} -> H ! {self(), {full, Code, Headers, lists:reverse(Acc)}};
                none -> fail(H, no_response);
                done_sent -> ok
            end;
        {_, S, {error, Reason}} ->
            case Resp of
                streaming -> elli_request:close_chunk(Ref);
                done_sent -> ok;
                _ -> fail(H, Reason)
            end
    end.

chunk(H, Ref, Cfg, S, streaming, _Acc, C, _More) ->
    _ = elli_request:send_chunk(Ref, C),
    wloop(H, Ref, Cfg, S, streaming, []);
chunk(H, Ref, Cfg, S, {Code, Headers}, Acc, C, false) ->
    H ! {self(), {full, Code, Headers, lists:reverse([C | Acc])}},
    wloop(H, Ref, Cfg, S, done_sent, []);
chunk(H, Ref, Cfg, S, {200, Headers}, Acc, C, true) ->
    H ! {self(), {chunk, [{N, V} || {N, V} <- Headers,
                                    py_web_http:lower(N) =/= <<"content-length">>],
                  lists:reverse([C | Acc])}},
    wloop(H, Ref, Cfg, S, streaming, []);
chunk(H, Ref, Cfg, S, Resp, Acc, C, true) ->
    wloop(H, Ref, Cfg, S, Resp, [C | Acc]);
chunk(_H, _Ref, _Cfg, _S, _Resp, _Acc, _C, _More) ->
    ok.

fail(H, Reason) ->
    logger:error("py_web_elli: app error: ~0p", [Reason], #{py_web => server}),
    H ! {self(), {full, 500, [], <<"Internal Server Error">>}}.
