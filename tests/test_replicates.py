"""Seed-aware intervals (maskdiff.replicates): coverage on synthetic data with known between-seed
variance, the fallbacks with fewer seeds, the slope test and Holm's adjustment."""

from __future__ import annotations

import numpy as np
import pytest

from maskdiff.replicates import holm, seed_aware_difference, slope, slope_test

TRUE_MEAN = 0.02


def gaussian_draw(rng, bases=3, rl_seeds=2, problems=300, base_sd=0.04, rl_sd=0.02, problem_sd=0.3, noise_sd=0.5):
    """Per-problem differences with a base-seed effect, an RL-seed effect, problem effects shared by
    every run (the same test problems) and noise: the structure of the local study."""
    problem = rng.normal(0, problem_sd, problems)
    out = {}
    for b in range(bases):
        u = rng.normal(0, base_sd)
        out[b] = {r: TRUE_MEAN + u + rng.normal(0, rl_sd) + problem + rng.normal(0, noise_sd, problems)
                  for r in range(rl_seeds)}
    return out


def binary_draw(rng, bases=3, rl_seeds=2, problems=400, base_sd=0.03):
    """Paired correct/incorrect outcomes: per-problem difficulty, a base model per base seed whose
    accuracy moves with its seed, a fine-tuned model per (base, RL seed) TRUE_MEAN better on average."""
    difficulty = rng.normal(0, 1.2, problems)
    out = {}
    for b in range(bases):
        shift = rng.normal(0, base_sd * 4)  # on the logit scale
        p_base = 1 / (1 + np.exp(-(difficulty - 0.7 + shift)))
        base = rng.random(problems) < p_base
        out[b] = {}
        for r in range(rl_seeds):
            p_tuned = np.clip(p_base + TRUE_MEAN + rng.normal(0, base_sd), 0, 1)
            out[b][r] = (rng.random(problems) < p_tuned).astype(float) - base
    return out


def coverage(draw, n=600, seed=0, **kwargs):
    rng = np.random.default_rng(seed)
    hits = naive = 0
    for _ in range(n):
        diffs = draw(rng, **kwargs)
        res = seed_aware_difference(diffs)
        hits += res["low"] <= TRUE_MEAN <= res["high"]
        pooled = np.concatenate([v for per in diffs.values() for v in per.values()])
        naive += abs(pooled.mean() - TRUE_MEAN) <= 1.96 * pooled.std() / np.sqrt(len(pooled))
    return hits / n, naive / n


@pytest.mark.parametrize("kwargs", [{}, {"base_sd": 0.08}, {"base_sd": 0.0}, {"bases": 5}])
def test_interval_covers_near_95_percent_with_seed_variance(kwargs):
    covered, naive = coverage(gaussian_draw, **kwargs)
    assert 0.91 <= covered <= 0.985, covered
    if kwargs.get("base_sd", 0.04) >= 0.04:
        # Pooling seeds and problems as independent draws (the old report) undercovers badly.
        assert naive < 0.8, naive


def test_interval_covers_binary_outcomes():
    covered, naive = coverage(binary_draw, n=400, seed=3)
    assert 0.9 <= covered <= 0.99, covered
    assert naive < covered


def test_fallbacks_name_what_varies():
    rng = np.random.default_rng(1)
    one_base = {0: {0: rng.normal(0, 1, 50), 1: rng.normal(0, 1, 50)}}
    assert seed_aware_difference(one_base)["units"] == "RL seeds and problems, for one base model"
    one_run = {0: {0: rng.normal(0.5, 1, 50)}}
    res = seed_aware_difference(one_run)
    assert res["units"] == "problems, for one run" and res["df"] == 49 and res["low"] < 0.5 < res["high"]
    assert seed_aware_difference({})["runs"] == 0
    single = seed_aware_difference({0: {0: [1.0]}})  # one problem of one run: nothing to test against
    assert np.isnan(single["p"]) and np.isnan(single["low"])
    with pytest.raises(ValueError, match="same problems"):
        seed_aware_difference({0: {0: [1, 0]}, 1: {0: [1, 0, 1]}})


def test_difference_reports_every_seed_and_a_wider_interval_than_problems_alone():
    rng = np.random.default_rng(2)
    diffs = gaussian_draw(rng, base_sd=0.1)
    res = seed_aware_difference(diffs)
    assert set(res["per_base"]) == {0, 1, 2} and len(res["per_run"]) == 6 and res["problems"] == 300
    assert res["df"] < 10  # the base-seed term dominates: about B - 1 degrees of freedom
    pooled = np.concatenate([v for per in diffs.values() for v in per.values()])
    assert res["high"] - res["low"] > 2 * 1.96 * pooled.std() / np.sqrt(len(pooled))


def test_slope_and_slope_test():
    assert slope([0, 1, 2, 3]) == pytest.approx(1.0)
    assert slope([1, None, 3, float("nan"), 5]) == pytest.approx(1.0)
    assert np.isnan(slope([1, 2]))
    rng = np.random.default_rng(4)
    rising = {b: {r: list(0.1 + 0.001 * np.arange(100) + rng.normal(0, 0.02, 100)) for r in range(2)} for b in range(3)}
    res = slope_test(rising)
    assert res["units"] == "base seeds" and res["n"] == 3 and res["low"] > 0 and res["p"] < 0.05
    flat = {b: {r: list(0.1 + rng.normal(0, 0.02, 100)) for r in range(2)} for b in range(3)}
    assert slope_test(flat)["low"] < 0 < slope_test(flat)["high"]
    one = slope_test({0: {0: [0.0, 0.1, 0.2, 0.3]}})
    assert one["n"] == 1 and np.isnan(one["p"])


def test_holm():
    assert holm([0.01, 0.04, 0.03, float("nan")])[:3] == pytest.approx([0.03, 0.06, 0.06])
    assert np.isnan(holm([0.5, float("nan")])[1])
    assert holm([0.2, 0.9]) == pytest.approx([0.4, 0.9])
