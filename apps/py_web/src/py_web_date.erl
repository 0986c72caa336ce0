%% @doc Cached `date:' response header line, refreshed every second by
%% this process into a public ETS table (one lookup per response; the
%% same approach as cowboy_clock). Without the process (py_web application
%% not started) the line is computed on each call.
-module(py_web_date).
-behaviour(gen_server).

-export([start_link/0, header/0, value/0, format/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-define(TAB, py_web_date).

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc `<<"date: Sun, 06 Nov 1994 08:49:37 GMT\r\n">>'.
-spec header() -> binary().
header() ->
    try ets:lookup_element(?TAB, date, 2)
    catch error:badarg -> line(erlang:universaltime())
    end.

%% @doc The Date header's value alone (for the Cowboy and Elli handlers).
-spec value() -> binary().
value() ->
    <<"date: ", V:29/binary, "\r\n">> = header(),
    V.

%% @doc IMF-fixdate of a UTC datetime.
-spec format(calendar:datetime()) -> binary().
format({{Y, Mo, D} = Date, {H, Mi, S}}) ->
    Wd = element(calendar:day_of_the_week(Date),
                 {<<"Mon">>, <<"Tue">>, <<"Wed">>, <<"Thu">>, <<"Fri">>,
                  <<"Sat">>, <<"Sun">>}),
    Mon = element(Mo, {<<"Jan">>, <<"Feb">>, <<"Mar">>, <<"Apr">>, <<"May">>,
                       <<"Jun">>, <<"Jul">>, <<"Aug">>, <<"Sep">>, <<"Oct">>,
                       <<"Nov">>, <<"Dec">>}),
    iolist_to_binary([Wd, <<", ">>, p2(D), <<" ">>, Mon, <<" ">>,
                      integer_to_binary(Y), <<" ">>, p2(H), <<":">>, p2(Mi),
                      <<":">>, p2(S), <<" GMT">>]).

p2(N) when N < 10 -> <<$0, ($0 + N)>>;
p2(N) -> integer_to_binary(N).

line(DT) -> <<"date: ", (format(DT))/binary, "\r\n">>.

%% gen_server

-spec init([]) -> {ok, undefined}.
init([]) ->
    _ = ets:new(?TAB, [named_table, protected, {read_concurrency, true}]),
    tick(),
    {ok, undefined}.

-spec handle_call(term(), gen_server:from(), term()) -> {reply, ok, term()}.
handle_call(_, _, St) -> {reply, ok, St}.

-spec handle_cast(term(), term()) -> {noreply, term()}.
handle_cast(_, St) -> {noreply, St}.

-spec handle_info(term(), term()) -> {noreply, term()}.
handle_info(tick, St) ->
    tick(),
    {noreply, St};
handle_info(_, St) ->
    {noreply, St}.

tick() ->
    true = ets:insert(?TAB, {date, line(erlang:universaltime())}),
    %% Fire just after the next second boundary.
    Ms = 1000 - erlang:system_time(millisecond) rem 1000,
    erlang:send_after(Ms + 1, self(), tick),
    ok.
