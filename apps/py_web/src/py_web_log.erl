%% @doc The log events py_web makes about an exchange, the same for the
%% server and the Cowboy and Elli handlers. App failures (a Python
%% exception, a response that breaks the protocol, no response in time)
%% carry the metadata `#{py_web => app}'; server events `#{py_web =>
%% server}'; access lines `#{py_web => access}'. No logger domain: OTP's
%% default handler drops events of domains outside `[otp]'.
-module(py_web_log).

-export([app_error/3]).

%% @doc The app failed on the request `Method Path'. A Python exception is
%% logged with its traceback; a timeout as a warning.
-spec app_error(binary(), binary(), term()) -> ok.
app_error(M, P, {python, Type, Msg, Tb}) ->
    logger:error("py_web: ~s ~s: ~ts: ~ts~n~ts", [M, P, Type, Msg, [[L, $\n] || L <- tb(Tb)]],
                 #{py_web => app});
app_error(M, P, request_timeout) ->
    logger:warning("py_web: ~s ~s: no response within the request timeout", [M, P],
                   #{py_web => app});
app_error(M, P, Reason) ->
    logger:error("py_web: ~s ~s: app error: ~0p", [M, P, Reason], #{py_web => app}).

tb(Tb) when is_list(Tb) -> [L || L <- Tb, is_binary(L) orelse is_list(L)];
tb(Tb) when is_binary(Tb) -> [Tb];
tb(_) -> [].
