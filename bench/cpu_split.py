#!/usr/bin/env python3
"""Where a server's CPU time goes, per request and per kind of thread, from the kernel's
own accounting: utime and stime of every thread of the server's process tree
(/proc/PID/task/TID/stat), read before and after a bounded wrk run, divided by the
requests wrk counted.  Cheap and robust (no profiler, nothing attached to the server);
the resolution is one clock tick (10 ms) per thread, a small fraction of the seconds a
run puts on the busy threads.

Used by bench/run.py's `split` phase (`BENCH_ONLY=split make bench`), or alone against a
server you started yourself (its root pid; the whole process tree is counted):
    python bench/cpu_split.py --pid PID --port PORT [-c 50] [-d 5] [-t 2]
It prints µs of CPU per request per thread class, user and kernel, and what wrk and the
rest of the machine used meanwhile.  With --perf (root, or perf_event_paranoid <= 1) it
also samples the BEAM with `perf record` during the same load and splits each thread
class's time into what the code does (perf_buckets: HTTP parsing, py_web's Erlang, the
inet driver, messaging, scheduling, the NIF, Python, the kernel's network and wait paths
...); the Erlang code is named only when the VM writes a perf map (`ERL_FLAGS="+JPperf
map"` when the server starts).  Only 127.0.0.1 is loaded.  Nothing here is a test.
"""

import argparse
import glob
import json
import os
import re
import resource
import shutil
import subprocess
import sys
from pathlib import Path

TICK_US = 1e6 / os.sysconf("SC_CLK_TCK")

# The BEAM's thread classes as the split reports them, in this order (the VM names its
# threads N_scheduler, N_dirty_cpu_sch..., N_poller, N_aux, async_N, sys_*_dispatcher;
# the NIF names its own py-worker-N, py-main, py-monitor, py-deadline).
BEAM_CLASSES = ["scheduler", "poller", "aux", "dirty", "py-worker", "py-other", "vm-other",
                "supervisor VM"]


def tree_pids(root):
    """`root` and its descendants, by /proc's parent links."""
    children = {}
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat) as f:
                data = f.read()
        except OSError:
            continue
        ppid = int(data.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(stat.split("/")[2]))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def thread_class(comm, is_beam, is_supervisor, is_main, beam_tree):
    """The class a thread's CPU is reported under."""
    if is_supervisor:
        return "supervisor VM"
    if not is_beam and beam_tree:
        return "vm-other"         # erl_child_setup, bin/pyweb's shell
    if not is_beam:
        # a Python server: its main thread (the event loop and, for uvicorn, the app) or
        # its other threads by name, numbers dropped (tokio-runtime-w, granian-worker...)
        return "main thread" if is_main else re.sub(r"[-_ ]?\d+$", "", comm) or "thread"
    c = re.sub(r"^\d+_", "", comm)
    if c == "scheduler":
        return "scheduler"
    if c.startswith("dirty_"):
        return "dirty"
    if c in ("poller", "aux"):
        return c
    if c.startswith("py-worker"):
        return "py-worker"
    if c.startswith("py-"):
        return "py-other"
    return "vm-other"


def _beams(pids):
    """The BEAMs among `pids`, and those of them that are bin/pyweb's supervisor VM (a
    BEAM with another BEAM below it)."""
    beams = []
    for pid in pids:
        try:
            if os.path.basename(os.readlink(f"/proc/{pid}/exe")).startswith("beam"):
                beams.append(pid)
        except OSError:
            pass
    return beams, {p for p in beams if any(q != p for q in tree_pids(p) if q in beams)}


def snapshot(root):
    """{(pid, tid): (class, utime_ticks, stime_ticks)} over root's process tree."""
    pids = tree_pids(root)
    beams, supervisors = _beams(pids)
    out = {}
    for pid in pids:
        for task in glob.glob(f"/proc/{pid}/task/[0-9]*"):
            data = _read(f"{task}/stat")
            if data is None:
                continue
            comm = data[data.index("(") + 1:data.rindex(")")]
            fields = data.rsplit(")", 1)[1].split()
            tid = int(task.rsplit("/", 1)[1])
            cls = thread_class(comm, pid in beams, pid in supervisors, tid == pid, bool(beams))
            out[(pid, tid)] = (cls, int(fields[11]), int(fields[12]))
    return out


def machine_busy_ticks():
    """All CPUs' busy time (user+nice+system+irq+softirq+steal) from /proc/stat."""
    f = _read("/proc/stat").split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in f[:8])
    return user + nice + system + irq + softirq + steal


