# The two commands of the README: `make demo` and `make test`. Everything they need installs here.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Root installs Debian packages directly; anyone else through sudo.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := docker-compose redis-server bubblewrap

.PHONY: demo test check lint typecheck system-deps venv

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

# Debian packages the test suite calls: docker-compose validates the compose file without an engine;
# redis-server: the Celery tests start their own Redis (on a free loopback port) to stop and restart it.
# bubblewrap is the sandbox that runs students' notebooks.
system-deps:
	@missing=""; for package in $(APT_PACKAGES); do \
		dpkg -s $$package >/dev/null 2>&1 || missing="$$missing $$package"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi

demo: venv
	$(BIN)/autograde demo

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: venv
	$(BIN)/mypy

test: venv system-deps lint typecheck
	$(BIN)/pytest
