%% @doc What `--reload' watches: the files under some directories whose
%% names match the include patterns and no exclude pattern, looked at by
%% polling (stat calls; works on any file system, bind mounts included).
%%
%% new/1 lists the files once; changes/1 looks again and says which files
%% changed, appeared or went away. A directory is read again only when its
%% own modification time changed (entries added, removed or renamed); each
%% watched file is stat'ed. Times have whole seconds only here, so a file
%% changed within the last two seconds is also compared by content (two saves
%% of the same size within one second are still told apart), and a directory
%% changed within them is listed again at each look.
%%
%% Patterns are globs (`*', `?', `[...]') matched against a file's or a
%% directory's name, or, when they hold a `/', against its path relative to
%% the watched directory. Directories whose name matches an exclude pattern
%% are not entered, nor are virtualenvs (a `pyvenv.cfg' inside) and
%% `__pycache__'.
-module(py_web_watch).

-include_lib("kernel/include/file.hrl").

-export([new/1, changes/1, files/1, patterns/2]).
-export_type([t/0]).

-define(RECENT, 2).

-record(w, {
    roots :: [string()],
    include :: [re_pattern()],
    exclude :: [re_pattern()],
    dirs = #{} :: #{string() => integer()},                       %% dir -> mtime
    files = #{} :: #{string() => {integer(), integer(), integer(), term()}}
}).
-type re_pattern() :: {string(), boolean(), term()}.             %% {glob, has_slash, re}
-opaque t() :: #w{}.

%% @doc The include and exclude patterns from uvicorn's defaults and the
%% user's: `*.py' is included, `.*', `.py[cod]', `.sw.*' and `~*' are
%% excluded; a pattern the user includes is no longer excluded and the
%% other way round.
-spec patterns([string()], [string()]) -> {[string()], [string()]}.
patterns(Includes, Excludes) ->
    DefIn = ["*.py"],
    DefEx = [".*", ".py[cod]", ".sw.*", "~*"],
    {lists:usort((DefIn -- Excludes) ++ Includes), lists:usort((DefEx -- Includes) ++ Excludes)}.

%% @doc Watch `dirs' for files matching `include' and not `exclude'.
-spec new(#{dirs := [string()], include := [string()], exclude := [string()]}) -> t().
new(#{dirs := Dirs, include := In, exclude := Ex}) ->
    W = #w{roots = [filename:absname(D) || D <- Dirs],
           include = [compile(P) || P <- In], exclude = [compile(P) || P <- Ex]},
    lists:foldl(fun(Root, Acc) -> scan_dir(Root, Root, Acc) end, W, W#w.roots).

%% @doc The files watched now.
-spec files(t()) -> [string()].
files(#w{files = F}) -> lists:sort(maps:keys(F)).

%% @doc Look again: the files that changed (or appeared, or went away)
%% since the last look, and the new state.
-spec changes(t()) -> {[string()], t()}.
changes(W0 = #w{dirs = Dirs, files = Files}) ->
    Now = erlang:system_time(second),
    %% directories whose entries changed are listed again (and those changed
    %% within the last seconds: their time has whole seconds only)
    W1 = maps:fold(fun(D, MTime, Acc) ->
                           case mtime(D) of
                               MTime when Now - MTime > ?RECENT -> Acc;
                               _ -> rescan(D, Acc)
                           end
                   end, W0, Dirs),
    {Changed, Files1} =
        maps:fold(fun(F, Old, {Ch, Acc}) ->
                          case maps:find(F, W1#w.files) of
                              error -> {[F | Ch], Acc};     %% gone
                              {ok, _} ->
                                  case stat(F, Now, Old) of
                                      gone -> {[F | Ch], maps:remove(F, Acc)};
                                      Old -> {Ch, Acc};
                                      New -> {[F | Ch], Acc#{F := New}}
                                  end
                          end
                  end, {[], W1#w.files}, Files),
    Added = [F || F <- maps:keys(Files1), not maps:is_key(F, Files)],
    {lists:usort(Changed ++ Added), W1#w{files = Files1}}.

rescan(Dir, W = #w{roots = Roots}) ->
    Root = hd([R || R <- Roots, lists:prefix(R, Dir)] ++ [Dir]),
    %% forget what was below Dir, then list it again
    Prefix = Dir ++ "/",
    W1 = W#w{dirs = maps:filter(fun(D, _) -> D =/= Dir andalso not lists:prefix(Prefix, D) end,
                                W#w.dirs),
             files = maps:filter(fun(F, _) -> not lists:prefix(Prefix, F) end, W#w.files)},
    Fresh = scan_dir(Dir, Root, W1),
    %% keep what was known of files seen before (a change is for changes/1 to tell)
    Kept = maps:map(fun(F, V) -> maps:get(F, W#w.files, V) end, Fresh#w.files),
    Fresh#w{files = Kept}.

scan_dir(Dir, Root, W) ->
    case {mtime(Dir), file:list_dir(Dir)} of
        {MTime, {ok, Names}} when is_integer(MTime) ->
            Now = erlang:system_time(second),
            lists:foldl(fun(Name, Acc) -> entry(filename:join(Dir, Name), Name, Root, Now, Acc) end,
                        W#w{dirs = (W#w.dirs)#{Dir => MTime}}, Names);
        _ ->
            W
    end.

entry(Path, Name, Root, Now, W) ->
    Rel = relative(Path, Root),
    case file:read_link_info(Path, [raw]) of
        {ok, #file_info{type = directory}} ->
            case skip_dir(Path, Name, Rel, W) of
                true -> W;
                false -> scan_dir(Path, Root, W)
            end;
        {ok, #file_info{type = regular}} ->
            case matches(Name, Rel, W#w.include) andalso not matches(Name, Rel, W#w.exclude) of
                true ->
                    case stat(Path, Now, undefined) of
                        gone -> W;
                        S -> W#w{files = (W#w.files)#{Path => S}}
                    end;
                false -> W
            end;
        _ ->
            W
    end.

skip_dir(Path, Name, Rel, #w{exclude = Ex}) ->
    Name =:= "__pycache__" orelse matches(Name, Rel, Ex)
        orelse filelib:is_regular(filename:join(Path, "pyvenv.cfg")).

%% {mtime, size, inode, content digest while recent}; once a file is no
%% longer recent, the same time, size and inode keep the state it had.
stat(F, Now, Old) ->
    case file:read_file_info(F, [raw, {time, posix}]) of
        {ok, #file_info{mtime = M, size = S, inode = I}} when Now - M =< ?RECENT ->
            {M, S, I, digest(F)};
        {ok, #file_info{mtime = M, size = S, inode = I}} ->
            case Old of
                {M, S, I, _} -> Old;
                _ -> {M, S, I, old}
            end;
        {error, _} ->
            gone
    end.

digest(F) ->
    case file:read_file(F) of
        {ok, B} -> erlang:md5(B);
        {error, _} -> unreadable
    end.

mtime(Dir) ->
    case file:read_file_info(Dir, [raw, {time, posix}]) of
        {ok, #file_info{mtime = M}} -> M;
        {error, _} -> gone
    end.

relative(Path, Root) ->
    case lists:prefix(Root ++ "/", Path) of
        true -> lists:nthtail(length(Root) + 1, Path);
        false -> Path
    end.

matches(Name, Rel, Patterns) ->
    lists:any(fun({_, false, Re}) -> re:run(Name, Re, [{capture, none}]) =:= match;
                 ({_, true, Re}) -> re:run(Rel, Re, [{capture, none}]) =:= match
              end, Patterns).

compile(Glob) ->
    {ok, Re} = re:compile("^" ++ glob_re(Glob) ++ "$", [unicode]),
    {Glob, lists:member($/, Glob), Re}.

glob_re([]) -> [];
glob_re([$*, $* | T]) -> ".*" ++ glob_re(T);
glob_re([$* | T]) -> "[^/]*" ++ glob_re(T);
glob_re([$? | T]) -> "[^/]" ++ glob_re(T);
glob_re([$[ | T]) ->
    case string:split(T, "]") of
        [Class, Rest] when Class =/= "" ->
            Cls = case Class of [$! | C] -> [$^ | C]; _ -> Class end,
            "[" ++ Cls ++ "]" ++ glob_re(Rest);
        _ -> "\\[" ++ glob_re(T)
    end;
glob_re([C | T]) ->
    case lists:member(C, ".^$+(){}|\\") of
        true -> [$\\, C | glob_re(T)];
        false -> [C | glob_re(T)]
    end.
