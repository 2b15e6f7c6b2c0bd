# Two commands: `make run` (set up and serve) and `make test` (set up and run the suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 5000
WORKERS ?= 2

.PHONY: setup setup-dev db run dev demo demo-reset test lint bench

# make run installs what the portal needs; make test adds the test and lint tools.
$(BIN)/.installed: requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

$(BIN)/.installed-dev: $(BIN)/.installed requirements-dev.txt
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

setup: $(BIN)/.installed

setup-dev: $(BIN)/.installed-dev

db: setup
	$(BIN)/flask --app app db upgrade
	$(BIN)/flask --app app init

# The Procfile's processes: gunicorn and the job consumer, stopped together by Ctrl-C.
# Links in mail point at PORTAL_URL: this address unless set (behind a proxy, set it).
run: db
	HOST=$(HOST) WORKERS=$(WORKERS) PORTAL_URL=$${PORTAL_URL:-http://$(HOST):$(PORT)} \
	$(BIN)/honcho start --port $(PORT) --procfile Procfile

# The demo business on a database of its own (never the real one): seeded once, into a new
# file that takes the demo's name only when the seed succeeded, then served as `make run` serves.
DEMO_DB := $(CURDIR)/instance/demo.sqlite3
DEMO_ENV := DATABASE_URL=sqlite:///$(DEMO_DB) JOBS_SQLITE_PATH=$(CURDIR)/instance/demo-jobs.sqlite3

$(DEMO_DB): | $(BIN)/.installed
	rm -f $@.new $@.new-wal $@.new-shm
	DATABASE_URL=sqlite:///$@.new $(BIN)/flask --app app db upgrade
	DATABASE_URL=sqlite:///$@.new JOBS_SQLITE_PATH=$(CURDIR)/instance/demo-jobs.sqlite3 \
	$(BIN)/flask --app app demo seed
	mv $@.new $@

demo: setup $(DEMO_DB)
	$(DEMO_ENV) $(BIN)/flask --app app demo logins
	$(DEMO_ENV) HOST=$(HOST) WORKERS=$(WORKERS) PORTAL_URL=$${PORTAL_URL:-http://$(HOST):$(PORT)} \
	$(BIN)/honcho start --port $(PORT) --procfile Procfile

# Forget the demo's data: the next `make demo` seeds a new one (60 days up to today).
demo-reset:
	rm -f $(DEMO_DB) $(DEMO_DB).new $(DEMO_DB)-wal $(DEMO_DB)-shm instance/demo-jobs.sqlite3*

# Development server with the reloader and the interactive debugger: never expose it.
dev: db
	PORTAL_URL=$${PORTAL_URL:-http://$(HOST):$(PORT)} \
	$(BIN)/flask --app app run --debug --host $(HOST) --port $(PORT)

test: setup-dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: setup-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: setup-dev
	$(BIN)/python bench/run_all.py
