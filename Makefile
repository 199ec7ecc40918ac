# flowcore: set-up and everyday commands. Everything lands in .venv inside the repo.
#
#   make demo       set up, then run examples/demo.py
#   make test       set up (Debian packages included), then run the whole test suite
#   make lint       ruff check and ruff format --check
#   make typecheck  mypy on flowcore/
#
# Set-up is idempotent: the virtualenv is created once, and the project is reinstalled
# only when setup.py, pyproject.toml or this Makefile change (see $(STAMP)).

PYTHON ?= python3
VENV ?= .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.flowcore-installed

# The extras installed into the virtualenv: pip install -e '.[$(PIP_EXTRAS)]'.
PIP_EXTRAS := test

# Debian packages the tests need, as package:binary pairs. A package is installed (after
# one apt-get update) only when its binary is neither on PATH nor in APT_BIN_DIRS. Example:
#   APT_PACKAGES := redis-server:redis-server graphviz:dot
# postgresql: the run store's tests start a real server with initdb and pg_ctl.
APT_PACKAGES := redis-server:redis-server graphviz:dot postgresql:initdb chromium:chromium chromium-driver:chromedriver

# Where Debian puts binaries off PATH (globs): PostgreSQL's initdb and pg_ctl live in
# /usr/lib/postgresql/<version>/bin.
APT_BIN_DIRS := /usr/lib/postgresql/*/bin

# Extra arguments for pytest: make test PYTEST_ARGS="-x tests/core"
PYTEST_ARGS ?=

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test deps install lint typecheck bench clean distclean

demo: $(STAMP)
	$(VPY) examples/demo.py

# pytest exits 5 when it collected no tests: any non-zero exit fails make.
test: deps $(STAMP)
	$(VPY) -m pytest -q $(PYTEST_ARGS)

install: $(STAMP)

# Benchmarks: make bench BENCH_ARGS="--only W1,W3 --prefect-python PATH"
BENCH_ARGS ?=
bench: $(STAMP)
	$(VPY) -m pip install -q joblib
	$(VPY) -m benchmarks $(BENCH_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check flowcore tests examples benchmarks
	$(VENV)/bin/ruff format --check flowcore tests examples benchmarks

typecheck: $(STAMP)
	$(VENV)/bin/mypy

deps:
	@missing=""; \
	for pair in $(APT_PACKAGES); do \
	  bin="$${pair#*:}"; found=""; \
	  command -v "$$bin" >/dev/null 2>&1 && found=yes; \
	  for dir in $(APT_BIN_DIRS); do [ -x "$$dir/$$bin" ] && found=yes; done; \
	  [ -n "$$found" ] || missing="$$missing $${pair%%:*}"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -q && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

$(VENV)/pyvenv.cfg:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' || { \
	  echo "flowcore needs Python 3.10 or newer; $(PYTHON) is $$($(PYTHON) -V 2>&1)." >&2; exit 1; }
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { \
	  echo "$(PYTHON) cannot create virtualenvs; installing python3-venv"; \
	  $(SUDO) apt-get update -q && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv; }
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(VENV)/pyvenv.cfg setup.py pyproject.toml Makefile
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q --progress-bar off -e '.[$(PIP_EXTRAS)]'
	touch $(STAMP)

clean:
	rm -rf build dist .pytest_cache .mypy_cache .ruff_cache
	find . -name __pycache__ -type d -not -path './$(VENV)/*' -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
