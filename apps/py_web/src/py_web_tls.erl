%% @doc The server's TLS options from py_web's (`certfile', `keyfile',
%% `keyfile_password', `cacertfile', `verify', `ciphers', and `ssl' for any
%% other ssl server option), with the files read once at start: a certificate or key
%% that cannot be read fails the start with the file and the reason, not the
%% first handshake.
-module(py_web_tls).

-export([options/1]).

-define(KEY_TYPES, ['RSAPrivateKey', 'DSAPrivateKey', 'ECPrivateKey', 'PrivateKeyInfo',
                    'EncryptedPrivateKeyInfo']).

%% @doc `{ok, []}' without TLS. Errors: `{error, {tls, Which, File, Why}}',
%% Which `certfile | keyfile | cacertfile', Why a POSIX error atom (`enoent',
%% `eacces'...), `no_certificate' or `no_private_key' (not PEM, or the PEM
%% holds no such entry); `{error, {tls, verify, Value}}'.
-spec options(map()) -> {ok, [ssl:tls_server_option()]} | {error, {tls, atom(), term()}
                                                             | {tls, atom(), term(), term()}}.
options(O) ->
    Cert = maps:get(certfile, O, undefined),
    Key = maps:get(keyfile, O, undefined),
    Ca = maps:get(cacertfile, O, undefined),
    Extra = maps:get(ssl, O, []),
    try
        Files = case Cert of
                    undefined when Key =:= undefined -> [];
                    undefined -> throw({tls, certfile, undefined, no_certificate});
                    _ ->
                        check(certfile, Cert, ['Certificate']),
                        KeyIn = case Key of undefined -> Cert; _ -> Key end,
                        check(keyfile, KeyIn, ?KEY_TYPES),
                        [{certfile, Cert}, {keyfile, KeyIn}]
                end,
        CaOpts = case Ca of
                     undefined -> [];
                     _ -> check(cacertfile, Ca, ['Certificate']), [{cacertfile, Ca}]
                 end,
        Password = case maps:get(keyfile_password, O, undefined) of
                       undefined -> [];
                       P -> [{password, to_list(P)}]
                   end,
        Verify = verify(maps:get(verify, O, none)),
        Ciphers = case maps:get(ciphers, O, undefined) of
                      undefined -> [];
                      Spec -> ciphers(Spec)
                  end,
        case Files ++ CaOpts ++ Password ++ Ciphers ++ Extra of
            [] -> {ok, []};
            Opts -> {ok, Opts ++ Verify}
        end
    catch
        throw:E -> {error, E}
    end.

check(Which, File, Types) ->
    case file:read_file(File) of
        {ok, Pem} ->
            Entries = try public_key:pem_decode(Pem) catch _:_ -> [] end,
            case [T || {T, _, _} <- Entries, lists:member(T, Types)] of
                [_ | _] -> ok;
                [] when Which =:= keyfile -> throw({tls, Which, File, no_private_key});
                [] -> throw({tls, Which, File, no_certificate})
            end;
        {error, Why} ->
            throw({tls, Which, File, Why})
    end.

%% Client certificates: none (default), optional (asked for, checked when
%% given), required.
verify(none) -> [];
verify(optional) -> [{verify, verify_peer}, {fail_if_no_peer_cert, false}];
verify(required) -> [{verify, verify_peer}, {fail_if_no_peer_cert, true}];
verify(V) -> throw({tls, verify, V}).

%% `ciphers' (--ssl-ciphers): OpenSSL names of TLS 1.2 suites separated by
%% colons, as Python's SSLContext.set_ciphers takes them; TLS 1.3 suites
%% stay OTP's (as OpenSSL configures those apart). Words that name no suite
%% (OpenSSL's HIGH, uvicorn's default TLSv1) are skipped; with no suite
%% named at all, OTP's defaults.
ciphers(Spec) ->
    V12 = ssl:cipher_suites(all, 'tlsv1.2'),
    Named = [S || N <- string:split(to_list(Spec), ":", all),
                  S <- [suite(string:trim(N))], lists:member(S, V12)],
    case Named of
        [] -> [];
        _ -> [{ciphers, [S || S = #{key_exchange := any} <- ssl:cipher_suites(default, 'tlsv1.3')]
                        ++ Named}]
    end.

suite(Name) ->
    try ssl:str_to_suite(Name) of
        #{} = S -> S;
        _ -> none
    catch
        _:_ -> none
    end.

to_list(B) when is_binary(B) -> binary_to_list(B);
to_list(L) -> L.
