"""Integration: the real snakemake / papermill CLIs on the smoke preset, in temp copies (DVC: test_dvc_stages.py).

One smoke run is shared; every test that changes something works on its own `cp -a` copy of it.
Rerun checks are dry runs (`snakemake -n`) that must schedule exactly the invalidated stages.
"""

from __future__ import annotations

import re

import pandas as pd
import pytest

from maskdiff.io import read_json
from workflow_helpers import BIN, GIT, clone_tree, planned_jobs, run, snakemake

pytestmark = pytest.mark.slow
SMOKE = ["--configfile", "config/presets/smoke.yaml"]
DOWNSTREAM_OF_BASE = {"pretrain_base", "rollout_shard", "mine_answer_backslide", "train_sft", "train_diffu_grpo",
                      "train_mdpo", "evaluate", "aggregate_sweep", "report", "precision_model", "precision_report", "all",
                      "training_curves", "figures", "trajectories"}


@pytest.fixture(scope="module")
def smoke_run(smoke_up_to_training, tmp_path_factory):
    """The whole smoke DAG: a copy of conftest's run up to training (shared with the DVC tests),
    finished here (the evaluations, tables, figures and report)."""
    work = clone_tree(smoke_up_to_training, tmp_path_factory.mktemp("project"))
    snakemake(work, *SMOKE, timeout=1200)
    return work


@pytest.fixture
def copy(smoke_run, tmp_path):
    return clone_tree(smoke_run, tmp_path / "copy")


def test_smoke_dag_outputs(smoke_run):
    work = smoke_run
    manifest = read_json(work / "data/smoke/tasks/countdown/manifest.json")
    assert manifest["files"]["test"]["count"] == 32
    assert manifest["files"]["validation"]["count"] == 32
    for model in ("base", "sft", "diffu_grpo", "mdpo", "mdpo_all_data", "mdpo_null", "mdpo_semi_ar", "mdpo_pure_diff"):
        assert (work / f"results/smoke/models/{model}/model.safetensors").is_file(), model
        assert (work / f"results/smoke/models/{model}/metrics.jsonl").is_file(), model
    sweep = pd.read_csv(work / "results/smoke/sweep.csv")
    # 8 models x 2 tasks x 2 (block, steps) groups x 2 remasking rules, plus the 5 RL-seed replicates
    # (sft-s1, diffu_grpo-s1, mdpo-s1, mdpo_all_data-s1, mdpo_null-s1) x 2 tasks at the default cell only.
    replicates = sweep[sweep["model"].str.endswith("-s1")]
    assert len(sweep) == 8 * 2 * 2 * 2 + 5 * 2, sweep["model"].value_counts()
    assert set(replicates["model"]) == {"sft-s1", "diffu_grpo-s1", "mdpo-s1", "mdpo_all_data-s1", "mdpo_null-s1"}
    # One evaluation job per model and task wrote every cell group of the grid.
    cells = (work / "results/smoke/eval/base/countdown").iterdir()  # (and Snakemake's .snakemake_timestamp)
    assert sorted(p.name for p in cells if not p.name.startswith(".")) == [
        "B16-S16.json", "B16-S16.problems.jsonl", "B4-S16.json", "B4-S16.problems.jsonl"]
    assert len(replicates.groupby(["block_length", "steps", "remasking"])) == 1
    assert set(sweep["remasking"]) == {"lcr", "rcr-max"}
    assert sweep["accuracy"].between(0, 1).all()
    assert (sweep["accuracy_ci_low"] <= sweep["accuracy"]).all() and (sweep["accuracy"] <= sweep["accuracy_ci_high"]).all()
    assert (sweep["nfe_per_sequence"] == sweep["steps"]).all()
    summary = pd.read_csv(work / "results/smoke/summary.csv")
    assert set(summary["steps"]) == {16} and set(summary["block_length"]) == {16}
    stats = read_json(work / "results/smoke/mining/countdown/stats.json")
    # 32 training prompts, each rolled out once per mining block length (rollouts.every_block_length).
    assert stats["overall"]["n"] == 32 * 2 and stats["source"] == "rollouts"
    assert len(list((work / "results/smoke/rollouts/countdown").glob("shard_*-of-2.jsonl"))) == 2
    html = (work / "results/smoke/report.html").read_text()
    for heading in ("paper", "Accuracy vs steps", "Answer Backslide", "Run summary", "Training"):
        assert heading in html, heading
    assert "Traceback" not in html
    metrics = read_json(work / "results/smoke/metrics.json")
    assert set(metrics) >= {"base", "mdpo"}
    figures = sorted(p.name for p in (work / "results/smoke/figures").iterdir())
    assert {"headline.svg", "steps.svg", "training_reward.svg", "validation.svg"} <= set(figures), figures
    curves = work / "results/smoke/curves"
    assert {p.stem for p in (curves / "train").glob("*.csv")} == {
        "sft", "diffu_grpo", "mdpo", "mdpo_all_data", "mdpo_null", "mdpo_semi_ar", "mdpo_pure_diff",
        "sft-s1", "diffu_grpo-s1", "mdpo-s1", "mdpo_all_data-s1", "mdpo_null-s1"}
    assert "reward_mean" in pd.read_csv(curves / "train/mdpo.csv")


