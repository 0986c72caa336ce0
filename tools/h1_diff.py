#!/usr/bin/env python3
"""Differential check of py_web's strict request-head parser against h11, httptools
(llhttp, what uvicorn uses) and gunicorn, on the same bytes.

The corpus is the PropEr suite's own generators (test/py_web_h1_prop_tests.erl,
cases/2): N valid requests, N with one targeted fault, N with random byte edits.
tools/h1_diff.erl writes them with py_web_h1_request's verdict; this script feeds the
same bytes to each Python parser and prints, per parser and kind, how often the verdicts
agree (accept / reject / incomplete), where accepted heads differ in their fields, and
the classes of disagreement with an example each.

    make build venv && .venv/bin/pip install h11 httptools gunicorn
    .venv/bin/python tools/h1_diff.py [--n 2000] [--seed 1,2,3]

Nothing here is a test: it reports.
"""
from __future__ import annotations

import argparse
import collections
import glob
import os
import subprocess
import sys
import tempfile
from typing import Callable, NamedTuple

import h11
import httptools
from gunicorn.config import Config
from gunicorn.http.errors import NoMoreData
from gunicorn.http.message import Request
from gunicorn.http.unreader import IterUnreader

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Verdict(NamedTuple):
    kind: str                       # "ok" | "error" | "more"
    detail: str = ""                # status or error text
    method: bytes = b""
    path: bytes | None = None       # None: not an origin-form target
    qs: bytes = b""
    version: str = ""
    headers: tuple = ()


def split_target(target: bytes) -> tuple[bytes | None, bytes]:
    if not target.startswith(b"/"):
        return None, b""
    path, _, qs = target.partition(b"?")
    return path, qs


def ours(fields: list[str]) -> Verdict:
    if fields[0] == "more":
        return Verdict("more")
    if fields[0] == "error":
        return Verdict("error", fields[1])
    _, method, path, qs, version, headers = fields
    hs = tuple((bytes.fromhex(n), bytes.fromhex(v))
               for n, v in (h.split(":") for h in headers.split(",") if h))
    p = bytes.fromhex(path)
    return Verdict("ok", "", bytes.fromhex(method), p if p.startswith(b"/") else None,
                   bytes.fromhex(qs), version, hs)


def with_h11(data: bytes) -> Verdict:
    if not data:                      # receive_data(b"") would mean end of stream
        return Verdict("more")
    conn = h11.Connection(h11.SERVER)
    try:
        conn.receive_data(data)
        ev = conn.next_event()
    except h11.RemoteProtocolError as e:
        return Verdict("error", f"{e.error_status_hint} {e}")
    if ev is h11.NEED_DATA:
        return Verdict("more")
    path, qs = split_target(ev.target)
    return Verdict("ok", "", ev.method, path, qs, ev.http_version.decode(),
                   tuple((n, v) for n, v in ev.headers))


class _Proto:
    def __init__(self) -> None:
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.complete = False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self.complete = True


def with_httptools(data: bytes) -> Verdict:
    proto = _Proto()
    parser = httptools.HttpRequestParser(proto)
    try:
        parser.feed_data(data)
    except httptools.HttpParserUpgrade:
        pass
    except httptools.HttpParserError as e:
        if not proto.complete:        # an error in the body or a next request is not ours
            return Verdict("error", f"{type(e).__name__} {e}")
    if not proto.complete:
        return Verdict("more")
    path, qs = split_target(proto.url)
    return Verdict("ok", "", parser.get_method(), path, qs, parser.get_http_version(),
                   tuple(proto.headers))


def with_gunicorn(data: bytes) -> Verdict:
    try:
        req = Request(Config(), IterUnreader([data]), ("127.0.0.1", 1), 1)
    except NoMoreData:
        return Verdict("more")
    except Exception as e:  # gunicorn raises one class per fault
        return Verdict("error", f"{type(e).__name__} {e}")
    path, qs = split_target(req.uri.encode("latin-1"))
    return Verdict("ok", "", req.method.encode("latin-1"), path, qs,
                   "%d.%d" % req.version,
                   tuple((n.lower().encode("latin-1"), v.encode("latin-1"))
                         for n, v in req.headers))


PARSERS: dict[str, Callable[[bytes], Verdict]] = {
    "h11": with_h11, "httptools": with_httptools, "gunicorn": with_gunicorn}


