"""Statistics of training curves, seed replicates and paired model comparisons (pure functions).

Nothing here reads files: :mod:`maskdiff.summary` reads a finished run and calls these, and the
report notebook and the README snapshot (:mod:`maskdiff.results_readme`) show what they return.
Undefined statistics are ``nan`` (shown as "n/a"), never an exception: a smoke run with one seed,
four updates and no reward at all must still render.

* :func:`learning_verdict` -- did a trainer learn? The per-update training reward (``reward_mean``
  of the update's rollouts) of the first and the last quarter of the updates, compared with
  Welch's t-test on the per-update means, plus Spearman's correlation of reward with update.
  Several seeds are pooled by concatenating their quarters (and their (update, reward) pairs).
* :func:`seed_spread` -- mean, sample standard deviation, min and max of an accuracy across seeds,
  beside each seed's own 95% Wilson interval.
* :func:`paired_comparison` / :func:`pooled_paired_comparison` -- two models decoded on the same
  problems: the exact McNemar test (two-sided binomial test on the discordant problems) and the
  paired difference in accuracy with Newcombe's 95% interval (his method 10: Wilson score
  intervals of both proportions combined with the phi correlation of the pairs, phi corrected as
  in Newcombe 1998 / Altman et al., *Statistics with Confidence*).
* :func:`pair_seeds` -- which seed of A is paired with which seed of B when pooling.
* :func:`signal_summary` -- share of prompt groups with a learning signal, over updates and seeds.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from scipy import stats as sps

from .stats import wilson_interval

ALPHA = 0.05
Z95 = 1.959963984540054
ROSE, FLAT, FELL = "rose significantly", "no significant change", "fell significantly"
NA = "n/a"
NAN = float("nan")

_SEED_SUFFIX = re.compile(r"^(?P<method>.+)-s(?P<seed>\d+)$")


# ----------------------------------------------------------------------------- names and numbers
def split_model(name: str) -> tuple[str, int]:
    """``mdpo-s2`` -> ``("mdpo", 2)``; a plain name is seed 0 (the workflow's replicate naming)."""
    match = _SEED_SUFFIX.match(name)
    return (match["method"], int(match["seed"])) if match else (name, 0)


def is_number(value) -> bool:
    """A finite real number (not None, not nan, not a bool)."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) and math.isfinite(value)


def finite(values: Iterable) -> list[float]:
    """The finite numbers of ``values`` as floats (None and nan dropped)."""
    return [float(v) for v in values if is_number(v)]


def fmt(value, digits: int = 2, signed: bool = False) -> str:
    """A number with ``digits`` decimals, or "n/a" when it is undefined."""
    if not is_number(value):
        return NA
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def fmt_pct(value, digits: int = 1, signed: bool = False) -> str:
    """A proportion as percent (no % sign), or "n/a"."""
    return fmt(100 * value, digits, signed) if is_number(value) else NA


def fmt_p(value) -> str:
    """A p-value: 2 decimals from 0.1 up, 2 significant digits below, "< 0.001", or "n/a"."""
    if not is_number(value):
        return NA
    if value < 0.001:
        return "< 0.001"
    return f"{value:.2f}" if value >= 0.1 else f"{value:.2g}"


def p_text(value) -> str:
    """``p = 0.04`` / ``p < 0.001`` / ``p = n/a``."""
    text = fmt_p(value)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else NAN


# ----------------------------------------------------------------------------- (a) did it learn?
def quarters(values: Sequence[float]) -> tuple[list[float], list[float]]:
    """First and last quarter of a series (``len // 4`` values each; empty below 4 values)."""
    q = len(values) // 4
    return (list(values[:q]), list(values[len(values) - q:])) if q else ([], [])


def _welch(first: Sequence[float], last: Sequence[float]) -> tuple[float, float]:
    """(t, two-sided p) of Welch's test of mean(last) vs mean(first); nan when undefined. Two
    constant samples give p = 1 when equal and p = 0 when not (no noise to compare against)."""
    if len(first) < 2 or len(last) < 2:
        return NAN, NAN
    if np.var(first) == 0 and np.var(last) == 0:
        same = float(np.mean(first)) == float(np.mean(last))
        return (0.0, 1.0) if same else (math.copysign(math.inf, np.mean(last) - np.mean(first)), 0.0)
    with warnings.catch_warnings():  # scipy warns about precision when one quarter is (nearly) constant
        warnings.simplefilter("ignore", RuntimeWarning)
        res = sps.ttest_ind(last, first, equal_var=False)
    return float(res.statistic), float(res.pvalue)


def _spearman(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    if len(y) < 3 or len(set(y)) < 2 or len(set(x)) < 2:
        return NAN, NAN
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = sps.spearmanr(x, y)
    return float(res.statistic), float(res.pvalue)


def learning_verdict(runs: Sequence[Sequence[float | None]], alpha: float = ALPHA) -> dict:
    """Did the training reward change? ``runs`` holds one series per seed: the per-update
    ``reward_mean`` in update order (None/nan where an update logged none).

    Each series' first and last quarter (``n // 4`` updates) are concatenated over the series, and
    Welch's t-test compares their per-update means (two-sided). Spearman's rho is computed over
    every (position in its run, reward) pair. The verdict is "rose significantly" / "fell
    significantly" when p < alpha, "no significant change" otherwise, and "n/a" when the test is
    undefined (no reward logged, or fewer than two updates per quarter)."""
    first, last, xs, ys, used = [], [], [], [], 0
    for series in runs:
        values = finite(series)
        if not values:
            continue
        used += 1
        f, la = quarters(values)
        first += f
        last += la
        xs += list(range(1, len(values) + 1))
        ys += values
    start, end = _mean(first), _mean(last)
    t, p = _welch(first, last)
    rho, rho_p = _spearman(xs, ys)
    if not is_number(p):
        verdict = NA
    elif p < alpha:
        verdict = ROSE if end > start else FELL
    else:
        verdict = FLAT
    return {
        "runs": used, "updates": len(ys), "quarter_updates": len(first),
        "start": start, "end": end, "difference": end - start if first else NAN,
        "t": t, "p_value": p, "spearman_rho": rho, "spearman_p": rho_p, "verdict": verdict, "alpha": alpha,
    }


def verdict_in_words(v: dict, what: str = "training reward") -> str:
    """One sentence: the verdict with its numbers."""
    if v["verdict"] == NA:
        if not v["updates"]:
            return f"{what}: n/a (no reward logged)"
        return f"{what}: n/a (too few updates to compare quarters: {v['updates']} logged)"
    return (f"{what} {fmt(v['start'], 3)} -> {fmt(v['end'], 3)} (first vs last quarter, {fmt(v['difference'], 3, True)}, "
            f"Welch {p_text(v['p_value'])}; Spearman rho {fmt(v['spearman_rho'], 2, True)}): {v['verdict']}")


# ----------------------------------------------------------------------------- (b) spread over seeds
def wilson_row(correct: int, n: int) -> dict:
    low, high = wilson_interval(correct, n)
    acc = correct / n if n else NAN
    return {"correct": int(correct), "n": int(n), "accuracy": acc, "ci_low": low, "ci_high": high,
            "half_width": (high - low) / 2 if n else NAN}


def seed_spread(per_seed: Mapping[int, tuple[int, int]]) -> dict:
    """Accuracy across seeds from ``{seed: (correct, n)}``: each seed's accuracy with its 95% Wilson
    interval, and the mean, sample standard deviation (ddof 1; nan for one seed), min and max."""
    rows = [{"seed": int(s), **wilson_row(c, n)} for s, (c, n) in sorted(per_seed.items())]
    accs = finite(r["accuracy"] for r in rows)
    return {
        "seeds": rows, "n_seeds": len(rows),
        "mean": _mean(accs), "std": float(np.std(accs, ddof=1)) if len(accs) > 1 else NAN,
        "min": min(accs) if accs else NAN, "max": max(accs) if accs else NAN,
        "mean_half_width": _mean(finite(r["half_width"] for r in rows)),
    }


def spread_in_words(spread: dict) -> str:
    """The spread across seeds against one run's sampling noise, in words (percentage points)."""
    k = spread["n_seeds"]
    if k == 0:
        return "no evaluated seed"
    hw = spread["mean_half_width"]
    if k == 1:
        r = spread["seeds"][0]
        return (f"one seed only: {fmt_pct(r['accuracy'])}% [{fmt_pct(r['ci_low'])}, {fmt_pct(r['ci_high'])}]; "
                "the spread across seeds is not measured")
    sd = spread["std"]
    text = (f"{k} seeds: mean {fmt_pct(spread['mean'])}%, sd {fmt_pct(sd)} points, range {fmt_pct(spread['min'])}-"
            f"{fmt_pct(spread['max'])}%; one seed's 95% interval is +-{fmt_pct(hw)} points")
    if not is_number(sd) or not is_number(hw) or hw == 0:
        return text
    if sd < 0.5 * hw:
        how = "well within one run's sampling noise"
    elif sd <= hw:
        how = "within one run's sampling noise"
    else:
        how = "larger than one run's sampling noise: the RL seed matters"
    return f"{text}, so the seed-to-seed spread is {how}"


# ----------------------------------------------------------------------------- (c) paired tests
def mcnemar_exact_p(only_a: int, only_b: int) -> float:
    """Exact two-sided McNemar p-value: binomial test of ``only_a`` of the discordant pairs at 1/2."""
    m = only_a + only_b
    if m == 0:
        return 1.0
    return float(min(1.0, 2 * sps.binom.cdf(min(only_a, only_b), m, 0.5)))


def newcombe_paired_interval(both: int, only_a: int, only_b: int, neither: int, z: float = Z95) -> tuple[float, float]:
    """Newcombe's (1998, method 10) interval for p_A - p_B from paired binary outcomes.

    ``both``: pairs where A and B are right, ``only_a``/``only_b``: only one of them, ``neither``."""
    n = both + only_a + only_b + neither
    if n == 0:
        return NAN, NAN
    p1, p2 = (both + only_a) / n, (both + only_b) / n
    l1, u1 = wilson_interval(both + only_a, n, z)
    l2, u2 = wilson_interval(both + only_b, n, z)
    margins = (both + only_a) * (only_b + neither) * (both + only_b) * (only_a + neither)
    phi = 0.0
    if margins > 0:
        cross = both * neither - only_a * only_b
        if cross > n / 2:
            phi = (cross - n / 2) / math.sqrt(margins)
        elif cross < 0:
            phi = cross / math.sqrt(margins)
    d = p1 - p2
    lower = d - math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    upper = d + math.sqrt(max(0.0, (p2 - l2) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1) + (u1 - p1) ** 2))
    return max(-1.0, lower), min(1.0, upper)


def _aligned(a: Mapping[str, bool], b: Mapping[str, bool]) -> list[tuple[bool, bool]]:
    return [(bool(a[k]), bool(b[k])) for k in sorted(set(a) & set(b))]


def compare_pairs(pairs: Sequence[tuple[bool, bool]]) -> dict:
    """McNemar test and Newcombe interval of a list of (A right, B right) pairs."""
    both = sum(1 for x, y in pairs if x and y)
    only_a = sum(1 for x, y in pairs if x and not y)
    only_b = sum(1 for x, y in pairs if y and not x)
    n = len(pairs)
    neither = n - both - only_a - only_b
    low, high = newcombe_paired_interval(both, only_a, only_b, neither)
    return {
        "n": n, "both": both, "only_a": only_a, "only_b": only_b, "neither": neither,
        "acc_a": (both + only_a) / n if n else NAN, "acc_b": (both + only_b) / n if n else NAN,
        "difference": (only_a - only_b) / n if n else NAN, "ci_low": low, "ci_high": high,
        "half_width": (high - low) / 2 if n else NAN, "p_value": mcnemar_exact_p(only_a, only_b) if n else NAN,
    }


def paired_comparison(a: Mapping[str, bool], b: Mapping[str, bool]) -> dict:
    """A vs B on the problems both were decoded on (``{problem id: correct}``, inner join)."""
    return compare_pairs(_aligned(a, b))


def pair_seeds(seeds_a: Iterable[int], seeds_b: Iterable[int]) -> list[tuple[int, int]]:
    """Seed pairs for a pooled comparison: seed k of A with seed k of B (the seeds both have).
    When one side has a single run (the base model, or a method trained with one seed), every seed
    of the other side is paired with that run."""
    a, b = sorted(set(seeds_a)), sorted(set(seeds_b))
    if len(b) == 1 and len(a) >= 1:
        return [(s, b[0]) for s in a]
    if len(a) == 1 and len(b) >= 1:
        return [(a[0], s) for s in b]
    return [(s, s) for s in a if s in set(b)]


def pooled_paired_comparison(runs: Sequence[tuple[Mapping[str, bool], Mapping[str, bool]]]) -> dict:
    """Pooled over seed pairs: each (A seed, B seed) pair contributes its aligned problems, and the
    concatenation is tested as one paired sample.

    The same problem then counts once per seed pair, so problem difficulty is shared across the
    pooled pairs: the pooled interval is narrower than k independent test sets would justify and
    the p-value somewhat optimistic when the seeds agree; read it beside the per-seed tests."""
    pairs = [p for a, b in runs for p in _aligned(a, b)]
    return compare_pairs(pairs) | {"seed_pairs": len(runs)}


# ----------------------------------------------------------------------------- (d) learning signal
def signal_summary(runs: Mapping[int, Sequence[float | None]]) -> dict:
    """``{seed: per-update share of prompt groups with signal}`` -> the mean over every update of
    every seed, each seed's mean, and the smallest / largest seed mean."""
    per_seed = {int(s): _mean(finite(v)) for s, v in sorted(runs.items())}
    pooled = [x for v in runs.values() for x in finite(v)]
    means = finite(per_seed.values())
    return {"mean": _mean(pooled), "per_seed": per_seed, "updates": len(pooled), "n_seeds": len(means),
            "min_seed": min(means) if means else NAN, "max_seed": max(means) if means else NAN}


# ----------------------------------------------------------------------------- curves
def held_out_points(events: Sequence[dict], task: str, n: int) -> list[dict]:
    """Held-out accuracy events of one task as points with 95% Wilson intervals over ``n`` problems
    (the trainer's ``eval_problems``): ``[{update, accuracy, ci_low, ci_high, n}]``."""
    key = f"eval_accuracy/{task}"
    points = []
    for e in sorted((e for e in events if is_number(e.get(key))), key=lambda e: e["update"]):
        acc = float(e[key])
        points.append({"update": int(e["update"]), **wilson_row(round(acc * n), n), "accuracy": acc})
    return points


def value_at(points: Sequence[tuple[float, float]], x: float) -> float:
    """The last y of ``(x, y)`` points (sorted by x) at or before ``x``; nan when none is."""
    before = [y for px, y in points if px <= x]
    return before[-1] if before else NAN
