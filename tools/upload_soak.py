#!/usr/bin/env python3
"""Upload soak: checksummed uploads through bin/pyweb for a while, and the server's RSS over time.

Starts ``bin/pyweb`` on 127.0.0.1 with an echo app (bench/apps/bench_apps.py:
``echo_wsgi`` or ``echo_asgi``), then for ``--duration`` seconds keeps ``--clients``
keep-alive connections busy with POSTs of random bodies (sizes drawn from ``--sizes``;
every ``--chunked-every``-th one chunked), each checked against the SHA-256 of the echo.  Every
``--every`` seconds it prints one line: elapsed seconds, the VM's RSS (VmRSS of beam.smp)
and high-water mark (VmHWM), requests and bytes so far, mismatches and errors.  At the end,
a summary and the server's exit status after SIGTERM.  Loopback only, bounded in time.

    .venv/bin/python tools/upload_soak.py --interface wsgi --duration 600
    .venv/bin/python tools/upload_soak.py --interface asgi --duration 300 --clients 8

Not a test: it asserts nothing, the numbers are for a person (notes, issue 18 item 6).
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def beam_pid(parent: int, deadline: float) -> int:
    """The beam.smp process below bin/pyweb (erl execs its way down to it)."""
    while time.monotonic() < deadline:
        for pid in descendants(parent):
            try:
                if Path(f"/proc/{pid}/comm").read_text().strip().startswith("beam"):
                    return pid
            except OSError:
                pass
        time.sleep(0.1)
    raise SystemExit("no beam.smp under bin/pyweb")


def descendants(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids = [int(k) for k in (task / "children").read_text().split()]
        except OSError:
            continue
        for kid in kids:
            out.append(kid)
            out.extend(descendants(kid))
    return out


def memory(pid: int) -> tuple[float, float]:
    """VmRSS and VmHWM in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


class Totals:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests = 0
        self.bytes = 0
        self.mismatches = 0
        self.errors = 0
        self.last_error = ""

    def add(self, size: int, ok: bool) -> None:
        with self.lock:
            self.requests += 1
            self.bytes += size
            if not ok:
                self.mismatches += 1

    def error(self, what: str) -> None:
        with self.lock:
            self.errors += 1
            self.last_error = what


def chunks(body: bytes, rng: random.Random):
    pos = 0
    while pos < len(body):
        n = rng.randint(1, 256 * 1024)
        yield body[pos:pos + n]
        pos += n


def client(port: int, sizes: list[int], chunked_every: int, stop: float, totals: Totals,
           seed: int) -> None:
    rng = random.Random(seed)
    pool = os.urandom(max(sizes) + 65536)   # bodies are windows of this, at random offsets
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    n = 0
    while time.monotonic() < stop:
        size = rng.choice(sizes)
        start = rng.randint(0, len(pool) - size)
        body = pool[start:start + size]
        n += 1
        try:
            if chunked_every and n % chunked_every == 0:
                conn.request("POST", "/upload", body=chunks(body, rng),
                             headers={"Content-Type": "application/octet-stream"},
                             encode_chunked=True)
            else:
                conn.request("POST", "/upload", body=body,
                             headers={"Content-Type": "application/octet-stream"})
            resp = conn.getresponse()
            echoed = resp.read()
            ok = resp.status == 200 and hashlib.sha256(echoed).digest() == hashlib.sha256(body).digest()
            totals.add(size, ok)
        except (OSError, http.client.HTTPException) as exc:
            totals.error(repr(exc))
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interface", choices=["wsgi", "asgi"], default="wsgi")
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of load")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--every", type=float, default=15.0, help="seconds between samples")
    parser.add_argument("--sizes", default="1024,65536,524288,1048576,2097152,4194304",
                        help="body sizes in bytes, drawn uniformly")
    parser.add_argument("--chunked-every", type=int, default=3,
                        help="every Nth request is chunked (0: none)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--pyweb", default=str(ROOT / "bin" / "pyweb"))
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    port = free_port()
    app = f"bench_apps:echo_{args.interface}"
    cmd = [args.pyweb, app, "--app-dir", str(ROOT / "bench" / "apps"), "--interface",
           args.interface, "--host", "127.0.0.1", "--port", str(port), "--lifespan", "off"]
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        beam = beam_pid(server.pid, time.monotonic() + 30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        rss0, _ = memory(beam)
        print(f"# {' '.join(cmd)}")
        print(f"# {args.clients} clients, sizes {sizes}, {args.duration:.0f} s; beam.smp pid {beam}")
        print(f"{'t_s':>6} {'rss_mb':>8} {'hwm_mb':>8} {'requests':>9} {'gbytes':>8} "
              f"{'mismatch':>8} {'errors':>6}")
        print(f"{0:6.0f} {rss0:8.1f} {rss0:8.1f} {0:9d} {0:8.2f} {0:8d} {0:6d}", flush=True)
        totals = Totals()
        t0 = time.monotonic()
        stop = t0 + args.duration
        threads = [threading.Thread(target=client,
                                    args=(port, sizes, args.chunked_every, stop, totals,
                                          args.seed + i),
                                    daemon=True) for i in range(args.clients)]
        for t in threads:
            t.start()
        samples = []
        next_sample = t0 + args.every
        while any(t.is_alive() for t in threads):
            time.sleep(max(0.0, min(next_sample, stop + 1) - time.monotonic()))
            if time.monotonic() >= next_sample:
                rss, hwm = memory(beam)
                samples.append(rss)
                with totals.lock:
                    print(f"{time.monotonic() - t0:6.0f} {rss:8.1f} {hwm:8.1f} {totals.requests:9d} "
                          f"{totals.bytes / 1e9:8.2f} {totals.mismatches:8d} {totals.errors:6d}",
                          flush=True)
                next_sample += args.every
        for t in threads:
            t.join()
        time.sleep(2)   # what the last requests left is collected
        rss_end, hwm = memory(beam)
        print(f"{'end':>6} {rss_end:8.1f} {hwm:8.1f} {totals.requests:9d} "
              f"{totals.bytes / 1e9:8.2f} {totals.mismatches:8d} {totals.errors:6d}")
        if totals.last_error:
            print(f"# last error: {totals.last_error}")
        half = samples[len(samples) // 2:]
        if half:
            print(f"# second half of the run: RSS {min(half):.1f}-{max(half):.1f} MB")
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            status = server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            status = server.wait()
        print(f"# server exit status {status}")
        err = server.stderr.read().decode(errors="replace") if server.stderr else ""
        if err.strip():
            print("# server stderr:\n" + "\n".join("#   " + l for l in err.strip().splitlines()[-20:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
