"""Two bin/pyweb servers against each other on `make bench` workloads, in one run.

    python bench/pyweb_ab.py A/bin/pyweb B/bin/pyweb [--runs 10] [--secs 4] [--instances 1]
        [--workloads hello_asgi,hello_wsgi,ws_echo,ws_echo_c] [--interface wsgi]
        [--env-a K=V]... [--env-b K=V]... [--arg-a ARG]... [--arg-b ARG]...

Serves each workload's app (bench/run.py's WORKLOADS: its app, connections and wrk script;
--interface serves the same workload's other-interface app, e.g. post_1mb with
bench_apps:echo_wsgi) with each bin/pyweb (the same options: --no-access-log, the default
mode and workers, the current VIRTUAL_ENV; --env-a/--env-b add to one side's environment,
--arg-a/--arg-b to its command line), warms both up, then runs wrk -t2 against them in
turn (ws_echo: the ws phase's echo, bench/ws_load.py with 50 connections sending 1 KiB
text, run by the bench venv's Python, BENCH_VENV as for bench/run.py; ws_echo_c: the same
echo from the ws phase's C client, bench/ws_echo_load.c), the order swapped
every round so that drift of the machine falls on both; --instances N spreads the runs
over N pairs of fresh servers, one pair after the other: on this 2-core machine two
servers of one build can differ for their whole life (hello WSGI, four servers of one
build, 4 interleaved rounds each: up to 1.06x apart in one run, 1.24x in the next).
Prints, per side, the median req/s (messages/s for the ws workloads), the median CPU time
per request of the server's process tree (utime + stime from /proc, across each run) and the
tree's peak RSS (sum of VmHWM, the largest over the pairs); and B/A as the ratio of the
medians and as the median of the per-round ratios. A and B may be the same bin/pyweb with
different environments (a flag of the server VM on and off through PYWEB_ERL_FLAGS), or a
clone of main (built with `make build`) and this tree.

Not a test: nothing asserts.  127.0.0.1 only, every load bounded in time.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import time

from cpu_split import tree_pids
from run import APPS, LUA, WORKLOADS, ws_echo as ws_echo_load

# The ws phase's echo (bench/run.py run_ws) as workloads: its app, and `ws` for the load
# (websockets' client, or the C client).
WS_ECHO = dict(name="ws_echo", app="bench_ws:app", iface="asgi", conns=50, ws="python")
WS_ECHO_C = {**WS_ECHO, "name": "ws_echo_c", "ws": "c"}

CLK_TCK = os.sysconf("SC_CLK_TCK")


def serve(pyweb: str, app: str, iface: str, env: dict[str, str],
          args: list[str]) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([pyweb, app, "--interface", iface, "--port", "0", "--app-dir",
                             str(APPS), "--no-access-log", *args],
                            env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    return proc, listening_port(proc.pid)


def listening_port(root: int) -> int:
    """The TCP port a process of root's tree listens on (bin/pyweb's supervisor)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            for port, pid in re.findall(r"127\.0\.0\.1:(\d+) .*?pid=(\d+)", line):
                if descends(int(pid), root):
                    return int(port)
        time.sleep(0.2)
    raise RuntimeError(f"no listening socket under process {root}")


def descends(pid: int, root: int) -> bool:
    while pid > 1:
        if pid == root:
            return True
        try:
            with open(f"/proc/{pid}/stat") as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            return False
    return False


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total / CLK_TCK


