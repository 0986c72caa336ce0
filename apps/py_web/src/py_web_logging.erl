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
%% only the others.
-module(py_web_logging).

-export([setup/1, level/1, flush/0]).

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

%% @doc Write out what the handlers hold (before the VM halts).
-spec flush() -> ok.
flush() ->
    _ = [catch logger_std_h:filesync(Id) || Id <- logger:get_handler_ids()],
    ok.

%% @doc An OTP level from uvicorn's and gunicorn's names (and OTP's).
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
                        {ok, Json} when is_map(Json) -> json_config(Json);
                        {ok, _} -> {error, {log_config, File, not_an_object}};
                        {error, R} -> {error, {log_config, File, R}}
                    end;
                {error, R} -> {error, {log_config, File, R}}
            end;
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
