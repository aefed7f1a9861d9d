# Set-up and everyday commands. Each target installs what it needs on a fresh machine:
# a Python virtual environment, Azurite from npm, and PostgreSQL from Debian's packages.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test bench services java postgres azurite clean

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

## setup: create .venv with the package and its test tools
setup: $(STAMP) java

## demo: run the nightly job on a demo landing (synthetic, real-file and bad-input sessions)
demo: setup
	$(BIN)/playtest demo

## test: run the whole test suite against Spark, Delta, SQLite, PostgreSQL and Azurite
test: setup services
	PLAYTEST_REQUIRE_SERVICES=1 $(BIN)/python -m pytest

## bench: time the job on 200 synthetic one-minute sessions
bench: setup
	$(BIN)/playtest bench --sessions 200

services: postgres azurite

java:
	@command -v java >/dev/null 2>&1 || { \
	  echo "installing a Java runtime for Spark"; \
	  apt-get update -qq && apt-get install -y -qq openjdk-17-jre-headless; }

postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || { \
	  echo "installing PostgreSQL from Debian's packages"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; }

azurite: node_modules/.bin/azurite-blob

node_modules/.bin/azurite-blob: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

clean:
	rm -rf $(VENV) node_modules .playtest .pytest_cache