def peak_rss_mib(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                total += sum(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
        except OSError:
            pass
    return total / 1024


def wrk(port: int, conns: int, secs: int, lua: str | None) -> tuple[float, int]:
    script = ["-s", str(LUA / lua)] if lua else []
    out = subprocess.run(["wrk", "-t2", f"-c{conns}", f"-d{secs}s", *script,
                          f"http://127.0.0.1:{port}/"], capture_output=True, text=True).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    count = re.search(r"(\d+) requests in", out)
    if not rate or not count:
        raise RuntimeError(out)
    return float(rate.group(1)), int(count.group(1))


def load(wl: dict, port: int, secs: int) -> tuple[float, int]:
    """Runs the workload's load for `secs`: (requests or messages per second, count)."""
    if wl.get("ws"):
        res = ws_echo_load(wl["ws"], port, secs)
        return res["msgs"] / res["seconds"], res["msgs"]
    return wrk(port, wl["conns"], secs, wl.get("lua"))


def env_pairs(items: list[str]) -> dict[str, str]:
    return dict(item.split("=", 1) for item in items)


def app_for(wl: dict, iface: str | None) -> tuple[str, str]:
    """The workload's app, or its twin for the other interface (bench_apps' *_asgi/*_wsgi)."""
    if not iface or iface == wl["iface"]:
        return wl["app"], wl["iface"]
    return re.sub(r"_(asgi|wsgi)$", f"_{iface}", wl["app"]), iface


def measure(opts: argparse.Namespace, wl: dict, app: str, iface: str, rounds: int,
            rate: dict[str, list[float]], cpu: dict[str, list[float]],
            rss: dict[str, float]) -> None:
    """One pair of fresh servers, `rounds` interleaved wrk runs on each."""
    sides = {"A": (opts.a, env_pairs(opts.env_a), opts.arg_a),
             "B": (opts.b, env_pairs(opts.env_b), opts.arg_b)}
    servers = {k: serve(pyweb, app, iface, env, args)
               for k, (pyweb, env, args) in sides.items()}
    try:
        for _, port in servers.values():
            load(wl, port, 2)
        for i in range(rounds):
            for k in ("A", "B") if i % 2 == 0 else ("B", "A"):
                proc, port = servers[k]
                pids = tree_pids(proc.pid)
                before = cpu_seconds(pids)
                r, n = load(wl, port, opts.secs)
                rate[k].append(r)
                cpu[k].append((cpu_seconds(pids) - before) / n * 1e6)
        for k, (proc, _) in servers.items():
            rss[k] = max(rss[k], peak_rss_mib(tree_pids(proc.pid)))
    finally:
        for proc, _ in servers.values():
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)


def compare(opts: argparse.Namespace, wl: dict) -> None:
    app, iface = app_for(wl, opts.interface)
    rate: dict[str, list[float]] = {"A": [], "B": []}
    cpu: dict[str, list[float]] = {"A": [], "B": []}
    rss = {"A": 0.0, "B": 0.0}
    for i in range(opts.instances):
        rounds = opts.runs // opts.instances + (i < opts.runs % opts.instances)
        measure(opts, wl, app, iface, rounds, rate, cpu, rss)
    med = {k: (statistics.median(rate[k]), statistics.median(cpu[k])) for k in rate}
    paired = statistics.median(b / a for a, b in zip(rate["A"], rate["B"]))
    paired_cpu = statistics.median(b / a for a, b in zip(cpu["A"], cpu["B"]))
    print(f"{wl['name']} ({app}): "
          + "; ".join(f"{k} {med[k][0]:.0f} req/s, {med[k][1]:.1f} us CPU/req, "
                      f"peak RSS {rss[k]:.0f} MiB" for k in ("A", "B"))
          + f"; B/A req/s {med['B'][0] / med['A'][0]:.3f} (medians), {paired:.3f} (median of "
          f"{opts.runs} paired rounds on {opts.instances} pairs of servers), CPU/req "
          f"{paired_cpu:.3f} (paired)", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--secs", type=int, default=4)
    ap.add_argument("--instances", type=int, default=1)
    ap.add_argument("--workloads", default="hello_asgi,hello_wsgi")
    ap.add_argument("--interface", choices=["asgi", "wsgi"])
    ap.add_argument("--env-a", action="append", default=[], metavar="K=V")
    ap.add_argument("--env-b", action="append", default=[], metavar="K=V")
    ap.add_argument("--arg-a", action="append", default=[], metavar="ARG")
    ap.add_argument("--arg-b", action="append", default=[], metavar="ARG")
    opts = ap.parse_args()
    by_name = {wl["name"]: wl for wl in [*WORKLOADS, WS_ECHO, WS_ECHO_C]}
    for name in opts.workloads.split(","):
        compare(opts, by_name[name])


if __name__ == "__main__":
    sys.exit(main())