def split(before, after, requests):
    """µs per request per class: {class: {"user": us, "kernel": us}}."""
    out = {}
    for key, (cls, ut, st) in after.items():
        _, ut0, st0 = before.get(key, (cls, 0, 0))
        row = out.setdefault(cls, {"user": 0.0, "kernel": 0.0})
        row["user"] += (ut - ut0) * TICK_US / requests
        row["kernel"] += (st - st0) * TICK_US / requests
    return out


def server_vm_pids(root):
    """The BEAMs of root's tree that serve (bin/pyweb's supervisor VM left out)."""
    beams, supervisors = _beams(tree_pids(root))
    return [p for p in beams if p not in supervisors]


# ---- perf: what the threads' time is spent on ------------------------------------------

# The buckets of a perf sample, by its DSO and symbol, first match wins.  Erlang code
# (the JIT's, named by +JPperf map as $module:function/arity) by module; the runtime's C
# (beam.smp) and the kernel by symbol.  Debian's beam.smp is stripped of its static
# functions: their samples are "runtime, unnamed".
PERF_BUCKETS = [
    ("Python", lambda dso, sym: dso.startswith("libpython") or ".cpython-" in dso),
    ("NIF (C)", lambda dso, sym: dso.startswith("py_nif") or "call_nif" in sym or "enif_" in sym),
    ("HTTP parsing", lambda dso, sym: sym.startswith("$py_web_h1") or re.search(
        r"packet|http_parse|http_bld|decode_packet", sym) and not sym.startswith("$")),
    ("py_web (Erlang)", lambda dso, sym: sym.startswith(("$py_web", "$floor:"))),
    ("erlang_python (Erlang)", lambda dso, sym: sym.startswith(("$py:", "$py_"))),
    ("messaging", lambda dso, sym: re.search(
        r"loop_rec|remove_message|wait_timeout|erts_send|erts_queue|proc_sig|_msg|message|"
        r"signal|erts_factory|copy_struct|size_object|copy_shared", sym)),
    ("OTP libraries (Erlang)", lambda dso, sym: sym.startswith("$")),
    ("inet driver, ports, sockets", lambda dso, sym: dso.startswith("beam") and re.search(
        r"tcp_|inet|port|driver|sock|erts_io|check_io|poll|select|iovec|ioq", sym)),
    ("scheduling", lambda dso, sym: dso.startswith(("beam", "libc")) and re.search(
        r"sched|thr_progress|ethr_|runq|wake|balance|futex|yield|pthread_cond|sleep|"
        r"spin|msacc", sym)),
    ("GC, allocation", lambda dso, sym: dso.startswith(("beam", "libc")) and re.search(
        r"garbage|gc|alloc|free|sweep|carrier|mbc|sbc|malloc|heap", sym)),
    ("kernel: network", lambda dso, sym: dso == "[kernel.kallsyms]" and re.search(
        r"tcp|sock|skb|inet|ip_|net_|netif|dev_|loopback|sendmsg|recvmsg|copy_.*iter|"
        r"_copy_|iov|bbr|nf_|bpf_lsm_socket", sym)),
    ("kernel: wait, wake-ups", lambda dso, sym: dso == "[kernel.kallsyms]" and re.search(
        r"sched|futex|switch|spin|wake|ep_|epoll|poll|pipe|yield|idle|hrtimer|"
        r"try_to_wake|enqueue|dequeue|update_curr|select_task|rq_", sym)),
    ("kernel: other", lambda dso, sym: dso == "[kernel.kallsyms]" or dso == "[vdso]"),
    ("libc, other", lambda dso, sym: dso.startswith("libc")),
    ("runtime, unnamed", lambda dso, sym: True),
]

# The request's CPU by what it pays for: each (thread class, bucket) in one group.
PERF_GROUPS = ["HTTP (parsing, py_web, sockets, kernel network)",
               "Erlang messaging and scheduling (incl. kernel waits and wake-ups)",
               "NIF hop (NIF, erlang_python, Python threads' waits)", "Python",
               "GC, allocation, runtime other"]


def perf_group(cls, bucket):
    if bucket == "Python":
        return PERF_GROUPS[3]
    if cls in ("py-worker", "py-other") or bucket in ("NIF (C)", "erlang_python (Erlang)"):
        return PERF_GROUPS[2]
    if bucket in ("HTTP parsing", "py_web (Erlang)", "OTP libraries (Erlang)",
                  "inet driver, ports, sockets", "kernel: network"):
        return PERF_GROUPS[0]
    if bucket in ("messaging", "scheduling", "kernel: wait, wake-ups"):
        return PERF_GROUPS[1]
    return PERF_GROUPS[4]


def perf_usable():
    if not shutil.which("perf"):
        return False
    if os.geteuid() == 0:
        return True
    return int((_read("/proc/sys/kernel/perf_event_paranoid") or "2").strip()) <= 1


