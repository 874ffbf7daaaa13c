# The two commands: `make run` (the whole system, embedded defaults) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q

# Tests run against the real services of this machine; override to point elsewhere.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/dumont
TEST_REDIS_URL ?= redis://127.0.0.1:6379/1

.PHONY: run test lint fmt install install-dev chromium

$(VENV)/.installed: requirements.txt agent/pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -r requirements.txt
	$(PIP) install --no-deps -e ./agent
	@touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt cli/pyproject.toml
	$(PIP) install -r requirements-dev.txt
	$(PIP) install --no-deps -e ./cli
	@touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

run: $(VENV)/.installed
	$(PY) manage.py launch

# The browser tests (portal/tests/browser.py) drive Debian's Chromium; Playwright's own browser
# download is not used. Installed here when missing and we are root, else those tests skip.
CHROMIUM := /usr/bin/chromium
chromium:
	@test -x $(CHROMIUM) || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "Installing Debian's chromium for the browser tests"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -q chromium >/dev/null 2>&1 \
	      || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; } \
	      || echo "Could not install chromium: the browser tests will be skipped"; \
	  else echo "No $(CHROMIUM) and not root to install it: the browser tests will be skipped"; fi; }

test: $(VENV)/.installed-dev chromium
	rm -rf var/test/objects  # snapshot repositories of earlier runs (tenant ids start over)
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) \
	  DUMONT_HOME=$(CURDIR)/var/test SECRET_KEY=test-only-not-secret \
	  $(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	DUMONT_HOME=$(CURDIR)/var/lint SECRET_KEY=lint-only $(PY) manage.py makemigrations --check --dry-run

fmt: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .
