# erlang_python: CPython in the BEAM.  Every target installs what it needs first:
# Debian packages with apt-get (needs root), Python packages into a project venv.
#
#   make run        serve the example app on 127.0.0.1:8000
#   make test       all suites (EUnit, Common Test in the default, processes and
#                   subinterpreters modes, pytest)
#   make build      the NIF, the worker extension and the Erlang apps (plain `rebar3 compile`
#                   does the same)
#   make docs       the API reference (rebar3 edoc): doc/index.html, apps/py_web/doc/index.html
#   make test-asan  the suites against an ASan+UBSan build of the NIF
#   make test-subinterpreters  the erlang_python and py_web suites on Python 3.13 in
#                   subinterpreters mode
#   make fuzz       the HTTP/1.1 parser's property suite and the socket fuzzer at length
#   make valgrind   the NIF's paths under valgrind memcheck (tools/valgrind.sh)
#
# PYTHON selects the interpreter: PYTHON="$(pyenv prefix 3.12.1)/bin/python3" make test
# MODE selects the execution mode of the test targets (ERLANG_PYTHON_MODE; default auto):
#   make test-ct MODE=gil, make test-ct MODE=processes

PYTHON ?= python3
PY_MINOR := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])')
ifeq ($(PYTHON),python3)
VENV ?= .venv
else
VENV ?= .venv-$(PY_MINOR)
endif
VENV_ABS := $(abspath $(VENV))

# What building and serving need (`make build`, `make run`)...
APT_PACKAGES := erlang-base erlang-dev rebar3 erlang-crypto erlang-ssl erlang-public-key \
                erlang-asn1 erlang-syntax-tools erlang-parsetools gcc make
# ... and what the tests need besides (`make test`): not installed by `make run`.
APT_TEST_PACKAGES := erlang-nox erlang-common-test erlang-eunit erlang-proper erlang-tools \
                     erlang-inets git elixir
# One VM per folder: the interpreter lives as long as the VM, and process-wide Python
# state (Django's settings.configure, for one) must not leak from one folder's apps to
# the other's.
# ct/dependency builds a new rebar3 project, a release and a Mix project that depend on a
# clone of this repository's HEAD (commit first: it tests what is committed).
CT_DIRS := ct/erlang_python ct/py_web ct/dependency
# The embedded interpreter imports the test venv's packages (Flask, Django, Starlette...).
MODE ?=
TEST_ENV := VIRTUAL_ENV=$(VENV_ABS) PYTHON=$(PYTHON) $(if $(MODE),ERLANG_PYTHON_MODE=$(MODE))
# The interpreter of test-subinterpreters: pyenv's 3.13.0, else python3.13 on PATH.
SUBINTERP_PYTHON ?= $(shell p=$$(pyenv prefix 3.13.0 2>/dev/null) && echo "$$p/bin/python3" \
                      || command -v python3.13)

.PHONY: all deps test-deps venv run-venv nif build docs test test-eunit test-ct test-python \
        test-docs test-subinterpreters test-asan valgrind fuzz bench-h1 run shell clean

all: build

# ---- set-up ----------------------------------------------------------------------------

