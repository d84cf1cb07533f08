"""Inference over replicated runs: base-model seeds x RL seeds x test problems (pure functions).

A claim such as "MDPO beats the base model on Countdown" generalises over the base model's
pretraining seed, the fine-tuning (RL) seed and the problems. An interval that pools problems and
seeds as if they were independent draws (a McNemar test on 3 seeds x 1024 problems against one
base run) counts the base run's outcomes several times and leaves the between-seed variance out:
it is too narrow, and a rerun of the same commit can reverse it. Here:

* :func:`seed_aware_difference` -- the paired difference of two models, per problem, for every
  (base seed, RL seed); averaged over the RL seeds of each base seed, it is a base-seed x problem
  table. The variance of its grand mean comes from the two-way crossed random-effects ANOVA
  (base seeds and problems crossed, RL seeds inside each base seed's mean): Var = s2_base / B +
  s2_problem / I + s2_residual / (B I), each component by the method of moments (negative
  estimates set to 0), and a t interval with Satterthwaite's degrees of freedom. With 3 base
  seeds the base-seed term has 2 degrees of freedom: intervals are wide, as they should be.
  With one base seed the RL seeds take its place (the claim is then conditional on that base).
* :func:`slope_test` -- "did the training reward rise?": the least-squares slope of each run's
  per-update training reward, averaged within base seeds, tested across base seeds (t test).
* :func:`holm` -- Holm's step-down adjustment of a family of p-values.

``tests/test_replicates.py`` checks the interval's coverage on synthetic data with known variance
components (near 95% over repeated draws) and that the pooled alternative undercovers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats as sps

NAN = float("nan")


def _anova_variance(table: np.ndarray) -> tuple[float, float]:
    """``(variance of the grand mean, Satterthwaite df)`` of a units x problems table (two-way
    crossed random effects, one observation per cell)."""
    units, problems = table.shape
    grand = table.mean()
    unit_means, problem_means = table.mean(axis=1), table.mean(axis=0)
    df_u, df_p, df_e = units - 1, problems - 1, (units - 1) * (problems - 1)
    ms_u = problems * ((unit_means - grand) ** 2).sum() / df_u
    ms_p = units * ((problem_means - grand) ** 2).sum() / df_p if df_p else 0.0
    residual = table - unit_means[:, None] - problem_means[None, :] + grand
    ms_e = (residual**2).sum() / df_e if df_e else 0.0
    scale = 1.0 / (units * problems)
    # Var = s2_u / U + s2_p / I + s2_e / (U I) with s2_u = (ms_u - ms_e) / I, s2_p = (ms_p - ms_e) / U,
    # s2_e = ms_e: as coefficients on the mean squares, dropping a component whose estimate is negative.
    coef = {"u": scale, "p": scale, "e": -scale}
    if ms_u < ms_e:
        coef["u"] = 0.0
        coef["e"] += scale
    if ms_p < ms_e:
        coef["p"] = 0.0
        coef["e"] += scale
    ms = {"u": (ms_u, df_u), "p": (ms_p, df_p), "e": (ms_e, df_e)}
    variance = sum(coef[k] * ms[k][0] for k in coef)
    denominator = sum((coef[k] * ms[k][0]) ** 2 / ms[k][1] for k in coef if ms[k][1] and coef[k])
    df = variance**2 / denominator if denominator > 0 else float(df_u)
    return max(variance, 0.0), max(df, 1.0)


def seed_aware_difference(diffs: Mapping[int, Mapping[int, Sequence[float]]], alpha: float = 0.05) -> dict:
    """Mean paired difference with a seed-aware interval.

    ``diffs[base_seed][rl_seed]`` is the per-problem difference (e.g. A correct - B correct, in
    -1/0/1) for one (base, RL) pair, the problems in the same order everywhere. Returns the mean,
    its standard error, the t interval, the two-sided p-value, the degrees of freedom, the number
    of base seeds / runs / problems, which variation the interval counts (``units``), and the mean
    difference of every base seed and every run.
    """
    runs = {(b, r): np.asarray(v, dtype=float) for b, per in diffs.items() for r, v in per.items()}
    if not runs:
        return {"mean": NAN, "se": NAN, "low": NAN, "high": NAN, "p": NAN, "df": NAN, "base_seeds": 0, "runs": 0,
                "problems": 0, "units": "none", "per_base": {}, "per_run": {}}
    lengths = {len(v) for v in runs.values()}
    if len(lengths) != 1:
        raise ValueError(f"every run must score the same problems; got lengths {sorted(lengths)}")
    problems = lengths.pop()
    bases = sorted(diffs)
    per_base = {b: np.mean([runs[(b, r)] for r in sorted(diffs[b])], axis=0) for b in bases}
    if len(bases) >= 2:
        table, units = np.stack([per_base[b] for b in bases]), "base seeds (RL seeds within them) and problems"
    elif len(runs) >= 2:
        table, units = np.stack([runs[k] for k in sorted(runs)]), "RL seeds and problems, for one base model"
    else:
        table, units = next(iter(runs.values()))[None, :], "problems, for one run"
    mean = float(table.mean())
    if table.shape[0] >= 2:
        variance, df = _anova_variance(table)
    else:  # one run: a paired t interval over the problems
        variance = float(table.var(ddof=1) / problems) if problems > 1 else NAN
        df = float(problems - 1)
    se = math.sqrt(variance) if variance == variance else NAN
    if se > 0:
        q = float(sps.t.ppf(1 - alpha / 2, df))
        low, high = mean - q * se, mean + q * se
        p = float(2 * sps.t.sf(abs(mean) / se, df))
    elif se == 0:  # every run and problem the same difference: no noise to test against
        low = high = mean
        p = 1.0 if mean == 0 else 0.0
    else:  # undefined (one problem of one run)
        low = high = p = NAN
    return {
        "mean": mean, "se": se, "low": low, "high": high, "p": p, "df": float(df), "base_seeds": len(bases),
        "runs": len(runs), "problems": problems, "units": units,
        "per_base": {b: float(per_base[b].mean()) for b in bases},
        "per_run": {f"{b}/{r}": float(v.mean()) for (b, r), v in sorted(runs.items())},
    }


def slope(values: Sequence[float | None]) -> float:
    """Least-squares slope of a series over its index (None/nan entries skipped); nan below 3 points."""
    points = [(i, float(v)) for i, v in enumerate(values) if v is not None and v == v]
    if len(points) < 3:
        return NAN
    x, y = np.array(points).T
    return float(np.polyfit(x, y, 1)[0])


def slope_test(runs: Mapping[int, Mapping[int, Sequence[float | None]]], alpha: float = 0.05) -> dict:
    """Did a per-update series (training reward) rise? ``runs[base_seed][rl_seed]`` is one run's
    series. Each run's slope, averaged within base seeds; a one-sample t test of those means across
    base seeds (across RL seeds when there is one base seed). Slopes are per update."""
    slopes = {(b, r): slope(v) for b, per in runs.items() for r, v in per.items()}
    slopes = {k: s for k, s in slopes.items() if s == s}
    bases = sorted({b for b, _ in slopes})
    if len(bases) >= 2:
        units = [float(np.mean([s for (b2, _), s in slopes.items() if b2 == b])) for b in bases]
        what = "base seeds"
    else:
        units, what = list(slopes.values()), "RL seeds"
    out = {"per_run": {f"{b}/{r}": s for (b, r), s in sorted(slopes.items())}, "units": what, "n": len(units)}
    if len(units) < 2:
        return out | {"mean": units[0] if units else NAN, "low": NAN, "high": NAN, "p": NAN}
    mean, se = float(np.mean(units)), float(np.std(units, ddof=1) / math.sqrt(len(units)))
    df = len(units) - 1
    q = float(sps.t.ppf(1 - alpha / 2, df))
    p = float(2 * sps.t.sf(abs(mean) / se, df)) if se > 0 else (1.0 if mean == 0 else 0.0)
    return out | {"mean": mean, "low": mean - q * se, "high": mean + q * se, "p": p}


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (nan stays nan and is not counted in the family)."""
    indexed = sorted((p, i) for i, p in enumerate(p_values) if p == p)
    m = len(indexed)
    adjusted = [NAN] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(indexed):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted
