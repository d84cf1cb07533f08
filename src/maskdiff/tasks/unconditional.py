"""Whole examples as unconditional samples of the tiny base model.

LLaDA-style pretraining masks every token, prompt included, so the model also learns the joint
distribution of whole sequences. The local base model sees a share of its pretraining rows that
way: the problem, one space, the solution (``unconditional_text``), EOS-filled to a fixed length.
Sampled from nothing (all positions masked), such a model writes problems with solutions; a
sample is *valid* when it is a correct example of one of the local tasks. The precision study
reports that validity next to the entropy of unconditional samples (a quality metric beside a
diversity one, as the paper pairs Gen PPL with entropy).
"""

from __future__ import annotations

import re

SEPARATOR = " "
_COUNTDOWN_PROBLEM = re.compile(r"(\d+(?:,\d+)+)=(\d+)")


def unconditional_text(record: dict) -> str:
    """The training text of a record used as an unconditional example."""
    return record["prompt"] + SEPARATOR + record["solution"]


def valid_example(text: str) -> str | None:
    """The task of which ``text`` is a correct example (``countdown`` or ``arithmetic``), else None.

    Countdown: ``a,b,c=target expression`` with the expression using each number once and equal to
    the target. Arithmetic: ``expression= value`` with the exact value in the task's LaTeX form."""
    # Imported here so that pretraining, which needs only unconditional_text, does not depend on
    # (and rerun after edits of) the reward code.
    from ..rewards.countdown import evaluate_expression, score_countdown_answer
    from .arithmetic import latex_number

    problem, sep, solution = text.partition(SEPARATOR)
    if not sep or not solution:
        return None
    match = _COUNTDOWN_PROBLEM.fullmatch(problem)
    if match:
        numbers = [int(n) for n in match.group(1).split(",")]
        return "countdown" if score_countdown_answer(solution, numbers, int(match.group(2))) > 0.5 else None
    if problem.endswith("="):
        value = evaluate_expression(problem[:-1])
        if value is not None and latex_number(value) == solution:
            return "arithmetic"
    return None
