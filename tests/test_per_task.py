"""training.per_task, both ways: for the trainers it lists, a train job per model and task that reads
only its task's training and validation files, and an evaluation of each task from that task's model;
for the others one model on every task. The training curves of per-task models are read per method and task.
(The paper rehearsal, which trains per task, runs end to end through the one-node SLURM cluster in
tests/test_slurm.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from maskdiff.io import write_jsonl
from maskdiff.summary import method_name, ordered, read_training_logs
from maskdiff.pipeline.models import TRAINERS, split_model
from workflow_helpers import ROOT, dry_run_jobs

TASKS = ("countdown", "arithmetic")


def _jobs(tmp_path: Path, per_task: list[str]) -> list[tuple[str, dict, list[str]]]:
    preset = tmp_path / "smoke_per_task.yaml"
    preset.write_text(yaml.safe_dump({"extends": "smoke", "preset": "smoke_per_task", "training": {"per_task": per_task}}))
    return dry_run_jobs(preset, lambda job: (job.rule.name, dict(job.wildcards_dict), [str(f) for f in job.input]))


def _reads(files: list[str], kind: str) -> set[str]:
    """The tasks whose ``kind`` files (mining/, validation.jsonl) a job reads."""
    return {t for f in files for t in TASKS if f"/{t}/" in f and kind in f}


@pytest.mark.parametrize("per_task", [["diffu_grpo", "mdpo"], ["sft"], []])
def test_per_task_trains_and_evaluates_each_task_from_its_own_model(tmp_path, per_task):
    jobs = _jobs(tmp_path, per_task)
    trains = [(rule, w, inputs) for rule, w, inputs in jobs if rule.startswith("train_")]
    models = {w.get("sft_model") or w.get("grpo_model") or w.get("mdpo_model") for _, w, _ in trains}
    assert {"sft", "diffu_grpo", "mdpo", "mdpo_all_data", "mdpo_null"} <= models
    evals = [(w, inputs) for rule, w, inputs in jobs if rule == "evaluate" and w["model"] != "base"]
    assert {(w["model"], w["task"]) for w, _ in evals} == {(m, t) for m in models for t in TASKS}, "every model, every task"
    for model in models:
        runs = [(w, inputs) for _, w, inputs in trains if model in w.values()]
        if TRAINERS[split_model(model)[0]] in per_task:
            assert sorted(w["task"] for w, _ in runs) == sorted(TASKS), model
            for w, inputs in runs:  # its own task's training and validation files only
                assert _reads(inputs, "mining/") == {w["task"]} and _reads(inputs, "validation") == {w["task"]}, inputs
        else:
            assert len(runs) == 1 and "task" not in runs[0][0], runs
            assert _reads(runs[0][1], "mining/") == set(TASKS) and _reads(runs[0][1], "validation") == set(TASKS)
    for w, inputs in evals:  # each task's evaluation decodes the model trained on that task
        model_dir = f"results/smoke_per_task/models/{w['model']}"
        if TRAINERS[split_model(w["model"])[0]] in per_task:
            model_dir += f"/{w['task']}"
        assert model_dir in inputs, inputs


def test_training_logs_of_per_task_models_are_one_run_per_method_and_task(tmp_path):
    for model, task, reward in (("mdpo", "countdown", 0.1), ("mdpo-s1", "countdown", 0.2), ("mdpo", "arithmetic", 0.3)):
        write_jsonl(tmp_path / "models" / model / task / "metrics.jsonl", [{"event": "update", "update": 1, "reward_mean": reward}])
    write_jsonl(tmp_path / "models" / "base" / "metrics.jsonl", [{"event": "update", "update": 1}])
    logs = read_training_logs(tmp_path)
    assert {k: v[0]["reward_mean"] for k, v in logs.items()} == {
        "mdpo[countdown]": 0.1, "mdpo[countdown]-s1": 0.2, "mdpo[arithmetic]": 0.3}
    assert method_name("mdpo[countdown]") == "MDPO (Answer Backslide set) (countdown)"
    assert ordered(["mdpo[countdown]", "sft[countdown]", "base"]) == ["base", "sft[countdown]", "mdpo[countdown]"]


def test_the_paper_preset_trains_per_task():
    from maskdiff.config import load_config

    assert load_config(ROOT / "config/presets/paper.yaml")["training"]["per_task"] == ["diffu_grpo", "mdpo"]
    assert load_config(ROOT / "config/presets/local.yaml")["training"]["per_task"] == []