# Debian packages: those missing of a list, with apt-get (sudo when not root).
define apt_install
	@missing=$$(for p in $(1); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; \
	  done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:" $$missing; \
	  if [ "$$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi
	@touch $@
endef

deps: .deps.stamp
.deps.stamp: Makefile
	$(call apt_install,$(APT_PACKAGES))

test-deps: .test-deps.stamp
.test-deps.stamp: Makefile .deps.stamp
	$(call apt_install,$(APT_TEST_PACKAGES))

# One venv for both: `make run` puts the example app's packages in it (python[examples]),
# `make test` the test toolchain (python[test], which includes them).
$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip

run-venv: $(VENV)/.installed-examples
$(VENV)/.installed-examples: python/pyproject.toml $(VENV)/bin/python
	$(VENV)/bin/pip install -q -e 'python[examples]'
	@touch $@

venv: $(VENV)/.installed
$(VENV)/.installed: python/pyproject.toml $(VENV)/bin/python
	$(VENV)/bin/pip install -q -e 'python[test]'
	@touch $@

# ---- build -----------------------------------------------------------------------------

# The NIF and the processes mode's worker extension, without the Erlang apps.  rebar3
# compile builds them too (a pre_hook in rebar.config runs c_src/Makefile with the PYTHON
# of its environment).
nif: deps
	$(MAKE) -C c_src PYTHON=$(PYTHON)

build: deps
	PYTHON=$(PYTHON) rebar3 compile

docs: deps
	PYTHON=$(PYTHON) rebar3 edoc

# ---- tests -----------------------------------------------------------------------------

# Runs every suite even when one fails, then fails if any did.  The default Python's
# suites run in the default mode (auto), the Common Test suites again in the processes
# mode, then the erlang_python and py_web Common Test suites on Python 3.13 in
# subinterpreters mode.  Ends with what failed (each step, and each failing Common Test
# run's retry.spec: its failed cases and those that skipped themselves, kept in
# $(TEST_FAILURES)), so that the last lines of the output name it.
TEST_FAILURES = _build/test-failures.txt
test: build venv test-deps
	@rm -f $(TEST_FAILURES); mkdir -p $(dir $(TEST_FAILURES)); \
	for step in test-eunit test-ct "test-ct MODE=processes" test-python test-docs \
	            test-subinterpreters; do \
	  $(MAKE) --no-print-directory $$step || echo "make test: $$step failed" >> $(TEST_FAILURES); \
	done; \
	$(MAKE) --no-print-directory nif; \
	if [ -s $(TEST_FAILURES) ]; then echo; cat $(TEST_FAILURES); exit 1; fi; \
	echo "make test: every suite passed"

# The erlang_python and py_web suites on Python 3.13 (its own venv, .venv-3.13) with one
# sub-interpreter per worker (ct/dependency, which does not depend on the mode, runs once,
# above).  Leaves priv/ built for 3.13: `make nif` rebuilds for PYTHON.
test-subinterpreters:
	@if [ -z "$(SUBINTERP_PYTHON)" ] || [ ! -x "$(SUBINTERP_PYTHON)" ]; then \
	  echo "test-subinterpreters: no Python 3.13 (pyenv 3.13.0 or python3.13) found" >&2; \
	  exit 1; \
	fi
	$(MAKE) --no-print-directory test-ct PYTHON="$(SUBINTERP_PYTHON)" MODE=subinterpreters \
	  CT_DIRS="ct/erlang_python ct/py_web"

test-eunit: build venv test-deps
	$(TEST_ENV) rebar3 eunit --dir test

# A failing run's retry.spec (rebar3's: the cases that failed, and those that skipped
# themselves) goes to $(TEST_FAILURES) as well.
test-ct: build venv test-deps
	@rc=0; for d in $(CT_DIRS); do \
	  $(TEST_ENV) rebar3 ct --dir $$d || { \
	    rc=1; mkdir -p $(dir $(TEST_FAILURES)); \
	    { echo "rebar3 ct --dir $$d (PYTHON=$(PYTHON)$(if $(MODE), MODE=$(MODE))) failed" \
	        "(its retry.spec: failed cases, and cases that skipped themselves):"; \
	      cat _build/test/logs/retry.spec 2>/dev/null; } >> $(TEST_FAILURES); }; \
	done; exit $$rc

test-python: venv
	cd python && $(VENV_ABS)/bin/python -m pytest -q

# The request parser's PropEr suite (test/py_web_h1_prop_tests.erl) with many cases per
# property, and the socket-level fuzzer (test/py_web_h1_socket_tests.erl: the same
# generators' requests sent to running servers); `make test' runs them with 1000 cases.
# Seeded: PY_WEB_FUZZ_SEED=A,B,C (default 1,2,3).
PY_WEB_FUZZ_N ?= 100000
PY_WEB_SOCKET_FUZZ_N ?= 100000
PY_WEB_FUZZ_SEED ?= 1,2,3
fuzz: deps test-deps
	PY_WEB_FUZZ_N=$(PY_WEB_FUZZ_N) PY_WEB_SOCKET_FUZZ_N=$(PY_WEB_SOCKET_FUZZ_N) \
	  PY_WEB_FUZZ_SEED=$(PY_WEB_FUZZ_SEED) \
	  rebar3 eunit --module=py_web_h1_prop_tests,py_web_h1_socket_tests

# Every module's edoc must build.
test-docs: docs

# The NIF built with ASan+UBSan, loaded into a normal beam.smp with the sanitizer runtime
# preloaded.  Leak detection is off: the interpreter is never finalised by design.
ASAN_LIB = $(shell gcc -print-file-name=libasan.so)
UBSAN_LIB = $(shell gcc -print-file-name=libubsan.so)
# SANITIZE=1 in rebar3's environment: its compile hook then keeps the sanitizer build.
test-asan: deps venv test-deps
	$(MAKE) -C c_src PYTHON=$(PYTHON) SANITIZE=1
	SANITIZE=1 PYTHON=$(PYTHON) rebar3 compile
	$(TEST_ENV) SANITIZE=1 LD_PRELOAD="$(ASAN_LIB) $(UBSAN_LIB)" \
	  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:halt_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  rebar3 ct --dir ct/erlang_python
	$(MAKE) -C c_src PYTHON=$(PYTHON)

valgrind: build
	@command -v valgrind >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind
	tools/valgrind.sh

# ---- run -------------------------------------------------------------------------------

# Serves examples/showcase.py (Starlette: JSON, a streamed response, an HTML form) with
# bin/pyweb; Ctrl-C stops it gracefully.  RUN_APP/RUN_ARGS pick another app or options:
#   make run RUN_APP=examples.hello:wsgi_app RUN_ARGS="--port 8080"
RUN_APP ?= examples.showcase:app
RUN_ARGS ?= --host 127.0.0.1 --port 8000
run: build run-venv
	VIRTUAL_ENV=$(VENV_ABS) bin/pyweb $(RUN_APP) $(RUN_ARGS)

shell: run

# ---- benchmarks ------------------------------------------------------------------------

# `make bench` (57.6 min on 2026-12-08) or `make bench QUICK=1` (shorter phases):
# in-process and end-to-end (wrk) numbers against the peer servers, and the execution
# modes, written to bench/results/ (see bench/run.py).  Installs wrk and the bench venv
# (bench/.venv-X.Y) first.  Runs on Python 3.13 when there is one (the subinterpreters
# mode needs 3.12+), else on PYTHON; PYTHON=... on the command line chooses.  Not a test:
# nothing asserts timings.
QUICK ?=
BENCH_PYTHON ?= $(if $(filter command line,$(origin PYTHON)),$(PYTHON),$(or $(SUBINTERP_PYTHON),$(PYTHON)))
.PHONY: bench
bench: deps
	$(MAKE) --no-print-directory build PYTHON="$(BENCH_PYTHON)"
	@rc=0; QUICK=$(QUICK) PYTHON="$(BENCH_PYTHON)" bash bench/bench.sh || rc=1; \
	$(MAKE) --no-print-directory nif; exit $$rc

# Request-head parsing, the strict py_web_h1_request against bare decode_packet, paired
# in one process (bench/h1_parse.erl).  Not a test: nothing asserts timings.
RUNS ?= 15
ITER ?= 20000
bench-h1: deps
	rebar3 compile
	@mkdir -p bench/work/ebin
	erlc -o bench/work/ebin bench/h1_parse.erl
	erl -noshell -pa _build/default/lib/*/ebin -pa bench/work/ebin \
	  -eval 'h1_parse:main(["$(RUNS)", "$(ITER)"])'

clean:
	$(MAKE) -C c_src clean
	rm -rf _build .deps.stamp
