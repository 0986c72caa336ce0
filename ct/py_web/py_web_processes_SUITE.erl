%% py_web over the processes mode with two worker processes (whatever ERLANG_PYTHON_MODE
%% says): a request that crashes its worker process gets 502, a response already started
%% when its process dies is closed without its last chunk, and every other request,
%% before, during and after, is served; bin/pyweb --mode processes --workers 2 serves
%% Flask, Django, Starlette and FastAPI apps.
%%
%% Apps: py_web_processes_SUITE_data/pw_proc_apps.py and the e2e suite's apps.
-module(py_web_processes_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-compile(nowarn_missing_spec).

-export([all/0, init_per_suite/1, end_per_suite/1, end_per_testcase/2]).
-export([segfault_is_502/1, started_response_closed/1, cli_frameworks/1]).

-define(TC, py_web_tc).

all() ->
    [segfault_is_502, started_response_closed, cli_frameworks].

init_per_suite(Config) ->
    case py_web_ct:python_exe() of
        false ->
            {skip, "VIRTUAL_ENV is not set: the suite needs the test venv (Flask, Starlette...)"};
        _ ->
            _ = application:load(erlang_python),
            ok = application:set_env(erlang_python, mode, processes),
            ok = py_web_ct:start_python([?config(data_dir, Config)]),
            ok = application:stop(erlang_python),
            ok = application:set_env(erlang_python, workers, 2),
            {ok, _} = application:ensure_all_started(erlang_python),
            ok = py_web_ct:quiet(),
            {ok, _} = application:ensure_all_started(inets),
            Config
    end.

end_per_suite(_Config) ->
    _ = application:stop(erlang_python),
    ok = application:unset_env(erlang_python, mode),
    ok = application:set_env(erlang_python, workers, 4),
    ok = application:set_env(erlang_python, python_path, []).

end_per_testcase(_, _Config) ->
    _ = [py_web:stop(P) || {{py_web, _}, P, _, _} <- supervisor:which_children(py_web_sup),
                           is_pid(P)],
    ok.

%% 502 for the request whose worker process segfaults; keep-alive requests on another
%% connection before and after, and concurrent ones, get their 200.
segfault_is_502(_Config) ->
    {ok, Pid} = py_web:start(#{app => {<<"pw_proc_apps">>, <<"starlette_app">>},
                               interface => asgi, port => 0}),
    Port = py_web:port(Pid),
    Other = ?TC:connect(Port),
    {ok, 200, _, <<"Hello, World!">>} = ?TC:get(Other, "/"),
    Self = self(),
    %% A 502 closes its connection: one connection per request.
    Busy = [spawn_link(fun() ->
                               Self ! {busy, [?TC:get(?TC:connect(Port), "/") || _ <- lists:seq(1, 50)]}
                       end) || _ <- lists:seq(1, 4)],
    S = ?TC:connect(Port),
    ?assertMatch({ok, 502, _, _}, ?TC:get(S, "/segv")),
    Results = lists:append([receive {busy, R} -> R after 30000 -> ct:fail(busy) end || _ <- Busy]),
    %% A request in flight on the crashed process fails with it (502); every other is served.
    ?assertEqual([], [R || R <- Results, not ok_or_502(R)]),
    ct:comment("200 concurrent requests: ~b answered 200, ~b 502 (in flight on the crashed "
               "process)", [length([R || {ok, 200, _, _} = R <- Results]),
                            length([R || {ok, 502, _, _} = R <- Results])]),
    {ok, 200, _, <<"Hello, World!">>} = ?TC:get(Other, "/"),
    wait_restarted(1),
    ?assertEqual([{ok, 200}], lists:usort([{ok, C} || _ <- lists:seq(1, 20),
                                                      {ok, C, _, _} <- [?TC:get(Other, "/")]])).

ok_or_502({ok, 200, _, <<"Hello, World!">>}) -> true;
ok_or_502({ok, 502, _, _}) -> true;
ok_or_502(_) -> false.

%% The process dies after the response started: the client sees the connection closed
%% before the last chunk (never a complete-looking response).
started_response_closed(_Config) ->
    #{restarts := R0} = py:info(),
    {ok, Pid} = py_web:start(#{app => {<<"pw_proc_apps">>, <<"starlette_app">>},
                               interface => asgi, port => 0}),
    S = ?TC:connect(py_web:port(Pid)),
    ?TC:send(S, ?TC:req("GET", "/stream-segv", [], <<>>)),
    ?assertEqual({error, closed}, ?TC:recv(S)),
    wait_restarted(R0 + 1),
    S2 = ?TC:connect(py_web:port(Pid)),
    {ok, 200, _, <<"Hello, World!">>} = ?TC:get(S2, "/").

%% bin/pyweb --mode processes --workers 2 serves each framework from two processes; a
%% segfault (Flask, Starlette) is that request's 502 and the server serves on.
cli_frameworks(Config) ->
    Data = ?config(data_dir, Config),
    E2e = filename:join(filename:dirname(filename:dirname(Data)), "py_web_e2e_SUITE_data"),
    Apps = [{"pw_proc_apps:flask_app", true}, {"pw_proc_apps:starlette_app", true},
            {"e2e_django:application", false}, {"e2e_fastapi:app", false}],
    [cli_serve(App, Segv, Data, E2e) || {App, Segv} <- Apps].

cli_serve(App, Segv, Data, E2e) ->
    Port = py_web_os_proc:free_port(),
    P = open_port({spawn_executable, py_web_os_proc:pyweb()},
                  [{args, [App, "--mode", "processes", "--workers", "2",
                           "--port", integer_to_list(Port), "--app-dir", Data, "--app-dir", E2e]},
                   exit_status, stderr_to_stdout, binary]),
    {os_pid, OsPid} = erlang:port_info(P, os_pid),
    Url = "http://127.0.0.1:" ++ integer_to_list(Port),
    ok = py_web_os_proc:wait_up(Url ++ "/", P, 300),
    Get = fun(Path) ->
                  {ok, {{_, Code, _}, _, Body}} =
                      httpc:request(get, {Url ++ Path, []}, [], [{body_format, binary}]),
                  {Code, Body}
          end,
    ?assertEqual({App, {200, <<"Hello, World!">>}}, {App, Get("/")}),
    case Segv of
        true ->
            ?assertMatch({502, _}, Get("/segv")),
            ?assertEqual([{200, <<"Hello, World!">>}], lists:usort([Get("/") || _ <- lists:seq(1, 10)]));
        false ->
            ok
    end,
    _ = os:cmd("kill -TERM " ++ integer_to_list(OsPid)),
    ?assertMatch({App, 0}, {App, element(1, py_web_os_proc:collect(P))}).

wait_restarted(N) ->
    wait_until(fun() ->
                       #{restarts := R, os_pids := Pids} = py:info(),
                       R >= N andalso lists:all(fun is_integer/1, Pids)
               end, 1000).

wait_until(_F, 0) -> ct:fail(condition_never_true);
wait_until(F, N) ->
    case F() of
        true -> ok;
        false -> timer:sleep(10), wait_until(F, N - 1)
    end.
