"""The lenient rule's in-process fast path (integers and fractions compared exactly) gives the scores
math-verify gives, and leaves everything else to the verifier in the worker processes."""

from __future__ import annotations

import itertools

import pytest

from maskdiff.rewards import RewardCache, RewardSettings, pool_stats, score_completions
from maskdiff.rewards.math import canonical_math_text, score_math_text, simple_value

ANSWERS = ["7", "-7", "07", "\\frac{14}{3}", "\\frac{28}{6}", "-\\frac{3}{2}", "\\frac{-3}{2}", "\\boxed{7}",
           "\\boxed{\\frac{14}{3}}", "\\frac{7}{1}", "0", "-0", "\\frac{0}{5}", "12345678"]
GOLDS = ["7", "\\frac{14}{3}", "-\\frac{3}{2}", "0"]


@pytest.mark.parametrize("answer, gold", list(itertools.product(ANSWERS, GOLDS)))
def test_fast_path_agrees_with_math_verify(answer, gold):
    text = canonical_math_text(answer)
    expected = score_math_text(text, gold, "lenient")  # math-verify itself, in this process
    fast = simple_value(text) is not None and simple_value(gold) is not None
    got = score_completions("math", [answer], [{"answer": gold}], cache=RewardCache())[0]
    assert got == expected, (answer, gold, "fast path" if fast else "verifier")


def test_fast_path_skips_the_workers_and_the_rest_still_goes_there():
    before = pool_stats()["answers"]
    score_completions("math", ["\\frac{1}{2}", "12"] * 50, [{"answer": "\\frac{2}{4}"}] * 100, cache=RewardCache())
    assert pool_stats()["answers"] == before, "simple answers never reach a worker"
    score_completions("math", ["x = \\frac{1}{2}"], [{"answer": "\\frac{1}{2}"}], cache=RewardCache())
    assert pool_stats()["answers"] == before + 1


def test_released_rule_never_takes_the_fast_path():
    """Under the released (anchored) rule a bare number has no anchor and scores 0."""
    released = RewardSettings.released()
    assert score_completions("math", ["7", "\\boxed{7}"], [{"answer": "7"}] * 2, settings=released).tolist() == [0.0, 1.0]
