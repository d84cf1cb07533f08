# Set-up and entry points. `make run` and `make test` each work on a fresh clone:
# they create .venv/ (CPU torch first, then the locked dependencies) if it is missing or stale.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PRESET ?= local
CORES ?= 2

.PHONY: venv run tune replicate test lint dvc-yaml push push-checkpoints pull readme bench clean-venv

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
	$(BIN)/maskdiff run --profile profiles/local --cores $(CORES) --configfile config/presets/$(PRESET).yaml

## The tuning stage (README "Tuning"): the staged grid search of PRESET's trainers on its validation
## split, resumable; then its choice becomes the preset's tuned file, which `make run` reads.
tune: venv
	chosen=$$($(BIN)/python -c "from maskdiff.pipeline.layout import Layout; print(Layout.of('$(PRESET)').tuning_chosen)") && \
	$(BIN)/maskdiff run $$chosen --profile profiles/local --cores $(CORES) --configfile config/presets/$(PRESET).yaml && \
	mkdir -p config/tuned && cp $$chosen config/tuned/$(PRESET).json

## The replicated study (README "Results"): PRESET and its base-seed replicates, each a whole DAG
## (resumable), then the snapshot of all of them that the README cites (`make readme` renders it).
REPLICATES ?= local_b1 local_b2
replicate: venv
	for p in $(PRESET) $(REPLICATES); do \
	  $(BIN)/maskdiff run --profile profiles/local --cores $(CORES) --configfile config/presets/$$p.yaml || exit 1; done
	$(MAKE) readme

## Run the whole test suite (unit + integration, slow ones included).
test: venv
	$(BIN)/python -m pytest

lint: venv
	$(BIN)/snakemake --lint

## DVC, one stage per shared piece (README "Sharing results with DVC"). dvc.yaml is generated
## from config/presets/*.yaml: regenerate it after adding a preset or a trained model.
dvc-yaml: venv
	$(BIN)/python -m maskdiff.dvc_stages write

## Producer, any time during a run: commit + push every finished stage of PRESET (or of STAGES=...).
push: venv
	$(BIN)/python -m maskdiff.dvc_stages push $(PRESET) $(STAGES)

## Producer: snapshot + push the last checkpoint of PRESET's unfinished trainers (or of MODELS=...).
push-checkpoints: venv
	$(BIN)/python -m maskdiff.dvc_stages push-checkpoints $(PRESET) $(MODELS)

## Consumer, after `git clone`: pull PRESET's stages recorded in dvc.lock (or STAGES=... and their
## upstream) and record them as up to date for Snakemake, which then plans only the rest.
pull: venv
	$(BIN)/python -m maskdiff.dvc_stages pull $(PRESET) $(STAGES)

## Regenerate the README's generated sections: the results from the finished study of PRESET and its
## base-seed replicates (make replicate), the measurements from the committed benchmark JSON files.
readme: venv
	$(BIN)/maskdiff results-snapshot --results results/$(PRESET) --replicates $(foreach p,$(REPLICATES),results/$(p)) \
	  --tuned config/tuned/$(PRESET).json --preset $(PRESET) --out docs/results/$(PRESET).json
	$(BIN)/maskdiff results-readme --snapshot docs/results/$(PRESET).json --readme README.md
	$(BIN)/maskdiff perf-readme --readme README.md

bench: venv
	$(BIN)/python benchmarks/bench_sampler.py

clean-venv:
	rm -rf $(VENV)
