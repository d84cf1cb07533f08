"""maskdiff.learning: learning verdicts, spread over seeds, exact McNemar and Newcombe's paired
interval, learning-signal summaries -- checked by hand, against scipy, and by simulated coverage."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from maskdiff.learning import (FELL, FLAT, NA, ROSE, compare_pairs, fmt, fmt_p, fmt_pct, held_out_points,
                               learning_verdict, mcnemar_exact_p, newcombe_paired_interval, p_text, pair_seeds,
                               paired_comparison, pooled_paired_comparison, quarters, seed_spread, signal_summary,
                               split_model, spread_in_words, value_at, verdict_in_words)
from maskdiff.stats import wilson_interval


def test_split_model_names_seed_replicates():
    assert split_model("mdpo") == ("mdpo", 0)
    assert split_model("mdpo-s2") == ("mdpo", 2)
    assert split_model("mdpo_all_data-s11") == ("mdpo_all_data", 11)
    assert split_model("diffu_grpo") == ("diffu_grpo", 0)
    assert split_model("base") == ("base", 0)


# ----------------------------------------------------------------------------- (a) learned?
def test_quarters_take_a_quarter_of_the_updates_each():
    assert quarters(list(range(10))) == ([0, 1], [8, 9])
    assert quarters([1, 2, 3]) == ([], [])


def test_rising_flat_and_falling_rewards():
    rng = np.random.default_rng(0)
    u = np.arange(1, 101)
    rising = 0.2 + 0.2 * u / 100 + 0.03 * rng.standard_normal(100)
    v = learning_verdict([rising])
    assert v["verdict"] == ROSE and v["p_value"] < 0.05 and v["difference"] > 0.1
    assert v["spearman_rho"] > 0.5 and v["quarter_updates"] == 25 and v["updates"] == 100
    # Welch's test on the per-update means of the quarters, exactly as scipy computes it.
    ref = sps.ttest_ind(rising[-25:], rising[:25], equal_var=False)
    assert v["p_value"] == pytest.approx(ref.pvalue) and v["t"] == pytest.approx(ref.statistic)
    assert v["start"] == pytest.approx(rising[:25].mean()) and v["end"] == pytest.approx(rising[-25:].mean())
    flat = 0.3 + 0.03 * rng.standard_normal(100)
    assert learning_verdict([flat])["verdict"] == FLAT
    assert learning_verdict([rising[::-1]])["verdict"] == FELL


def test_seeds_are_pooled_by_concatenating_quarters():
    rng = np.random.default_rng(1)
    runs = [0.3 + 0.05 * rng.standard_normal(40) for _ in range(3)]
    v = learning_verdict(runs)
    first = np.concatenate([r[:10] for r in runs])
    last = np.concatenate([r[-10:] for r in runs])
    assert v["p_value"] == pytest.approx(sps.ttest_ind(last, first, equal_var=False).pvalue)
    rho = sps.spearmanr(np.tile(np.arange(1, 41), 3), np.concatenate(runs)).statistic
    assert v["spearman_rho"] == pytest.approx(rho) and v["runs"] == 3 and v["quarter_updates"] == 30


def test_undefined_cases_give_na_not_errors():
    # No reward at all (SFT), too few updates (smoke: 4 updates = one per quarter), missing values.
    assert learning_verdict([[None] * 10])["verdict"] == NA
    assert learning_verdict([])["verdict"] == NA
    short = learning_verdict([[0.0, 0.0, 0.0, 0.0]])
    assert short["verdict"] == NA and math.isnan(short["p_value"])
    assert "too few updates" in verdict_in_words(short) and "no reward" in verdict_in_words(learning_verdict([[None]]))
    # Constant rewards: no change (p = 1), or a change with no noise at all (p = 0).
    zeros = learning_verdict([[0.0] * 12])
    assert zeros["verdict"] == FLAT and zeros["p_value"] == 1.0 and math.isnan(zeros["spearman_rho"])
    assert learning_verdict([[0.0] * 6 + [1.0] * 6])["verdict"] == ROSE
    with_gaps = learning_verdict([[0.1, None, 0.1, float("nan"), 0.2, 0.1, 0.2, 0.1, 0.9, 0.8, 0.9, 0.85]])
    assert with_gaps["updates"] == 10 and with_gaps["verdict"] == ROSE


# ----------------------------------------------------------------------------- (b) seeds
def test_seed_spread_mean_sample_sd_and_wilson_per_seed():
    s = seed_spread({2: (30, 100), 0: (20, 100), 1: (40, 100)})
    assert [r["seed"] for r in s["seeds"]] == [0, 1, 2]
    assert s["mean"] == pytest.approx(0.3) and s["std"] == pytest.approx(0.1)  # sample sd (ddof 1)
    assert (s["min"], s["max"], s["n_seeds"]) == (0.2, 0.4, 3)
    lo, hi = wilson_interval(20, 100)
    assert (s["seeds"][0]["ci_low"], s["seeds"][0]["ci_high"]) == (lo, hi)
    assert s["mean_half_width"] == pytest.approx(np.mean([(r["ci_high"] - r["ci_low"]) / 2 for r in s["seeds"]]))
    assert "3 seeds: mean 30.0%, sd 10.0 points" in spread_in_words(s)
    assert "larger than one run's sampling noise" in spread_in_words(s)


def test_one_seed_has_no_spread():
    s = seed_spread({0: (5, 16)})
    assert math.isnan(s["std"]) and s["mean"] == 5 / 16
    assert "one seed only" in spread_in_words(s)
    assert spread_in_words(seed_spread({})) == "no evaluated seed"
    tight = seed_spread({0: (300, 1000), 1: (302, 1000), 2: (298, 1000)})
    assert "well within one run's sampling noise" in spread_in_words(tight)


# ----------------------------------------------------------------------------- (c) paired tests
def test_exact_mcnemar_matches_the_binomial_test():
    # Armitage & Berry's culture media: 12 pairs only A, 2 only B -> exact two-sided p = 212 / 16384.
    assert mcnemar_exact_p(12, 2) == pytest.approx(212 / 16384)
    for a, b in [(0, 5), (7, 3), (19, 8), (40, 41)]:
        assert mcnemar_exact_p(a, b) == pytest.approx(sps.binomtest(a, a + b).pvalue)
        assert mcnemar_exact_p(a, b) == mcnemar_exact_p(b, a)
    assert mcnemar_exact_p(0, 0) == 1.0


def _newcombe_reference(e: int, f: int, g: int, h: int, z: float = 1.959963984540054):
    """Newcombe (1998) method 10 written out from the paper's notation: table (e, f; g, h) of
    pairs (both, A only; B only, neither), the two Wilson score limits as roots of the quadratic."""
    n = e + f + g + h

    def wilson(x):
        p = x / n
        a, b, c = 1 + z * z / n, -(2 * p + z * z / n), p * p
        disc = math.sqrt(b * b - 4 * a * c)
        return (-b - disc) / (2 * a), (-b + disc) / (2 * a)

    p1, p2 = (e + f) / n, (e + g) / n
    (l1, u1), (l2, u2) = wilson(e + f), wilson(e + g)
    denominator = (e + f) * (g + h) * (e + g) * (f + h)
    num = e * h - f * g
    if denominator == 0:
        phi = 0.0
    elif num > n / 2:
        phi = (num - n / 2) / math.sqrt(denominator)
    elif num < 0:
        phi = num / math.sqrt(denominator)
    else:
        phi = 0.0
    dl2, du2 = (p1 - l1) ** 2 + (u2 - p2) ** 2, (u1 - p1) ** 2 + (p2 - l2) ** 2
    delta = math.sqrt(dl2 - 2 * phi * (p1 - l1) * (u2 - p2))
    eps = math.sqrt(du2 - 2 * phi * (u1 - p1) * (p2 - l2))
    return p1 - p2 - delta, p1 - p2 + eps


@pytest.mark.parametrize("table", [(20, 12, 2, 16), (12, 9, 2, 1), (1, 1, 7, 12), (59, 6, 16, 80), (0, 0, 0, 10),
                                   (5, 0, 0, 5), (30, 19, 8, 199), (0, 3, 0, 0)])
def test_newcombe_interval_matches_the_written_out_formula(table):
    low, high = newcombe_paired_interval(*table)
    ref_low, ref_high = _newcombe_reference(*table)
    assert low == pytest.approx(max(-1.0, ref_low), abs=1e-12) and high == pytest.approx(min(1.0, ref_high), abs=1e-12)
    e, f, g, h = table
    d = (f - g) / sum(table)
    assert -1 <= low <= d <= high <= 1
    # Swapping A and B mirrors the interval.
    assert newcombe_paired_interval(e, g, f, h) == pytest.approx((-high, -low))


def test_newcombe_interval_covers_at_about_95_percent():
    """Simulated coverage of the true paired difference (fixed seed)."""
    rng = np.random.default_rng(3)
    probs = [0.30, 0.10, 0.05, 0.55]  # both, A only, B only, neither: true difference +0.05
    covered = 0
    trials = 2000
    for table in rng.multinomial(120, probs, size=trials):
        low, high = newcombe_paired_interval(*map(int, table))
        covered += low <= 0.05 <= high
    assert 0.93 <= covered / trials <= 0.975


def test_paired_comparison_aligns_problems_and_counts_discordant_pairs():
    a = {"p1": True, "p2": True, "p3": False, "p4": False, "p5": True, "only_in_a": True}
    b = {"p1": True, "p2": False, "p3": True, "p4": False, "p5": False, "only_in_b": True}
    c = paired_comparison(a, b)
    assert (c["n"], c["both"], c["only_a"], c["only_b"], c["neither"]) == (5, 1, 2, 1, 1)
    assert c["acc_a"] == 0.6 and c["acc_b"] == 0.4 and c["difference"] == pytest.approx(0.2)
    assert c["p_value"] == pytest.approx(mcnemar_exact_p(2, 1))
    assert (c["ci_low"], c["ci_high"]) == newcombe_paired_interval(1, 2, 1, 1)
    assert c["half_width"] == pytest.approx((c["ci_high"] - c["ci_low"]) / 2)
    empty = compare_pairs([])
    assert empty["n"] == 0 and math.isnan(empty["difference"]) and math.isnan(empty["p_value"])


def test_pooled_comparison_concatenates_seed_pairs():
    s0 = ({"x": True, "y": False}, {"x": False, "y": False})
    s1 = ({"x": True, "y": True}, {"x": True, "y": False})
    pooled = pooled_paired_comparison([s0, s1])
    assert (pooled["n"], pooled["only_a"], pooled["only_b"], pooled["seed_pairs"]) == (4, 2, 0, 2)
    assert pooled["p_value"] == pytest.approx(0.5)


def test_seed_pairing():
    assert pair_seeds([0, 1, 2], [0, 1, 2]) == [(0, 0), (1, 1), (2, 2)]
    assert pair_seeds([0, 1, 2], [0]) == [(0, 0), (1, 0), (2, 0)]  # every seed against the one base run
    assert pair_seeds([0], [0, 1]) == [(0, 0), (0, 1)]
    assert pair_seeds([0, 1, 2], [0, 2, 3]) == [(0, 0), (2, 2)]  # only the seeds both have
    assert pair_seeds([], [0]) == []


# ----------------------------------------------------------------------------- (d) signal, curves
def test_signal_summary_over_updates_and_seeds():
    s = signal_summary({0: [0.0, 0.5, 1.0], 1: [0.25, 0.25, None]})
    assert s["mean"] == pytest.approx(2.0 / 5) and s["updates"] == 5 and s["n_seeds"] == 2
    assert s["per_seed"] == {0: 0.5, 1: 0.25} and (s["min_seed"], s["max_seed"]) == (0.25, 0.5)
    none = signal_summary({0: [None, None]})
    assert math.isnan(none["mean"]) and none["n_seeds"] == 0 and math.isnan(none["min_seed"])


def test_held_out_points_get_wilson_intervals_over_eval_problems():
    events = [{"event": "eval", "update": 10, "eval_accuracy/countdown": 0.25},
              {"event": "eval", "update": 0, "eval_accuracy/countdown": 0.125, "eval_accuracy/arithmetic": 0.0}]
    points = held_out_points(events, "countdown", 64)
    assert [p["update"] for p in points] == [0, 10]
    assert (points[1]["ci_low"], points[1]["ci_high"]) == wilson_interval(16, 64) and points[1]["n"] == 64
    assert held_out_points(events, "math500", 64) == []
    assert value_at([(0, 0.1), (100, 0.2), (200, 0.3)], 150) == 0.2
    assert math.isnan(value_at([(10, 0.1)], 5))


def test_formatting_writes_na_for_undefined_numbers():
    assert fmt(float("nan")) == NA and fmt(None) == NA and fmt(1.234, 1) == "1.2" and fmt(0.5, 1, True) == "+0.5"
    assert fmt_pct(0.1234) == "12.3" and fmt_pct(None) == NA
    assert fmt_p(0.0004) == "< 0.001" and fmt_p(0.0123) == "0.012" and fmt_p(0.5) == "0.50" and fmt_p(float("nan")) == NA
    assert p_text(0.0004) == "p < 0.001" and p_text(0.04) == "p = 0.04"
