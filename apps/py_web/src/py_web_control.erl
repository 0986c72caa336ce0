%% @doc The channel between bin/pyweb's supervisor (py_web_master) and its
%% server processes (py_web_child): a Unix domain stream socket in the
%% abstract namespace (nothing on the file system, gone with its owner),
%% Erlang terms framed by their length, and file descriptors passed along
%% with a term (SCM_RIGHTS): the listening sockets the supervisor opened.
%%
%% A reader process owns each end's receiving: it sends the owner
%% `{py_web_control, Channel, {term, Term, Fds}}' for each term and
%% `{py_web_control, Channel, closed}' at the end.
-module(py_web_control).

-export([listen/0, accept_loop/2, connect/2, send/2, send/3, close/1]).
-export_type([channel/0]).

-opaque channel() :: socket:socket().

-define(MAX_FDS, 64).

%% @doc A listening control socket with a fresh abstract name.
-spec listen() -> {ok, socket:socket(), string()} | {error, term()}.
listen() ->
    Name = "pyweb-" ++ os:getpid() ++ "-" ++ integer_to_list(erlang:unique_integer([positive])),
    case socket:open(local, stream, default) of
        {ok, S} ->
            case socket:bind(S, #{family => local, path => address(Name)}) of
                ok ->
                    case socket:listen(S) of
                        ok -> {ok, S, Name};
                        {error, _} = E -> socket:close(S), E
                    end;
                {error, _} = E ->
                    socket:close(S), E
            end;
        {error, _} = E ->
            E
    end.

address(Name) -> <<0, (list_to_binary(Name))/binary>>.

%% @doc Accept channels for ever (run in a process of its own): each one is
%% given a reader and announced to Owner as `{py_web_control, Channel, new}'.
-spec accept_loop(socket:socket(), pid()) -> no_return().
accept_loop(L, Owner) ->
    case socket:accept(L) of
        {ok, S} ->
            start_reader(S, Owner),
            Owner ! {py_web_control, S, new},
            accept_loop(L, Owner);
        {error, closed} ->
            exit(normal);
        {error, _} ->
            timer:sleep(100),
            accept_loop(L, Owner)
    end.

%% @doc Connect to the supervisor's control socket; the owner gets what
%% arrives.
-spec connect(string(), pid()) -> {ok, channel()} | {error, term()}.
connect(Name, Owner) ->
    case socket:open(local, stream, default) of
        {ok, S} ->
            case socket:connect(S, #{family => local, path => address(Name)}) of
                ok -> start_reader(S, Owner), {ok, S};
                {error, _} = E -> socket:close(S), E
            end;
        {error, _} = E ->
            E
    end.

%% @doc Send a term.
-spec send(channel(), term()) -> ok | {error, term()}.
send(S, Term) ->
    socket:send(S, frame(Term)).

%% @doc Send a term with file descriptors (they stay open here).
-spec send(channel(), term(), [non_neg_integer()]) -> ok | {error, term()}.
send(S, Term, []) ->
    send(S, Term);
send(S, Term, Fds) ->
    socket:sendmsg(S, #{iov => [frame(Term)],
                        ctrl => [#{level => socket, type => rights,
                                   data => << <<F:32/native>> || F <- Fds >>}]}).

-spec close(channel()) -> ok.
close(S) ->
    _ = socket:close(S),
    ok.

frame(Term) ->
    B = term_to_binary(Term),
    <<(byte_size(B)):32, B/binary>>.

start_reader(S, Owner) ->
    spawn_link(fun() -> read(S, Owner, <<>>, []) end).

read(S, Owner, Buf, Fds) ->
    case socket:recvmsg(S, 0, ?MAX_FDS * 4 + 64, [], infinity) of
        {ok, #{iov := Data} = Msg} ->
            New = [F || #{level := socket, type := rights, data := D} <- maps:get(ctrl, Msg, []),
                        <<F:32/native>> <= D],
            frames(S, Owner, iolist_to_binary([Buf | Data]), Fds ++ New);
        {error, _} ->
            Owner ! {py_web_control, S, closed},
            exit(normal)
    end.

frames(S, Owner, <<Len:32, B:Len/binary, Rest/binary>>, Fds) ->
    Owner ! {py_web_control, S, {term, binary_to_term(B, [safe]), Fds}},
    frames(S, Owner, Rest, []);
frames(S, Owner, Buf, Fds) ->
    read(S, Owner, Buf, Fds).
