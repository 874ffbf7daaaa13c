# The two commands: `make run` (the whole system, embedded defaults) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q

# Tests run against the real services of this machine; override to point elsewhere.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/dumont
TEST_REDIS_URL ?= redis://127.0.0.1:6379/1

.PHONY: run test lint fmt install install-dev

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

test: $(VENV)/.installed-dev
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