def test_a_second_run_does_nothing(smoke_run):
    assert planned_jobs(smoke_run, *SMOKE) == {}


def test_b_grid_change_reruns_only_evaluation_and_report(copy):
    preset = copy / "config/presets/smoke.yaml"
    preset.write_text(preset.read_text().replace("    steps: [16]", "    steps: [8, 16]"))
    jobs = planned_jobs(copy, *SMOKE)
    assert set(jobs) == {"evaluate", "aggregate_sweep", "figures", "report", "all"}  # not training, not trajectories
    # One evaluation job per model and task holds every group: the seed-0 models' jobs rerun (8 models
    # x 2 tasks); the RL-seed replicates, evaluated at the default cell only, do not.
    assert jobs["evaluate"] == 8 * 2


def test_c_pretraining_change_reruns_everything_downstream_of_the_base_model(copy):
    preset = copy / "config/presets/smoke.yaml"
    preset.write_text(preset.read_text().replace("  steps: 30\n", "  steps: 30\n  lr: 0.001\n"))
    jobs = planned_jobs(copy, *SMOKE)
    assert set(jobs) == DOWNSTREAM_OF_BASE, jobs
    assert "prepare_data" not in jobs


def test_d_library_edit_reruns_the_stage_that_uses_it(copy):
    mining = copy / "src/maskdiff/mining.py"
    mining.write_text(mining.read_text() + "\n# an edit\n")
    jobs = planned_jobs(copy, *SMOKE)
    assert "mine_answer_backslide" in jobs and jobs["mine_answer_backslide"] == 2
    assert not {"prepare_data", "pretrain_base", "rollout_shard"} & set(jobs), jobs
    assert {"train_mdpo", "report"} <= set(jobs)


def test_d2_editing_any_imported_module_replans_the_rules_that_import_it(copy):
    """Rule code inputs come from the import graph: a module reached only through imports (no rule
    names it) still replans every rule whose command or notebook imports it, and nothing upstream."""
    import os

    from maskdiff.pipeline.code_deps import stage_code

    def edited(module):
        # A real edit: Snakemake does not rerun for a newer mtime alone when the content's checksum
        # is the one recorded with the outputs.
        path = copy / "src/maskdiff" / module
        text, before = path.read_text(), path.stat().st_mtime
        path.write_text(text + "\n# an edit\n")
        try:
            return planned_jobs(copy, *SMOKE)
        finally:
            path.write_text(text)
            os.utime(path, (before, before))

    # trajectory_report.py: imported by trajectories.py (the trajectories rule) and by the report
    # notebook; the hand-written lists this replaced named it for neither.
    assert set(edited("trajectory_report.py")) == {"trajectories", "report", "all"}
    # stats.py: imported (directly or not) by rollouts, mining, evaluation, training, the summary.
    jobs = edited("stats.py")
    assert {"rollout_shard", "mine_answer_backslide", "evaluate", "train_mdpo", "aggregate_sweep"} <= set(jobs), jobs
    assert not {"prepare_data", "pretrain_base"} & set(jobs), jobs
    assert "src/maskdiff/stats.py" not in stage_code(["pretrain"]) + stage_code(["prepare-data"])
    assert planned_jobs(copy, *SMOKE) == {}  # edits undone: nothing to do


def test_e_no_training_time_job_reads_a_test_file():
    """The test split is read once per model, by `evaluate`: no job of data preparation's consumers
    before evaluation (pretraining, rollouts, mining, trainers, tuning) has a test file among its
    inputs, in the smoke and local DAGs (through Snakemake's API, the jobs as planned)."""
    from workflow_helpers import ROOT, dry_run_jobs

    for preset in ("smoke", "local"):
        jobs = dry_run_jobs(ROOT / f"config/presets/{preset}.yaml", lambda j: (j.rule.name, [str(f) for f in j.input]))
        readers = {rule for rule, inputs in jobs if any(f.endswith("/test.jsonl") for f in inputs)}
        assert readers <= {"evaluate", "precision_model"}, readers
        assert "evaluate" in readers and any(rule.startswith("train_") for rule, _ in jobs)


