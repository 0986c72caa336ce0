%% @doc A request body spooled to a temporary file: what py_web_conn does
%% with a WSGI request body longer than `spool_threshold', read whole before
%% the app takes a worker thread. The connection process creates the file,
%% writes the body as it arrives, closes it and gives the app its path (the
%% runner opens it as `wsgi.input'), and deletes it when the request ends.
%%
%% Files live in a private directory of this VM inside `spool_dir'
%% (`py_web-OSPID-RANDOM', mode 0700, made at the first spool and removed
%% when the py_web application stops), so that no other user can open a
%% body, even in the instant between a file's creation and its first byte;
%% a file is `N.body', created exclusively.
%%
%% The file never outlives its connection process: a watcher process,
%% started before the file is created, monitors the owner and deletes the
%% file if the owner dies without having deleted it (killed with its
%% listener, or any exit path that did not reach delete/1). The watcher is
%% not linked: it outlives the owner by exactly one `DOWN' message.
%%
%% Deleting the file while the app still has it open is safe (POSIX): the
%% app keeps reading its open file, and the name is gone at once.
-module(py_web_spool).

-export([open/1, write/2, close/1, delete/1, path/1, remove_dirs/0]).
-export_type([t/0]).

-record(spool, {path :: binary(),
                fd :: file:io_device() | closed,
                watcher :: pid()}).

-opaque t() :: #spool{}.

%% @doc A new spool file under the directory Parent (`spool_dir'), owned by
%% the calling process. `{error, Reason}' as file:open/2 or file:make_dir/1
%% give it (no such directory, full, not writable).
-spec open(binary()) -> {ok, t()} | {error, term()}.
open(Parent) ->
    case dir(Parent, undefined) of
        {ok, Dir} ->
            case open_in(Dir) of
                {error, enoent} ->
                    %% the private directory was removed (a tmp cleaner): make another
                    case dir(Parent, Dir) of
                        {ok, Dir2} -> open_in(Dir2);
                        {error, _} = E -> E
                    end;
                Result ->
                    Result
            end;
        {error, _} = E ->
            E
    end.

open_in(Dir) ->
    Path = filename:join(Dir, [integer_to_binary(erlang:unique_integer([positive])), ".body"]),
    Watcher = watch(self(), Path),
    case file:open(Path, [write, raw, binary, exclusive]) of
        {ok, Fd} ->
            {ok, #spool{path = Path, fd = Fd, watcher = Watcher}};
        {error, _} = E ->
            Watcher ! {?MODULE, deleted},
            E
    end.

%% @doc Append bytes.
-spec write(t(), iodata()) -> ok | {error, term()}.
write(#spool{fd = Fd}, Data) ->
    file:write(Fd, Data).

%% @doc Close the file for writing (everything written reaches the file
%% system): its path can then be handed to the app.
-spec close(t()) -> {ok, t()} | {error, term()}.
close(S = #spool{fd = closed}) ->
    {ok, S};
close(S = #spool{fd = Fd}) ->
    case file:close(Fd) of
        ok -> {ok, S#spool{fd = closed}};
        {error, _} = E -> E
    end.

%% @doc Close and delete the file, and release the watcher.
-spec delete(t()) -> ok.
delete(S = #spool{path = Path, watcher = W}) ->
    _ = close(S),
    _ = file:delete(Path, [raw]),
    W ! {?MODULE, deleted},
    ok.

%% @doc The file's path.
-spec path(t()) -> binary().
path(#spool{path = Path}) -> Path.

%% @doc Remove the private directories (the py_web application stops).
-spec remove_dirs() -> ok.
remove_dirs() ->
    lists:foreach(fun({{?MODULE, _} = Key, Dir}) ->
                          _ = file:del_dir_r(Dir),
                          persistent_term:erase(Key);
                     (_) ->
                          ok
                  end, persistent_term:get()).

%% This VM's private directory in Parent, made once, or again when Gone
%% (the directory found missing) is still the current one; under a lock,
%% since two connections may spool their first body at once.
dir(Parent, Gone) ->
    Key = {?MODULE, Parent},
    case persistent_term:get(Key, undefined) of
        Current when Current =:= undefined; Current =:= Gone ->
            global:trans({Key, self()},
                         fun() ->
                                 case persistent_term:get(Key, undefined) of
                                     C when C =:= undefined; C =:= Gone -> make_dir(Key, Parent);
                                     Dir -> {ok, Dir}
                                 end
                         end, [node()]);
        Dir ->
            {ok, Dir}
    end.

%% The name is unguessable, so nobody can make it first; its mode is set
%% before any file is made in it.
make_dir(Key, Parent) ->
    Dir = filename:join(Parent, ["py_web-", os:getpid(), $-,
                                 binary:encode_hex(crypto:strong_rand_bytes(8))]),
    case file:make_dir(Dir) of
        ok ->
            case file:change_mode(Dir, 8#700) of
                ok ->
                    persistent_term:put(Key, Dir),
                    {ok, Dir};
                {error, _} = E ->
                    _ = file:del_dir(Dir),
                    E
            end;
        {error, _} = E ->
            E
    end.

watch(Owner, Path) ->
    spawn(fun() ->
                  Ref = erlang:monitor(process, Owner),
                  receive
                      {?MODULE, deleted} -> ok;
                      {'DOWN', Ref, process, Owner, _} -> _ = file:delete(Path, [raw])
                  end
          end).
