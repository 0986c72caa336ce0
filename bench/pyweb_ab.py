"""Two builds of bin/pyweb against each other on the hello apps, in one run.

    python bench/pyweb_ab.py A/bin/pyweb B/bin/pyweb [--runs 10] [--secs 4]

Serves bench/apps/bench_apps.py's hello_asgi and hello_wsgi with each bin/pyweb (the
same options: --no-access-log, the default mode and workers, the current VIRTUAL_ENV),
warms both up, then runs wrk (-t2 -c50) against them in turn, the order swapped every
round so that drift of the machine falls on both. Prints the median req/s of each and
B/A as the ratio of the medians and as the median of the per-round ratios. For a change
of the request path: A a clone of main (built with `make build`), B this tree.

Not a test: nothing asserts. 127.0.0.1 only, every load bounded in time.
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

APPS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "apps")


def serve(pyweb: str, app: str, iface: str) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([pyweb, app, "--interface", iface, "--port", "0", "--app-dir", APPS,
                             "--no-access-log"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
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


def wrk(port: int, secs: int) -> float:
    out = subprocess.run(["wrk", "-t2", "-c50", f"-d{secs}s", f"http://127.0.0.1:{port}/"],
                         capture_output=True, text=True).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not m:
        raise RuntimeError(out)
    return float(m.group(1))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--secs", type=int, default=4)
    opts = ap.parse_args()
    for app, iface in (("bench_apps:hello_asgi", "asgi"), ("bench_apps:hello_wsgi", "wsgi")):
        servers = {"A": serve(opts.a, app, iface), "B": serve(opts.b, app, iface)}
        try:
            for _, port in servers.values():
                wrk(port, 2)
            res: dict[str, list[float]] = {"A": [], "B": []}
            for i in range(opts.runs):
                for k in ("A", "B") if i % 2 == 0 else ("B", "A"):
                    res[k].append(wrk(servers[k][1], opts.secs))
        finally:
            for proc, _ in servers.values():
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(30)
        a, b = statistics.median(res["A"]), statistics.median(res["B"])
        paired = statistics.median(y / x for x, y in zip(res["A"], res["B"]))
        print(f"{app}: A {a:.0f} req/s, B {b:.0f} req/s; B/A {b / a:.3f} (medians), "
              f"{paired:.3f} (median of {opts.runs} paired rounds)", flush=True)


if __name__ == "__main__":
    sys.exit(main())
