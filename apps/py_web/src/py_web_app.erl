%% @private
-module(py_web_app).
-behaviour(application).
-export([start/2, stop/1]).

-spec start(application:start_type(), term()) -> {ok, pid()} | {error, term()}.
start(_Type, _Args) -> py_web_sup:start_link().

%% The servers under py_web_sup are stopped: their spooled bodies are gone.
-spec stop(term()) -> ok.
stop(_State) -> py_web_spool:remove_dirs().
