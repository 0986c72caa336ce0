"""How long bin/pyweb takes to serve new code, and what it costs when idle.

    python bench/pyweb_lifecycle.py [--rounds 10] [--idle 60]

Serves a copy of a small ASGI app from a temporary directory on 127.0.0.1 and
measures, with a client sending requests without pause the whole time:

- SIGHUP: from the signal to the first response from the new server process;
- --reload: from the save of the file to the first response with the new code;
- the requests that failed meanwhile (expected: none);
- idle CPU over --idle seconds (no requests) of the supervisor VM with --reload
  (polling every 0.25 s, the default) and without, and of the server VM
  (/proc/PID/stat utime + stime).

Not a test: nothing asserts times. Run it on a quiet machine, compare within
one run. Needs a build (make build) and, for the app, nothing beyond the
standard library.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYWEB = os.path.join(ROOT, "bin", "pyweb")

APP = '''
import os
VERSION = "v0"

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": f"{VERSION} {os.getpid()}".encode()})
'''


def get(port: int) -> tuple[str | None, str]:
    """The body of a 200, else None and why."""
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("GET", "/")
        r = c.getresponse()
        body = r.read().decode()
        c.close()
        return (body, "") if r.status == 200 else (None, f"status {r.status}")
    except (OSError, http.client.HTTPException) as e:
        return None, repr(e)


class Load(threading.Thread):
    """Requests one after another, new connection each; counts failures."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port, self.stop, self.ok, self.failed, self.last = port, False, 0, 0, ""
        self.why: list[str] = []

    def run(self) -> None:
        while not self.stop:
            body, why = get(self.port)
            if body is None:
                self.failed += 1
                self.why.append(why)
            else:
                self.ok += 1
                self.last = body

    def failures(self) -> str:
        return f"{self.failed} failed" + (f" ({'; '.join(sorted(set(self.why)))})" if self.why else "")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start(workdir: str, *args: str) -> tuple[subprocess.Popen, int, list[str]]:
    lines: list[str] = []
    proc = subprocess.Popen([PYWEB, "app:app", "--port", "0", "--no-access-log", *args],
                            cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)

    def read() -> None:
        for line in proc.stdout:
            lines.append(line)
    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for line in lines:
            m = re.search(r"running on http://127.0.0.1:(\d+) ", line)
            if m:
                return proc, int(m.group(1)), lines
        time.sleep(0.05)
    raise RuntimeError("".join(lines))


def pids(lines: list[str], what: str) -> list[int]:
    return [int(m.group(1)) for line in lines for m in [re.search(what, line)] if m]


def wait_new(load: Load, old: str, t0: float) -> float:
    while load.last == old or not load.last:
        if time.monotonic() - t0 > 60:
            raise RuntimeError("no new code after 60 s")
        time.sleep(0.002)
    return time.monotonic() - t0


def set_version(path: str, v: str) -> None:
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(re.sub(r'VERSION = "[^"]*"', f'VERSION = "{v}"', text))


def stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(30)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--idle", type=float, default=60)
    opts = ap.parse_args()
    work = tempfile.mkdtemp(prefix="pyweb-lifecycle-")
    path = os.path.join(work, "app.py")
    with open(path, "w") as f:
        f.write(APP)

    proc, port, lines = start(work)
    load = Load(port)
    load.start()
    hup = []
    for _ in range(opts.rounds):
        while not load.last:
            time.sleep(0.01)
        old, t0 = load.last, time.monotonic()
        os.kill(proc.pid, signal.SIGHUP)
        hup.append(wait_new(load, old, t0))
        time.sleep(1)
    load.stop = True
    load.join()
    print(f"SIGHUP to new code: median {statistics.median(hup):.2f} s, "
          f"min {min(hup):.2f}, max {max(hup):.2f} ({opts.rounds} rounds); "
          f"{load.ok} requests meanwhile, {load.failures()}")
    stop(proc)

    proc, port, lines = start(work, "--reload")
    load = Load(port)
    load.start()
    rel = []
    for i in range(opts.rounds):
        while not load.last:
            time.sleep(0.01)
        t0 = time.monotonic()
        set_version(path, f"v{i + 1}")
        while not load.last.startswith(f"v{i + 1} "):
            if time.monotonic() - t0 > 60:
                raise RuntimeError("no new code after 60 s")
            time.sleep(0.002)
        rel.append(time.monotonic() - t0)
        time.sleep(1)
    load.stop = True
    load.join()
    print(f"--reload, save to new code: median {statistics.median(rel):.2f} s, "
          f"min {min(rel):.2f}, max {max(rel):.2f} ({opts.rounds} rounds); "
          f"{load.ok} requests meanwhile, {load.failures()}")

    time.sleep(3)   # the last old server process is gone
    sup = pids(lines, r"\[(\d+)\] \[INFO\] pyweb: started supervisor")[0]
    srv = pids(lines, r"started server process \[(\d+)\]")[-1]
    a, b = cpu_seconds(sup), cpu_seconds(srv)
    time.sleep(opts.idle)
    with_reload = (cpu_seconds(sup) - a) / opts.idle * 100
    server = (cpu_seconds(srv) - b) / opts.idle * 100
    stop(proc)

    proc, port, lines = start(work)
    time.sleep(3)
    sup2 = pids(lines, r"\[(\d+)\] \[INFO\] pyweb: started supervisor")[0]
    a = cpu_seconds(sup2)
    time.sleep(opts.idle)
    without = (cpu_seconds(sup2) - a) / opts.idle * 100
    stop(proc)
    print(f"idle CPU over {opts.idle:.0f} s: supervisor with --reload {with_reload:.2f}% of a core "
          f"(1 file watched), without {without:.2f}%; server process {server:.2f}%")


if __name__ == "__main__":
    sys.exit(main())
