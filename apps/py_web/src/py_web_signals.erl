%% @doc The OS signals bin/pyweb's VMs act on, as messages to an owner
%% process: `{py_web_signal, Signal}' for each Signal installed (sigterm,
%% sighup, sigusr2), in place of OTP's default handler (which stops the VM
%% on SIGTERM; the VM's default action for SIGHUP and SIGUSR2 ends it).
%%
%% bin/pyweb's supervisor (py_web_master) takes SIGTERM from the outside
%% and SIGUSR2 from bin/pyweb itself, which passes SIGINT and SIGTERM on as
%% SIGUSR2 (the VM cannot catch SIGINT): one stop that reaches the
%% supervisor both ways (a signal to the whole process group) is told from
%% two stops. Its server processes (py_web_child) take SIGTERM (a process
%% manager that signals every process of the service) and ignore SIGHUP.
-module(py_web_signals).
-behaviour(gen_event).

-export([install/2]).
-export([init/1, handle_event/2, handle_call/2, handle_info/2]).

-type signal() :: sigterm | sighup | sigusr2.

%% @doc Send Owner the Signals from now on; SIGHUP is ignored when not
%% among them.
-spec install(pid(), [signal()]) -> ok.
install(Owner, Signals) ->
    _ = [ok = os:set_signal(S, handle) || S <- Signals],
    lists:member(sighup, Signals) orelse os:set_signal(sighup, ignore),
    ok = gen_event:swap_handler(erl_signal_server, {erl_signal_handler, []},
                                {?MODULE, {Owner, Signals}}).

%% @private
-spec init({{pid(), [signal()]}, term()}) -> {ok, {pid(), [signal()]}}.
init({{Owner, Signals}, _}) -> {ok, {Owner, Signals}}.

%% @private
-spec handle_event(term(), {pid(), [signal()]}) -> {ok, {pid(), [signal()]}}.
handle_event(Signal, S = {Owner, Signals}) ->
    _ = lists:member(Signal, Signals) andalso (Owner ! {py_web_signal, Signal}),
    {ok, S}.

%% @private
-spec handle_call(term(), term()) -> {ok, ok, term()}.
handle_call(_, S) -> {ok, ok, S}.

%% @private
-spec handle_info(term(), term()) -> {ok, term()}.
handle_info(_, S) -> {ok, S}.
