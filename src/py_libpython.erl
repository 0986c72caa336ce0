%% @doc The libpython loader: loads a libpython into the VM with global symbols
%% (`dlopen(RTLD_GLOBAL)') so that `priv/py_nif.so', which is not linked against any
%% libpython, and C extension modules resolve their Python symbols against it.
%%
%% Its NIF (`priv/py_libpython.so') has no Python in it, so it loads on any machine.  A VM
%% holds one libpython: once one is loaded, loading another file is refused.  Called by
%% {@link py_python:load/0}, which decides which file.
-module(py_libpython).

-export([load/1]).

%% @doc Loads the libpython at `Path' with global symbols; `ok' again for the file
%% already loaded.  `Text' says why not (no such file, the dynamic linker's message, or
%% another libpython loaded already).
-spec load(file:filename_all()) -> ok | {error, Text :: binary()}.
load(Path) ->
    case load_nif() of
        ok -> dlopen_global(unicode:characters_to_binary(Path));
        {error, _} = Error -> Error
    end.

load_nif() ->
    Lib = filename:join(py_nif:priv_dir(), "py_libpython"),
    case erlang:load_nif(Lib, 0) of
        ok -> ok;
        {error, {reload, _}} -> ok;
        {error, {_, Text}} ->
            {error, unicode:characters_to_binary(
                      ["cannot load the loader NIF ", Lib, ".so: ", Text,
                       " (the build makes it: rebar3 compile)"])}
    end.

dlopen_global(_Path) ->
    erlang:nif_error({nif_not_loaded, ?MODULE}).
