%% @doc The server's counters that its connections share: the connections
%% open (for `limit_concurrency') and the requests started (for
%% `max_requests'). Lock-free (counters and atomics), read and written by
%% every connection process; the listener owns them.
%%
%% A connection counts itself as it starts (opened/1), before it reads a
%% request, and the listener uncounts it at its exit (closed/1; the
%% listener is linked to every connection), so a connection that crashes
%% is still uncounted.
-module(py_web_limits).

-export([new/3, opened/1, closed/1, request/1, requests/1]).
-export_type([t/0]).

-record(limits, {
    conns :: counters:counters_ref(),
    requests :: atomics:atomics_ref(),
    concurrency :: pos_integer() | infinity,
    max_requests :: pos_integer() | infinity,
    listener :: pid()
}).

-opaque t() :: #limits{}.

%% @doc Counters for a listener: `Concurrency' connections at most before
%% requests are answered 503; after `MaxRequests' requests the listener is
%% sent `{py_web, max_requests}' once.
-spec new(pos_integer() | infinity, pos_integer() | infinity, pid()) -> t().
new(Concurrency, MaxRequests, Listener) ->
    #limits{conns = counters:new(1, [write_concurrency]), requests = atomics:new(1, []),
            concurrency = Concurrency, max_requests = MaxRequests, listener = Listener}.

-spec opened(t()) -> ok.
opened(#limits{conns = C}) -> counters:add(C, 1, 1).

-spec closed(t()) -> ok.
closed(#limits{conns = C}) -> counters:sub(C, 1, 1).

%% Connections open now.
-spec connections(t()) -> non_neg_integer().
connections(#limits{conns = C}) -> counters:get(C, 1).

%% @doc Requests started so far.
-spec requests(t()) -> non_neg_integer().
requests(#limits{requests = R}) -> atomics:get(R, 1).

%% @doc A request is about to start: `ok', or `over_capacity' when more
%% connections than `limit_concurrency' are open (the request is to be
%% answered 503, as uvicorn does). Counts the request; the one that reaches
%% `max_requests' tells the listener.
-spec request(t() | undefined) -> ok | over_capacity.
request(undefined) ->
    ok;
request(L = #limits{requests = R, max_requests = Max, concurrency = Limit, listener = P}) ->
    case atomics:add_get(R, 1, 1) of
        Max -> P ! {py_web, max_requests}, ok;
        _ -> ok
    end,
    case Limit =/= infinity andalso connections(L) > Limit of
        true -> over_capacity;
        false -> ok
    end.
