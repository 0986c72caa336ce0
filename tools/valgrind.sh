#!/usr/bin/env bash
# Runs tools/vg_smoke.erl (the NIF's paths: start, calls, errors, a timeout, WSGI, ASGI,
# a stream, stop) under valgrind memcheck and fails if any error's stack goes through the
# NIF (a frame in c_src/): invalid reads, writes and frees in the NIF itself and in Python
# code or libraries it calls (every worker thread starts in c_src/exec/worker.c).
# Definedness errors are off (--undef-value-errors=no) and reads of live emulator carriers
# are not counted: memcheck cannot follow Debian's JIT beam.smp (it remaps reserved
# ranges and writes from JIT code), so Erlang heaps and binaries look uninitialised or
# unaddressable to it; ASan+UBSan (make test-asan) covers those.  Errors inside the
# emulator alone are not ours and are not counted.
# Usage: tools/valgrind.sh   (after `make build`; takes about half a minute)
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
erlc -o "$out" tools/vg_smoke.erl
valgrind --trace-children=yes --smc-check=all --num-callers=50 --undef-value-errors=no \
  --fullpath-after= \
  --suppressions=tools/valgrind-beam.supp --log-file="$out/vg.%p.log" \
  erl -noshell -pa "$out" -pa _build/default/lib/*/ebin \
  -eval "vg_smoke:main(\"$(pwd)/tools\")" | tee "$out/stdout"
grep -q VG_SMOKE_OK "$out/stdout" || { echo "valgrind: the smoke run did not finish"; exit 1; }
python3 - "$out" <<'PY'
import glob, re, sys
bad = []
for path in glob.glob(sys.argv[1] + "/vg.*.log"):
    text = open(path).read()
    for block in re.split(r"\n==\d+== \n", text):
        head = block.split(" alloc'd")[0].split(" free'd")[0]
        if not re.search(r"(Invalid (read|write|free)|Mismatched|overlap|Syscall param)", head):
            continue
        if "/c_src/" not in head:
            continue  # the emulator alone
        if "erts_sys_aligned_alloc" in block and " free'd" not in block:
            # Memory of the emulator's own carriers (Erlang heaps and binaries), which
            # memcheck mis-tracks once the emulator remaps its reserved ranges.
            continue
        bad.append(block)
for block in bad[:10]:
    print(block, "\n----")
print(f"valgrind: {len(bad)} error(s) through the NIF")
sys.exit(1 if bad else 0)
PY
