# The two set-up commands (see README):
#   make chat   install everything, ingest the sample collection if needed, open the browser chat
#   make test   install everything the tests need and run them
PY ?= python3
HOST ?= 127.0.0.1
PORT ?= 7860
PYTEST_ARGS ?=

.PHONY: chat test setup setup-test lint bench

setup:
	scripts/setup.sh

setup-test:
	scripts/setup.sh --test

chat: setup
	GRADIO_ANALYTICS_ENABLED=False ANONYMIZED_TELEMETRY=False HF_HUB_OFFLINE=1 \
	  $(PY) -m assistant serve --ingest-if-missing --host $(HOST) --port $(PORT)

test: setup-test
	$(PY) -m ruff check assistant evals tests benchmarks ingest.py
	HF_HUB_OFFLINE=1 ANONYMIZED_TELEMETRY=False $(PY) -m pytest -ra $(PYTEST_ARGS)

lint:
	$(PY) -m ruff check assistant evals tests benchmarks ingest.py
	$(PY) -m ruff format --check assistant evals tests benchmarks ingest.py

bench:
	$(PY) benchmarks/ingest.py
	$(PY) benchmarks/query.py
