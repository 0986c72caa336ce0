%% @doc Micro-benchmark of request-head parsing: the strict py_web_h1_request:parse/2
%% against the VM's own lenient parser, erlang:decode_packet/3 called line by line to the
%% end of the head with no check of what it returns (a lower bound for any parser built
%% on it; the server's parser before issue 18 was that plus its checks, and measured
%% 0.81 / 0.60 / 0.91 of the time of it on these heads, see notes/issue-18-parser.md).
%% Same bytes, one process, paired: each run times a slice of one and a slice of the
%% other back to back (the order alternating), so that each ratio compares two
%% measurements a fraction of a second apart on this noisy machine.
%%
%%   make bench-h1            (RUNS=15 ITER=20000 by default)
%%
%% or by hand, after `rebar3 compile':
%%   erlc -o /tmp bench/h1_parse.erl && \
%%   erl -noshell -pa _build/default/lib/*/ebin -pa /tmp -eval 'h1_parse:main(["15", "20000"])'
%%
%% Prints, per head: ns per parse for each (median of the runs, min-max), and the
%% median of the per-run ratios strict/decode_packet. Nothing here is a test: it
%% asserts only that both read each head to its end before timing it.
-module(h1_parse).

-export([main/1, heads/0]).

-spec main([string()]) -> no_return().
main([RunsStr, IterStr]) ->
    Runs = list_to_integer(RunsStr),
    Iter = list_to_integer(IterStr),
    Limits = #{max_request_line => py_web_opts:default(max_request_line),
               max_header_size => py_web_opts:default(max_header_size),
               max_headers => py_web_opts:default(max_headers)},
    io:format("OTP ~s, ~p runs x ~p parses per parser and head~n",
              [erlang:system_info(otp_release), Runs, Iter]),
    io:format("~-10s ~6s ~26s ~22s ~14s~n",
              ["head", "bytes", "decode_packet ns (min-max)", "strict ns (min-max)",
               "strict/dp"]),
    [bench(Name, Head, Limits, Runs, Iter) || {Name, Head} <- heads()],
    halt(0).

bench(Name, Head, Limits, Runs, Iter) ->
    check(Head, Limits),
    Old = fun() -> decode_packet(Head) end,
    New = fun() -> py_web_h1_request:parse(Head, Limits) end,
    _ = time(Old, Iter), _ = time(New, Iter),
    Pairs = [case Run rem 2 of
                 0 -> {time(Old, Iter), time(New, Iter)};
                 1 -> N = time(New, Iter), {time(Old, Iter), N}
             end || Run <- lists:seq(1, Runs)],
    {Os, Ns} = lists:unzip(Pairs),
    Ratios = [N / O || {O, N} <- Pairs],
    io:format("~-10s ~6b ~26s ~22s ~14s~n",
              [Name, byte_size(Head), range(Os), range(Ns),
               io_lib:format("~.3f", [median(Ratios)])]).

%% ns per call of F, over Iter calls.
time(F, Iter) ->
    T0 = erlang:monotonic_time(nanosecond),
    loop(F, Iter),
    (erlang:monotonic_time(nanosecond) - T0) / Iter.

loop(_, 0) -> ok;
loop(F, N) -> _ = F(), loop(F, N - 1).

range(Xs) ->
    io_lib:format("~b (~b-~b)", [round(median(Xs)), round(lists:min(Xs)),
                                 round(lists:max(Xs))]).

median(Xs) ->
    S = lists:sort(Xs),
    L = length(S),
    case L rem 2 of
        1 -> lists:nth(L div 2 + 1, S);
        0 -> (lists:nth(L div 2, S) + lists:nth(L div 2 + 1, S)) / 2
    end.

%% The request line and every field line, as decode_packet gives them.
decode_packet(Head) ->
    {ok, {http_request, _, _, _}, Rest} = erlang:decode_packet(http_bin, Head, []),
    fields(Rest).

fields(Buf) ->
    case erlang:decode_packet(httph_bin, Buf, []) of
        {ok, {http_header, _, _, _, _}, Rest} -> fields(Rest);
        {ok, http_eoh, Rest} -> Rest
    end.

%% Both read the head to its end.
check(Head, Limits) ->
    Rest = decode_packet(Head),
    {ok, _, Rest} = py_web_h1_request:parse(Head, Limits),
    ok.

-spec heads() -> [{string(), binary()}].
heads() ->
    [{"hello", <<"GET / HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n\r\n">>},
     %% Chrome 120 navigating to a page on a local server: 14 fields.
     {"browser", <<"GET /articles/2024/http-parsing?page=2&sort=recent HTTP/1.1\r\n"
                   "Host: localhost:8000\r\n"
                   "Connection: keep-alive\r\n"
                   "Cache-Control: max-age=0\r\n"
                   "sec-ch-ua: \"Not_A Brand\";v=\"8\", \"Chromium\";v=\"120\", \"Google Chrome\";v=\"120\"\r\n"
                   "sec-ch-ua-mobile: ?0\r\n"
                   "sec-ch-ua-platform: \"Linux\"\r\n"
                   "Upgrade-Insecure-Requests: 1\r\n"
                   "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36\r\n"
                   "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7\r\n"
                   "Sec-Fetch-Site: same-origin\r\n"
                   "Sec-Fetch-Mode: navigate\r\n"
                   "Sec-Fetch-User: ?1\r\n"
                   "Sec-Fetch-Dest: document\r\n"
                   "Referer: http://localhost:8000/articles/2024\r\n"
                   "Accept-Encoding: gzip, deflate, br\r\n"
                   "Accept-Language: en-US,en;q=0.9,fr;q=0.8\r\n"
                   "Cookie: sessionid=8f3a2c1e9b7d4f60a5e2c3b1d9f8e7a6; csrftoken=Zx9yW8vU7tS6rQ5pO4nM3lK2jI1hG0fE\r\n"
                   "\r\n">>},
     %% httpx posting JSON.
     {"post_json", <<"POST /api/items HTTP/1.1\r\n"
                     "Host: 127.0.0.1:8000\r\n"
                     "Accept: */*\r\n"
                     "Accept-Encoding: gzip, deflate\r\n"
                     "Connection: keep-alive\r\n"
                     "User-Agent: python-httpx/0.27.0\r\n"
                     "Content-Length: 27\r\n"
                     "Content-Type: application/json\r\n"
                     "\r\n"
                     "{\"name\": \"x\", \"count\": 12}\n">>}].
