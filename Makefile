# The two commands of the README: `make demo` and `make test`. Everything they need installs here.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Root installs Debian packages directly; anyone else through sudo.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# bubblewrap is the sandbox that runs students' notebooks: `make demo` needs it too.
SANDBOX_PACKAGES := bubblewrap
APT_PACKAGES := $(SANDBOX_PACKAGES) docker-compose redis-server docker.io debootstrap python3 chromium

.PHONY: demo test check lint typecheck system-deps sandbox-deps node-deps apt-install venv

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml service/dashboard/assets/package-lock.json | node-deps
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	# The OpenAPI client generator (tests/test_openapi_client.py) in its own environment: its typer
	# pin excludes the one the service needs. Its version is the `codegen` group of pyproject.toml.
	$(PYTHON) -m venv $(VENV)/codegen
	$(VENV)/codegen/bin/pip install --quiet --upgrade pip
	$(VENV)/codegen/bin/pip install --quiet --group codegen
	# The dashboard's browser assets (htmx), pinned in its package-lock.json, served by the service.
	npm ci --prefix service/dashboard/assets --no-audit --no-fund --silent
	touch $@

# Debian packages the test suite calls: docker-compose validates the compose file and starts the
# stack; redis-server: the Celery tests start their own Redis (on a free loopback port) to stop and
# restart it; docker.io (dockerd), debootstrap and Debian's python3: the deployment test starts its own
# engine, builds a base image from the Debian mirror and picks the image's wheels for its python3;
# chromium: the dashboard's browser tests drive Debian's build through Playwright (no browser download).
system-deps:
	@$(MAKE) --no-print-directory apt-install PACKAGES="$(APT_PACKAGES)"

# npm installs the dashboard's browser assets; Debian's package only where no npm is installed.
node-deps:
	@command -v npm >/dev/null 2>&1 || $(MAKE) --no-print-directory apt-install PACKAGES="npm"

sandbox-deps:
	@$(MAKE) --no-print-directory apt-install PACKAGES="$(SANDBOX_PACKAGES)"

apt-install:
	@missing=""; for package in $(PACKAGES); do \
		dpkg -s $$package >/dev/null 2>&1 || missing="$$missing $$package"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi

demo: venv sandbox-deps
	$(BIN)/autograde demo

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: venv
	$(BIN)/mypy

test: venv system-deps lint typecheck
	$(BIN)/pytest
