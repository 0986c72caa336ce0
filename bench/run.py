#!/usr/bin/env python3
"""`make bench` driver: in-process bridge benchmark, end-to-end HTTP with wrk against the
peer servers, memory under load, then bench/results/YYYY-MM-DD.md and PNG charts.

Run through bench/bench.sh (it makes the venv, installs wrk and compiles inproc.erl):
    make bench            full run (the report states how long it took)
    make bench QUICK=1    short runs
Environment: QUICK=1; BENCH_ONLY=inproc,http,split,memory,modes,processes,hop,ws (a subset of
the phases; such a run is named after them and leaves latest.md, the last whole run);
BENCH_WORKLOADS=hello_asgi,... and BENCH_SERVERS=pyweb,uvicorn,... (subsets);
PYWEB (the bin/pyweb command, default bin/pyweb: its rows are skipped with a note when
missing).  Only 127.0.0.1 is loaded, every load is bounded in time.  Nothing here is a test.
"""

import datetime
import glob
import http.client
import importlib.metadata
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import cpu_split

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
WORK = BENCH / "work"
RESULTS = BENCH / "results"
APPS = BENCH / "apps"
LUA = BENCH / "lua"
VENV = Path(os.environ.get("BENCH_VENV", BENCH / ".venv"))

QUICK = os.environ.get("QUICK", "") not in ("", "0")
CFG = (dict(warm=1, run=1, runs=3, mem_n=40_000, mem_cap=3, mem_slice=1, inproc_ms=300, threads=2)
       if QUICK else
       dict(warm=2, run=5, runs=3, mem_n=1_000_000, mem_cap=50, mem_slice=5, inproc_ms=2000, threads=2))
PHASES = ["inproc", "http", "split", "memory", "modes", "processes", "hop", "ws"]
ONLY = set(filter(None, os.environ.get("BENCH_ONLY", ",".join(PHASES)).split(",")))
# A run of some phases only says so in its command and its files' names, and leaves
# bench/results/latest.md (the last full run) alone.
SUBSET = [p for p in PHASES if p in ONLY] if ONLY != set(PHASES) else []
COMMAND = ((f"BENCH_ONLY={','.join(SUBSET)} " if SUBSET else "")
           + "".join(f"{k}={os.environ[k]} " for k in ("BENCH_WORKLOADS", "BENCH_SERVERS")
                     if os.environ.get(k))
           + "make bench" + (" QUICK=1" if QUICK else ""))
PYWEB = shlex.split(os.environ.get("PYWEB", str(ROOT / "bin" / "pyweb")))

# ---- servers ---------------------------------------------------------------------------

ASGI_SERVERS = ["pyweb", "uvicorn", "granian", "hypercorn"]
WSGI_SERVERS = ["pyweb", "granian", "gunicorn-sync", "gunicorn-gthread"]
# The BEAM's floor (bench/floor.erl): pure-Erlang hello servers, no Python, same bytes.
FLOORS = ["floor-once", "floor-activeN", "floor-socket", "floor-strict"]
SERVER_NOTES = {
    "pyweb": "bin/pyweb, defaults (Python workers in mode auto: sub-interpreters on 3.12+, "
             "threads under one GIL before; one per CPU for an ASGI app, here "
             f"{len(os.sched_getaffinity(0))}, and 4 for a WSGI app; BEAM on "
             f"{len(os.sched_getaffinity(0))} schedulers)",
    "pyweb-MODE-wN": "bin/pyweb --mode MODE --workers N",
    "uvicorn-w2, granian-w2": "as below with --workers 2",
    "gunicorn-w2": "2 workers, -k sync",
    "uvicorn": "1 worker, --loop uvloop --http httptools --no-access-log",
    "granian": "1 worker, --http 1 --no-ws, --loop uvloop (ASGI); WSGI with its default blocking threads",
    "hypercorn": "1 worker, -k uvloop",
    "gunicorn-sync": "1 worker, -k sync (no keep-alive: one connection per request)",
    "gunicorn-gthread": "1 worker, -k gthread --threads 4",
    "floor-once, -activeN, -socket, -strict": "bench/floor.erl, the BEAM's floor: pure Erlang, "
        "no Python, the bytes bin/pyweb sends for the hello apps, started as bin/pyweb's server "
        "VM (erl -noinput with bin/pyweb-vm-flags); gen_tcp {active, once} and decode_packet, "
        "{active, 100}, the socket module (recv nowait), {active, once} and "
        "py_web_h1_request:parse/2",
}


def server_argv(server, app, iface, port):
    """The command line of `server` serving `app` ("module:callable").  `server` may end in
    `-wN` (N workers) and, for pyweb, name a mode: `pyweb-subinterpreters-w2`."""
    vbin = VENV / "bin"
    host = "127.0.0.1"
    m = re.fullmatch(r"(.*)-w(\d+)", server)
    if m:
        base, workers = m.group(1), m.group(2)
        if base.startswith("pyweb-"):
            return server_argv("pyweb", app, iface, port) + [
                "--mode", base[len("pyweb-"):], "--workers", workers]
        if base == "gunicorn":
            return [str(vbin / "gunicorn"), "-w", workers, "-k", "sync", "-b",
                    f"{host}:{port}", "--log-level", "warning", app]
        argv = server_argv(base, app, iface, port)
        i = argv.index("--workers") if "--workers" in argv else argv.index("-w")
        argv[i + 1] = workers
        return argv
    if server.startswith("floor-"):
        return floor_argv(server[len("floor-"):], port)
    if server in ("pyweb", "pyweb+erlang_asyncio"):
        return PYWEB + [app, "--interface", iface, "--host", host, "--port", str(port),
                        "--app-dir", str(APPS), "--log-level", "warning"]
    if server == "uvicorn":
        return [str(vbin / "uvicorn"), app, "--host", host, "--port", str(port),
                "--workers", "1", "--loop", "uvloop", "--http", "httptools",
                "--no-access-log", "--log-level", "warning"]
    if server == "granian":
        argv = [str(vbin / "granian"), "--interface", iface, "--workers", "1", "--http", "1",
                "--no-ws", "--host", host, "--port", str(port), "--log-level", "warning"]
        if iface == "asgi":
            argv += ["--loop", "uvloop"]
        return argv + [app]
    if server == "hypercorn":
        return [str(vbin / "hypercorn"), "-w", "1", "-k", "uvloop", "-b", f"{host}:{port}",
                "--log-level", "warning", app]
    if server.startswith("gunicorn"):
        argv = [str(vbin / "gunicorn"), "-w", "1", "-b", f"{host}:{port}",
                "--log-level", "warning"]
        argv += ["-k", "sync"] if server == "gunicorn-sync" else ["-k", "gthread", "--threads", "4"]
        return argv + [app]
    raise ValueError(server)


def floor_argv(variant, port):
    """bench/floor.erl as bin/pyweb starts its server VM: `erl -noinput` with
    bin/pyweb-vm-flags, default schedulers, PYWEB_ERL_FLAGS if set."""
    flags = subprocess.run([str(ROOT / "bin" / "pyweb-vm-flags")], capture_output=True,
                           text=True, check=True).stdout.split()
    argv = ["erl", "-noinput", *flags]
    for d in sorted(glob.glob(str(ROOT / "_build/default/lib/*/ebin"))):
        argv += ["-pa", d]
    return argv + ["-pa", str(WORK / "ebin")] + shlex.split(os.environ.get("PYWEB_ERL_FLAGS", "")) + [
        "-eval", f'floor:main(["{variant}", "{port}"])']


def floor_built():
    """Compiles bench/floor.erl (it uses py_web_date, py_web_opts, py_web_h1_request of the
    build); False when there is no build."""
    if not (ROOT / "_build/default/lib/py_web/ebin/py_web_date.beam").exists():
        return False
    (WORK / "ebin").mkdir(parents=True, exist_ok=True)
    subprocess.run(["erlc", "-o", str(WORK / "ebin"), str(BENCH / "floor.erl")], check=True)
    return True


def pyweb_available():
    exe = PYWEB[0]
    return shutil.which(exe) is not None or (os.path.isfile(exe) and os.access(exe, os.X_OK))


