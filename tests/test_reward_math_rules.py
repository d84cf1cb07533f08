"""The two math reward rules, table-driven.

``released`` must reproduce the MDPO authors' ``verify_math`` (autonomousvision/mdpo,
``src/open_r1/rewards.py``), whose configs are, quoted from that file:

    gold_parsed = parse(solution, extraction_mode="first_match",
                        extraction_config=[LatexExtractionConfig()])
    if len(gold_parsed) == 0:
        gold_parsed = parse("$" + solution + "$", extraction_mode="first_match",
                            extraction_config=[LatexExtractionConfig()])
    answer_parsed = parse(model_answer, extraction_config=[LatexExtractionConfig(
        normalization_config=NormalizationConfig(nits=False, malformed_operators=False,
            basic_latex=True, equations=True, boxed="all", units=True),
        boxed_match_priority=0, try_extract_without_anchor=False)],
        extraction_mode="first_match")
    return verify(gold_parsed, answer_parsed)      # False when gold_parsed is empty

``lenient`` is this project's original rule (last box, else unanchored extraction of the
bare text, retried inside ``\\boxed{}``).
"""

from __future__ import annotations

import numpy as np
import pytest

from maskdiff.rewards import RewardCache, RewardSettings, math_reward, score_completions

RELEASED = RewardSettings(math_rule="released")

# (completion, gold, released, lenient)
TABLE = [
    # the examples: unanchored prose and bare answers count only under the lenient rule
    ("x = 7 and therefore...", "7", 0, 1),
    ("Step 1: 3+4=7. Step 2: 7*2 = 14", "14", 0, 1),
    ("\\frac{11}{12}", "\\frac{11}{12}", 0, 1),
    ("-7", "-7", 0, 1),
    ("\\frac{-1}{3}", "-\\frac{1}{3}", 0, 1),
    ("The answer is 7.", "7", 0, 1),  # "answer" anchors only a LaTeX environment
    ("The final answer is 7", "7", 0, 1),
    ("So $x = 7$.", "7", 0, 1),  # $...$ without an anchor
    ("$\\frac{1}{2}$", "\\frac{1}{2}", 0, 1),
    ("We get $x = 4$ so the answer is 4", "4", 0, 1),
    # boxed answers
    ("\\boxed{7}", "7", 1, 1),
    ("\\boxed{-7}", "-7", 1, 1),
    ("\\boxed{7}", "-7", 0, 0),
    ("So the answer is \\boxed{\\dfrac{3}{4}}.", "\\frac{3}{4}", 1, 1),
    ("\\boxed{\\frac{22}{24}}", "\\frac{11}{12}", 1, 1),
    ("\\boxed{0.5}", "\\frac{1}{2}", 1, 1),
    ("\\boxed{-\\frac{1}{3}}", "-\\frac{1}{3}", 1, 1),
    ("\\boxed{1/3}", "\\frac{1}{3}", 1, 1),
    ("\\boxed{\\frac{1}{\\sqrt{2}}}", "\\frac{\\sqrt{2}}{2}", 1, 1),
    ("\\boxed{x^2+2x+1}", "(x+1)^2", 1, 1),
    ("\\boxed{x = 7}", "7", 1, 1),
    ("\\boxed{a = b = 3}", "3", 1, 1),
    ("\\boxed{90^\\circ}", "90", 1, 1),
    ("\\boxed{1,000}", "1000", 1, 1),
    ("$$\\boxed{12}$$", "12", 1, 1),
    ("\\(\\boxed{7}\\)", "7", 1, 1),
    ("Therefore, the final answer is: $\\boxed{4}$. I hope it is correct.", "4", 1, 1),
    ("Step 1: 3+4=7 \\n \\boxed{14}", "14", 1, 1),
    # multiple boxes: the released rule merges them into a set, the lenient rule takes the last
    ("\\boxed{3} wait, actually \\boxed{5}", "5", 0, 1),
    ("\\boxed{3} wait, actually \\boxed{5}", "\\{3,5\\}", 1, 0),
    ("\\boxed{5} wait, actually \\boxed{3}", "5", 0, 0),
    ("\\boxed{5} and \\boxed{5}", "5", 1, 1),
    ("\\boxed{\\frac{11}{12}} \\boxed{7}", "\\frac{11}{12}", 0, 0),
    # unclosed boxes
    ("\\boxed{\\frac{11}{12}", "\\frac{11}{12}", 0, 1),  # lenient parses the bare text
    ("The answer is \\boxed{5", "5", 0, 0),
    ("\\boxed{5} then \\boxed{3", "5", 1, 1),
    ("\\boxed{5} then \\boxed{3", "3", 0, 0),
    ("the answer is $5$ \\boxed{", "5", 1, 1),
    # anchored $...$ answers
    ("The final answer is $18.90$", "\\$18.90", 1, 1),
    ("The answer is $\\frac{1}{2}$.", "\\frac{1}{2}", 1, 1),
    ("Answer: $-3$", "-3", 1, 1),
    ("The ANSWER is $12$", "12", 1, 1),
    ("answer: \\frac{1}{3}", "\\frac{1}{3}", 1, 1),  # a bare \frac counts after an anchor
    # sets, intervals, tuples
    ("\\boxed{\\{2, 1\\}}", "\\{1,2\\}", 1, 1),
    ("\\boxed{1, 2, 3}", "\\{1,2,3\\}", 1, 1),
    ("\\boxed{(3, -1)}", "(3,-1)", 1, 1),
    ("\\boxed{[1, 2)}", "[1,2)", 1, 1),
    # text answers
    ("\\boxed{\\text{Tuesday}}", "\\text{Tuesday}", 1, 1),
    ("The answer is \\boxed{\\text{(C)}}", "\\text{(C)}", 1, 1),
    ("\\boxed{Evelyn}", "\\text{Evelyn}", 1, 1),
    # garbage
    ("garbage", "7", 0, 0),
    ("", "7", 0, 0),
    ("\\boxed{}", "7", 0, 0),
    ("\\boxed{50\\%}", "50", 0, 0),
]
COMPLETIONS = [row[0] for row in TABLE]
REFS = [{"answer": row[1]} for row in TABLE]


