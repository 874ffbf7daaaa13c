# The two commands: `make run` (the whole system, embedded defaults) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q

# Tests run against the real services of this machine; override to point elsewhere.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/dumont
TEST_REDIS_URL ?= redis://127.0.0.1:6379/1

.PHONY: run test lint fmt install install-dev chromium messages

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

# Plain text logs in the terminal (production's default is JSON): `LOG_FORMAT=json make run`.
LOG_FORMAT ?= plain
run: $(VENV)/.installed
	LOG_FORMAT=$(LOG_FORMAT) $(PY) manage.py launch

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
	  SIM_PROVIDER_URL=http://127.0.0.1:9 \
	  $(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	# The import contract (pyproject.toml, [tool.importlinter]); agent/ first, so the agent read is this tree's.
	PYTHONPATH=agent $(VENV)/bin/lint-imports
	DUMONT_HOME=$(CURDIR)/var/lint SECRET_KEY=lint-only $(PY) manage.py makemigrations --check --dry-run

fmt: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Translations, for maintainers (needs GNU gettext: msgfmt, xgettext, msgmerge). Collects every
# string of the project into the one catalogue locale/pt_BR/LC_MESSAGES/django.po (new strings
# arrive with an empty msgstr, changed ones as fuzzy), compiles it to django.mo and counts what is
# left to translate. Translate those entries (and drop their "fuzzy" flag), run it again and commit
# django.po with django.mo: `make run` reads the .mo and needs no gettext.
I18N_IGNORE := --ignore=.venv --ignore=cli --ignore=var --ignore=bench --ignore="*/tests/*"
I18N_ENV := DUMONT_HOME=$(CURDIR)/var/i18n SECRET_KEY=i18n-only
messages: $(VENV)/.installed
	@command -v msgfmt >/dev/null || { echo "GNU gettext is needed (apt-get install gettext)"; exit 1; }
	mkdir -p locale
	$(I18N_ENV) $(PY) manage.py makemessages -l pt_BR $(I18N_IGNORE) --no-location
	$(I18N_ENV) $(PY) manage.py compilemessages -l pt_BR $(I18N_IGNORE)
	@msgfmt --statistics -o /dev/null locale/pt_BR/LC_MESSAGES/django.po
