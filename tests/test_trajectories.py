"""Denoising trajectories (maskdiff.trajectories): every step's prediction and committed text, scored
with the same reward as the evaluation, Answer Backslide cases first, and the report's view of them."""

from __future__ import annotations

import pytest

import maskdiff.evaluate as evaluate
from maskdiff.sampling.generate import DecodeSettings
from maskdiff.tasks.countdown import generate_countdown
from maskdiff.trajectories import MASK_GLYPH, build_trajectories, pick_cases, trace
from maskdiff.trajectory_report import grid_html, trajectories_html
from parity_reward_cli import parity_reward  # a reward a random model earns half the time

CELL = DecodeSettings(gen_length=8, block_length=8, steps=8, remasking="lcr")


@pytest.fixture
def parity(monkeypatch):
    monkeypatch.setattr(evaluate, "score_completions", parity_reward)


def test_trace_records_every_step_as_the_evaluation_scores_it(tiny_model, tokenizer, ids, parity):
    records = generate_countdown(4, seed=0, split="validation")
    rows = trace(tiny_model, tokenizer, ids, records, CELL, seed=0)
    assert [r["id"] for r in rows] == [r["id"] for r in records]
    for row in rows:
        steps = row["steps"]
        assert [s["step"] for s in steps] == list(range(1, CELL.steps + 1))
        # LCR commits one token per step here (8 tokens, 8 steps): masks left fall by one each step, until
        # the text ends at an end-of-sequence token.
        masks = [s["committed"].count(MASK_GLYPH) for s in steps]
        assert masks[0] <= CELL.gen_length - 1 and masks[-1] == 0 and masks == sorted(masks, reverse=True)
        for s in steps:  # the prediction is scored as the evaluation scores it (here: odd length = correct)
            assert MASK_GLYPH not in s["prediction"] and s["correct"] == bool(len(s["prediction"]) % 2)
        assert row["final_correct"] == bool(len(steps[-1]["committed"]) % 2)
        assert row["backslide"] == (any(s["correct"] for s in steps) and not row["final_correct"])


def test_backslide_cases_come_first():
    scanned = [{"id": "a", "backslide": False}, {"id": "b", "backslide": True}, {"id": "c", "backslide": False},
               {"id": "d", "backslide": True}]
    assert pick_cases(scanned, 3) == ["b", "d", "a"]
    assert pick_cases(scanned, 0) == []


def test_document_and_view(tiny_model, tokenizer, ids, parity):
    records = {"countdown": generate_countdown(6, seed=0, split="validation")}
    doc = build_trajectories((tiny_model, tokenizer, ids), {"mdpo": (tiny_model, tokenizer, ids)}, records, CELL, 2, 0)
    task = doc["tasks"]["countdown"]
    assert task["scanned"] == 6 and len(task["cases"]) == 2 and doc["source"] == "validation"
    for case in task["cases"]:
        base, mdpo = case["views"].values()
        assert base == mdpo  # the same model, cell and seed: the same trajectory
    assert list(task["remasking"]["views"]) == [f"base ({CELL.label})", "base (L8-B8-S8-rcr-max)"]
    html = trajectories_html(doc)
    assert html.count('<table class="trajectory">') == 3 and html.count("<tr>") == 3 * (CELL.steps + 1)
    assert "No trajectory cases" in trajectories_html(None)
    row = {"final_correct": False, "backslide": True,
           "steps": [{"step": 1, "prediction": "<b>1+2</b>", "correct": True, "committed": "·"}]}
    assert 'class="correct"' in grid_html({"m": row}) and "&lt;b&gt;" in grid_html({"m": row}), "text is escaped"


def test_the_readme_example_is_the_committed_fixture():
    """The README's trajectory example is read from the fixture it cites (a real local run's models)."""
    import json
    import re

    from workflow_helpers import ROOT

    doc = json.loads((ROOT / "tests/fixtures/report/trajectories.json").read_text())
    case = doc["tasks"]["countdown"]["cases"][0]
    base = next(iter(case["views"].values()))
    correct = [s["step"] for s in base["steps"] if s["correct"]]
    readme = " ".join((ROOT / "README.md").read_text().split())
    m = re.search(r"the base model's prediction is correct at steps ([\d, -]+) of (\d+) \(first `([^`]+)` = (\d+)\), "
                  r"then it commits `([^`]+)`", readme)
    assert m, "the README's trajectory example"
    listed, steps, prediction, target, final = m.groups()
    ranges = [tuple(map(int, r.split("-"))) if "-" in r else (int(r), int(r)) for r in listed.split(", ")]
    assert correct == [t for lo, hi in ranges for t in range(lo, hi + 1)]
    assert prediction == base["steps"][0]["prediction"] and target == case["target"]
    assert int(steps) == len(base["steps"]) and final == base["steps"][-1]["committed"]
    assert base["backslide"] and not base["final_correct"]
