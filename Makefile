# The two entry points: `make demo` and `make test`. Each builds .venv when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean gdb chromium prometheus pythons

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' || \
		{ echo "loopscope needs Python 3.10 or newer: run 'make PYTHON=python3.X ...'"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/loopscope demo

# Two phases: most tests in TEST_WORKERS processes at once, then the tests marked `serial`, which
# judge timing, alone. Both phases run; either failing fails the target. Most of the first
# phase's time goes to waiting for programs that run for a fixed time (a module's tests stay in
# one process): with one process more than cores, a 2-core machine's cores were busy 74% of it,
# and it took 434 s rather than 575 s.
TEST_WORKERS ?= $(shell echo $$(( $$(nproc) + 1 )))
test: $(STAMP) gdb chromium prometheus pythons lint
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadgroup -m "not serial"; \
	parallel=$$?; \
	$(BIN)/python -m pytest -q -m serial; \
	serial=$$?; \
	test $$parallel = 0 && test $$serial = 0

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(STAMP) gdb pythons
	$(BIN)/python benchmarks/overhead.py
	$(BIN)/python benchmarks/attach.py --rounds 5

# `loopscope attach --method gdb` (and the fallback when pyinjector cannot be used) needs gdb.
gdb:
	@command -v gdb >/dev/null 2>&1 || { \
		echo "installing gdb (for loopscope attach)"; \
		if [ "$$(id -u)" != 0 ]; then echo "not root: install gdb yourself (sudo apt-get install gdb)"; \
		else apt-get install -y -qq gdb >/dev/null 2>&1 || \
		  { apt-get update -qq && apt-get install -y -qq gdb >/dev/null; }; fi; }

# The tests of `report --html` and of `--web` open the pages in a headless Chromium; without it
# they are skipped, so a failed install does not stop `make test`.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
		echo "installing chromium (for the tests of the HTML report and the web UI)"; \
		if [ "$$(id -u)" != 0 ]; then echo "not root: install chromium yourself (sudo apt-get install chromium)"; \
		else apt-get install -y -qq chromium >/dev/null 2>&1 || \
		  { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } || \
		  echo "could not install chromium: its tests will be skipped"; fi; }

# The tests of `loopscope serve` scrape it with a real Prometheus server (they skip without one).
prometheus:
	@command -v prometheus >/dev/null 2>&1 || { \
		echo "installing prometheus (for the tests of loopscope serve)"; \
		if [ "$$(id -u)" != 0 ]; then echo "not root: install prometheus yourself (sudo apt-get install prometheus)"; \
		else apt-get install -y -qq prometheus >/dev/null 2>&1 || \
		  { apt-get update -qq && apt-get install -y -qq prometheus >/dev/null; } || \
		  echo "could not install prometheus: its tests will be skipped"; fi; }

# Target Pythons 3.14 and 3.15: a cached Debian unstable root, with uvloop for them (see
# tools/pythons.sh; pip fetches uvloop's wheels).
pythons:
	@PIP_PYTHON=$$(test -x $(BIN)/python && echo $(BIN)/python || echo python3) sh tools/pythons.sh

clean:
	rm -rf $(VENV) .pytest_cache
