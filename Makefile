# Two commands for a newcomer:  `make run`  and  `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
ARGS   ?=

.PHONY: run test check lint typecheck system-deps translation-deps clean bench-sfu bench bench-short cluster-demo

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

## Create the environment, install the translation pairs the defaults use (Apertium, with sudo
## when not root; skipped when present), start the server with the embedded defaults.
run: $(STAMP) translation-deps
	$(VENV)/bin/parley serve $(ARGS)

translation-deps:
	sh scripts/translation-deps.sh || echo "make run: the translation pairs could not be installed; captions stay untranslated into es/fr/pt (see the server's start log)" >&2

## Install what the tests need (environment + system packages); lint, strict types, then the
## whole suite (CI runs exactly this: a lint or type error fails it like a test).
test: $(STAMP) system-deps lint typecheck
	$(PY) -m pytest $(PYTEST_ARGS)

system-deps:
	sh scripts/system-deps.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check server media interpret tests bench
	$(VENV)/bin/ruff format --check server media interpret tests bench
	for f in web/*.js; do node --check $$f || exit 1; done

typecheck: $(STAMP)
	$(VENV)/bin/mypy

## A local cluster (issue 18) in network namespaces: Redis + 2 nodes, reachable from this machine
## (root; README "A cluster of nodes"). ARGS="--nodes 3 --captions".
cluster-demo: $(STAMP) system-deps
	$(PY) scripts/cluster_demo.py $(ARGS)

## Everything CI checks: lint (ruff check + format, node --check), mypy --strict, the tests.
check: test

bench-sfu: $(STAMP)
	$(PY) bench/sfu.py --sweep 1,8,32 --seconds 20 --json bench/results/sfu.json

## The figures in docs/benchmarks.md: reliability long forms, Parley next to Janus, capacity
## (one command, about 60 min on 2 quiet cores, the 30-minute soak included; needs root for apt-get janus and unshare -n).
bench: $(STAMP)
	PYTHONPATH=. $(PY) bench/prove.py --long

## The same, short forms (a smoke run of every step, about 8 min).
bench-short: $(STAMP)
	PYTHONPATH=. $(PY) bench/prove.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
