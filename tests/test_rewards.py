"""Tests for maskdiff.rewards: correctness, hostile input, de-duplication, pooling."""

from __future__ import annotations

import time

import numpy as np
import pytest

from maskdiff.rewards import (
    RewardCache,
    canonical_math_text,
    countdown_reward,
    extract_countdown_answer,
    extract_math_answer,
    math_reward,
    pool_stats,
    score_completions,
    score_math_text,
    shutdown_pool,
    worker_pids,
)

NUMS, TARGET = [3, 7, 12], 33


# ------------------------------------------------------------------ countdown
@pytest.mark.parametrize(
    "completion, numbers, target",
    [
        ("7*3+12", NUMS, 33),
        ("\\boxed{12+3*7}", NUMS, 33),
        ("<answer>(12-3)*7</answer>", NUMS, 63),
        ("reasoning... <answer> 12 + 7 * 3 </answer>", NUMS, 33),
        ("\\boxed{(12-3)\\times 7}", NUMS, 63),
        ("\\boxed{7 \\cdot 3 + 12}", NUMS, 33),
        ("12 \u00f7 3 \u00d7 7", NUMS, 28),
        ("12 \\div 3 * 7", NUMS, 28),
        ("7*3+12=33", NUMS, 33),
        ("$7*3+12$", NUMS, 33),
        ("6/4*2", [6, 4, 2], 3),  # exact rational arithmetic
        ("(1+2)*3", [1, 2, 3], 9),
        ("3*3+1", [3, 3, 1], 10),  # repeated numbers in the pool are fine
    ],
)
def test_countdown_valid(completion: str, numbers: list[int], target: int) -> None:
    assert countdown_reward(completion, numbers, target) == 1.0


@pytest.mark.parametrize(
    "completion",
    [
        "7*3+13",  # wrong value / wrong number
        "7*3+12+0",  # extra number
        "7*3",  # missing number
        "7*3+12+3-3",  # reused numbers
        "7*7+12-28",
        "-3+7*12-30",
        "12-(-3)*7",  # unary minus rejected by design
        "7.0*3+12",  # floats
        "7*3+12=34",  # equals something other than target
        "7*3+12=33=33",
        "7*3+12==33",
        "True*7*3+12",
        "7*3**1+12",
        "7*3+12//1",
    ],
)
def test_countdown_invalid(completion: str) -> None:
    assert countdown_reward(completion, NUMS, TARGET) == 0.0


HOSTILE = [
    "__import__('os').system('x')",
    "().__class__",
    "lambda: 1",
    "9**9**9",
    "9" * 10_000,
    "(" * 5_000 + "1" + ")" * 5_000,
    "1+" * 5_000 + "1",
    "\\boxed{" * 3_000,
    "<answer>" * 2_000,
    "1/0",
    "3*7/(12-12)",
    "((7*3+12",
    "7*3+12))",
    "\u2603\u00e9\x00\ufffd\U0001f600",
    "",
    "   ",
    "\\boxed{}",
    "<answer></answer>",
    "None",
    "[3, 7, 12]",
    "'7*3+12'",
    "7*3+12 if 1 else 0",
    "999999999999*999999999999*3+12",
]


@pytest.mark.parametrize("completion", HOSTILE)
def test_countdown_hostile(completion: str) -> None:
    start = time.perf_counter()
    assert countdown_reward(completion, NUMS, TARGET) == 0.0
    assert time.perf_counter() - start < 0.2


@pytest.mark.parametrize(
    "numbers, target", [(None, 33), ([3, "x", 12], 33), ([3, 7, 12], "abc"), ([3.5], 3.5)]
)
def test_countdown_bad_reference_never_raises(numbers: object, target: object) -> None:
    assert countdown_reward("7*3+12", numbers, target) == 0.0  # type: ignore[arg-type]