def test_table_is_big_and_the_rules_differ() -> None:
    assert len(TABLE) >= 30 and len({(c, g) for c, g, *_ in TABLE}) == len(TABLE)
    assert sum(r != lenient for _, _, r, lenient in TABLE) >= 12


def test_released_rule_table() -> None:
    out = score_completions("math", COMPLETIONS, REFS, settings=RELEASED)
    wrong = [(row, got) for row, got in zip(TABLE, out.tolist()) if got != row[2]]
    assert not wrong


def test_lenient_rule_table_is_the_default() -> None:
    out = score_completions("math", COMPLETIONS, REFS)
    wrong = [(row, got) for row, got in zip(TABLE, out.tolist()) if got != row[3]]
    assert not wrong
    assert np.array_equal(out, score_completions("math", COMPLETIONS, REFS, settings=RewardSettings(math_rule="lenient")))


def test_released_rule_equals_math_verify_called_as_released() -> None:
    """The scorer's short cuts (no anchor -> 0 unverified, exact-text cache key, workers) change
    nothing: compare with math-verify called in this process exactly as the released code does."""
    from latex2sympy2_extended import NormalizationConfig
    from math_verify import LatexExtractionConfig, parse, verify

    pred_config = LatexExtractionConfig(
        normalization_config=NormalizationConfig(
            nits=False, malformed_operators=False, basic_latex=True, equations=True, boxed="all", units=True
        ),
        boxed_match_priority=0,
        try_extract_without_anchor=False,
    )

    def released(completion: str, gold: str) -> float:
        gold_parsed = parse(gold, [LatexExtractionConfig()], extraction_mode="first_match")
        if not gold_parsed:
            gold_parsed = parse(f"${gold}$", [LatexExtractionConfig()], extraction_mode="first_match")
        if not gold_parsed:
            return 0.0
        return float(verify(gold_parsed, parse(completion, [pred_config], extraction_mode="first_match")))

    extra = [  # beyond the table: long prose, whitespace that a key normalisation would merge
        ("Let me think.\n\nFirst, $a=2$.\nSo the final answer is $\\boxed{2}$", "2"),
        ("so the answer: $3$\n\n\n and more text \\boxed{4}", "4"),
        ("so the answer: $3$\n\n\n and more text \\boxed{4}", "3"),
        ("ANSWER $-\\frac{2}{3}$", "-\\frac{2}{3}"),
    ]
    rows = [(c, g) for c, g, *_ in TABLE] + extra
    expected = [released(c, g) for c, g in rows]
    got = score_completions("math", [c for c, _ in rows], [{"answer": g} for _, g in rows], settings=RELEASED)
    assert got.tolist() == expected


def test_cache_key_of_released_rule_is_the_exact_text() -> None:
    cache = RewardCache()
    texts = ["\\boxed{5}", "\\boxed{3} wait, actually \\boxed{5}", "\\boxed{5}", "Step 1 " * 100 + "\\boxed{5}"]
    out = score_completions("math", texts, [{"answer": "5"}] * 4, cache=cache, settings=RELEASED)
    assert out.tolist() == [1.0, 0.0, 1.0, 1.0]
    assert cache.misses == 3 and len(cache) == 3  # the long text is keyed by a digest


@pytest.mark.parametrize("completion, gold, released, lenient", TABLE[:4] + TABLE[28:30])
def test_math_reward_takes_the_settings(completion: str, gold: str, released: int, lenient: int) -> None:
    assert math_reward(completion, gold, settings=RELEASED) == released
    assert math_reward(completion, gold) == lenient
