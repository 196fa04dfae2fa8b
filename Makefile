# The two commands (README): `make run` starts the whole platform, `make test` runs the suite.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: run test install install-dev lint schema clean

$(PY):
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "Python 3.11 is required ($(PYTHON) not found)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.installed-run: requirements/run.txt requirements/base.txt | $(PY)
	$(PIP) install --quiet -r requirements/run.txt
	@touch $@

$(VENV)/.installed-dev: requirements/dev.txt requirements/run.txt requirements/base.txt | $(PY)
	$(PIP) install --quiet -r requirements/dev.txt
	@touch $@ $(VENV)/.installed-run

install: $(VENV)/.installed-run
install-dev: $(VENV)/.installed-dev

run: install
	$(PY) -m backupplatform.runner run

# Test files are spread over TEST_WORKERS processes (pytest-xdist; each has its own test
# database, Redis database and folders); TEST_WORKERS=0 runs them in this one. Work stealing
# hands out tests by position (schemathesis' items share one node id, which file-based
# scheduling would run only once) in runs of neighbours, so module fixtures are rarely repeated.
TEST_WORKERS ?= 3
test: install-dev
	$(PY) -m backupplatform.runner test -n $(TEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(PY) manage.py check
	DJANGO_SETTINGS_MODULE=backupplatform.settings.test $(PY) manage.py spectacular --validate --fail-on-warn --file /dev/null

clean:
	rm -rf $(VENV) var
