# Two commands matter: `make run` (set up, build the index, open the chat page)
# and `make test` (set up, run every test). Everything else is optional.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.setup-stamp
export HF_HUB_OFFLINE=1
export TRANSFORMERS_OFFLINE=1
export HF_HUB_DISABLE_TELEMETRY=1
export ANONYMIZED_TELEMETRY=False
export GRADIO_ANALYTICS_ENABLED=False

.PHONY: setup chromium postgresql models run chat test test-fast eval bench lint typecheck audit ingest clean

setup: $(STAMP) chromium models

# The triage model is trained from assistant/rules/triage_corpus/ once and cached in .cache/
# (keyed by a hash of the corpus, the policy and the code); this finds it or trains it.
models: $(STAMP)
	$(PY) -m assistant.triage.train build

# Re-runs only when pyproject.toml changes. torch==2.13.0 first: it is the CPU
# build on this machine's disk; an unbounded torch would pull a CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	$(PY) -m assistant.embedding_export
	touch $(STAMP)

# The browser tests drive Debian's Chromium; never `playwright install`.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium is missing: run 'sudo apt-get install chromium' for the browser tests"; fi; }

# The feedback tests start a throwaway server from Debian's PostgreSQL (tests/servers.py).
postgresql:
	@command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	  else echo "postgresql is missing: run 'sudo apt-get install postgresql' for the feedback database tests"; fi; }

ingest: setup
	$(PY) -m assistant ingest

run: setup
	$(PY) -m assistant ingest --quiet
	$(PY) app.py

chat: setup
	$(PY) -m assistant chat

test: setup postgresql
	$(PY) -m pytest

test-fast: setup postgresql
	$(PY) -m pytest -m "not slow and not browser"

eval: setup
	$(PY) -m evals run

bench: setup
	$(PY) -m evals.bench

lint: setup
	$(VENV)/bin/ruff check assistant evals tests app.py
	$(VENV)/bin/mypy assistant

# Known vulnerabilities in the installed set. pip-audit asks PyPI/OSV over the internet and has no
# offline database, so this is not part of `lint`; without a network it says so and passes.
audit: setup
	@if $(PY) -c "import socket; socket.create_connection(('pypi.org', 443), timeout=5)" 2>/dev/null; then \
	  $(VENV)/bin/pip-audit --skip-editable; \
	else echo "audit skipped: pip-audit needs the internet (PyPI/OSV vulnerability data)"; fi

typecheck: setup
	$(VENV)/bin/mypy assistant

clean:
	rm -rf .index .data .cache evals/reports test-output
