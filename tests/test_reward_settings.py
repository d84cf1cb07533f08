"""RewardSettings: validation, defaults = the project's behaviour, cache keys across settings,
and the two Countdown switches that reproduce the MDPO released verifier."""

from __future__ import annotations

import json

import pytest

from maskdiff.rewards import (
    RewardCache,
    RewardSettings,
    countdown_reward,
    extract_countdown_answer,
    score_completions,
)

UNARY = RewardSettings(countdown_unary_minus=True)
RAW = RewardSettings(countdown_unclosed_box="raw_text")


# ------------------------------------------------------------------ the settings object
def test_defaults_and_json_round_trip() -> None:
    s = RewardSettings()
    defaults = {
        "math_rule": "lenient",
        "countdown_unary_minus": False,
        "countdown_unclosed_box": "earlier_box",
        "answer_timeout_s": 2.0,
        "batch_timeout_s": 300.0,
    }
    assert defaults.items() <= s.to_dict().items()  # (other fields may join these)
    assert all(isinstance(v, (str, bool, float)) for v in s.to_dict().values())  # JSON-friendly
    assert RewardSettings.from_dict(json.loads(json.dumps(s.to_dict()))) == s
    assert RewardSettings.from_dict(None) == RewardSettings.from_dict({}) == s
    assert RewardSettings.from_dict({"math_rule": "released"}).math_rule == "released"
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['math_mode'\]"):
        RewardSettings.from_dict({"math_mode": "released"})
    released = RewardSettings.released(answer_timeout_s=2.0)
    assert (released.math_rule, released.countdown_unary_minus, released.countdown_unclosed_box) == (
        "released", True, "raw_text")
    assert released.answer_timeout_s == 2.0
    with pytest.raises(TypeError):
        RewardSettings("released")  # type: ignore[misc]  # keyword-only
    with pytest.raises(AttributeError):
        s.math_rule = "released"  # type: ignore[misc]  # frozen


@pytest.mark.parametrize(
    "field, value",
    [
        ("math_rule", "anchored"),
        ("math_rule", None),
        ("countdown_unclosed_box", "last_box"),
        ("countdown_unary_minus", 1),
        ("countdown_unary_minus", "yes"),
        ("answer_timeout_s", 0),
        ("answer_timeout_s", -1.0),
        ("answer_timeout_s", float("inf")),
        ("answer_timeout_s", True),
        ("batch_timeout_s", "60"),
        ("batch_timeout_s", float("nan")),
    ],
)
def test_invalid_values_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        RewardSettings(**{field: value})  # type: ignore[arg-type]


# ------------------------------------------------------------------ countdown switches
def test_unary_minus_switch() -> None:
    # The example: the released verifier scores it 1, the project's default 0.
    assert countdown_reward("\\boxed{-3+5+7}", [3, 5, 7], 9) == 0.0
    assert countdown_reward("\\boxed{-3+5+7}", [3, 5, 7], 9, settings=UNARY) == 1.0
    assert countdown_reward("12-(-3)*7", [3, 7, 12], 33, settings=UNARY) == 1.0
    assert countdown_reward("+3+5+7", [3, 5, 7], 15, settings=UNARY) == 1.0  # eval accepts unary plus too
    # Still the whitelist: each number once, no eval, bounded nesting.
    assert countdown_reward("-3+5+7-3+3", [3, 5, 7], 9, settings=UNARY) == 0.0
    assert countdown_reward("-" * 40 + "3+5+7", [3, 5, 7], 15, settings=UNARY) == 0.0  # > MAX_AST_NODES
    assert countdown_reward("-(3)**2+5+7", [3, 5, 7], 3, settings=UNARY) == 0.0
    assert countdown_reward("~3+5+7", [3, 5, 7], 8, settings=UNARY) == 0.0


def test_unclosed_box_switch() -> None:
    nums, target = [3, 7, 12], 33
    earlier = "\\boxed{7*3+12} then \\boxed{1+"
    assert extract_countdown_answer(earlier) == "7*3+12"
    assert countdown_reward(earlier, nums, target) == 1.0
    assert extract_countdown_answer(earlier, "raw_text") == earlier  # raw text: not an expression
    assert countdown_reward(earlier, nums, target, settings=RAW) == 0.0
    tagged = "\\boxed{1+2} <answer>7*3+12</answer> \\boxed{"
    assert countdown_reward(tagged, nums, target) == 0.0  # the earlier box 1+2
    assert countdown_reward(tagged, nums, target, settings=RAW) == 1.0  # falls back to the tag
    closed = "\\boxed{1+2} \\boxed{7*3+12}"  # last box closed: both settings agree
    assert countdown_reward(closed, nums, target) == countdown_reward(closed, nums, target, settings=RAW) == 1.0
    nested = "\\boxed{(7*3)+12} \\boxed{\\frac{1}{2}"  # an unclosed box containing a closed brace pair
    assert extract_countdown_answer(nested) == "(7*3)+12"
    assert countdown_reward(nested, nums, target, settings=RAW) == 0.0


# ------------------------------------------------------------------ one cache shared across settings
def test_cache_shared_across_settings_never_returns_a_wrong_score() -> None:
    cache = RewardCache()
    texts = ["\\boxed{-3+5+7}", "\\boxed{5+7-3} \\boxed{1+"]
    refs = [{"numbers": [3, 5, 7], "target": 9}] * 2
    for _ in range(2):  # the second round is served from the cache
        assert score_completions("countdown", texts, refs, cache=cache).tolist() == [0.0, 1.0]
        assert score_completions("countdown", texts, refs, cache=cache, settings=UNARY).tolist() == [1.0, 1.0]
        assert score_completions("countdown", texts, refs, cache=cache, settings=RAW).tolist() == [0.0, 0.0]
    math_texts, math_refs = ["x = 7 and therefore..."], [{"answer": "7"}]
    for _ in range(2):
        assert score_completions("math", math_texts, math_refs, cache=cache).tolist() == [1.0]
        released = RewardSettings(math_rule="released")
        assert score_completions("math", math_texts, math_refs, cache=cache, settings=released).tolist() == [0.0]
    # Deadlines do not change a score, so they share entries.
    hits = cache.hits
    quick = RewardSettings(answer_timeout_s=2.0, batch_timeout_s=10.0)
    assert score_completions("math", math_texts, math_refs, cache=cache, settings=quick).tolist() == [1.0]
    assert cache.hits == hits + 1
