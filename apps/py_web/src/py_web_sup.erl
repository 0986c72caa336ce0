%% @doc Top supervisor of the py_web application: the date ticker, and the
%% servers started with py_web:start/1 (unlinked; the CLI uses it).
%% Servers started with py_web:start_link/1 or py_web:child_spec/1 live in
%% the caller's supervision tree instead.
-module(py_web_sup).
-behaviour(supervisor).
-export([start_link/0, init/1]).

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    supervisor:start_link({local, ?MODULE}, ?MODULE, []).

-spec init([]) -> {ok, {supervisor:sup_flags(), [supervisor:child_spec()]}}.
init([]) ->
    {ok, {#{strategy => one_for_one, intensity => 10, period => 10},
          [#{id => py_web_date, start => {py_web_date, start_link, []},
             type => worker, shutdown => 1000}]}}.