def test_f_tuning_stage_selects_on_validation_and_a_new_grid_point_trains_alone(copy):
    """`make tune`'s target on the smoke preset: staged points trained and scored on validation, a
    choice per model; then one more learning rate in the grid plans only that point (per model)."""
    target = "results/smoke/tuning/chosen.json"
    snakemake(copy, target, *SMOKE, timeout=1200)
    chosen = read_json(copy / target)
    assert set(chosen["chosen"]) == {"sft", "mdpo"} and chosen["run"]["preset"] == "smoke"
    stages = chosen["models"]["mdpo"]["stages"]
    assert [s["name"] for s in stages] == ["lr", "regularisation", "budget"] and not stages[2]["select"]
    assert len(stages[0]["points"]) == 2 and len(stages[1]["points"]) == 4 and len(stages[2]["points"]) == 2
    for s in stages:
        for p in s["points"]:
            assert set(p["validation"]) == {"countdown", "arithmetic"}
            assert p["validation"]["countdown"]["n"] == 32  # every validation problem, no test problem
    log = (copy / "results/smoke/logs/tuning/mdpo").glob("*/score.log")
    assert all("test.jsonl" not in p.read_text() for p in log)
    preset = copy / "config/presets/smoke.yaml"
    preset.write_text(preset.read_text().replace("grid: {lr: [1.0e-4, 1.0e-3]}", "grid: {lr: [1.0e-4, 1.0e-3, 3.0e-3]}"))
    dry = snakemake(copy, "-n", target, *SMOKE).stdout
    trained = sorted(set(re.findall(r"tuning/(\w+)/([^/\s]+)/model", dry)))
    assert trained == [("mdpo", "lr=0.003,warmup=0,beta=0.02,updates=4"), ("sft", "lr=0.003,warmup=0,updates=4")], trained


