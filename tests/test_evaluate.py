"""Evaluation metrics: accuracy with intervals, Answer Backslide, per-problem rows, outputs."""

from __future__ import annotations

import pytest
import torch

from maskdiff.evaluate import evaluate_cell, evaluate_grid, step_correctness
from maskdiff.io import read_json, read_jsonl
from maskdiff.sampling import DecodeSettings
from maskdiff.stats import wilson_interval
from maskdiff.summary import summarize


def test_wilson_interval():
    low, high = wilson_interval(50, 100)
    assert low == pytest.approx(0.4038, abs=1e-3) and high == pytest.approx(0.5962, abs=1e-3)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == pytest.approx(1.0)


def _encode(tokenizer, text, length, eos):
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return ids + [eos] * (length - len(ids))


def test_step_correctness_finds_backslide(tokenizer, ids):
    refs = [{"numbers": [3, 7, 12], "target": 33}, {"numbers": [3, 7, 12], "target": 33}]
    # Row 0: correct at step 1 then wrong (Answer Backslide); row 1: correct only at the end.
    steps = [["1+1", "7*3+12"], ["7*3+12", "12+3"], ["7*3+11", "12+3*7"]]
    traj = torch.tensor([[_encode(tokenizer, t, 8, ids.eos) for t in row] for row in steps])
    final = traj[-1]
    step_rewards, final_rewards = step_correctness(tokenizer, traj, final, ids, "countdown", refs)
    assert step_rewards.tolist() == [[0, 1, 0], [1, 0, 1]]
    assert final_rewards.tolist() == [0, 1]


def test_evaluate_cell_and_grid_outputs(tmp_path, tokenizer, ids, tiny_model):
    records = [
        {"id": f"p{i}", "task": "countdown", "prompt": f"{a},{b},{c}={a + b + c}", "numbers": [a, b, c],
         "target": a + b + c, "answer": str(a + b + c), "solution": f"{a}+{b}+{c}"}
        for i, (a, b, c) in enumerate([(1, 2, 3), (4, 5, 6), (10, 2, 7), (3, 3, 3), (11, 12, 1)])
    ]
    summary, rows = evaluate_cell(tiny_model, tokenizer, ids, records, DecodeSettings(8, 4, 4), batch_size=2)
    assert summary["n"] == 5 and 0 <= summary["accuracy"] <= 1
    assert summary["nfe_per_sequence"] == 4 and summary["nfe_calls"] == 4 * 3  # 3 batches (2+2+1)
    assert len(rows) == 5 and all(len(r["step_correct"]) == 4 for r in rows)
    assert all(r["backslide"] == (r["reward"] == 0 and "1" in r["step_correct"]) for r in rows)
    cells = [DecodeSettings(8, 8, 4), DecodeSettings(8, 8, 4, remasking="rcr", rcr_score="latest")]
    out = evaluate_grid(tiny_model, tokenizer, ids=ids, records=records, cells=cells, out_json=tmp_path / "g.json",
                        out_problems=tmp_path / "g.jsonl", batch_size=4, model_name="m")
    assert [c["label"] for c in read_json(tmp_path / "g.json")] == ["L8-B8-S4-lcr", "L8-B8-S4-rcr-latest"]
    assert len(read_jsonl(tmp_path / "g.jsonl")) == 10
    table = summarize([tmp_path / "g.json"], tmp_path / "s.csv")
    assert list(table["remasking"]) == ["lcr", "rcr-latest"] and len(out) == 2


def test_evaluation_is_deterministic(tokenizer, ids, tiny_model):
    records = [{"id": "x", "task": "arithmetic", "prompt": "1/2+3=", "answer": "\\frac{7}{2}", "solution": ""}] * 3
    s = DecodeSettings(8, 8, 8, temperature=1.0)
    _, a = evaluate_cell(tiny_model, tokenizer, ids, records, s, seed=5)
    _, b = evaluate_cell(tiny_model, tokenizer, ids, records, s, seed=5)
    assert [r["completion"] for r in a] == [r["completion"] for r in b]
    with pytest.raises(ValueError, match="no problems"):
        evaluate_cell(tiny_model, tokenizer, ids, [], s)