def test_countdown_non_string_never_raises() -> None:
    assert countdown_reward(None, NUMS, TARGET) == 0.0  # type: ignore[arg-type]
    assert countdown_reward(123, NUMS, TARGET) == 0.0  # type: ignore[arg-type]


def test_countdown_extraction() -> None:
    assert extract_countdown_answer("\\boxed{1+2} then \\boxed{7*3+12}") == "7*3+12"
    assert countdown_reward("\\boxed{1+2} then \\boxed{7*3+12}", NUMS, TARGET) == 1.0
    assert countdown_reward("\\boxed{7*3+12} then \\boxed{1+2}", NUMS, TARGET) == 0.0
    assert extract_countdown_answer("\\boxed{(1+2)*3}") == "(1+2)*3"
    assert extract_countdown_answer("x \\boxed{\\frac{1}{2}} y") == "\\frac{1}{2}"
    assert extract_countdown_answer("\\boxed{1+2} and \\boxed{3") == "1+2"  # unclosed ignored
    assert extract_countdown_answer("<answer>1</answer> <answer>2</answer>") == "2"
    assert extract_countdown_answer("\\boxed{5} <answer>2</answer>") == "5"
    assert extract_countdown_answer("  7*3+12 \n") == "7*3+12"
    assert extract_countdown_answer("   ") is None
    assert extract_countdown_answer("") is None


# ------------------------------------------------------------------ math
@pytest.mark.parametrize(
    "completion, gold",
    [
        ("\\frac{11}{12}", "\\frac{11}{12}"),
        ("\\frac{22}{24}", "\\frac{11}{12}"),
        ("0.5", "\\frac{1}{2}"),
        ("\\boxed{-7}", "-7"),
        ("-7", "-7"),
        ("So the answer is \\boxed{\\dfrac{3}{4}}.", "\\frac{3}{4}"),
        ("\\boxed{3} wait, actually \\boxed{5}", "5"),  # last box wins
        ("\\boxed{\\frac{1}{\\sqrt{2}}}", "\\frac{\\sqrt{2}}{2}"),
        ("The final answer is $18.90$", "\\$18.90"),
    ],
)
def test_math_correct(completion: str, gold: str) -> None:
    assert math_reward(completion, gold) == 1.0


@pytest.mark.parametrize(
    "completion, gold",
    [
        ("\\frac{11}{13}", "\\frac{11}{12}"),
        ("\\boxed{7}", "-7"),
        ("\\boxed{5} wait, actually \\boxed{3}", "5"),
        ("garbage", "7"),
        ("", "7"),
        ("   ", "7"),
        ("\\boxed{", "7"),
        ("\\boxed{}", "7"),
        ("}}}{{{\\frac{", "7"),
        ("\u2603\x00\U0001f600", "7"),
        ("x" * 10_000, "7"),
        ("\\boxed{" + "1+" * 2000 + "1}", "7"),
        ("7", "\\text{not parseable }\\frac{"),
    ],
)
def test_math_wrong_or_garbage(completion: str, gold: str) -> None:
    assert math_reward(completion, gold) == 0.0


def test_math_non_string_never_raises() -> None:
    assert math_reward(None, "7") == 0.0  # type: ignore[arg-type]
    assert math_reward("7", None) == 0.0  # type: ignore[arg-type]


def test_extract_math_answer() -> None:
    assert extract_math_answer("so \\boxed{1} and \\boxed{\\frac{a}{ b }}") == "\\frac{a}{ b }"
    assert extract_math_answer("  \\frac{11}{12}\n ") == "\\frac{11}{12}"
    assert extract_math_answer("a \n\t b") == "a b"
    assert extract_math_answer("  ") is None


