#!/usr/bin/env bash
# `make bench` (QUICK=1 for the short run): installs what the benchmark needs, then runs
# bench/run.py.  wrk from Debian; the peer servers, frameworks and matplotlib into
# bench/.venv-X.Y (gitignored; X.Y of PYTHON, the NIF's Python) from
# bench/requirements.txt.  Nothing here is a test.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=bench/.venv-$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
export BENCH_VENV="$PWD/$VENV"

if ! command -v wrk >/dev/null 2>&1; then
  echo "installing wrk (Debian)"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq wrk
fi

if [ ! -f $VENV/.installed ] || [ bench/requirements.txt -nt $VENV/.installed ]; then
  echo "making the bench venv ($VENV)"
  "$PYTHON" -m venv $VENV
  $VENV/bin/pip install -q --upgrade pip
  $VENV/bin/pip install -q -r bench/requirements.txt
  touch $VENV/.installed
fi

mkdir -p bench/work
exec $VENV/bin/python bench/run.py
