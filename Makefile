# Two commands on a fresh machine: `make morning-check` and `make test`.
# Each bootstraps the virtualenv it needs; re-running with nothing changed does nothing.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PROFILE ?= demo
# make test's workers: each runs whole test files (--dist loadfile) with its own servers
TEST_WORKERS ?= 2
# The install stamp is keyed on pyproject.toml's content, not its mtime.
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml 2>/dev/null | md5sum | cut -c1-12)
LAB_VENV := .venv-lab
LAB_STAMP := $(LAB_VENV)/.installed-$(shell cat pyproject.toml 2>/dev/null | md5sum | cut -c1-12)

.PHONY: morning-check hourly-check health-check evening-wrap weekly-review monthly-maintenance lab test lint bench demo bootstrap redis-server chromium

bootstrap: $(STAMP)

# uv installs the ~90 packages in ~8 s where pip takes ~45 s; it compiles bytecode
# because this environment sets PYTHONDONTWRITEBYTECODE, without which every kernel
# start would pay ~2 s of recompilation.
$(STAMP):
	@echo "bootstrapping $(VENV) (once per pyproject.toml change)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check uv || true
	@if [ -x $(BIN)/uv ]; then \
		VIRTUAL_ENV=$(CURDIR)/$(VENV) $(BIN)/uv pip install --quiet --compile-bytecode -e '.[test]'; \
	else \
		$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'; \
	fi
	@$(BIN)/python -m ipykernel install --sys-prefix --name opslib --display-name "opslib" >/dev/null
	@rm -f $(VENV)/.installed-*
	@touch $@

# The built-in demo (and, for PROFILE=spots, the spots demo) is created when missing.
morning-check: $(STAMP)
	@$(BIN)/opslib demo $(if $(filter spots,$(PROFILE)),spots,demo) --if-stale
	@$(BIN)/opslib run morning-check --profile $(PROFILE)

# The video pipeline's schedule (PROFILE=video with VIDEO_DSN and VIDEO_REDIS_URL set).
hourly-check: $(STAMP)
	@$(BIN)/opslib run hourly-monitor --profile $(PROFILE)

evening-wrap: $(STAMP)
	@$(BIN)/opslib run evening-wrap --profile $(PROFILE) -p apply=true --by make

# The ideas pipeline's five-minute check (PROFILE=ideas with IDEAS_DSN set).
health-check: $(STAMP)
	@$(BIN)/opslib run health-check --profile $(PROFILE)

# The catalog pipeline's schedule (PROFILE=catalog; the demo folder is created when missing).
weekly-review: $(STAMP)
	@$(if $(filter catalog,$(PROFILE)),$(BIN)/opslib demo catalog --if-stale)
	@$(BIN)/opslib run weekly-review --profile $(PROFILE)

# Shows its plans; add APPLY=true to archive logs and back up the configuration.
monthly-maintenance: $(STAMP)
	@$(if $(filter catalog,$(PROFILE)),$(BIN)/opslib demo catalog --if-stale)
	@$(BIN)/opslib run monthly-maintenance --profile $(PROFILE) $(if $(APPLY),-p apply=$(APPLY) --by make)

demo: $(STAMP)
	@$(BIN)/opslib demo

# Tests start their own PostgreSQL (installed on this machine kind) and Redis servers;
# redis-server and chromium come from apt when missing. nbval runs inside the suite
# (tests/test_notebooks.py) against a private copy of the demo. Two workers: most tests
# wait on a kernel, a server or a timeout, and one process left a 2-core machine half idle
# (12 min 57 s in one process, 7 min 20 s in two, same 844 tests).
test: $(STAMP) redis-server chromium
	@$(BIN)/ruff check --quiet .
	@$(BIN)/ruff format --check --quiet .
	@$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=20 tests

lint: $(STAMP)
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .

bench: $(STAMP)
	@$(BIN)/python bench/runner_overhead.py

# JupyterLab gets its own environment: its extras slow every nbformat import by ~0.7 s,
# which scheduled runs should not pay. It sees the `opslib` kernel registered in $(VENV).
$(LAB_STAMP): $(STAMP)
	@test -x $(LAB_VENV)/bin/python || $(PYTHON) -m venv $(LAB_VENV)
	@$(LAB_VENV)/bin/python -m pip install --quiet --disable-pip-version-check uv
	@VIRTUAL_ENV=$(CURDIR)/$(LAB_VENV) $(LAB_VENV)/bin/uv pip install --quiet --compile-bytecode 'jupyterlab>=4'
	@rm -f $(LAB_VENV)/.installed-*
	@touch $@

lab: $(LAB_STAMP)
	@$(BIN)/opslib demo --if-stale
	JUPYTER_PATH=$(CURDIR)/$(VENV)/share/jupyter $(LAB_VENV)/bin/jupyter lab --notebook-dir=notebooks \
		$(if $(filter 0,$(shell id -u)),--allow-root)

# System packages the tests need, from apt when missing: redis-server (the tests start
# their own, never as a service) and chromium (the browser check renders reports).
redis-server chromium:
	@command -v $@ >/dev/null || { \
		if [ "$$(id -u)" = 0 ]; then \
			echo "installing $@ with apt"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $@ >/dev/null; \
		else \
			echo "$@ is missing: sudo apt-get install $@"; exit 1; \
		fi; \
	}
