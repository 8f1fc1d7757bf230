# The README's two commands: `make run` (the main job on the embedded default)
# and `make test` (the suite; .ci/run calls it). Both create or reuse .venv and
# install from this repository's own files.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
# Reinstall whenever the dependency files change.
DEPS_HASH := $(shell cat pom-free-requirements.txt pyproject.toml | sha1sum | cut -c1-12)
STAMP := $(VENV)/.installed-$(DEPS_HASH)

.PHONY: run test venv bench clean-venv local-up local-down local-status

venv: $(STAMP)

$(STAMP): pom-free-requirements.txt pyproject.toml
	@$(PYTHON) flink_jobs/preflight.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r pom-free-requirements.txt -e '.[local,dev]'
	@rm -f $(VENV)/.installed-* && touch $@

run: $(STAMP)
	@$(PY) flink_jobs/preflight.py
	$(PY) -m flink_jobs.run_local $(ARGS)

test: $(STAMP)
	$(PY) flink_jobs/preflight.py
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) -m detectors.benchmark --out detectors/benchmark.json
	$(PY) -m flink_jobs.benchmark --out flink_jobs/bench/flink.json

local-up: $(STAMP)
	$(PY) -m deploy.local up
local-down: $(STAMP)
	$(PY) -m deploy.local down
local-status: $(STAMP)
	$(PY) -m deploy.local status

clean-venv:
	rm -rf $(VENV)