# ------------------------------------------------------------------ scorer
def test_scorer_countdown_and_dedup() -> None:
    ref = {"numbers": NUMS, "target": TARGET}
    completions = ["7*3+12", "\\boxed{7*3+12}", "7*3+13", "", "<answer>7*3+12</answer>"] * 20
    cache = RewardCache()
    out = score_completions("countdown", completions, [ref] * len(completions), cache=cache)
    assert out.dtype == np.float32 and out.shape == (100,)
    assert out.tolist() == [1.0, 1.0, 0.0, 0.0, 1.0] * 20
    assert cache.misses == 2  # two unique non-empty answers
    out2 = score_completions("countdown", completions, [ref] * len(completions), cache=cache)
    assert np.array_equal(out, out2) and cache.misses == 2
    other = {"numbers": [3, 7, 12], "target": 63}  # same answer, different reference
    assert score_completions("countdown", ["7*3+12"], [other], cache=cache)[0] == 0.0
    assert cache.misses == 3


def test_scorer_math_dedup_counts_verifier_calls() -> None:
    # Math is verified in worker processes, so count the answers they scored (\\dfrac: not a
    # plain number, so not the lenient rule's in-process fast path).
    ref = {"answer": "\\frac{11}{12}"}
    completions = ["\\boxed{\\dfrac{11}{12}}", "x \\boxed{ \\dfrac{11}{12} }", "\\boxed{3.0}", ""] * 25
    cache = RewardCache()
    before = pool_stats()["answers"]
    out = score_completions("math", completions, [ref] * 100, cache=cache)
    assert out.tolist() == [1.0, 1.0, 0.0, 0.0] * 25
    assert pool_stats()["answers"] - before == 2 == cache.misses
    score_completions("math", completions, [ref] * 100, cache=cache)
    assert pool_stats()["answers"] - before == 2


def _math_batch(n: int) -> tuple[list[str], list[dict]]:
    completions, refs = [], []
    for i in range(n):
        gold = f"\\frac{{{i + 1}}}{{{i + 2}}}"
        kind = i % 4
        if kind == 0:  # \\dfrac: verified by math-verify (plain numbers take the in-process fast path)
            pred = f"\\boxed{{\\dfrac{{{2 * (i + 1)}}}{{{2 * (i + 2)}}}}}"
        elif kind == 1:
            pred = f"\\dfrac{{{i + 1}}}{{{i + 2}}}"
        elif kind == 2:
            pred = f"\\boxed{{{i + 3}.0}}"
        else:
            pred = "no idea"
        completions.append(pred)
        refs.append({"answer": gold})
    return completions, refs


def test_scorer_pool_matches_in_process() -> None:
    completions, refs = _math_batch(120)  # unique golds: ~10 ms per answer, so keep it small
    pooled = score_completions("math", completions, refs, processes=2, pool_min_keys=100)
    assert len(worker_pids()) >= 2  # the two-worker path was really taken
    single = score_completions("math", completions, refs, processes=0)
    in_process = [score_math_text(canonical_math_text(c), r["answer"]) for c, r in zip(completions[:40], refs[:40])]
    assert np.array_equal(pooled, single) and pooled[:40].tolist() == in_process
    assert single.sum() == 60  # kinds 0 and 1 are correct
    shutdown_pool()
    assert worker_pids() == []
    assert np.array_equal(score_completions("math", completions[:8], refs[:8]), single[:8])  # restarts on demand


def test_scorer_errors() -> None:
    with pytest.raises(ValueError, match="gsm8k.*countdown.*math"):
        score_completions("gsm8k", ["1"], [{"answer": "1"}])
    with pytest.raises(ValueError):
        score_completions("math", ["1", "2"], [{"answer": "1"}])
    with pytest.raises(ValueError):
        score_completions("countdown", ["1"], [{"target": 1}])


def test_reward_cache_bounded() -> None:
    cache = RewardCache(max_entries=2)
    for k in "abc":
        cache.put(k, 1.0)
    assert len(cache) == 2 and "a" not in cache
    assert cache.get("c") == 1.0 and cache.get("a") is None
    assert cache.stats() == {"entries": 2, "hits": 1, "misses": 1, "timeouts": 0}
