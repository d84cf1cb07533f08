"""Training-curve tables (what dvc plots diff draws) and headline figures (what snakemake --report
attaches) from a run's files: every run gets its table with the logged values, per-task models keep
their path, and the figures are real, deterministic SVG."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from maskdiff.figures import run_of, write_curves, write_figures
from maskdiff.io import read_jsonl, write_jsonl

FIXTURE = Path(__file__).parent / "fixtures/report/results"


def _trained_dirs() -> list[Path]:
    return sorted(p for p in (FIXTURE / "models").iterdir() if p.name != "base" and (p / "metrics.jsonl").exists())


def test_curves_hold_every_logged_update_and_validation_point(tmp_path):
    runs = write_curves(_trained_dirs(), tmp_path / "curves")
    assert runs == [p.name for p in _trained_dirs()]
    for model_dir in _trained_dirs():
        events = read_jsonl(model_dir / "metrics.jsonl")
        updates = [e for e in events if e.get("event") == "update"]
        train = pd.read_csv(tmp_path / "curves/train" / f"{model_dir.name}.csv")
        assert list(train["update"]) == [e["update"] for e in updates]
        assert list(train["loss"]) == [e["loss"] for e in updates]
        if "reward_mean" in updates[0]:
            assert list(train["reward_mean"]) == [e["reward_mean"] for e in updates]
        evals = [e for e in events if e.get("event") == "eval"]
        path = tmp_path / "curves/validation" / f"{model_dir.name}.csv"
        assert path.exists() == bool(evals), model_dir.name
        if evals:
            validation = pd.read_csv(path)
            assert list(validation["update"]) == [e["update"] for e in evals]
            assert list(validation["countdown"]) == [e["eval_accuracy/countdown"] for e in evals]


def test_per_task_models_keep_their_path(tmp_path):
    model = tmp_path / "results/p/models/mdpo/countdown"
    write_jsonl(model / "metrics.jsonl", [{"event": "update", "update": 1, "loss": 0.5, "reward_mean": 0.25},
                                          {"event": "eval", "update": 1, "eval_accuracy/countdown": 0.1}])
    assert run_of(model) == "mdpo/countdown"
    write_curves([model], tmp_path / "curves")
    assert pd.read_csv(tmp_path / "curves/train/mdpo/countdown.csv").to_dict("records") == [
        {"update": 1, "loss": 0.5, "reward_mean": 0.25}]
    assert list(pd.read_csv(tmp_path / "curves/validation/mdpo/countdown.csv").columns) == ["update", "countdown"]


def test_figures_are_svg_and_deterministic(tmp_path):
    write_curves(_trained_dirs(), tmp_path / "curves")
    names = write_figures(FIXTURE / "summary.csv", FIXTURE / "sweep.csv", tmp_path / "curves", tmp_path / "a")
    assert names == ["headline.svg", "steps.svg", "training_reward.svg", "validation.svg"]
    write_figures(FIXTURE / "summary.csv", FIXTURE / "sweep.csv", tmp_path / "curves", tmp_path / "b")
    for name in names:
        text = (tmp_path / "a" / name).read_text()
        assert text.lstrip().startswith("<?xml") and "<svg" in text and text.count("<path") > 10, name
        assert (tmp_path / "b" / name).read_text() == text, f"{name} differs between two draws of the same run"
    headline = (tmp_path / "a/headline.svg").read_text()
    assert "mdpo" in headline and "countdown" in headline
