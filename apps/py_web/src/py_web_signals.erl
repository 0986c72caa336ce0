%% @doc The OS signals bin/pyweb's supervisor acts on, as messages: SIGTERM
%% (bin/pyweb turns SIGINT into it: the VM cannot catch SIGINT) and SIGHUP
%% arrive at the owner as `{py_web_signal, sigterm | sighup}'. Installed in
%% place of OTP's default handler (which stops the VM on SIGTERM).
-module(py_web_signals).
-behaviour(gen_event).

-export([install/1]).
-export([init/1, handle_event/2, handle_call/2, handle_info/2]).

%% @doc Send SIGTERM and SIGHUP to Owner from now on.
-spec install(pid()) -> ok.
install(Owner) ->
    ok = os:set_signal(sigterm, handle),
    ok = os:set_signal(sighup, handle),
    ok = gen_event:swap_handler(erl_signal_server, {erl_signal_handler, []},
                                {?MODULE, Owner}).

%% @private
-spec init({pid(), term()} | pid()) -> {ok, pid()}.
init({Owner, _}) -> {ok, Owner};
init(Owner) -> {ok, Owner}.

%% @private
-spec handle_event(term(), pid()) -> {ok, pid()}.
handle_event(Signal, Owner) when Signal =:= sigterm; Signal =:= sighup ->
    Owner ! {py_web_signal, Signal},
    {ok, Owner};
handle_event(_, Owner) ->
    {ok, Owner}.

%% @private
-spec handle_call(term(), pid()) -> {ok, ok, pid()}.
handle_call(_, Owner) -> {ok, ok, Owner}.

%% @private
-spec handle_info(term(), pid()) -> {ok, pid()}.
handle_info(_, Owner) -> {ok, Owner}.
