"""Answer Backslide bookkeeping (the MDPO paper's later name for it: over-denoising), in one place.

A decoded problem *backslides* when some step's full prediction ``x0_hat_t`` was correct but the
final answer is wrong: the model had the answer and denoised past it. Evaluation, baseline
rollouts and mining all classify problems with :func:`answer_backslide` and summarise them with
:func:`backslide_rates`, so the flag, the first/last correct step and the rates mean the same
everywhere.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

from .stats import wilson_interval


@dataclass(frozen=True)
class Backslide:
    """Per-step correctness of one decoded problem and what follows from it."""

    step_correct: str  # one character per step, "1" where that step's x0_hat was correct
    final_correct: bool
    first_correct_step: int | None  # 0-based; None when no step was correct
    last_correct_step: int | None
    backslide: bool  # some step correct, final answer wrong
    steps_after_last_correct: int | None  # over-denoising: steps decoded after the answer was last right

    def as_row(self) -> dict:
        return asdict(self)


def answer_backslide(step_correct: Sequence[bool], final_correct: bool) -> Backslide:
    """Classify one problem from the correctness of every step's prediction and of the final answer.

    The last step counts like any other: a final answer that differs from the last step's
    prediction (they coincide for LCR, not necessarily for other decoders) can still backslide."""
    bits = [bool(c) for c in step_correct]
    correct = [t for t, c in enumerate(bits) if c]
    first = correct[0] if correct else None
    last = correct[-1] if correct else None
    backslide = bool(correct) and not final_correct
    return Backslide(
        step_correct="".join("1" if c else "0" for c in bits),
        final_correct=bool(final_correct),
        first_correct_step=first,
        last_correct_step=last,
        backslide=backslide,
        steps_after_last_correct=len(bits) - 1 - last if backslide else None,
    )


def backslide_rates(rows: Iterable[dict]) -> dict:
    """Rates over rows holding ``final_correct`` (or ``reward``), ``backslide`` and ``first_correct_step``:
    final accuracy, the Answer Backslide rate with its 95% interval, the OD rate (backslides among
    wrong finals) and the share of problems ever correct (some step or the final answer)."""
    rows = list(rows)
    n = len(rows)
    correct = sum(_final(r) for r in rows)
    backslide = sum(bool(r["backslide"]) for r in rows)
    ever = sum(_final(r) or r["first_correct_step"] is not None for r in rows)
    low, high = wilson_interval(backslide, n)
    return {
        "n": n,
        "final_accuracy": correct / n if n else 0.0,
        "backslide": backslide,
        "backslide_rate": backslide / n if n else 0.0,
        "backslide_ci_low": low,
        "backslide_ci_high": high,
        "od_rate": backslide / (n - correct) if n > correct else 0.0,
        "ever_correct_rate": ever / n if n else 0.0,
    }


def step_histograms(rows: Sequence[dict]) -> dict[str, dict[str, int]]:
    """Where correct answers first appear (all problems) and, for backsliding ones, where they first
    appear and where they are last seen."""
    backslides = [r for r in rows if r["backslide"]]
    return {
        "first_correct_step_hist": _hist(r["first_correct_step"] for r in rows if r["first_correct_step"] is not None),
        "backslide_first_correct_step_hist": _hist(r["first_correct_step"] for r in backslides),
        "backslide_last_correct_step_hist": _hist(r["last_correct_step"] for r in backslides),
    }


def _final(row: dict) -> bool:
    return bool(row["final_correct"]) if "final_correct" in row else row["reward"] > 0.5


def _hist(values) -> dict[str, int]:
    return {str(k): v for k, v in sorted(Counter(int(v) for v in values).items())}
