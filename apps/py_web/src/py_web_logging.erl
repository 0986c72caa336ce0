%% @doc bin/pyweb's logging: every line on standard error with its time,
%% process id and level (py_web_log_formatter), the level given in any
%% case (`trace' is OTP's `debug' and everything below: py_web has no finer
%% events), access lines to their own file when asked (gunicorn's
%% `--access-logfile'), and `--log-config': OTP logger handlers, written
%% as Erlang terms or as JSON.
%%
%% Erlang terms (file:consult/1): the list that kernel's `logger'
%% parameter takes (`[{handler, Id, Module, Config}, ...]'), or a
%% sys.config (`[{kernel, [{logger, List}, {logger_level, Level}]}]'):
%% the handlers replace bin/pyweb's.
%%
%% JSON: `{"level": "info", "handlers": {"NAME": {"type": "standard_error"
%% | "standard_io" | "file", "file": PATH, "format": "text" | "json",
%% "level": LEVEL, "events": "all" | "access" | "other"}}}': each handler
%% writes with py_web's formatter; `events' keeps only the access lines or
%% only the others. Or JSON as uvicorn's and gunicorn's --log-config take it,
%% Python's dictConfig (`"version": 1'; see dict_config/1 in the source). Python's .ini
%% and .yaml logging files are refused.
-module(py_web_logging).

-export([setup/1, flush/0, quiet_start/1]).

%% @doc Configure logging for bin/pyweb from its settings (`log_level',
%% `log_config', `access_logfile', `error_logfile').
-spec setup(map()) -> ok | {error, term()}.
setup(Cli) ->
    Level = level(maps:get(log_level, Cli, info)),
    ok = logger:set_primary_config(level, Level),
    %% OTP's progress reports (an application or a supervisor's child
    %% started) are Erlang terms about OTP's own processes: not at any level
    _ = logger:add_primary_filter(pyweb_no_progress, {fun logger_filters:progress/2, stop}),
    _ = logger:remove_handler(default),
    case maps:find(log_config, Cli) of
        {ok, File} ->
            config_file(File);
        error ->
            Main = handler(maps:get(error_logfile, Cli, "-"), standard_error, text, all),
            case maps:find(access_logfile, Cli) of
                {ok, AFile} ->
                    add([{default, Main#{filters => filters(other)}},
                         {py_web_access, handler(AFile, standard_io, text, access)}]);
                error ->
                    add([{default, Main}])
            end
    end.

%% @doc Run F (the start of erlang_python and py_web, or the stop of erlang_python
%% before bin/pyweb restarts it) without OTP's own reports of a failing start (the
%% supervisor's start error, crash reports, each application that exits): Erlang terms
%% about OTP's processes, where bin/pyweb says in one line of its own what failed.
-spec quiet_start(fun(() -> T)) -> T.
quiet_start(F) ->
    _ = logger:add_primary_filter(pyweb_quiet_start,
                                  {fun logger_filters:domain/2, {stop, sub, [otp]}}),
    try F() after logger:remove_primary_filter(pyweb_quiet_start) end.

%% @doc Write out what the handlers hold (before the VM halts).
-spec flush() -> ok.
flush() ->
    _ = [catch logger_std_h:filesync(Id) || Id <- logger:get_handler_ids()],
    ok.

%% An OTP level from uvicorn's and gunicorn's names (and OTP's).
-spec level(atom()) -> logger:level() | all.
level(trace) -> all;
level(L) -> L.

handler("-", Std, Format, Events) -> handler_config(#{type => Std}, Format, Events);
handler(File, _, Format, Events) -> handler_config(#{file => File}, Format, Events).

%% Lines are not dropped under load (OTP's handlers drop events beyond 500 a
%% second, or when 200 wait): past 100 waiting, the processes that log wait
%% for the writes, as a Python server's logging does.
handler_config(Out, Format, Events) ->
    #{config => Out#{burst_limit_enable => false, sync_mode_qlen => 100,
                     drop_mode_qlen => 1000000, flush_qlen => 2000000},
      formatter => {py_web_log_formatter, #{format => Format}},
      filters => filters(Events)}.

%% Which events a handler writes. The Python side's log records (domain
%% [erlang_python]) are written like the others.
filters(all) -> [];
filters(access) -> [{py_web_access, {fun access/2, keep}}];
filters(other) -> [{py_web_access, {fun access/2, drop}}].

access(#{meta := #{py_web := access}} = E, keep) -> E;
access(_, keep) -> stop;
access(#{meta := #{py_web := access}}, drop) -> stop;
access(E, drop) -> E.

add(Handlers) ->
    lists:foldl(fun({Id, Config}, ok) ->
                        case logger:add_handler(Id, logger_std_h, Config) of
                            ok -> ok;
                            {error, R} -> {error, {log_handler, Id, R}}
                        end;
                   (_, E) -> E
                end, ok, Handlers).

config_file(File) ->
    case filename:extension(File) of
        ".json" ->
            case file:read_file(File) of
                {ok, Bin} ->
                    case py_web_json:decode(Bin) of
                        {ok, #{<<"version">> := 1} = Dict} -> json_result(File, dict_config(Dict));
                        {ok, Json} when is_map(Json) -> json_result(File, json_config(Json));
                        {ok, _} -> {error, {log_config, File, not_an_object}};
                        {error, R} -> {error, {log_config, File, R}}
                    end;
                {error, R} -> {error, {log_config, File, R}}
            end;
        Ext when Ext =:= ".ini"; Ext =:= ".yaml"; Ext =:= ".yml" ->
            {error, {log_config, File, python_logging_format}};
        _ ->
            case file:consult(File) of
                {ok, [Terms]} when is_list(Terms) -> terms_config(File, Terms);
                {ok, Terms} -> terms_config(File, Terms);
                {error, R} -> {error, {log_config, File, R}}
            end
    end.

terms_config(File, Terms) ->
    {Handlers, Lvl} = case lists:keyfind(kernel, 1, Terms) of
                          {kernel, Kernel} ->
                              {proplists:get_value(logger, Kernel, []),
                               proplists:get_value(logger_level, Kernel, undefined)};
                          false ->
                              {Terms, undefined}
                      end,
    _ = Lvl =/= undefined andalso logger:set_primary_config(level, Lvl),
    try logger:add_handlers(Handlers) of
        ok -> ok;
        {error, R} -> {error, {log_config, File, R}}
    catch
        error:R -> {error, {log_config, File, R}}
    end.

json_result(File, {error, {log_config, R}}) -> {error, {log_config, File, R}};
json_result(_File, Result) -> Result.

json_config(Json) ->
    try
        _ = case maps:find(<<"level">>, Json) of
            {ok, L} -> ok = logger:set_primary_config(level, level(json_atom(L)));
            error -> ok
        end,
        Handlers = maps:get(<<"handlers">>, Json, #{<<"default">> => #{}}),
        add([{binary_to_atom(Id), json_handler(H)} || {Id, H} <- maps:to_list(Handlers)])
    catch
        throw:R -> {error, {log_config, R}}
    end.

%% Python's logging.config.dictConfig (version 1), as uvicorn's and
%% gunicorn's --log-config JSON files are written: its handlers that the
%% loggers of the server use become OTP handlers with py_web's formatter
%% (the format strings are not used; a formatter whose class or factory
%% names JSON writes JSON lines). A handler on `uvicorn.access' or
%% `gunicorn.access' gets the access lines, one on `uvicorn',
%% `uvicorn.error', `gunicorn.error' or the root logger the others; its
%% level is its own, else its loggers'. Handler classes: StreamHandler
%% (sys.stdout or sys.stderr), FileHandler, WatchedFileHandler,
%% RotatingFileHandler (maxBytes, backupCount), TimedRotatingFileHandler
%% (as a plain file), NullHandler.
dict_config(Dict) ->
    try
        Loggers = maps:to_list(maps:get(<<"loggers">>, Dict, #{}))
            ++ [{<<>>, R} || R <- [maps:get(<<"root">>, Dict, undefined)], is_map(R)],
        Uses = lists:foldl(
                 fun({Name, L}, Acc) ->
                         Kind = logger_kind(Name),
                         Level = maps:get(<<"level">>, L, <<"INFO">>),
                         lists:foldl(fun(H, A) -> maps:update_with(H, fun(Us) -> [{Kind, Level} | Us] end,
                                                                   [{Kind, Level}], A)
                                     end, Acc, [H || Kind =/= none, H <- maps:get(<<"handlers">>, L, [])])
                 end, #{}, Loggers),
        Formatters = maps:get(<<"formatters">>, Dict, #{}),
        Handlers = maps:get(<<"handlers">>, Dict, #{}),
        add([{binary_to_atom(<<"pyweb_", Id/binary>>), H}
             || {Id, Us} <- lists:sort(maps:to_list(Uses)),
                H <- [dict_handler(Id, maps:get(Id, Handlers, undefined), Us, Formatters)],
                H =/= none])
    catch
        throw:R -> {error, {log_config, R}}
    end.

logger_kind(Name) when Name =:= <<"uvicorn.access">>; Name =:= <<"gunicorn.access">> -> access;
logger_kind(Name) when Name =:= <<"uvicorn">>; Name =:= <<"uvicorn.error">>;
                       Name =:= <<"gunicorn.error">>; Name =:= <<"gunicorn">>; Name =:= <<>> ->
    other;
logger_kind(_) -> none.

dict_handler(Id, undefined, _, _) ->
    throw({unknown_handler, Id});
dict_handler(_Id, H, Uses, Formatters) ->
    Out = case maps:get(<<"class">>, H, undefined) of
              <<"logging.NullHandler">> -> none;
              <<"logging.StreamHandler">> ->
                  case maps:get(<<"stream">>, H, <<"ext://sys.stderr">>) of
                      <<"ext://sys.stdout">> -> #{type => standard_io};
                      _ -> #{type => standard_error}
                  end;
              C when C =:= <<"logging.FileHandler">>; C =:= <<"logging.handlers.WatchedFileHandler">>;
                     C =:= <<"logging.handlers.TimedRotatingFileHandler">> ->
                  #{file => filename(H)};
              <<"logging.handlers.RotatingFileHandler">> ->
                  Rotate = case {maps:get(<<"maxBytes">>, H, 0), maps:get(<<"backupCount">>, H, 0)} of
                               {Max, N} when is_integer(Max), Max > 0, is_integer(N), N > 0 ->
                                   #{max_no_bytes => Max, max_no_files => N};
                               _ -> #{}
                           end,
                  maps:merge(#{file => filename(H)}, Rotate);
              C ->
                  throw({unsupported_handler_class, C})
          end,
    case Out of
        none -> none;
        _ ->
            Events = case lists:usort([K || {K, _} <- Uses]) of
                         [access] -> access;
                         [other] -> other;
                         _ -> all
                     end,
            Format = case maps:get(maps:get(<<"formatter">>, H, <<>>), Formatters, #{}) of
                         #{<<"()">> := F} -> json_or_text(F);
                         #{<<"class">> := F} -> json_or_text(F);
                         _ -> text
                     end,
            Level = case maps:find(<<"level">>, H) of
                        {ok, L} -> py_level(L);
                        error -> most_verbose([py_level(L) || {_, L} <- Uses])
                    end,
            (handler_config(Out, Format, Events))#{level => level(Level)}
    end.

%% A level of Python's logging: a name (NOTSET: everything) or a number.
py_level(<<"NOTSET">>) -> trace;
py_level(N) when is_integer(N), N < 10 -> trace;
py_level(N) when is_integer(N), N < 20 -> debug;
py_level(N) when is_integer(N), N < 30 -> info;
py_level(N) when is_integer(N), N < 40 -> warning;
py_level(N) when is_integer(N), N < 50 -> error;
py_level(N) when is_integer(N) -> critical;
py_level(L) -> json_atom(L).

most_verbose(Levels) ->
    Order = [trace, debug, info, notice, warning, error, critical, alert, emergency],
    hd([L || L <- Order, lists:member(L, Levels)]).

filename(#{<<"filename">> := F}) when is_binary(F) -> binary_to_list(F);
filename(H) -> throw({bad_handler, H}).

json_or_text(Class) when is_binary(Class) ->
    case binary:match(string:lowercase(Class), <<"json">>) of
        nomatch -> text;
        _ -> json
    end;
json_or_text(_) ->
    text.

json_handler(H) when is_map(H) ->
    Out = case maps:get(<<"type">>, H, <<"standard_error">>) of
              <<"file">> -> #{file => binary_to_list(maps:get(<<"file">>, H))};
              <<"standard_io">> -> #{type => standard_io};
              <<"standard_error">> -> #{type => standard_error};
              T -> throw({bad_type, T})
          end,
    Format = case maps:get(<<"format">>, H, <<"text">>) of
                 <<"text">> -> text;
                 <<"json">> -> json;
                 F -> throw({bad_format, F})
             end,
    Events = case maps:get(<<"events">>, H, <<"all">>) of
                 <<"all">> -> all;
                 <<"access">> -> access;
                 <<"other">> -> other;
                 E -> throw({bad_events, E})
             end,
    C = handler_config(Out, Format, Events),
    case maps:find(<<"level">>, H) of
        {ok, L} -> C#{level => level(json_atom(L))};
        error -> C
    end;
json_handler(H) ->
    throw({bad_handler, H}).

json_atom(B) when is_binary(B) ->
    L = string:lowercase(B),
    case [A || A <- [trace, debug, info, notice, warning, error, critical, alert, emergency],
               atom_to_binary(A) =:= L] of
        [A] -> A;
        [] -> throw({bad_level, B})
    end;
json_atom(B) ->
    throw({bad_level, B}).