def test_watch_a_run_in_tensorboard(smoke_run):
    """The README's "watch a run" command: TensorBoard serves every trainer's and the pretraining's
    curves from results/<preset>/tracking (the default tracker of the presets)."""
    import json
    import subprocess
    import time
    import urllib.request

    from workflow_helpers import free_port, project_env

    runs = [f"{m}/smoke" for m in ("base", "sft", "diffu_grpo", "mdpo", "mdpo_null", "diffu_grpo-s1", "mdpo-s1")]
    port = free_port()
    server = subprocess.Popen([str(BIN / "tensorboard"), "--logdir", "results/smoke/tracking", "--port", str(port),
                               "--host", "127.0.0.1"], cwd=smoke_run, env=project_env(smoke_run),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        tags, deadline = {}, time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/data/plugin/scalars/tags", timeout=5) as resp:
                    tags = json.load(resp)
            except OSError:
                tags = {}
            if set(runs) <= set(tags):
                break
            time.sleep(2)
    finally:
        server.terminate()
        server.wait(timeout=30)
    # A run per model (and seed), labelled <model>/<preset>; the hparams sub-runs hold no scalars.
    assert set(runs) <= set(tags), sorted(tags)
    assert {"train/loss", "train/reward_mean", "train/groups_with_signal", "validation/eval_accuracy/countdown"} <= set(
        tags["mdpo/smoke"]), sorted(tags["mdpo/smoke"])
    assert "train/loss" in tags["base/smoke"] and "train/loss" in tags["diffu_grpo-s1/smoke"]


def test_dvc_exp_show_and_plots_diff_compare_two_runs(copy):
    """`dvc exp show` lists the headline accuracies and `dvc plots diff` draws the training curves of two
    smoke runs that differ in one value. The value is evaluation.trajectory_cases: `dvc exp run` runs
    every stage's command (the preset file is every stage's parameter), and only the trajectories and
    the report rerun, so both revisions have the same accuracies. (An experiment that reruns
    evaluations: tests/test_dvc_stages.py::test_dvc_exp_run_reruns_only_the_invalidated_cells; with
    evaluation.top_p, rerunning all 13 models' evaluations stage by stage, this test took 6-7 min.)"""
    import json

    dvc = str(BIN / "dvc")  # the copy is a git repo on main (conftest's smoke_up_to_training)
    stages = [line.split()[0] for line in run([dvc, "stage", "list"], copy).stdout.splitlines()
              if line.startswith("smoke-")]
    run([dvc, "commit", "-f", *stages], copy, timeout=600)  # the finished smoke run is the stages' state
    run(["git", "add", "-A"], copy)
    run([*GIT, "commit", "-q", "-m", "smoke run"], copy)
    cases = copy / "results/smoke/trajectories.json"
    before = cases.read_bytes()
    run([dvc, "exp", "run", "-n", "cases", "smoke-report", "-S", "config/presets/smoke.yaml:+evaluation.trajectory_cases=2"],
        copy, timeout=1500)

    table = json.loads(run([dvc, "exp", "show", "--json"], copy).stdout)
    main = next(e for e in table if e.get("name") == "main")
    exp = next(r for group in main["experiments"] for r in group["revs"] if r.get("name") == "cases")
    headlines = []
    for data, value in ((main["data"], None), (exp["data"], 2)):
        metrics = data["metrics"]["results/smoke/metrics.json"]["data"]
        assert {"base", "sft", "diffu_grpo", "mdpo", "mdpo-s1"} <= set(metrics), sorted(metrics)
        for task in ("countdown", "arithmetic"):
            headline = metrics["base"][task]["lcr"]
            assert 0.0 <= headline["accuracy_ci_low"] <= headline["accuracy"] <= headline["accuracy_ci_high"] <= 1.0
        assert data["params"]["config/presets/smoke.yaml"]["data"]["evaluation"].get("trajectory_cases") == value
        headlines.append(metrics)
    assert headlines[0] == headlines[1], "accuracies differ between the revisions, though no evaluation input changed"
    assert cases.read_bytes() != before, "the trajectories did not rerun (2 cases instead of 3)"

    proc = run([dvc, "plots", "diff", "main", "cases", "--json", "--split"], copy)
    plots = json.loads(proc.stdout)
    assert not [e for e in plots.get("errors", []) if e["name"].startswith("smoke-")], plots["errors"][:3]
    for name, y in (("smoke-training-reward", "reward_mean"), ("smoke-training-loss", "loss"),
                    ("smoke-validation", "countdown")):
        (plot,) = plots["data"][name]
        values = plot["anchor_definitions"]["<DVC_METRIC_DATA>"]
        assert {v["rev"] for v in values} == {"main", "cases"}, name
        assert all("update" in v and y in v for v in values), (name, values[0])
    rewards = plots["data"]["smoke-training-reward"][0]["anchor_definitions"]["<DVC_METRIC_DATA>"]
    assert {v["filename"] for v in rewards} >= {"mdpo.csv", "diffu_grpo.csv", "mdpo-s1.csv"}
    # training did not change between the two runs: the same curves in both revisions
    by_rev = {rev: sorted((v["filename"], v["update"], v["reward_mean"]) for v in rewards if v["rev"] == rev)
              for rev in ("main", "cases")}
    assert by_rev["main"] == by_rev["cases"] and len(by_rev["main"]) >= 4 * 5


def test_lint_is_clean(smoke_run):
    snakemake(smoke_run, "--lint")


def test_snakemake_report(smoke_run, tmp_path):
    """Snakemake's report holds the headline figures, the tables and the papermill report as items."""
    import zipfile

    snakemake(smoke_run, *SMOKE, "--report", str(tmp_path / "report.zip"))
    names = zipfile.ZipFile(tmp_path / "report.zip").namelist()
    for item in ("headline.svg", "steps.svg", "training_reward.svg", "summary.csv", "sweep.csv", "report.html"):
        assert any(n.endswith(f"/{item}") for n in names), (item, names[:40])
    svg = next(n for n in names if n.endswith("/headline.svg"))
    assert b"<svg" in zipfile.ZipFile(tmp_path / "report.zip").read(svg)


def test_bad_config_names_the_key(smoke_run, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("preset: smoke\npretrain:\n  stepz: 3\n")
    proc = snakemake(smoke_run, "-n", "--configfile", str(bad), check=False)
    assert proc.returncode != 0
    assert "config key pretrain: unknown key(s) ['stepz']" in proc.stdout + proc.stderr


def test_report_notebook_runs_outside_snakemake(tmp_path):
    """The report notebook runs on the committed fixture with papermill and a real kernel."""
    from workflow_helpers import ROOT

    out = tmp_path / "report.ipynb"
    run([str(BIN / "papermill"), "notebooks/report.ipynb", str(out), "-k", "maskdiff"], ROOT)
    run([str(BIN / "jupyter"), "nbconvert", "--to", "html", str(out)], ROOT)
    assert "Answer Backslide" in (tmp_path / "report.html").read_text()


def test_precision_notebook_runs_outside_snakemake(tmp_path):
    """The precision notebook runs on its committed fixture CSV with papermill and a real kernel."""
    from workflow_helpers import ROOT

    out = tmp_path / "precision.ipynb"
    run([str(BIN / "papermill"), "notebooks/precision.ipynb", str(out), "-k", "maskdiff"], ROOT)
    run([str(BIN / "jupyter"), "nbconvert", "--to", "html", str(out)], ROOT)
    html = (tmp_path / "precision.html").read_text()
    assert "Model-free" in html and "trained model" in html and "Traceback" not in html
