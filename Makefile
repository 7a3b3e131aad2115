# The two set-up commands (see README):
#   make chat   install everything, ingest the sample collection if needed, open the browser chat
#   make test   install everything the tests need and run them
# llama-cpp-python is built for this machine's CPU (LLAMA_BUILD=native, the default; the loader
# refuses it with the remedy on a CPU with fewer instructions). For an image or virtualenv that
# will run on other machines: LLAMA_BUILD=portable make chat (or make test); see scripts/setup.sh.
export LLAMA_BUILD ?= native
PY ?= python3
HOST ?= 127.0.0.1
PORT ?= 7860
PYTEST_ARGS ?=

.PHONY: chat test setup setup-test lint bench print-llama-build

setup:
	scripts/setup.sh

setup-test:
	scripts/setup.sh --test

print-llama-build:
	@scripts/setup.sh --print-llama-build

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
