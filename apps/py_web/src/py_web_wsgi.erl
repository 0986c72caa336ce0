%% @doc The PEP 3333 environ of a request, as py_wsgi takes it (binary
%% keys; py_wsgi gives the app each value as a latin-1 str).
-module(py_web_wsgi).

-include("py_web.hrl").

-export([environ/2]).

%% @doc The environ without wsgi.input (the body goes through the stream).
%% PATH_INFO is the path percent-decoded, here and only here (py_wsgi
%% passes it on as it is): the bytes of the decoded path, which the app gets
%% as latin-1, as gunicorn gives them. With a `root_path', SCRIPT_NAME is
%% the root path and PATH_INFO what follows it (a request path that does not
%% start with it is all PATH_INFO; see py_web_asgi: the same split).
%% Over a Unix domain socket REMOTE_ADDR is empty and SERVER_NAME and
%% SERVER_PORT come from the Host header (gunicorn's rule).
%% `wsgi.multiprocess' is true when Python runs in several processes.
%% Repeated headers are joined with ", "; header names containing "_" are
%% dropped (they would be indistinguishable from "-" ones: header
%% spoofing, as gunicorn does). A chunked request sets
%% `wsgi.input_terminated' (the extension gunicorn, mod_wsgi and
%% Werkzeug agree on: read wsgi.input to its end); the embedded server,
%% which reads a WSGI body whole, also replaces its Transfer-Encoding with
%% the decoded body's Content-Length (py_web_conn), hence CONTENT_LENGTH.
-spec environ(#req{}, #cfg{}) -> map().
environ(Req = #req{chunked = true}, Cfg) ->
    (environ(Req#req{chunked = false}, Cfg))#{<<"wsgi.input_terminated">> => true};
environ(#req{method = M, version = V, raw_path = Raw, qs = Qs, headers = Hs,
             peer = Peer, local = Local, scheme = Scheme},
        #cfg{root_path = Root, server_software = Software, multiprocess = Multi}) ->
    PathInfo = case Root of
                   <<>> -> Raw;
                   _ -> element(2, py_web_http:root_split(Raw, Root))
               end,
    E = #{<<"REQUEST_METHOD">> => M,
          <<"SCRIPT_NAME">> => Root,
          <<"PATH_INFO">> => py_web_http:percent_decode(PathInfo),
          <<"QUERY_STRING">> => Qs,
          <<"SERVER_PROTOCOL">> => case V of
                                       {1, 1} -> <<"HTTP/1.1">>;
                                       {1, 0} -> <<"HTTP/1.0">>
                                   end,
          <<"SERVER_SOFTWARE">> => Software,
          <<"wsgi.url_scheme">> => Scheme,
          <<"wsgi.multiprocess">> => Multi},
    headers(Hs, server(Local, Hs, Scheme, remote(Peer, E))).

remote(undefined, E) ->
    E#{<<"REMOTE_ADDR">> => <<>>};
remote({Host, Port}, E) ->
    E#{<<"REMOTE_ADDR">> => Host, <<"REMOTE_PORT">> => integer_to_binary(Port)}.

server({Host, Port}, _, _, E) ->
    E#{<<"SERVER_NAME">> => Host, <<"SERVER_PORT">> => integer_to_binary(Port)};
server(undefined, Hs, Scheme, E) ->
    {Name, Port} = case lists:keyfind(<<"host">>, 1, Hs) of
                       false -> {<<>>, <<>>};
                       {_, H} -> host_port(H, Scheme)
                   end,
    E#{<<"SERVER_NAME">> => Name, <<"SERVER_PORT">> => Port}.

host_port(<<"[", _/binary>> = H, Scheme) ->
    case binary:split(H, <<"]:">>) of
        [A, P] -> {<<A/binary, "]">>, P};
        [_] -> {H, default_port(Scheme)}
    end;
host_port(H, Scheme) ->
    case binary:split(H, <<":">>) of
        [A, P] -> {A, P};
        _ -> {H, default_port(Scheme)}
    end.

default_port(<<"https">>) -> <<"443">>;
default_port(_) -> <<"80">>.

headers([{Name, Value} | T], E) ->
    case key(Name) of
        skip -> headers(T, E);
        K ->
            case E of
                #{K := Old} -> headers(T, E#{K := <<Old/binary, ", ", Value/binary>>});
                _ -> headers(T, E#{K => Value})
            end
    end;
headers([], E) ->
    E.

%% The environ key of a lower-cased header name (`skip' for names with an
%% underscore).
key(<<"host">>) -> <<"HTTP_HOST">>;
key(<<"user-agent">>) -> <<"HTTP_USER_AGENT">>;
key(<<"accept">>) -> <<"HTTP_ACCEPT">>;
key(<<"accept-encoding">>) -> <<"HTTP_ACCEPT_ENCODING">>;
key(<<"accept-language">>) -> <<"HTTP_ACCEPT_LANGUAGE">>;
key(<<"connection">>) -> <<"HTTP_CONNECTION">>;
key(<<"cookie">>) -> <<"HTTP_COOKIE">>;
key(<<"authorization">>) -> <<"HTTP_AUTHORIZATION">>;
key(<<"content-type">>) -> <<"CONTENT_TYPE">>;
key(<<"content-length">>) -> <<"CONTENT_LENGTH">>;
key(Name) ->
    case binary:match(Name, <<"_">>) of
        nomatch -> <<"HTTP_", << <<(up(C))>> || <<C>> <= Name >>/binary>>;
        _ -> skip
    end.

up($-) -> $_;
up(C) when C >= $a, C =< $z -> C - 32;
up(C) -> C.