def server_env():
    env = dict(os.environ)
    env["VIRTUAL_ENV"] = str(VENV)
    env["PYTHONPATH"] = str(APPS)
    env["PATH"] = f"{VENV / 'bin'}:{env.get('PATH', '')}"
    env.pop("QUICK", None)
    return env


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One server process group, started alone and stopped (by its own pid) when done."""

    def __init__(self, server, app, iface, argv_fn=server_argv, env=None):
        self.name = server
        self.port = free_port()
        self.argv = argv_fn(server, app, iface, self.port)
        self.log = open(WORK / f"server-{server}.log", "ab")
        self.log.write(f"\n==== {' '.join(self.argv)}\n".encode())
        self.log.flush()
        self.proc = subprocess.Popen(self.argv, cwd=APPS, env=dict(server_env(), **(env or {})),
                                     stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, probe, timeout=60):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode} "
                                   f"(see bench/work/server-{self.name}.log)")
            try:
                probe(self.port)
                return
            except Exception as e:  # noqa: BLE001 - not up yet
                last = e
                time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready after {timeout}s: {last!r}")

    def rss_kib(self):
        return tree_rss_kib(self.proc.pid)

    def cpu_s(self):
        return tree_cpu_s(self.proc.pid)

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            except ProcessLookupError:
                pass
        # anything of its group left behind (a worker that ignored SIGTERM)
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.log.close()


def tree_rss_kib(root):
    """VmRSS summed over `root` and its descendants (gunicorn/granian workers, the beam)."""
    total = 0
    for pid in cpu_split.tree_pids(root):
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def tree_cpu_s(root):
    """CPU seconds (user + system, all threads) used so far by `root` and its descendants."""
    ticks = 0
    for pid in cpu_split.tree_pids(root):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


# ---- workloads -------------------------------------------------------------------------

def get_probe(path="/", expect_len=None, expect=None):
    def probe(port):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("GET", path)
        r = c.getresponse()
        body = r.read()
        c.close()
        if r.status != 200:
            raise RuntimeError(f"status {r.status}: {body[:200]!r}")
        if expect_len is not None and len(body) != expect_len:
            raise RuntimeError(f"body of {len(body)} bytes, expected {expect_len}")
        if expect is not None and expect not in body:
            raise RuntimeError(f"unexpected body {body[:200]!r}")
    return probe


def post_probe(port):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    data = os.urandom(100_000)
    c.request("POST", "/", body=data, headers={"Content-Type": "application/octet-stream"})
    r = c.getresponse()
    body = r.read()
    c.close()
    if r.status != 200 or body != data:
        raise RuntimeError(f"echo failed: status {r.status}, {len(body)} bytes")


HELLO = get_probe(expect=b"Hello, World!")
JSON = get_probe(expect=b'"Hello, World!"')

# name, title, interface, connections, app per server kind, probe, lua script or None
WORKLOADS = [
    dict(name="hello_asgi", title="hello ASGI, 50 connections", iface="asgi", conns=50,
         app="bench_apps:hello_asgi", probe=HELLO, servers=ASGI_SERVERS + FLOORS),
    dict(name="hello_wsgi", title="hello WSGI, 50 connections", iface="wsgi", conns=50,
         app="bench_apps:hello_wsgi", probe=HELLO, servers=WSGI_SERVERS + FLOORS),
    dict(name="starlette_json", title="Starlette JSON, 50 connections", iface="asgi", conns=50,
         app="bench_frameworks:starlette_app", probe=JSON, servers=ASGI_SERVERS),
    dict(name="flask_json", title="Flask JSON, 50 connections", iface="wsgi", conns=50,
         app="bench_frameworks:flask_app", probe=JSON, servers=WSGI_SERVERS),
    dict(name="big_64k", title="64 KiB response (ASGI), 50 connections", iface="asgi", conns=50,
         app="bench_apps:big_asgi", probe=get_probe(expect_len=65536), servers=ASGI_SERVERS),
    dict(name="post_1mb", title="1 MiB POST echoed (ASGI), 10 connections", iface="asgi",
         conns=10, app="bench_apps:echo_asgi", probe=post_probe, lua="post_1mb.lua",
         servers=ASGI_SERVERS),
    dict(name="sleep_10ms", title="ASGI awaiting a 10 ms sleep, 500 connections", iface="asgi",
         conns=500, app="bench_apps:sleep_asgi", probe=HELLO,
         servers=ASGI_SERVERS + ["pyweb+erlang_asyncio"],
         app_for={"pyweb+erlang_asyncio": "bench_erl_sleep:sleep_erl_asgi"}),
    dict(name="c1000", title="hello ASGI, 1,000 keep-alive connections", iface="asgi",
         conns=1000, app="bench_apps:hello_asgi", probe=HELLO, servers=ASGI_SERVERS),
]


# The execution modes (phase "modes"): a CPU-bound app at 1 and 2 workers in gil,
# subinterpreters and processes modes against the peers with 2 workers (processes), and
# the hello apps per mode.  The subinterpreters rows need Python 3.12+.
PYWEB_MODES = ["pyweb-gil-w1", "pyweb-gil-w2", "pyweb-subinterpreters-w1",
               "pyweb-subinterpreters-w2", "pyweb-processes-w1", "pyweb-processes-w2"]
CPU = get_probe()
MODE_WORKLOADS = [
    dict(name="cpu_asgi", title="CPU-bound ASGI (about 2 ms of Python per request), 20 connections",
         iface="asgi", conns=20, app="bench_apps:cpu_asgi", probe=CPU,
         servers=PYWEB_MODES + ["uvicorn-w2", "granian-w2"]),
    dict(name="cpu_wsgi", title="CPU-bound WSGI (about 2 ms of Python per request), 20 connections",
         iface="wsgi", conns=20, app="bench_apps:cpu_wsgi", probe=CPU,
         servers=PYWEB_MODES + ["granian-w2", "gunicorn-w2"]),
    dict(name="hello_asgi_modes", title="hello ASGI per mode, 50 connections", iface="asgi",
         conns=50, app="bench_apps:hello_asgi", probe=HELLO, servers=PYWEB_MODES),
    dict(name="hello_wsgi_modes", title="hello WSGI per mode, 50 connections", iface="wsgi",
         conns=50, app="bench_apps:hello_wsgi", probe=HELLO, servers=PYWEB_MODES),
]

# The processes phase: FastAPI (pydantic-core refuses sub-interpreters, so on more than one
# core it runs in processes) against the peers with 2 workers; then the paired ratios of
# the issue's targets (run_pairs) and the port hop in-process (run_hop).
FASTAPI = get_probe(expect=b'{"message":"Hello, World!"}')
PROCESS_WORKLOADS = [
    dict(name="fastapi_json", title="FastAPI JSON, 50 connections, 2 workers each",
         iface="asgi", conns=50, app="bench_processes:fastapi_app", probe=FASTAPI,
         servers=["pyweb-processes-w2", "uvicorn-w2", "granian-w2"]),
]


def has_subinterpreters():
    """The bench's Python (the NIF's, and this driver's) has sub-interpreters with their
    own GIL."""
    return sys.version_info >= (3, 12)


def wrk(port, conns, seconds, lua=None, extra_lua="", path="/"):
    """One wrk run; returns its summary dict (req/s, p50/p99 in ms, errors)."""
    script = (LUA / lua).read_text() if lua else ""
    script += extra_lua + (LUA / "report.lua").read_text()
    sfile = WORK / f"wrk-{os.getpid()}.lua"
    sfile.write_text(script)
    argv = ["wrk", f"-t{CFG['threads']}", f"-c{conns}", f"-d{seconds}s", "--timeout", "5s",
            "-s", str(sfile), f"http://127.0.0.1:{port}{path}"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    m = re.search(r"^BENCHJSON (.*)$", out.stdout, re.M)
    if not m:
        raise RuntimeError(f"wrk failed: {out.stdout[-500:]} {out.stderr[-500:]}")
    s = json.loads(m.group(1))
    secs = s["duration_us"] / 1e6
    errors = s["connect"] + s["read"] + s["write"] + s["status"] + s["timeout"]
    return dict(rps=s["requests"] / secs, requests=s["requests"], p50=s["p50_us"] / 1000,
                p99=s["p99_us"] / 1000, errors=errors, err_detail={k: s[k] for k in (
                    "connect", "read", "write", "status", "timeout")},
                mbps=s["bytes"] / secs / 1e6)


def run_http(results, notes, workloads=WORKLOADS, key="http"):
    wl_filter = set(filter(None, os.environ.get("BENCH_WORKLOADS", "").split(",")))
    sv_filter = set(filter(None, os.environ.get("BENCH_SERVERS", "").split(",")))
    have_pyweb = pyweb_available()
    if not have_pyweb:
        notes.append(f"`{' '.join(PYWEB)}` is missing: the pyweb rows were skipped "
                     "(run `make build` and re-run).")
    have_floor = floor_built()
    out = results.setdefault(key, {})
    for wl in workloads:
        if wl_filter and wl["name"] not in wl_filter:
            continue
        rows = out.setdefault(wl["name"], {})
        for server in wl["servers"]:
            base = server.split("+")[0]
            if sv_filter and server not in sv_filter and base not in sv_filter:
                continue
            if base.startswith("pyweb") and not have_pyweb:
                rows[server] = dict(skipped="bin/pyweb missing")
                continue
            if base.startswith("floor") and not have_floor:
                rows[server] = dict(skipped="no build (make build)")
                continue
            if "subinterpreters" in server and not has_subinterpreters():
                rows[server] = dict(skipped=f"Python {platform.python_version()}: no "
                                            "sub-interpreters (3.12+)")
                continue
            app = wl.get("app_for", {}).get(server, wl["app"])
            label = f"{wl['name']:15s} {server:22s}"
            srv = None
            try:
                srv = Server(server, app, wl["iface"])
                srv.wait_ready(wl["probe"])
                wrk(srv.port, wl["conns"], CFG["warm"], wl.get("lua"))
                runs = [wrk(srv.port, wl["conns"], CFG["run"], wl.get("lua"))
                        for _ in range(CFG["runs"])]
                rows[server] = summarize(runs)
                r = rows[server]
                print(f"{stamp()} {label} {r['rps']:9.0f} req/s ({r['rps_min']:.0f}-{r['rps_max']:.0f})"
                      f"  p50 {r['p50']:7.2f} ms  p99 {r['p99']:7.2f} ms  errors {r['errors']}",
                      flush=True)
            except Exception as e:  # noqa: BLE001 - report and go on with the others
                rows[server] = dict(failed=str(e)[:300])
                print(f"{stamp()} {label} FAILED: {e}", flush=True)
            finally:
                if srv:
                    srv.stop()


T_START = time.monotonic()


# ---- CPU split -------------------------------------------------------------------------

# The split phase: per workload, the servers whose CPU per request is split by thread
# (bench/cpu_split.py): bin/pyweb and the peers everywhere; on the hello apps also
# bin/pyweb's plainest path (one worker, one GIL) and the floors, which serve the same
# bytes for both apps and so run once, under hello_asgi.
SPLIT = {"hello_asgi": ["pyweb", "pyweb-gil-w1"] + FLOORS + ["uvicorn", "granian"],
         "hello_wsgi": ["pyweb", "pyweb-gil-w1", "granian"]}
SPLIT_PEERS = {"asgi": ["pyweb", "uvicorn", "granian"], "wsgi": ["pyweb", "granian"]}
BEAM_SUM = ["scheduler", "poller", "aux", "dirty", "vm-other"]


def run_split(results, notes):
    """Each server alone, warmed up, then CFG["runs"] wrk runs of CFG["run"] s, each one a
    window of /proc accounting of every thread of the server's tree (cpu_split.Window);
    µs of CPU per request per thread class over all the runs, and what wrk and the rest
    of the machine used meanwhile.  When perf can be used, the BEAM servers (started with
    +JPperf map, so that the JIT's code is named) get one more run under `perf record`,
    whose samples share out each thread class's time (split_perf)."""
    wl_filter = set(filter(None, os.environ.get("BENCH_WORKLOADS", "").split(",")))
    sv_filter = set(filter(None, os.environ.get("BENCH_SERVERS", "").split(",")))
    have = dict(pyweb=pyweb_available(), floor=floor_built())
    use_perf = cpu_split.perf_usable()
    if not use_perf:
        notes.append("CPU split: perf cannot be used here (not root, perf_event_paranoid > 1 "
                     "or no perf): the split by code was skipped.")
    out = results.setdefault("split", {})
    for wl in WORKLOADS:
        if wl_filter and wl["name"] not in wl_filter:
            continue
        rows = out.setdefault(wl["name"], {})
        for server in SPLIT.get(wl["name"], SPLIT_PEERS[wl["iface"]]):
            base = server.split("-")[0]
            if sv_filter and server not in sv_filter and base not in sv_filter:
                continue
            if base in have and not have[base]:
                rows[server] = dict(skipped="no build (make build)")
                continue
            srv, beams = None, []
            perf = use_perf and base in have
            try:
                srv = Server(server, wl["app"], wl["iface"], env=dict(
                    ERL_FLAGS=(os.environ.get("ERL_FLAGS", "") + " +JPperf map").strip())
                    if perf else None)
                srv.wait_ready(wl["probe"])
                beams = cpu_split._beams(cpu_split.tree_pids(srv.proc.pid))[0]
                wrk(srv.port, wl["conns"], CFG["warm"], wl.get("lua"))
                windows, runs = [], []
                for _ in range(CFG["runs"]):
                    win = cpu_split.Window(srv.proc.pid)
                    r = wrk(srv.port, wl["conns"], CFG["run"], wl.get("lua"))
                    windows.append(win.close(r["requests"]))
                    runs.append(r)
                rows[server] = dict(cpu_split.merge(windows), **summarize(runs))
                r = rows[server]
                if perf:
                    r.update(split_perf(srv, wl, r["classes"]))
                print(f"{stamp()} split {wl['name']:12s} {server:18s} {r['rps']:9.0f} req/s  "
                      f"{r['total']:6.1f} us CPU/request  ("
                      + ", ".join(f"{c} {v['user'] + v['kernel']:.1f}"
                                  for c, v in split_order(r["classes"])) + ")", flush=True)
            except Exception as e:  # noqa: BLE001 - report and go on with the others
                rows[server] = dict(failed=str(e)[:300])
                print(f"{stamp()} split {wl['name']} {server} FAILED: {e}", flush=True)
            finally:
                if srv:
                    srv.stop()
                for pid in beams:        # the perf maps of +JPperf map
                    Path(f"/tmp/perf-{pid}.map").unlink(missing_ok=True)
    notes.append(f"CPU split: load average after the split phase {load_average()}.")


def split_perf(srv, wl, classes):
    """One more wrk run with `perf record` on the serving BEAM for CFG["run"] - 1 s (at
    least 2) in its middle: {"perf": {"class\tbucket": µs per request}, "perf_samples": n}, each thread
    class's /proc time (`classes`) shared out in proportion to its samples."""
    data = WORK / f"perf-{srv.name}.data"
    secs = max(2, CFG["run"] - 1)
    load = threading.Thread(target=wrk, args=(srv.port, wl["conns"], secs + 3, wl.get("lua")))
    load.start()
    time.sleep(1)                 # perf records inside the load, not its ramp or its end
    rec = cpu_split.perf_start(cpu_split.server_vm_pids(srv.proc.pid), secs, data)
    try:
        rec.wait(timeout=secs + 60)
        counts = cpu_split.perf_samples(data)
    finally:
        if rec.poll() is None:
            rec.kill()
            rec.wait()
        load.join()
        data.unlink(missing_ok=True)
    return dict(perf=cpu_split.perf_split(counts, classes), perf_samples=sum(counts.values()))


def split_order(classes):
    """Thread classes, the BEAM's in their fixed order, then the others by CPU."""
    beam = [(c, classes[c]) for c in cpu_split.BEAM_CLASSES if c in classes]
    rest = sorted(((c, v) for c, v in classes.items() if c not in cpu_split.BEAM_CLASSES),
                  key=lambda cv: -(cv[1]["user"] + cv[1]["kernel"]))
    return [(c, v) for c, v in beam + rest if v["user"] + v["kernel"] >= 0.05]


def split_section(w, results):
    res = results.get("split", {})
    if not res:
        return
    w("## CPU split per request\n")
    w(f"Each server alone, {CFG['warm']} s warm-up, then {CFG['runs']} wrk runs of "
      f"{CFG['run']} s; around each run the utime and stime of every thread of the server's "
      "process tree (/proc/PID/task/TID/stat, bench/cpu_split.py), divided by the requests wrk "
      "counted, over all runs.  µs of CPU per request, user / kernel.  BEAM threads: the "
      "schedulers (Erlang code, the inet driver, message passing, the NIF calls), the poller "
      "(epoll), aux, dirty schedulers and the rest of the VM; py-worker: the NIF's Python "
      "worker threads (the app, the worker's wait for jobs); supervisor: bin/pyweb's "
      "supervisor VM.  `wrk`: the client's CPU per request; `rest`: the rest of the machine "
      "meanwhile (other work on this shared machine: the noise).  The floors serve the same "
      "bytes for both apps and run once, under hello ASGI.  Connections and apps as in the "
      "http phase.\n")
    w("| workload | server | req/s | CPU µs/req | BEAM schedulers | poller | aux + dirty + rest "
      "of VM | py-worker | other threads | wrk | rest |")
    w("|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|")

    def uk(v):
        return f"{v['user']:.1f} / {v['kernel']:.1f}" if v else "-"

    def add(vs):
        vs = [v for v in vs if v]
        return {k: sum(v[k] for v in vs) for k in ("user", "kernel")} if vs else None

    for wl, rows in res.items():
        for server, r in rows.items():
            if "total" not in r:
                w(f"| {wl} | {server} | {r.get('skipped') or 'failed: ' + r.get('failed', '')} "
                  "| | | | | | | | |")
                continue
            c = r["classes"]
            beam = "scheduler" in c
            other = [(k, v) for k, v in split_order(c)
                     if k not in cpu_split.BEAM_CLASSES or k in ("py-other", "supervisor VM")]
            w(f"| {wl} | {server} | {fmt_rps(r['rps'])} | {r['total']:.1f} | "
              f"{uk(c.get('scheduler'))} | {uk(c.get('poller'))} | "
              f"{uk(add([c.get(k) for k in ('aux', 'dirty', 'vm-other')])) if beam else '-'} | "
              f"{uk(c.get('py-worker'))} | "
              + (", ".join(f"{k} {uk(v)}" for k, v in other) or "-")
              + f" | {r['wrk']:.1f} | {r['other']:.1f} |")
    w("")
    floor = res.get("hello_asgi", {}).get("floor-once", {})
    if "total" in floor:
        fb = sum(floor["classes"].get(k, {}).get(x, 0) for k in BEAM_SUM for x in ("user", "kernel"))
        w(f"BEAM time per request against the floor (floor-once: {fb:.1f} µs of BEAM threads "
          "per request):\n")
        for wl, rows in res.items():
            if wl not in SPLIT:
                continue
            for server in ("pyweb", "pyweb-gil-w1"):
                r = rows.get(server, {})
                if "total" not in r:
                    continue
                b = sum(r["classes"].get(k, {}).get(x, 0) for k in BEAM_SUM for x in ("user", "kernel"))
                py = r["classes"].get("py-worker", {})
                w(f"- {wl}, {server}: BEAM {b:.1f} µs = {b / fb:.1f}x the floor (+{b - fb:.1f} µs); "
                  f"Python workers {py.get('user', 0) + py.get('kernel', 0):.1f} µs; "
                  f"whole server {r['total']:.1f} µs = {r['total'] / floor['total']:.1f}x the "
                  f"floor's {floor['total']:.1f}")
        w("")
    split_perf_section(w, res)


def split_perf_section(w, res):
    perfed = [(wl, server, r) for wl, rows in res.items() for server, r in rows.items()
              if r.get("perf")]
    if not perfed:
        return
    w("### What the time is spent on (perf)\n")
    w("One more wrk run per BEAM server (started with `+JPperf map`: the JIT's code is "
      "named) under `perf record -F 999` of the serving VM; each thread class's time above "
      "is shared out in proportion to its samples, by what the sampled code is "
      "(bench/cpu_split.py, PERF_BUCKETS: Erlang code by module, beam.smp and the kernel "
      "by symbol; Debian's beam.smp is stripped of its static functions, whose samples are "
      "`runtime, unnamed`).  The groups: HTTP = request parsing, py_web's and OTP's Erlang, "
      "the inet driver and the kernel's network path on the BEAM's threads; messaging and "
      "scheduling = message passing, the schedulers' own work and the kernel's waits and "
      "wake-ups (epoll, futex, sched_yield, pipes); NIF hop = the NIF's C, erlang_python's "
      "Erlang and everything on the Python worker threads but Python itself.  A "
      "heuristic split, µs per request (% of the server's CPU).\n")
    groups = cpu_split.PERF_GROUPS
    w("| workload | server | samples | " + " | ".join(groups) + " |")
    w("|---|---|---:|" + "---:|" * len(groups))
    for wl, server, r in perfed:
        g = dict.fromkeys(groups, 0.0)
        for key, us in r["perf"].items():
            cls, bucket = key.split("\t")
            g[cpu_split.perf_group(cls, bucket)] += us
        tot = sum(g.values()) or 1
        w(f"| {wl} | {server} | {r['perf_samples']:,} | "
          + " | ".join(f"{g[k]:.1f} ({g[k] / tot:.0%})" for k in groups) + " |")
    w("")
    perfed = [(wl, server, r) for wl, server, r in perfed if wl in SPLIT]
    if not perfed:
        return
    w("By thread and bucket (hello apps), µs per request:\n")
    w("| thread: bucket | " + " | ".join(f"{wl.replace('hello_', '')} {s}" for wl, s, _ in perfed)
      + " |")
    w("|---|" + "---:|" * len(perfed))
    keys = []
    for cls in ("scheduler", "poller", "aux", "py-worker", "dirty", "py-other", "vm-other"):
        for bucket, _ in cpu_split.PERF_BUCKETS:
            if any(r["perf"].get(f"{cls}\t{bucket}", 0) >= 0.1 for _, _, r in perfed):
                keys.append((cls, bucket))
    for cls, bucket in keys:
        key = f"{cls}\t{bucket}"
        w(f"| {cls}: {bucket} | " + " | ".join(f"{r['perf'].get(key, 0):.1f}"
                                           for _, _, r in perfed) + " |")
    w("")


# ---- websockets ------------------------------------------------------------------------

WS_SERVERS = ["pyweb", "uvicorn", "granian"]
WS_NOTE = ("websocket phase: app bench/apps/bench_ws.py (plain ASGI); clients bench/ws_load.py "
           "(websockets' asyncio client on uvloop, no compression, same 2 cores) and, for the "
           "echo, bench/ws_echo_load.c (C, epoll, one thread: the same messages for about 19 us "
           "of the client's CPU each, where websockets' client spends about 60 us, more than "
           "the servers, so that it bounds every server's rate); uvicorn with "
           "--ws websockets, granian without --no-ws, pyweb with --mode gil (the broadcast room "
           "is a module global: one interpreter, as uvicorn's one process; so its workers run "
           "uvloop, its default --loop auto); the echo runs the three servers side by side "
           "(each idle while another is measured) in interleaved rounds, the order rotating; "
           "server CPU per "
           "echoed message: user + system time of the server's processes (all threads) during "
           "the echo run over the messages echoed, which other load on the machine changes "
           "less than it changes msgs/s")


def ws_argv(server, app, iface, port):
    argv = server_argv(server, app, iface, port)
    if server == "granian":
        argv.remove("--no-ws")
    if server == "uvicorn":
        argv[-2:-2] = ["--ws", "websockets"]
    if server == "pyweb":
        argv += ["--mode", "gil"]
    return argv


def ws_load(*args, timeout=300):
    out = subprocess.run([str(VENV / "bin" / "python"), str(ROOT / "bench" / "ws_load.py"),
                          *map(str, args)], capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def ws_echo_c(port, conns, seconds):
    """The echo load of bench/ws_echo_load.c (built into work/ on first use)."""
    exe = WORK / "ws_echo_load"
    src = BENCH / "ws_echo_load.c"
    if not exe.exists() or src.stat().st_mtime > exe.stat().st_mtime:
        subprocess.run(["cc", "-O2", "-o", str(exe), str(src)], check=True)
    out = subprocess.run([str(exe), str(port), str(conns), str(seconds)], capture_output=True,
                         text=True, timeout=seconds + 120)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout)


def ws_idle_kib(srv, count):
    """RSS growth of the server's process tree per idle websocket, `count` of them open."""
    before = srv.rss_kib()
    p = subprocess.Popen([str(VENV / "bin" / "python"), str(ROOT / "bench" / "ws_load.py"),
                          "idle", str(srv.port), str(count), "8"],
                         stdout=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        if not line.startswith("open"):
            raise RuntimeError(f"idle client: {line!r}")
        time.sleep(3)
        after = srv.rss_kib()
    finally:
        p.wait(timeout=120)
    return (after - before) / count


def ws_echo(client, port, seconds):
    """The echo load of `client` ("python": websockets', bench/ws_load.py; "c":
    bench/ws_echo_load.c) on 50 connections for `seconds`: its result (msgs, seconds)."""
    if client == "python":
        return ws_load("echo", port, 50, seconds)
    return ws_echo_c(port, 50, seconds)


def ws_echo_round(srv, client, seconds):
    """One echo run of `client` against srv: (msgs/s, the server's CPU per echoed message
    in us)."""
    cpu0 = srv.cpu_s()
    res = ws_echo(client, srv.port, seconds)
    cpu = srv.cpu_s() - cpu0
    return res["msgs"] / res["seconds"], cpu / max(res["msgs"], 1) * 1e6


def ws_echo_interleaved(servers, client, rounds, seconds):
    """`rounds` echo runs on each server, interleaved (round i runs every server once, the
    order rotating) so that the machine's drift falls on all alike: per server its msgs/s
    and CPU per message, one of each per round; and the servers whose echo failed (their
    error; they take no further rounds)."""
    names = list(servers)
    runs = {name: [] for name in names}
    failed = {}
    for i in range(rounds + 1):  # round 0: a 1 s warm-up, not kept
        for name in names[i % len(names):] + names[:i % len(names)]:
            if name in failed:
                continue
            try:
                if i == 0:
                    ws_echo(client, servers[name].port, 1)
                else:
                    runs[name].append(ws_echo_round(servers[name], client, seconds))
            except Exception as e:  # noqa: BLE001 - reported, the other servers still run
                failed[name] = str(e)[:300]
    return runs, failed


def echo_summary(runs, ref_runs):
    """Medians of one server's echo rounds, and the median over the rounds of pyweb's
    msgs/s over this server's in the same round."""
    mps = [r for r, _ in runs]
    row = {"mps": statistics.median(mps), "mps_min": min(mps), "mps_max": max(mps),
           "cpu_us": statistics.median(c for _, c in runs), "rounds": len(runs)}
    if ref_runs:
        row["paired"] = statistics.median(a / b for (a, _), (b, _) in zip(ref_runs, runs))
    return row


def run_ws(results, notes):
    """Echo messages/s (1 KiB text, 50 connections; interleaved rounds of every server, with
    each client), broadcast deliveries/s (one sender, 100 clients) and RSS per idle
    websocket (each server alone)."""
    seconds, rounds = (2, 5) if QUICK else (4, 7)
    messages = 200 if QUICK else 1000
    idle = 1000 if QUICK else 10000
    rows, servers = {}, {}
    try:
        for server in WS_SERVERS:
            if server == "pyweb" and not pyweb_available():
                rows[server] = {"skipped": "bin/pyweb not built"}
                continue
            srv = Server(server, "bench_ws:app", "asgi", argv_fn=ws_argv)
            try:
                srv.wait_ready(get_probe("/", expect=b"ok"))
            except Exception as e:  # noqa: BLE001 - reported, the other servers still run
                srv.stop()
                rows[server] = {"failed": str(e)[:300]}
                continue
            servers[server] = srv
        echo, failed = {}, {}
        for client in ("python", "c"):
            print(f"ws: echo, {client} client, {rounds} rounds of {seconds} s", flush=True)
            echo[client], client_failed = ws_echo_interleaved(servers, client, rounds, seconds)
            failed.update(client_failed)
        # pyweb's rounds are the reference unless its echo failed (then it has fewer rounds
        # than the others, and no ratio is given)
        ref = {c: None if "pyweb" in failed else echo[c].get("pyweb") for c in echo}
        for server, srv in servers.items():
            print(f"ws: {server}", flush=True)
            if server in failed:
                rows[server] = {"failed": failed[server]}
                continue
            try:
                bcast = ws_load("broadcast", srv.port, 100, messages)
                rows[server] = {
                    "echo": echo_summary(echo["python"][server], ref["python"]),
                    "echo_c": echo_summary(echo["c"][server], ref["c"]),
                    "bcast_dps": bcast["delivered"] / bcast["seconds"],
                    "idle_kib": ws_idle_kib(srv, idle), "idle_n": idle}
            except Exception as e:  # noqa: BLE001 - reported, the other servers still run
                rows[server] = {"failed": str(e)[:300]}
    finally:
        for srv in servers.values():
            srv.stop()
    results["ws"] = rows
    notes.append(WS_NOTE)


def ws_section(w, results):
    rows = results.get("ws", {})
    if not rows:
        return
    w("## WebSockets\n")
    w("Echo: medians of interleaved rounds (msgs/s with the rounds' range; pyweb / this: the "
      "median over the rounds of pyweb's msgs/s over this server's in the same round).\n")
    w("| server | echo msgs/s (1 KiB text, 50 conns), websockets' client | pyweb / this | "
      "server CPU per echoed message (us) | echo msgs/s, C client | pyweb / this | server CPU "
      "per echoed message (us) | broadcast deliveries/s (100 clients) | pyweb / this | RSS per "
      "idle websocket (KiB) |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    ref = rows.get("pyweb", {})
    for server, r in rows.items():
        if "echo" not in r:
            w(f"| {server} | {r.get('skipped') or 'failed: ' + r.get('failed', '')} "
              "| | | | | | | | |")
            continue
        cells = []
        for key in ("echo", "echo_c"):
            e = r[key]
            paired = f"{e['paired']:.2f}x" if "paired" in e else "n/a"
            cells.append(f"{e['mps']:,.0f} ({e['mps_min']:,.0f}-{e['mps_max']:,.0f}) "
                         f"| {paired} | {e['cpu_us']:.0f}")
        w(f"| {server} | {cells[0]} | {cells[1]} "
          f"| {r['bcast_dps']:,.0f} | {ratio_str(ref.get('bcast_dps'), r['bcast_dps'])} "
          f"| {r['idle_kib']:.1f} (of {r['idle_n']:,}) |")
    w("")


def stamp():
    """Seconds since the driver started, for the progress lines."""
    return f"[{time.monotonic() - T_START:6.0f}s]"


def summarize(runs):
    rps = [r["rps"] for r in runs]
    return dict(rps=statistics.median(rps), rps_min=min(rps), rps_max=max(rps),
                p50=statistics.median(r["p50"] for r in runs),
                p99=statistics.median(r["p99"] for r in runs),
                errors=sum(r["errors"] for r in runs),
                requests=sum(r["requests"] for r in runs), runs=runs)


# ---- memory ----------------------------------------------------------------------------

MEMORY = [("pyweb", "asgi"), ("uvicorn", "asgi"), ("granian", "asgi"), ("hypercorn", "asgi"),
          ("pyweb", "wsgi"), ("granian", "wsgi"), ("gunicorn-sync", "wsgi"),
          ("gunicorn-gthread", "wsgi")]


def run_memory(results, notes):
    sv_filter = set(filter(None, os.environ.get("BENCH_SERVERS", "").split(",")))
    out = results.setdefault("memory", {})
    first = 10_000
    for server, iface in MEMORY:
        if sv_filter and server not in sv_filter:
            continue
        key = f"{server} ({iface.upper()})"
        if server == "pyweb" and not pyweb_available():
            out[key] = dict(skipped="bin/pyweb missing")
            continue
        srv = None
        try:
            srv = Server(server, f"bench_apps:hello_{iface}", iface)
            srv.wait_ready(HELLO)
            time.sleep(0.5)
            rss0 = srv.rss_kib()
            # wrk runs for its whole -d even after every thread stopped (count.lua), so
            # the requests are sent in 1 s slices until the count is reached.
            first_n, errors, slices = 0, 0, 0
            while first_n < first and slices < 30:
                slices += 1
                lim = f"LIMIT = {max(1, (first - first_n) // CFG['threads'])}\n"
                a = wrk(srv.port, 50, 1, "count.lua", lim)
                first_n += a["requests"]
                errors += a["errors"]
            rss1 = srv.rss_kib()
            t0 = time.monotonic()
            total = first_n
            while total < CFG["mem_n"] and time.monotonic() - t0 < CFG["mem_cap"]:
                b = wrk(srv.port, 50, CFG["mem_slice"])
                total += b["requests"]
                errors += b["errors"]
            secs = time.monotonic() - t0
            rss2 = srv.rss_kib()
            out[key] = dict(rss_start=rss0, rss_10k=rss1, rss_end=rss2, requests=total,
                            first=first_n, seconds=secs, errors=errors,
                            ratio=rss2 / rss1 if rss1 else None)
            print(f"{stamp()} memory {key:26s} start {rss0 / 1024:7.1f} MiB, after {first_n} "
                  f"{rss1 / 1024:7.1f} MiB, after {total} in {secs:.0f} s {rss2 / 1024:7.1f} MiB "
                  f"(x{rss2 / rss1:.3f})", flush=True)
        except Exception as e:  # noqa: BLE001
            out[key] = dict(failed=str(e)[:300])
            print(f"memory {key} FAILED: {e}", flush=True)
        finally:
            if srv:
                srv.stop()
    notes.append(f"Memory: up to {CFG['mem_n']:,} hello requests per server, sent in "
                 f"{CFG['mem_slice']} s wrk slices and capped at about {CFG['mem_cap']} s "
                 "per server: the requests column says how many each server really got"
                 + (" (QUICK: not 1M)." if QUICK else "."))


# ---- modes -----------------------------------------------------------------------------

def cpu_work_ms():
    """The CPU-bound apps' work per request, measured in this Python (median of 30)."""
    sys.path.insert(0, str(APPS))
    import bench_apps  # noqa: PLC0415 - the apps directory is added just above
    times = []
    for _ in range(30):
        t0 = time.perf_counter()
        bench_apps.cpu_work()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def run_modes(results, notes):
    results["cpu_work_ms"] = cpu_work_ms()
    print(f"{stamp()} CPU-bound apps: {results['cpu_work_ms']:.2f} ms of Python per request",
          flush=True)
    notes.append(f"Load average before the modes phase: {load_average()}")
    run_interleaved(results, MODE_WORKLOADS, "modes")
    run_interp_memory(results)
    notes.append(f"Load average after the modes phase: {load_average()}")


def load_average():
    """/proc/loadavg's 1, 5 and 15 minute averages: the machine is shared."""
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def run_interleaved(results, workloads, key):
    """Like run_http, but the runs of every server of a workload interleave (run 1 of each
    server, then run 2 of each, the order rotating), each server started afresh for its
    run: the machine's drift spreads over all servers alike, so that the ratios compare
    like with like."""
    out = results.setdefault(key, {})
    for wl in workloads:
        servers = [s for s in wl["servers"]
                   if "subinterpreters" not in s or has_subinterpreters()]
        rows = out.setdefault(wl["name"], {})
        for s in wl["servers"]:
            if s not in servers:
                rows[s] = dict(skipped=f"Python {platform.python_version()}: no "
                                       "sub-interpreters (3.12+)")
        runs = {s: [] for s in servers}
        for i in range(CFG["runs"]):
            for server in servers[i % len(servers):] + servers[:i % len(servers)]:
                srv = None
                try:
                    srv = Server(server, wl["app"], wl["iface"])
                    srv.wait_ready(wl["probe"])
                    wrk(srv.port, wl["conns"], CFG["warm"])
                    r = wrk(srv.port, wl["conns"], CFG["run"])
                    runs[server].append(r)
                    print(f"{stamp()} {wl['name']:16s} {server:26s} run {i + 1}: "
                          f"{r['rps']:9.0f} req/s  p99 {r['p99']:7.2f} ms  errors {r['errors']}",
                          flush=True)
                except Exception as e:  # noqa: BLE001 - report and go on with the others
                    rows[server] = dict(failed=str(e)[:300])
                    print(f"{stamp()} {wl['name']} {server} FAILED: {e}", flush=True)
                finally:
                    if srv:
                        srv.stop()
        for server in servers:
            if runs[server] and "failed" not in rows.get(server, {}):
                rows[server] = summarize(runs[server])


def memory_modes():
    """The modes whose cost of one more worker the modes phase measures."""
    return ["gil"] + (["subinterpreters"] if has_subinterpreters() else []) + ["processes"]


def run_interp_memory(results):
    """RSS of bin/pyweb with 1 and 4 workers in each mode, once every worker has served
    the app: (RSS at 4 - RSS at 1) / 3 is the cost of one more worker (one more
    interpreter in subinterpreters mode, one more OS process in processes mode)."""
    out = results.setdefault("interp_memory", {})
    for app, iface in [("bench_apps:hello_asgi", "asgi"), ("bench_frameworks:starlette_app", "asgi")]:
        for mode in memory_modes():
            for n in (1, 4):
                srv = None
                key = f"{app} {mode} w{n}"
                try:
                    srv = Server(f"pyweb-{mode}-w{n}", app, iface)
                    srv.wait_ready(get_probe())
                    wrk(srv.port, 20, 2)
                    time.sleep(0.5)
                    out[key] = dict(app=app, mode=mode, workers=n, rss=srv.rss_kib())
                    print(f"{stamp()} memory {key:48s} {out[key]['rss'] / 1024:7.1f} MiB",
                          flush=True)
                except Exception as e:  # noqa: BLE001
                    out[key] = dict(app=app, mode=mode, workers=n, failed=str(e)[:300])
                    print(f"{stamp()} memory {key} FAILED: {e}", flush=True)
                finally:
                    if srv:
                        srv.stop()


# ---- in-process ------------------------------------------------------------------------

def erl_env():
    """The environment of the in-process VMs (inproc.erl, hop.erl): no virtualenv, no
    ERLANG_PYTHON_MODE (they set the modes they measure), and the interpreter this driver's venv was made from: the
    NIF's (bench.sh makes both with PYTHON), which python3.X on PATH need not be (pyenv
    answers for its global version only)."""
    env = dict(os.environ)
    env.pop("VIRTUAL_ENV", None)
    env.pop("ERLANG_PYTHON_MODE", None)
    env["ERLANG_PYTHON"] = os.path.realpath(sys.executable)
    return env


def run_inproc(results, notes):
    ebin = WORK / "ebin"
    ebin.mkdir(parents=True, exist_ok=True)
    subprocess.run(["erlc", "-o", str(ebin), str(BENCH / "inproc.erl")], check=True)
    tsv = WORK / "inproc.tsv"
    argv = ["erl", "-noshell"]
    for d in sorted(glob.glob(str(ROOT / "_build/default/lib/*/ebin"))):
        argv += ["-pa", d]
    argv += ["-pa", str(ebin), "-eval",
             f'inproc:main(["{tsv}", "{CFG["inproc_ms"]}", "{CFG["runs"]}"])']
    proc = subprocess.run(argv, cwd=ROOT, env=erl_env(), timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"inproc benchmark failed ({proc.returncode})")
    meta, rows, pairs, modes = {}, {}, {}, {}
    for line in tsv.read_text().splitlines():
        if line.startswith("# "):
            k, v = line[2:].split("\t", 1)
            meta[k] = v
            continue
        if line.startswith("mode\t"):
            _, case, mode, i, calls, us, p50, p99, cpu_ms = line.split("\t")
            modes.setdefault(case, {}).setdefault(int(i), {})[mode] = dict(
                rps=int(calls) * 1e6 / int(us), p50=float(p50), p99=float(p99),
                cpu=int(cpu_ms) * 1000 / int(us))
            continue
        if line.startswith("pair\t"):
            _, case, _callers, _i, cg, ug, cf, uf = line.split("\t")
            pairs.setdefault(case, []).append((int(cf) / int(uf)) / (int(cg) / int(ug)))
            continue
        table, case, callers, run, calls, us, p50, p99 = line.split("\t")
        rows.setdefault((table, case, int(callers)), []).append(
            dict(rps=int(calls) * 1e6 / int(us), p50=float(p50), p99=float(p99)))
    out = results.setdefault("inproc", {"meta": meta, "main": [], "ablation": []})
    out["pairs"] = {case: dict(median=statistics.median(r), min=min(r), max=max(r), n=len(r))
                    for case, r in pairs.items()}
    out["modes"] = {}
    for case, by_pair in modes.items():
        gil = [p["gil"]["rps"] for p in by_pair.values()]
        sub = [p["subinterpreters"]["rps"] for p in by_pair.values()]
        ratios = [p["subinterpreters"]["rps"] / p["gil"]["rps"] for p in by_pair.values()]
        out["modes"][case] = dict(gil=statistics.median(gil), sub=statistics.median(sub),
                                  ratio=statistics.median(ratios), min=min(ratios),
                                  max=max(ratios), n=len(ratios),
                                  gil_cpu=statistics.median(p["gil"]["cpu"] for p in by_pair.values()),
                                  sub_cpu=statistics.median(p["subinterpreters"]["cpu"]
                                                            for p in by_pair.values()))
    for (table, case, callers), runs in rows.items():
        s = summarize([dict(r, errors=0, requests=0) for r in runs])
        s.update(case=case, callers=callers)
        out[table].append(s)


# ---- processes mode: paired ratios -----------------------------------------------------

# (label, workload (of the modes or the processes phase), server A, server B, target of
# A / B or None)
PROCESS_PAIRS = [
    ("CPU-bound ASGI, processes 2 / 1 workers", "cpu_asgi", "pyweb-processes-w2",
     "pyweb-processes-w1", 1.8),
    ("CPU-bound WSGI, processes 2 / 1 workers", "cpu_wsgi", "pyweb-processes-w2",
     "pyweb-processes-w1", 1.8),
    ("FastAPI JSON, processes 2 workers / uvicorn --workers 2", "fastapi_json",
     "pyweb-processes-w2", "uvicorn-w2", 1.0),
    ("FastAPI JSON, processes 2 workers / granian --workers 2", "fastapi_json",
     "pyweb-processes-w2", "granian-w2", None),
    ("hello ASGI, processes 1 worker / gil 1 worker", "hello_asgi_modes", "pyweb-processes-w1",
     "pyweb-gil-w1", 0.7),
    ("hello WSGI, processes 1 worker / gil 1 worker", "hello_wsgi_modes", "pyweb-processes-w1",
     "pyweb-gil-w1", None),
]


# The issue's targets of the http phase (issue 15), measured the same way, with the p99 of
# each side too: a p99 is the tail of one run, which the machine's load at that moment
# moves as much as the server, so the two servers' slices alternate.
HTTP_PAIRS = [
    ("hello ASGI, pyweb / uvicorn", "hello_asgi", "pyweb", "uvicorn", 1.3),
    ("hello ASGI, pyweb / granian", "hello_asgi", "pyweb", "granian", 1.0),
    ("hello WSGI, pyweb / granian", "hello_wsgi", "pyweb", "granian", 1.0),
]


def run_pairs(results, notes, pairs=PROCESS_PAIRS, key="pairs"):
    """Each pair's two servers up side by side (the idle one costs nothing), measured in
    alternating wrk slices: each ratio compares two measurements seconds apart, which
    the machine's drift over the whole run does not reach."""
    slices = 4 if QUICK else 6
    secs = CFG["run"] if QUICK else 2
    wl_filter = set(filter(None, os.environ.get("BENCH_WORKLOADS", "").split(",")))
    sv_filter = set(filter(None, os.environ.get("BENCH_SERVERS", "").split(",")))
    by_name = {wl["name"]: wl for wl in WORKLOADS + MODE_WORKLOADS + PROCESS_WORKLOADS}
    out = results.setdefault(key, [])
    for label, wlname, a, b, target in pairs:
        if key != "pairs" and ((wl_filter and wlname not in wl_filter)
                               or (sv_filter and not {a, b} <= sv_filter)):
            continue
        wl = by_name[wlname]
        servers = []
        try:
            for name in (a, b):
                srv = Server(name, wl["app"], wl["iface"])
                servers.append(srv)
                srv.wait_ready(wl["probe"])
                wrk(srv.port, wl["conns"], CFG["warm"])
            ratios, p99 = [], {a: [], b: []}
            for i in range(slices):
                order = servers if i % 2 == 0 else servers[::-1]
                got = {srv.name: wrk(srv.port, wl["conns"], secs) for srv in order}
                ratios.append(got[a]["rps"] / got[b]["rps"])
                for name in (a, b):
                    p99[name].append(got[name]["p99"])
            r = dict(label=label, a=a, b=b, target=target, n=len(ratios), secs=secs,
                     median=statistics.median(ratios), min=min(ratios), max=max(ratios),
                     p99_a=statistics.median(p99[a]), p99_b=statistics.median(p99[b]),
                     p99_ratio=statistics.median(x / y for x, y in zip(p99[a], p99[b])))
            out.append(r)
            print(f"{stamp()} pair {label}: {r['median']:.2f}x ({r['min']:.2f}-{r['max']:.2f}),"
                  f" p99 {r['p99_a']:.2f} / {r['p99_b']:.2f} ms", flush=True)
        except Exception as e:  # noqa: BLE001
            out.append(dict(label=label, failed=str(e)[:300]))
            print(f"{stamp()} pair {label} FAILED: {e}", flush=True)
        finally:
            for srv in servers:
                srv.stop()


# ---- processes mode: the port hop ----------------------------------------------------

def run_hop(results, notes):
    """bench/hop.erl in the NIF's gil mode and in the processes mode (1 worker), the VMs
    alternating, CFG['runs'] times each."""
    ebin = WORK / "ebin"
    ebin.mkdir(parents=True, exist_ok=True)
    subprocess.run(["erlc", "-o", str(ebin), str(BENCH / "hop.erl")], check=True)
    tsv = WORK / "hop.tsv"
    tsv.unlink(missing_ok=True)
    env = erl_env()
    for _ in range(CFG["runs"]):
        for mode in ("nif", "processes"):
            argv = ["erl", "-noshell"]
            for d in sorted(glob.glob(str(ROOT / "_build/default/lib/*/ebin"))):
                argv += ["-pa", d]
            argv += ["-pa", str(ebin), "-eval", f'hop:main(["{mode}", "{tsv}", "{CFG["inproc_ms"]}"])']
            if subprocess.run(argv, cwd=ROOT, env=env, timeout=600).returncode != 0:
                raise RuntimeError(f"hop benchmark ({mode}) failed")
    rows = {}
    for line in tsv.read_text().splitlines():
        mode, case, callers, calls, us, p50, _p99 = line.split("\t")
        rows.setdefault((case, int(callers), mode), []).append(
            dict(rps=int(calls) * 1e6 / int(us), p50=float(p50)))
    results["hop"] = [dict(case=c, callers=n, mode=m,
                           rps=statistics.median(r["rps"] for r in runs),
                           p50=statistics.median(r["p50"] for r in runs))
                      for (c, n, m), runs in sorted(rows.items())]


def report_processes(results, w):
    proc = results.get("processes", {})
    hop = results.get("hop", [])
    if not proc and not hop:
        return
    w("## Processes mode (Python OS processes behind Erlang ports)\n")
    for wl in PROCESS_WORKLOADS:
        rows = proc.get(wl["name"])
        if not rows:
            continue
        w(f"### {wl['title']}\n")
        w(f"App `{wl['app']}`\n")
        w("| server | req/s (median) | min-max | p50 ms | p99 ms | errors |")
        w("|---|---:|---:|---:|---:|---:|")
        for server, r in rows.items():
            if "rps" not in r:
                w(f"| {server} | {r.get('skipped') or 'failed: ' + r.get('failed', '')} | | | | |")
                continue
            w(f"| {server} | {fmt_rps(r['rps'])} | {fmt_rps(r['rps_min'])}-{fmt_rps(r['rps_max'])} "
              f"| {r['p50']:.2f} | {r['p99']:.2f} | {r['errors']} |")
        w("")

    pairs = results.get("pairs", [])
    if pairs:
        w("Targets (issue 12): paired ratios, the two servers up side by side and measured "
          "in alternating wrk slices (median, min-max over the pairs):\n")
        w("| ratio | pairs | median | min-max | target |")
        w("|---|---:|---:|---:|---|")
        for p in pairs:
            if "median" not in p:
                w(f"| {p['label']} | failed: {p.get('failed', '')} | | | |")
                continue
            verdict = "-" if p["target"] is None else (
                f"{p['target']}x: {'met' if p['median'] >= p['target'] else 'MISSED'}")
            w(f"| {p['label']} | {p['n']} | {p['median']:.2f}x | {p['min']:.2f}-{p['max']:.2f}x | "
              f"{verdict} |")
        w("")
    if hop:
        w("### The port hop: the same calls in-process, NIF (gil) vs one worker process\n")
        w(f"bench/hop.erl: Erlang processes each looping over one call for {CFG['inproc_ms']} ms, "
          f"{CFG['runs']} VMs per mode alternating; medians.  At 1 caller the p50 is the latency "
          "of one call: the difference is what the port hop adds.\n")
        w("| call | callers | NIF calls/s | NIF p50 us | processes calls/s | processes p50 us | "
          "processes / NIF | hop (p50 difference) us |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|")
        by = {(r["case"], r["callers"], r["mode"]): r for r in hop}
        for case, n in sorted({(r["case"], r["callers"]) for r in hop}):
            a, b = by.get((case, n, "nif")), by.get((case, n, "processes"))
            if a and b:
                w(f"| `{case}` | {n} | {fmt_rps(a['rps'])} | {a['p50']:.0f} | {fmt_rps(b['rps'])} | "
                  f"{b['p50']:.0f} | {b['rps'] / a['rps']:.2f}x | "
                  f"{b['p50'] - a['p50']:.0f} |")
        w("")


# ---- report ----------------------------------------------------------------------------

def machine():
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return dict(cores=os.cpu_count(), cpu=model, kernel=platform.release(),
                load_at_start=os.getloadavg()[0],
                mem_gib=round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1))


def versions():
    v = {}
    try:
        v["erlang_python"] = subprocess.run(["git", "-C", str(ROOT), "describe", "--always",
                                             "--dirty"], capture_output=True, text=True
                                            ).stdout.strip()
    except OSError:
        v["erlang_python"] = "?"
    v["Python"] = platform.python_version()
    v["OTP"] = subprocess.run(["erl", "-noshell", "-eval",
                               'io:format("~s", [erlang:system_info(otp_release)]), halt().'],
                              capture_output=True, text=True).stdout.strip()
    v["wrk"] = subprocess.run(["wrk", "-v"], capture_output=True, text=True
                              ).stdout.split("\n")[0].split(" [")[0].replace("wrk ", "")
    for pkg in ("uvicorn", "uvloop", "httptools", "granian", "gunicorn", "hypercorn",
                "starlette", "flask", "matplotlib"):
        try:
            v[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            v[pkg] = "-"
    return v


def fmt_rps(x):
    return f"{x:,.0f}"


def ratio_str(a, b):
    return f"{a / b:.2f}x" if a and b else "-"


def report(results, notes, stamp, started, elapsed):
    m, v = results["machine"], results["versions"]
    base = file_base(stamp)
    md = []
    w = md.append
    w(f"# Benchmarks {stamp}{' (QUICK)' if QUICK else ''}\n")
    w(f"- Command: `{COMMAND}` (from the repository root), started {started}, took "
      f"{elapsed / 60:.1f} min")
    w(f"- Machine: {m['cores']} cores, {m['cpu']}, {m['mem_gib']} GiB, Linux {m['kernel']}; "
      f"load average {m.get('load_at_start', 0):.1f} at the start, {os.getloadavg()[0]:.1f} at the end; "
      "shared and noisy: compare ratios within this run, not absolute numbers across runs")
    w("- Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()))
    w(f"- Method: wrk -t{CFG['threads']} on 127.0.0.1, client and server share the 2 cores; "
      f"each server started alone per workload, {CFG['warm']} s warm-up then {CFG['runs']} runs "
      f"of {CFG['run']} s; median req/s with min-max; p50/p99 are medians over the runs; "
      "errors summed over the runs (connect/read/write/timeouts and non-2xx).")
    w("- Servers: " + "; ".join(f"{k}: {val}" for k, val in SERVER_NOTES.items()))
    for n in notes:
        w(f"- Note: {n}")
    w("")

    http_res = results.get("http", {})
    if http_res:
        w("## End-to-end HTTP (wrk)\n")
        w(f"![req/s per workload]({base}-http.png)\n")
        for wl in WORKLOADS:
            rows = http_res.get(wl["name"])
            if not rows:
                continue
            w(f"### {wl['title']}\n")
            w(f"App `{wl['app']}`" + "".join(f", {s}: `{a}`" for s, a in
                                            wl.get("app_for", {}).items()) + "\n")
            w("| server | req/s (median) | min-max | p50 ms | p99 ms | errors | pyweb / this |")
            w("|---|---:|---:|---:|---:|---:|---:|")
            ref = rows.get("pyweb", {}).get("rps")
            for server, r in rows.items():
                if "rps" not in r:
                    w(f"| {server} | {r.get('skipped') or 'failed: ' + r.get('failed', '')} "
                      "| | | | | |")
                    continue
                w(f"| {server} | {fmt_rps(r['rps'])} | {fmt_rps(r['rps_min'])}-"
                  f"{fmt_rps(r['rps_max'])} | {r['p50']:.2f} | {r['p99']:.2f} | {r['errors']} | "
                  f"{'-' if server.startswith('pyweb') else ratio_str(ref, r['rps'])} |")
            w("")
        # ratio summary
        peers = ["uvicorn", "granian", "hypercorn", "gunicorn-sync", "gunicorn-gthread"]
        w("### Ratio of bin/pyweb to each peer (median req/s)\n")
        w("| workload | " + " | ".join(peers) + " |")
        w("|---|" + "---:|" * len(peers))
        for wl in WORKLOADS:
            rows = http_res.get(wl["name"])
            if not rows:
                continue
            ref = rows.get("pyweb", {}).get("rps")
            w(f"| {wl['name']} | " + " | ".join(
                ratio_str(ref, rows.get(p, {}).get("rps")) if p in rows else "n/a"
                for p in peers) + " |")
        w("")
        http_pairs = results.get("http_pairs", [])
        if http_pairs:
            w("Targets (issue 15: hello ASGI and WSGI >= 1.0x granian and >= 1.3x uvicorn; p99 "
              "at 50 connections no worse than uvicorn's): paired, the two servers up side by "
              "side and measured in alternating wrk slices of "
              f"{http_pairs[0].get('secs', '?')} s (req/s ratio: median and min-max over the "
              "slices; p99: medians over the slices, and the median of the slices' ratios).\n")
            w("| ratio | slices | req/s median | min-max | target | p99 pyweb ms | p99 peer ms "
              "| p99 pyweb / peer |")
            w("|---|---:|---:|---:|---|---:|---:|---:|")
            for p in http_pairs:
                if "median" not in p:
                    w(f"| {p['label']} | failed: {p.get('failed', '')} | | | | | | |")
                    continue
                verdict = f"{p['target']}x: {'met' if p['median'] >= p['target'] else 'MISSED'}"
                w(f"| {p['label']} | {p['n']} | {p['median']:.2f}x | {p['min']:.2f}-"
                  f"{p['max']:.2f}x | {verdict} | {p['p99_a']:.2f} | {p['p99_b']:.2f} | "
                  f"{p['p99_ratio']:.2f}x |")
            w("")
        floors = [(wl, f) for wl in ("hello_asgi", "hello_wsgi") for f in FLOORS
                  if "rps" in http_res.get(wl, {}).get(f, {})]
        if floors:
            w("The BEAM's floor (bench/floor.erl: pure Erlang, no Python, the same bytes): "
              "bin/pyweb's req/s as a fraction of each floor's, and the floors against the "
              "peers.\n")
            for wl, f in floors:
                rows = http_res[wl]
                w(f"- {wl}: pyweb / {f} = {ratio_str(rps_of(rows, 'pyweb'), rps_of(rows, f))}; "
                  f"{f} / granian = {ratio_str(rps_of(rows, f), rps_of(rows, 'granian'))}"
                  + (f", / uvicorn = {ratio_str(rps_of(rows, f), rps_of(rows, 'uvicorn'))}"
                     if "uvicorn" in rows else ""))
            w("")

    split_section(w, results)
    mres = results.get("modes", {})
    if mres:
        modes_section(w, results, mres)

    ws_section(w, results)
    mem = results.get("memory", {})
    if mem:
        w("## Memory: RSS under load (hello apps, 50 connections)\n")
        w(f"![RSS]({base}-memory.png)\n")
        w("RSS summed over the server's process tree (gunicorn/granian workers, the BEAM). "
          "Target: RSS after all requests within 10% of RSS after the first 10k.\n")
        w("| server | RSS at start MiB | after first 10k MiB | requests | after all MiB | "
          "after all / after 10k | errors |")
        w("|---|---:|---:|---:|---:|---:|---:|")
        for key, r in mem.items():
            if "rss_end" not in r:
                w(f"| {key} | {r.get('skipped') or 'failed: ' + r.get('failed', '')} | | | | | |")
                continue
            w(f"| {key} | {r['rss_start'] / 1024:.1f} | {r['rss_10k'] / 1024:.1f} | "
              f"{r['requests']:,} | {r['rss_end'] / 1024:.1f} | {r['ratio']:.3f}"
              f"{'' if r['ratio'] <= 1.10 else ' (over 1.10)'} | {r['errors']} |")
        w("")

    inp = results.get("inproc")
    if inp:
        meta = inp["meta"]
        w("## In-process (no HTTP)\n")
        w(f"![calls/s]({base}-inproc.png)\n")
        w(f"Erlang processes each looping over one call for {CFG['inproc_ms']} ms, "
          f"{CFG['runs']} interleaved runs per case after a warm-up; median calls/s with min-max, "
          "p50/p99 latency of one call as seen by the caller. "
          f"NIF: {meta.get('info', '?')}. The generic rows run the same hello app through "
          "`py:call(bench_apps, wsgi_via_call | asgi_via_call, [Map, {bytes, Body}])`, a shim that "
          "builds the environ/scope in Python and calls the same hornbeam runner "
          "(bench/apps/bench_apps.py).\n")
        w("| path | callers | calls/s (median) | min-max | p50 us | p99 us |")
        w("|---|---:|---:|---:|---:|---:|")
        for r in inp["main"]:
            w(f"| `{r['case']}` | {r['callers']} | {fmt_rps(r['rps'])} | {fmt_rps(r['rps_min'])}-"
              f"{fmt_rps(r['rps_max'])} | {r['p50']:.1f} | {r['p99']:.1f} |")
        w("")
        get = {(r["case"], r["callers"]): r["rps"] for r in inp["main"]}
        w("Targets: py_asgi:run/4 >= 150k calls/s and py_wsgi:run/3 >= 200k at 50 callers, "
          ">= 1.8x the generic path.\n")
        for fast, slow, target in [("wsgi py_wsgi:run/3", "wsgi py:call (generic)", 200_000),
                                   ("asgi py_asgi:run/4", "asgi py:call (generic)", 150_000),
                                   ("asgi py_asgi:run/4 build_scope ref",
                                    "asgi py:call (generic)", 150_000)]:
            for n in (1, 50):
                a, b = get.get((fast, n)), get.get((slow, n))
                if a and b:
                    extra = (f"; {fmt_rps(a)} calls/s vs target {fmt_rps(target)}: "
                             f"{'met' if a >= target else 'MISSED'}") if n == 50 else ""
                    w(f"- `{fast}` / generic at {n} caller{'s' if n > 1 else ''}: {a / b:.2f}x "
                      f"(ratio of the medians above){extra}")
        for n in (1, 50):
            a = get.get(("asgi py_asgi:run/4 15 browser headers", n))
            b = get.get(("asgi py_asgi:run/4", n))
            if a and b:
                w(f"- 15 browser-like request headers against 3 (`asgi py_asgi:run/4`) at {n} "
                  f"caller{'s' if n > 1 else ''}: {a / b:.2f}x calls/s, {1e6 / a - 1e6 / b:+.2f} us "
                  "per call (1/calls-per-second): what the headers cost a call (the larger scope "
                  "term handed to the NIF and its conversion into Python objects)")
        w("")
        pairs = inp.get("pairs", {})
        if pairs:
            w(f"Paired ratios at 50 callers: each fast path and the generic path measured back to "
              f"back in slices of {max(200, CFG['inproc_ms'] // 4)} ms, the order alternating, "
              "so that each ratio compares two measurements a fraction of a second apart (the "
              "machine's drift over the whole run is larger than the gap between the paths).\n")
            w("| path / generic | pairs | ratio (median) | min-max | 1.8x target |")
            w("|---|---:|---:|---:|---|")
            for case, p in pairs.items():
                w(f"| `{case}` | {p['n']} | {p['median']:.2f}x | {p['min']:.2f}-{p['max']:.2f}x | "
                  f"{'met' if p['median'] >= 1.8 else 'MISSED'} |")
            w("")
        w("### Ablation: each NIF optimization switched off alone (50 callers)\n")
        w(f"![ablation]({base}-ablation.png)\n")
        w("`py_nif:set_options(#{Option => false})` with the others on. Gain = all on / this "
          "off (above 1.00x: the optimization helps).\n")
        w("| case | calls/s (median) | min-max | p50 us | p99 us | gain of the option |")
        w("|---|---:|---:|---:|---:|---:|")
        allon = {r["case"].split(":")[0]: r["rps"] for r in inp["ablation"]
                 if r["case"].endswith("all on")}
        for r in inp["ablation"]:
            grp = r["case"].split(":")[0]
            gain = "-" if r["case"].endswith("all on") else ratio_str(allon.get(grp), r["rps"])
            w(f"| {r['case']} | {fmt_rps(r['rps'])} | {fmt_rps(r['rps_min'])}-"
              f"{fmt_rps(r['rps_max'])} | {r['p50']:.1f} | {r['p99']:.1f} | {gain} |")
        w("")
    report_processes(results, w)
    w(f"Raw data: [{base}.json]({base}.json).")
    path = RESULTS / f"{base}.md"
    path.write_text("\n".join(md) + "\n")
    return path


def rps_of(rows, server):
    return rows.get(server, {}).get("rps")


def modes_section(w, results, mres):
    """The execution modes: the CPU-bound app and the hello apps per mode, the in-process
    ratio, the memory of one more interpreter, each against the issue's target."""
    sub2 = "pyweb-subinterpreters-w2"
    w("## Execution modes\n")
    w(f"Each server started afresh for each of its {CFG['runs']} runs, the runs of a "
      "workload's servers interleaved (the order rotating) so that the machine's drift "
      "falls on all alike.\n")
    w(f"`bin/pyweb --mode MODE --workers N`; the CPU-bound apps (`bench_apps:cpu_asgi`, "
      f"`cpu_wsgi`) do {results.get('cpu_work_ms', 0):.2f} ms of pure-Python work per "
      f"request (measured in this Python).  Peers: `uvicorn --workers 2`, `granian --workers 2`, "
      "`gunicorn -w 2 -k sync` (processes).  Ratios are within this run.\n")
    for wl in MODE_WORKLOADS:
        rows = mres.get(wl["name"])
        if not rows:
            continue
        ref = sub2 if sub2 in rows and "rps" in rows[sub2] else None
        w(f"### {wl['title']}\n")
        w(f"| server | req/s (median) | min-max | p50 ms | p99 ms | errors |"
          f"{' ' + sub2 + ' / this |' if ref else ''}")
        w("|---|---:|---:|---:|---:|---:|" + ("---:|" if ref else ""))
        for server, r in rows.items():
            if "rps" not in r:
                w(f"| {server} | {r.get('skipped') or 'failed: ' + r.get('failed', '')} | | | | |"
                  + (" |" if ref else ""))
                continue
            w(f"| {server} | {fmt_rps(r['rps'])} | {fmt_rps(r['rps_min'])}-{fmt_rps(r['rps_max'])} "
              f"| {r['p50']:.2f} | {r['p99']:.2f} | {r['errors']} |"
              + (f" {ratio_str(rps_of(rows, ref), r['rps'])} |" if ref else ""))
        w("")
    w("Targets:\n")
    checks = []
    for wl, peers in [("cpu_asgi", ["uvicorn-w2", "granian-w2"]),
                      ("cpu_wsgi", ["granian-w2", "gunicorn-w2"])]:
        rows = mres.get(wl, {})
        checks.append((f"{wl}: subinterpreters 2 workers / 1 worker",
                       rps_of(rows, sub2), rps_of(rows, "pyweb-subinterpreters-w1"), 1.8))
        checks += [(f"{wl}: subinterpreters 2 workers / {p}", rps_of(rows, sub2),
                    rps_of(rows, p), 1.0) for p in peers]
    for wl in ("hello_asgi_modes", "hello_wsgi_modes"):
        rows = mres.get(wl, {})
        a, b = rows.get("pyweb-subinterpreters-w1", {}), rows.get("pyweb-gil-w1", {})
        if "rps" in a and "rps" in b:
            noise = (b["rps_max"] - b["rps_min"]) / b["rps"]
            w(f"- {wl}: subinterpreters / gil at 1 worker = {a['rps'] / b['rps']:.2f}x (target: "
              f"no slower within the run's noise, gil's min-max spread being {noise:.0%}): "
              f"{'met' if a['rps_max'] >= b['rps_min'] else 'MISSED'}")
    for label, a, b, target in checks:
        if a and b:
            w(f"- {label} = {a / b:.2f}x (target {target}x): {'met' if a / b >= target else 'MISSED'}")
        else:
            w(f"- {label}: not measured")
    inp = results.get("inproc", {}).get("modes", {})
    if inp:
        w("\nIn-process, 50 callers, 2 workers, gil and subinterpreters modes measured back to "
          "back (the application restarted in each mode before its slice, the order "
          "alternating):\n")
        w("| path | gil calls/s | subinterpreters calls/s | subinterpreters / gil (paired median) "
          "| min-max | pairs | workers' CPU s/s gil | subinterpreters | 1.5x target |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|---|")
        for case, m in inp.items():
            target = "-" if "CPU" in case else ("met" if m["ratio"] >= 1.5 else "MISSED")
            w(f"| `{case}` | {fmt_rps(m['gil'])} | {fmt_rps(m['sub'])} | {m['ratio']:.2f}x | "
              f"{m['min']:.2f}-{m['max']:.2f}x | {m['n']} | {m['gil_cpu']:.2f} | "
              f"{m['sub_cpu']:.2f} | {target} |")
        w("\nWorkers' CPU s/s: CPU time of the worker threads per second of the slice.  Under "
          "one GIL, Python runs on one core at a time (the workers' brief polls between jobs, "
          "GIL released, add a little); clearly above 1.0, Python ran on both cores at once.  "
          "It shows whether the mode ran in parallel whatever the other load of the shared "
          "machine left to this run.")
    mem = results.get("interp_memory", {})
    if mem:
        w("\nMemory of one more worker: RSS of bin/pyweb (process tree) with 1 and 4 workers "
          "after each worker served the app; (4 workers - 1 worker) / 3.  In the processes "
          "mode the tree's RSS is summed over the worker processes: pages they share (the "
          "interpreter's code) count once per process.\n")
        w("| app | mode | RSS 1 worker MiB | RSS 4 workers MiB | per extra worker MiB |")
        w("|---|---|---:|---:|---:|")
        for app in dict.fromkeys(r["app"] for r in mem.values()):
            for mode in ("gil", "subinterpreters", "processes"):
                one, four = mem.get(f"{app} {mode} w1", {}), mem.get(f"{app} {mode} w4", {})
                if "rss" in one and "rss" in four:
                    w(f"| `{app}` | {mode} | {one['rss'] / 1024:.1f} | {four['rss'] / 1024:.1f} | "
                      f"{(four['rss'] - one['rss']) / 3 / 1024:.1f} |")
    w("")


def footer(fig, results):
    m, v = results["machine"], results["versions"]
    fig.text(0.01, 0.005, f"{results['date']} · `{COMMAND}` · {m['cores']} cores {m['cpu']} · "
             f"Python {v['Python']}, OTP {v['OTP']}, erlang_python {v['erlang_python']}, "
             f"wrk {v['wrk']}", fontsize=7, color="#555")


def charts(results, base):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"pyweb": "#d62728", "pyweb+erlang_asyncio": "#ff9896", "uvicorn": "#1f77b4",
              "granian": "#2ca02c", "hypercorn": "#9467bd", "gunicorn-sync": "#8c564b",
              "gunicorn-gthread": "#bcbd22"}
    http_res = results.get("http", {})
    wls = [wl for wl in WORKLOADS if http_res.get(wl["name"])]
    if wls:
        cols = 2
        rows_n = (len(wls) + cols - 1) // cols
        fig, axes = plt.subplots(rows_n, cols, figsize=(12, 2.6 * rows_n + 0.6), squeeze=False)
        for ax, wl in zip(axes.flat, wls):
            rows = [(s, r) for s, r in http_res[wl["name"]].items() if "rps" in r]
            names = [s for s, _ in rows][::-1]
            med = [r["rps"] for _, r in rows][::-1]
            lo = [r["rps"] - r["rps_min"] for _, r in rows][::-1]
            hi = [r["rps_max"] - r["rps"] for _, r in rows][::-1]
            ax.barh(names, med, xerr=[lo, hi], color=[colors.get(n, "#777") for n in names],
                    capsize=3)
            for y, (val, top) in enumerate(zip(med, hi)):
                ax.text(val + top, y, f" {val:,.0f}", va="center", fontsize=8)
            ax.set_title(wl["title"], fontsize=10)
            ax.set_xlabel("req/s (median, min-max)", fontsize=8)
            ax.tick_params(labelsize=8)
            ax.set_xlim(0, max([m + h for m, h in zip(med, hi)] + [1]) * 1.3)
        for ax in list(axes.flat)[len(wls):]:
            ax.axis("off")
        fig.suptitle("End-to-end HTTP: bin/pyweb vs peers (wrk, 127.0.0.1)", fontsize=12)
        footer(fig, results)
        fig.tight_layout(rect=(0, 0.02, 1, 0.98))
        fig.savefig(RESULTS / f"{base}-http.png", dpi=100)
        plt.close(fig)

    mem = {k: r for k, r in results.get("memory", {}).items() if "rss_end" in r}
    if mem:
        fig, ax = plt.subplots(figsize=(11, 4.5))
        names = list(mem)
        x = range(len(names))
        wdt = 0.27
        for i, (field, label) in enumerate([("rss_start", "at start"),
                                            ("rss_10k", "after first 10k"),
                                            ("rss_end", "after all requests")]):
            ax.bar([p + (i - 1) * wdt for p in x], [mem[n][field] / 1024 for n in names], wdt,
                   label=label)
        ax.set_xticks(list(x))
        ax.set_xticklabels([f"{n}\n{mem[n]['requests']:,} req, x{mem[n]['ratio']:.2f}"
                            for n in names], fontsize=7)
        ax.set_ylabel("RSS MiB (process tree)")
        ax.set_title("Memory under hello load")
        ax.legend(fontsize=8)
        footer(fig, results)
        fig.tight_layout(rect=(0, 0.03, 1, 1))
        fig.savefig(RESULTS / f"{base}-memory.png", dpi=100)
        plt.close(fig)

    inp = results.get("inproc")
    if inp:
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
        for ax, n in zip(axes, (1, 50)):
            rows = [r for r in inp["main"] if r["callers"] == n][::-1]
            names = [r["case"] for r in rows]
            med = [r["rps"] for r in rows]
            ax.barh(names, med, xerr=[[r["rps"] - r["rps_min"] for r in rows],
                                      [r["rps_max"] - r["rps"] for r in rows]],
                    color=["#1f77b4" if "generic" in c or "operator" in c else "#d62728"
                           for c in names], capsize=3)
            for y, r in enumerate(rows):
                ax.text(r["rps_max"], y, f" {r['rps']:,.0f}", va="center", fontsize=8)
            ax.set_xlim(0, max(r["rps_max"] for r in rows) * 1.3)
            ax.set_title(f"{n} caller{'s' if n > 1 else ''}", fontsize=10)
            ax.set_xlabel("calls/s (median, min-max)", fontsize=8)
            ax.tick_params(labelsize=8)
        fig.suptitle("In-process: generic py:call vs py_wsgi / py_asgi (hello apps)")
        footer(fig, results)
        fig.tight_layout(rect=(0, 0.03, 1, 1))
        fig.savefig(RESULTS / f"{base}-inproc.png", dpi=100)
        plt.close(fig)

        fig, ax = plt.subplots(figsize=(10, 6))
        rows = inp["ablation"][::-1]
        names = [r["case"] for r in rows]
        med = [r["rps"] for r in rows]
        ax.barh(names, med, xerr=[[r["rps"] - r["rps_min"] for r in rows],
                                  [r["rps_max"] - r["rps"] for r in rows]],
                color=["#d62728" if c.endswith("all on") else "#7f7f7f" for c in names],
                capsize=3)
        for y, r in enumerate(rows):
            ax.text(r["rps_max"], y, f" {r['rps']:,.0f}", va="center", fontsize=8)
        ax.set_xlim(0, max(r["rps_max"] for r in rows) * 1.25)
        ax.set_xlabel("calls/s at 50 callers (median, min-max)")
        ax.set_title("Ablation: one NIF optimization off at a time")
        ax.tick_params(labelsize=8)
        footer(fig, results)
        fig.tight_layout(rect=(0, 0.03, 1, 1))
        fig.savefig(RESULTS / f"{base}-ablation.png", dpi=100)
        plt.close(fig)


def main():
    WORK.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 8192:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(8192, hard), hard))
    t0 = time.monotonic()
    now = datetime.datetime.now()
    stamp = now.strftime("%Y-%m-%d")
    results = dict(date=now.strftime("%Y-%m-%d %H:%M"), command=COMMAND, quick=QUICK,
                   config=CFG, machine=machine(), versions=versions())
    notes = []
    print(f"{COMMAND}: {results['machine']}  {results['versions']}", flush=True)
    if "inproc" in ONLY:
        run_inproc(results, notes)
    if "http" in ONLY:
        run_http(results, notes)
        run_pairs(results, notes, HTTP_PAIRS, "http_pairs")
    if "split" in ONLY:
        run_split(results, notes)
    if "memory" in ONLY:
        run_memory(results, notes)
    if "modes" in ONLY:
        run_modes(results, notes)
    if "processes" in ONLY:
        run_http(results, notes, PROCESS_WORKLOADS, "processes")
        run_pairs(results, notes)
    if "hop" in ONLY:
        run_hop(results, notes)
    if "ws" in ONLY:
        run_ws(results, notes)
    elapsed = time.monotonic() - t0
    base = file_base(stamp)
    results["notes"] = notes
    results["elapsed_s"] = elapsed
    (RESULTS / f"{base}.json").write_text(json.dumps(results, indent=1, default=str))
    charts(results, base)
    path = report(results, notes, stamp, results["date"], elapsed)
    if not SUBSET:
        shutil.copyfile(path, RESULTS / "latest.md")
    print(f"\nwrote {path.relative_to(ROOT)}{'' if SUBSET else ' (and bench/results/latest.md)'}"
          f" in {elapsed / 60:.1f} min", flush=True)


def file_base(stamp):
    """The results' file names: the date, then the phases of a partial run, then -quick."""
    return stamp + "".join(f"-{p}" for p in SUBSET) + ("-quick" if QUICK else "")


if __name__ == "__main__":
    main()
