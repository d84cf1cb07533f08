# Set-up and entry points. `make run` and `make test` each work on a fresh clone:
# they create .venv/ (CPU torch first, then the locked dependencies) if it is missing or stale.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PRESET ?= local
CORES ?= 2

.PHONY: venv run test lint pull bench clean-venv

venv: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	DS_BUILD_OPS=0 $(BIN)/pip install -q -r requirements.lock  # DeepSpeed builds its ops just in time, not at install
	$(BIN)/pip install -q --no-deps -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name maskdiff --display-name "maskdiff (.venv)" > /dev/null
	touch $(STAMP)

## Run the whole DAG (default preset: local; `make run PRESET=smoke` for the quick one).
run: venv
	$(BIN)/snakemake --profile profiles/local --cores $(CORES) --configfile config/presets/$(PRESET).yaml

## Run the whole test suite (unit + integration, slow ones included).
test: venv
	$(BIN)/python -m pytest

lint: venv
	$(BIN)/snakemake --lint

## After `git clone`: fetch the DAG's outputs from the DVC remote and record them as up to date.
pull: venv
	$(BIN)/dvc pull dag@$(PRESET)
	$(BIN)/snakemake --cores 1 --configfile config/presets/$(PRESET).yaml --touch --forceall

bench: venv
	$(BIN)/python benchmarks/bench_sampler.py

clean-venv:
	rm -rf $(VENV)