def perf_start(pids, seconds, data):
    """`perf record` of `pids` for `seconds` (a Popen: wait on it)."""
    return subprocess.Popen(["perf", "record", "-q", "-F", "999", "-p",
                             ",".join(map(str, pids)), "-o", str(data), "--", "sleep",
                             str(seconds)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def perf_samples(data):
    """{(thread class, bucket): samples} of a perf.data of BEAM threads."""
    out = subprocess.run(["perf", "report", "-i", str(data), "--no-children", "--stdio",
                          "-q", "--sort", "comm,dso,sym", "-F", "sample,comm,dso,sym",
                          "-t", "|"], capture_output=True, text=True, timeout=300).stdout
    counts = {}
    for line in out.splitlines():
        parts = [p.strip() for p in line.split("|", 3)]
        if len(parts) != 4 or not parts[0].isdigit():
            continue
        n, comm, dso, sym = int(parts[0]), parts[1], parts[2], parts[3][4:]
        if dso.startswith("[JIT]") and not sym.startswith("$"):
            sym = "$" + sym       # Erlang code the map did not name
        cls = thread_class(comm, True, False, False, True)
        bucket = next(name for name, match in PERF_BUCKETS if match(dso, sym))
        counts[(cls, bucket)] = counts.get((cls, bucket), 0) + n
    return counts


def perf_split(counts, classes):
    """µs per request per (thread class, bucket): each class's /proc time (`classes`, from
    a Window) shared out in proportion to its perf samples."""
    per_class = {}
    for (cls, _), n in counts.items():
        per_class[cls] = per_class.get(cls, 0) + n
    out = {}
    for (cls, bucket), n in counts.items():
        c = classes.get(cls)
        if c:
            out[f"{cls}\t{bucket}"] = (c["user"] + c["kernel"]) * n / per_class[cls]
    return out


def children_cpu_us():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (r.ru_utime + r.ru_stime) * 1e6


class Window:
    """One measured window around a load: the server tree's threads, wrk (a child of this
    process: its CPU counts in RUSAGE_CHILDREN once it is reaped) and the whole machine."""

    def __init__(self, root):
        self.root = root
        self.t0 = snapshot(root)
        self.m0 = machine_busy_ticks()
        self.c0 = children_cpu_us()

    def close(self, requests):
        t1 = snapshot(self.root)
        server = split(self.t0, t1, requests)
        client = (children_cpu_us() - self.c0) / requests
        machine = (machine_busy_ticks() - self.m0) * TICK_US / requests
        total = sum(r["user"] + r["kernel"] for r in server.values())
        return dict(classes=server, total=total, wrk=client,
                    other=max(0.0, machine - total - client), requests=requests)


def merge(windows):
    """Several windows of one server as one: per-request values weighted by requests."""
    n = sum(w["requests"] for w in windows)
    classes = {}
    for w in windows:
        for cls, r in w["classes"].items():
            row = classes.setdefault(cls, {"user": 0.0, "kernel": 0.0})
            for k in ("user", "kernel"):
                row[k] += r[k] * w["requests"] / n
    return dict(classes=classes, requests=n,
                **{k: sum(w[k] * w["requests"] for w in windows) / n
                   for k in ("total", "wrk", "other")})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pid", type=int, required=True, help="the server's root process")
    ap.add_argument("--port", type=int, required=True, help="its port on 127.0.0.1")
    ap.add_argument("-c", type=int, default=50, help="wrk connections")
    ap.add_argument("-t", type=int, default=2, help="wrk threads")
    ap.add_argument("-d", type=int, default=5, help="seconds of load (at most 60)")
    a = ap.parse_args()
    lua = Path(__file__).resolve().parent / "lua" / "report.lua"
    w = Window(a.pid)
    out = subprocess.run(["wrk", f"-t{a.t}", f"-c{a.c}", f"-d{min(a.d, 60)}s", "-s", str(lua),
                          f"http://127.0.0.1:{a.port}/"], capture_output=True, text=True,
                         timeout=min(a.d, 60) + 60)
    m = re.search(r"^BENCHJSON (.*)$", out.stdout, re.M)
    if not m:
        sys.exit(f"wrk failed: {out.stdout[-500:]} {out.stderr[-500:]}")
    s = json.loads(m.group(1))
    r = w.close(s["requests"])
    print(f"{s['requests'] / (s['duration_us'] / 1e6):,.0f} req/s; µs of CPU per request:")
    for cls, v in sorted(r["classes"].items(), key=lambda kv: -(kv[1]["user"] + kv[1]["kernel"])):
        print(f"  {cls:16s} user {v['user']:6.2f}  kernel {v['kernel']:6.2f}")
    print(f"  {'server total':16s} {r['total']:.2f}; wrk {r['wrk']:.2f}; rest of the machine "
          f"{r['other']:.2f}")


if __name__ == "__main__":
    main()