def corpus(n: int, seed: str) -> list[tuple[str, bytes, Verdict]]:
    subprocess.run(["rebar3", "compile"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    ebins = glob.glob(os.path.join(ROOT, "_build/default/lib/*/ebin"))
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["erlc", "-o", tmp, "test/py_web_h1_prop_tests.erl", "tools/h1_diff.erl"],
                       cwd=ROOT, check=True)
        out = os.path.join(tmp, "corpus.tsv")
        pa = [a for e in ebins for a in ("-pa", e)]
        subprocess.run(["erl", "-noshell", *pa, "-pa", tmp, "-eval",
                        f'h1_diff:main(["{out}", "{n}", "{seed}"])'],
                       cwd=ROOT, check=True, stdout=subprocess.DEVNULL)  # PropEr's pick warnings
        with open(out) as f:
            rows = [line.rstrip("\n").split("\t") for line in f]
    return [(r[0], bytes.fromhex(r[1]), ours(r[2:])) for r in rows]


def header_difference(mine: tuple, theirs: tuple) -> str:
    """Name the kind of difference between two header lists."""
    if len(mine) != len(theirs):
        return "headers(count)"
    kinds = set()
    for (n1, v1), (n2, v2) in zip(mine, theirs):
        if n1 != n2:
            kinds.add("names")
        elif v1 == v2:
            continue
        elif v1 == v2.strip(b" \t"):
            kinds.add("OWS kept in values")
        elif n1 in (b"content-length", b"transfer-encoding"):
            kinds.add(f"{n1.decode()} value rewritten")
        else:
            kinds.add("values")
    return "headers(" + ", ".join(sorted(kinds)) + ")"


def family(kind: str) -> str:
    return kind.split(":")[1] if kind.startswith("invalid:") else kind


def short(data: bytes, limit: int = 240) -> str:
    r = repr(data)
    return r if len(r) <= limit else r[:limit] + "..."


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=2000, help="cases of each kind")
    ap.add_argument("--seed", default="1,2,3")
    ap.add_argument("--examples", type=int, default=1, help="examples per class")
    args = ap.parse_args()
    cases = [c for c in corpus(args.n, args.seed) if not c[0].endswith(":false")]
    print(f"{len(cases)} cases (seed {args.seed}; the faults that need smaller limits are "
          f"left out); py_web verdicts: "
          f"{dict(collections.Counter(v.kind for _, _, v in cases))}\n")
    for name, fn in PARSERS.items():
        table: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        classes: dict[tuple, list] = collections.defaultdict(list)
        for kind, data, mine in cases:
            theirs = fn(data)
            group = kind.split(":")[0]
            if mine.kind != theirs.kind:
                table[group]["verdict differs"] += 1
                key = (mine.kind, theirs.kind, family(kind) if group == "invalid" else
                       (mine.detail or theirs.detail.split(" ")[0]))
                classes[key].append((data, mine, theirs))
            elif mine.kind == "ok" and mine != theirs._replace(detail=""):
                diff = [f for f in ("method", "path", "qs", "version")
                        if getattr(mine, f) != getattr(theirs, f)
                        and not (f in ("path", "qs") and None in (mine.path, theirs.path))]
                if mine.headers != theirs.headers:
                    diff.append(header_difference(mine.headers, theirs.headers))
                if diff:
                    table[group]["fields differ"] += 1
                    classes[("ok", "ok", "+".join(diff))].append((data, mine, theirs))
                else:
                    table[group]["agree"] += 1
            elif mine.kind == "error" and name == "h11" and \
                    theirs.detail.split(" ")[0] != mine.detail:
                # h11 alone says which status it would answer
                table[group]["status differs"] += 1
                key = ("error " + mine.detail, "error " + theirs.detail.split(" ")[0],
                       family(kind) if group == "invalid" else theirs.detail[4:60])
                classes[key].append((data, mine, theirs))
            else:
                table[group]["agree"] += 1
        print(f"## {name}\n")
        print("| kind | agree | verdict differs | fields differ | status differs |")
        print("|---|---|---|---|---|")
        for group in ("valid", "invalid", "mutated"):
            t = table[group]
            print(f"| {group} | {t['agree']} | {t['verdict differs']} | {t['fields differ']} "
                  f"| {t['status differs'] if name == 'h11' else '-'} |")
        print("\nclasses (py_web verdict, theirs, fault or reason): count, example\n")
        for key, items in sorted(classes.items(), key=lambda kv: -len(kv[1])):
            print(f"- {key}: {len(items)}")
            for data, mine, theirs in items[:args.examples]:
                print(f"    {short(data)}")
                print(f"      py_web: {mine.kind} {mine.detail}".rstrip())
                print(f"      {name}: {theirs.kind} {theirs.detail[:100]}".rstrip())
                if key[2] and key[0] == key[1] == "ok":
                    for f in key[2].split("+"):
                        f = f.split("(")[0]
                        print(f"      {f}: {getattr(mine, f)!r}"[:300])
                        print(f"      {' ' * len(f)}  {getattr(theirs, f)!r}"[:300])
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
