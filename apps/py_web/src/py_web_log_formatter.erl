%% @doc The formatter of bin/pyweb's log lines (an OTP logger formatter):
%% `[2025-06-01 12:00:00.123+02:00] [PID] [LEVEL] message', or, with
%% `#{format => json}', one JSON object a line with `time', `level', `pid',
%% `message' and, for py_web's events, `py_web' (`access', `app' or
%% `server'). The message is OTP's (logger_formatter with the message
%% alone); a multi-line message (a traceback) keeps its lines.
-module(py_web_log_formatter).

-export([format/2, check_config/1]).

%% @private
-spec format(logger:log_event(), logger:formatter_config()) -> unicode:chardata().
format(#{level := Level, meta := Meta} = Event, Config) ->
    Msg = logger_formatter:format(Event, #{template => [msg], single_line => false,
                                           legacy_header => false,
                                           chars_limit => maps:get(chars_limit, Config, unlimited)}),
    Time = calendar:system_time_to_rfc3339(maps:get(time, Meta, logger:timestamp()) div 1000,
                                           [{unit, millisecond}, {time_designator, $\s}]),
    Pid = os:getpid(),
    case maps:get(format, Config, text) of
        json ->
            Fields = #{time => list_to_binary(Time), level => Level,
                       pid => list_to_integer(Pid),
                       message => unicode:characters_to_binary(Msg)},
            [py_web_json:encode(case Meta of
                                    #{py_web := Kind} -> Fields#{py_web => Kind};
                                    _ -> Fields
                                end), $\n];
        text ->
            [$[, Time, "] [", Pid, "] [", string:uppercase(atom_to_list(Level)), "] ", Msg, $\n]
    end.

%% @private
-spec check_config(logger:formatter_config()) -> ok | {error, term()}.
check_config(#{format := F}) when F =/= text, F =/= json -> {error, {bad_format, F}};
check_config(_) -> ok.
