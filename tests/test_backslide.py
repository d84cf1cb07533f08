"""Answer Backslide bookkeeping: the one pure function evaluation, rollouts and mining share."""

from __future__ import annotations

import numpy as np
import pytest

from maskdiff.backslide import answer_backslide, backslide_rates, step_histograms

CASES = [
    # step correctness, final correct -> backslide, first, last, steps after the last correct step
    ("0000", False, False, None, None, None),  # never correct
    ("1111", True, False, 0, 3, None),  # all correct
    ("0001", True, False, 3, 3, None),  # correct only at the last step
    ("1000", False, True, 0, 0, 3),  # correct at step 0 only, then lost
    ("0110", False, True, 1, 2, 1),  # right in the middle, wrong at the end
    ("0101", True, False, 1, 3, None),  # found, lost, found again
    ("0001", False, True, 3, 3, 0),  # last prediction right, final decoded answer wrong (a non-LCR decoder)
    ("0000", True, False, None, None, None),  # final right although no step's prediction was
]


@pytest.mark.parametrize("bits, final, backslide, first, last, after", CASES)
def test_answer_backslide_by_hand(bits, final, backslide, first, last, after):
    flags = answer_backslide([b == "1" for b in bits], final)
    assert (flags.backslide, flags.first_correct_step, flags.last_correct_step) == (backslide, first, last)
    assert flags.steps_after_last_correct == after
    assert flags.step_correct == bits and flags.final_correct == final


def test_answer_backslide_takes_numpy_booleans():
    flags = answer_backslide(np.array([0.0, 1.0, 0.0]) > 0.5, np.bool_(False))
    assert flags.backslide is True and flags.first_correct_step == 1 and isinstance(flags.first_correct_step, int)


def _rows(cases):
    return [answer_backslide([b == "1" for b in bits], final).as_row() for bits, final, *_ in cases]


def test_rates_and_histograms_by_hand():
    rows = _rows(CASES)
    rates = backslide_rates(rows)
    # finals right: cases 2, 3, 6, 8 -> 4 of 8; backslides: cases 4, 5, 7 -> 3; ever correct: all but case 1.
    assert rates["n"] == 8 and rates["final_accuracy"] == 0.5
    assert rates["backslide"] == 3 and rates["backslide_rate"] == pytest.approx(3 / 8)
    assert rates["od_rate"] == pytest.approx(3 / 4)
    assert rates["ever_correct_rate"] == pytest.approx(7 / 8)
    assert rates["backslide_ci_low"] < 3 / 8 < rates["backslide_ci_high"]
    hist = step_histograms(rows)
    assert hist["first_correct_step_hist"] == {"0": 2, "1": 2, "3": 2}
    assert hist["backslide_first_correct_step_hist"] == {"0": 1, "1": 1, "3": 1}
    assert hist["backslide_last_correct_step_hist"] == {"0": 1, "2": 1, "3": 1}


def test_rates_of_nothing_are_zero():
    assert backslide_rates([])["backslide_rate"] == 0.0


def test_evaluation_rows_come_from_the_pure_function(monkeypatch, tokenizer, ids, tiny_model):
    """decode_and_score with a scripted per-step reward: its columns are answer_backslide's."""
    import maskdiff.evaluate as evaluate
    from maskdiff.sampling.generate import DecodeSettings
    from maskdiff.seeding import step_generator

    scripted = {"p0": ("0110", 0.0), "p1": ("0001", 1.0), "p2": ("1000", 0.0), "p3": ("0000", 0.0)}
    records = [{"id": k, "task": "countdown", "prompt": f"{i},2,3=6", "numbers": [i, 2, 3], "target": 6, "answer": "6",
                "solution": "1+2+3"} for i, k in enumerate(scripted, 1)]

    def fake_step_correctness(tokenizer, trajectory_x0, final_ids, ids, kind, refs, *args, **kwargs):
        rows = [scripted[r["id"]] for r in refs]
        steps = np.array([[float(b) for b in bits] for bits, _ in rows])
        return steps, np.array([final for _, final in rows])

    monkeypatch.setattr(evaluate, "reference_of", lambda record: {"id": record["id"]})
    monkeypatch.setattr(evaluate, "step_correctness", fake_step_correctness)
    settings = DecodeSettings(gen_length=8, block_length=8, steps=4)
    rows, nfe, _ = evaluate.decode_and_score(tiny_model, tokenizer, ids, records, settings, 2, step_generator(0, "t"))
    by_id = {r["id"]: r for r in rows}
    for rid, (bits, final) in scripted.items():
        expected = answer_backslide([b == "1" for b in bits], final > 0.5)
        assert by_id[rid]["step_correct"] == bits
        assert (by_id[rid]["backslide"], by_id[rid]["first_correct_step"], by_id[rid]["last_correct_step"]) == (
            expected.backslide, expected.first_correct_step, expected.last_correct_step)
    assert [by_id[k]["backslide"] for k in scripted] == [True, False, True, False]
    assert nfe == 4 * 2, "two batches of 4 steps"
