# Both targets create .venv and install what they need, so a fresh clone with only
# Python 3.11+ and make is enough.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint types pytest dev bench bench-quick chaos clean chromium docker-compose postgresql

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/tiergate demo

dev: $(STAMP)
	$(BIN)/tiergate dev

lint: $(STAMP)
	$(BIN)/ruff format --check src tests bench examples
	$(BIN)/ruff check src tests bench examples

types: $(STAMP)
	$(BIN)/mypy

# The approvals page is tested in Debian's Chromium (driven by Playwright, never downloaded).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

# The production stack's compose file is validated with Debian's docker-compose.
docker-compose:
	@command -v docker-compose >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq docker-compose >/dev/null; }

# The shared store's tests start throwaway clusters with Debian's initdb and pg_ctl.
postgresql:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq postgresql >/dev/null; }

pytest: $(STAMP) chromium docker-compose postgresql
	$(BIN)/pytest

test: lint types pytest

# The full benchmarks (over an hour on 2 cores, most of it the 10,000 waiting runs; about
# 25 minutes with BENCH_WAITING=2000); results in bench/results/*.json and
# the table in BENCHMARKS.md. `bench-quick` only checks that each one runs.
bench: $(STAMP)
	$(BIN)/python bench/overhead.py --runs 30 --rounds 12
	$(BIN)/python bench/gate_latency.py
	$(BIN)/python bench/approval_latency.py --runs $${BENCH_RUNS:-200}
	$(BIN)/python bench/waiting_scale.py --runs $${BENCH_WAITING:-10000} --baseline-runs 300 --drain-timeout 1800
	$(BIN)/python bench/growth.py
	$(BIN)/python bench/telemetry_overhead.py --runs $${BENCH_TELEMETRY_RUNS:-60} --rounds 3
	$(BIN)/python bench/replay_forensics.py --runs 20 --repeat 3
	$(BIN)/python bench/eval_suite.py
	$(BIN)/python bench/detector_cost.py
	$(BIN)/python bench/what_if.py
	$(BIN)/python bench/cli_startup.py
	$(BIN)/python bench/parallel_calls.py
	$(BIN)/python bench/peers.py
	$(BIN)/python bench/_table.py

# Reliability drills at full size (about 12 minutes): worker kill -9 at every kind of moment,
# server kill -9 and restart, 500 runs over two workers, and a fleet of three worker hosts
# sharing only Temporal and PostgreSQL; prints one summary and fails unless no run was lost,
# no effect doubled and no action ran without an allow. `make test` runs them small
# (tests/chaos/test_chaos.py).
chaos: $(STAMP) postgresql
	$(BIN)/python -m tests.chaos

bench-quick: $(STAMP)
	$(BIN)/pytest tests/test_bench.py

clean:
	rm -rf $(VENV) .tiergate .pytest_cache .mypy_cache .ruff_cache
