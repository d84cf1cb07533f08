"""Integration: the real snakemake CLI runs the whole DAG on the smoke preset in a temp copy."""

from __future__ import annotations

import pandas as pd
import pytest

from maskdiff.io import read_json
from workflow_helpers import copy_project, planned_jobs, snakemake

pytestmark = pytest.mark.slow
SMOKE = ["--configfile", "config/presets/smoke.yaml"]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    work = copy_project(tmp_path_factory.mktemp("project"))
    snakemake(work, *SMOKE)
    return work


def test_smoke_dag_outputs(smoke_run):
    work = smoke_run
    manifest = read_json(work / "data/smoke/tasks/countdown/manifest.json")
    assert manifest["files"]["test"]["count"] == 32
    assert (work / "results/smoke/models/base/model.safetensors").is_file()
    assert (work / "results/smoke/models/base/metrics.jsonl").is_file()
    table = pd.read_csv(work / "results/smoke/summary.csv")
    # 2 tasks x 4 (block, steps) groups x 2 remasking rules.
    assert len(table) == 16
    assert set(table["remasking"]) == {"lcr", "rcr-max"}
    assert table["accuracy"].between(0, 1).all()
    assert (table["accuracy_ci_low"] <= table["accuracy"]).all() and (table["accuracy"] <= table["accuracy_ci_high"]).all()
    assert (table["nfe_per_sequence"] == table["steps"]).all()
    assert (work / "results/smoke/logs/pretrain_base.log").is_file()


def test_second_run_does_nothing(smoke_run):
    assert planned_jobs(smoke_run, *SMOKE) == {}


def test_lint_is_clean(smoke_run):
    snakemake(smoke_run, "--lint")


def test_bad_config_names_the_key(smoke_run, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("preset: smoke\npretrain:\n  stepz: 3\n")
    proc = snakemake(smoke_run, "-n", "--configfile", str(bad), check=False)
    assert proc.returncode != 0
    assert "config key pretrain: unknown key(s) ['stepz']" in proc.stdout + proc.stderr
