# One entry point for every check. Each target sets up what it needs itself,
# so `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PEERS := .venv-peers

.PHONY: demo test lint docs bench format clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -e ".[dev,postgres,polars,ray,xgboost,lightgbm,onnx,optuna,monitoring]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/loopml demo

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

# The documentation site (mkdocs.yml), built strictly into a throw-away folder: a broken
# reference or link fails the build.
docs: $(STAMP)
	site="$$(mktemp -d)" && trap 'rm -rf "$$site"' EXIT && \
	$(BIN)/mkdocs build --strict --quiet --site-dir "$$site"

# worksteal: an idle xdist worker takes half of the other's queue (slow tests start first).
test: lint docs
	$(BIN)/pytest -n 2 --dist worksteal -q

format: $(STAMP)
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

$(PEERS)/.installed: bench/peers-requirements.txt
	test -x $(PEERS)/bin/python || $(PYTHON) -m venv $(PEERS)
	$(PEERS)/bin/python -m pip install --quiet --disable-pip-version-check uv
	$(PEERS)/bin/uv pip install --quiet --compile-bytecode --python $(PEERS)/bin/python -r bench/peers-requirements.txt
	touch $(PEERS)/.installed

bench: $(STAMP) $(PEERS)/.installed
	$(BIN)/python bench/tracking.py --vs mlflow --peer-python $(PEERS)/bin/python
	$(BIN)/python bench/data.py --vs pandera
	$(BIN)/python bench/pipelines.py --executor both
	$(BIN)/python bench/serving.py --vs mlflow --peer-python $(PEERS)/bin/python
	$(BIN)/python bench/monitoring.py --vs evidently --peer-python $(PEERS)/bin/python
	$(BIN)/python bench/monitor_window.py
	$(BIN)/python bench/canary_analysis.py
	$(BIN)/python bench/scheduler.py

clean:
	rm -rf $(VENV) $(PEERS) .loopml .pytest_cache .mypy_cache .ruff_cache
