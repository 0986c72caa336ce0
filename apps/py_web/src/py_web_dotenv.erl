%% @doc `--env-file': a file of environment variables in the syntax
%% python-dotenv reads (what uvicorn's --env-file uses): `KEY=VALUE' lines,
%% `export KEY=VALUE', `#' comments, values in single quotes (as written) or
%% double quotes (`\n', `\t', `\"', `\\' escapes), unquoted values trimmed
%% and cut at ` #'; `${NAME}' in unquoted and double-quoted values is the
%% value of NAME (set earlier in the file, else in the environment, else
%% empty). Like python-dotenv's default, a variable already set in the
%% environment is not overridden.
-module(py_web_dotenv).

-export([parse/2, load/1]).

%% @doc Set the file's variables in this process's environment (those not
%% set already). Errors: `{error, {env_file, File, Reason}}' (a POSIX atom,
%% or `{line, N}' for a line that is not `KEY=VALUE').
-spec load(file:filename()) -> ok | {error, {env_file, file:filename(), term()}}.
load(File) ->
    case file:read_file(File) of
        {ok, Bin} ->
            case parse(Bin, fun os:getenv/1) of
                {ok, Vars} ->
                    _ = [os:putenv(K, V) || {K, V} <- Vars, os:getenv(K) =:= false],
                    ok;
                {error, R} -> {error, {env_file, File, R}}
            end;
        {error, R} ->
            {error, {env_file, File, R}}
    end.

%% @doc The variables of a file's text, in order. `Env' gives a variable's
%% value in the environment (for `${NAME}'), or false.
-spec parse(binary(), fun((string()) -> string() | false)) ->
          {ok, [{string(), string()}]} | {error, {line, pos_integer()}}.
parse(Bin, Env) ->
    Lines = string:split(unicode:characters_to_list(Bin), "\n", all),
    parse(Lines, 1, Env, []).

parse([], _, _, Acc) ->
    {ok, lists:reverse(Acc)};
parse([Line0 | T], N, Env, Acc) ->
    Line = string:trim(string:trim(Line0, trailing, "\r")),
    case Line of
        "" -> parse(T, N + 1, Env, Acc);
        "#" ++ _ -> parse(T, N + 1, Env, Acc);
        _ ->
            Stmt = case Line of "export " ++ R -> string:trim(R); _ -> Line end,
            case string:split(Stmt, "=") of
                [K0, V0] ->
                    K = string:trim(K0),
                    case valid_key(K) of
                        true ->
                            Lookup = fun(Name) ->
                                             case lists:keyfind(Name, 1, Acc) of
                                                 {_, V} -> V;
                                                 false -> Env(Name)
                                             end
                                     end,
                            parse(T, N + 1, Env, [{K, value(string:trim(V0, leading), Lookup)} | Acc]);
                        false ->
                            {error, {line, N}}
                    end;
                _ ->
                    {error, {line, N}}
            end
    end.

valid_key([C | T]) when C =:= $_; C >= $A, C =< $Z; C >= $a, C =< $z ->
    lists:all(fun(X) -> X =:= $_ orelse X =:= $. orelse (X >= $A andalso X =< $Z)
                            orelse (X >= $a andalso X =< $z) orelse (X >= $0 andalso X =< $9)
              end, T);
valid_key(_) -> false.

value("'" ++ Rest, _) ->
    case string:split(Rest, "'") of
        [V, _] -> V;
        [V] -> V
    end;
value("\"" ++ Rest, Lookup) ->
    expand(unescape(Rest), Lookup);
value(V, Lookup) ->
    Cut = case string:find(V, " #") of
              nomatch -> V;
              Comment -> lists:sublist(V, length(V) - length(Comment))
          end,
    expand(string:trim(Cut), Lookup).

%% a double-quoted value up to its closing quote
unescape([]) -> [];
unescape([$" | _]) -> [];
unescape([$\\, $n | T]) -> [$\n | unescape(T)];
unescape([$\\, $t | T]) -> [$\t | unescape(T)];
unescape([$\\, $r | T]) -> [$\r | unescape(T)];
unescape([$\\, C | T]) when C =:= $"; C =:= $\\; C =:= $' -> [C | unescape(T)];
unescape([C | T]) -> [C | unescape(T)].

expand([], _) -> [];
expand("${" ++ T, Lookup) ->
    case string:split(T, "}") of
        [Name, Rest] ->
            V = case Lookup(string:trim(hd(string:split(Name, ":-")))) of
                    false ->
                        case string:split(Name, ":-") of
                            [_, Default] -> Default;
                            _ -> ""
                        end;
                    Val -> Val
                end,
            V ++ expand(Rest, Lookup);
        _ -> "${" ++ expand(T, Lookup)
    end;
expand([C | T], Lookup) -> [C | expand(T, Lookup)].
