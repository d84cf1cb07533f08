"""Gather per-job evaluation JSONs into one tidy table (one row per model x task x cell), and read a
finished run back for the report notebook and the README snapshot (seeds, paired tests, training
curves, budgets: :func:`load_run` and the ``*_table`` functions)."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .errors import InputError
from .pipeline.layout import MODEL_METRICS, Layout
from .io import atomic_path, read_json, read_jsonl, write_json
from .learning import (finite, held_out_points, is_number, learning_verdict, pair_seeds, paired_comparison,
                       pooled_paired_comparison, seed_spread, signal_summary, split_model, spread_in_words,
                       verdict_in_words)

COLUMNS = [
    "model", "task", "gen_length", "block_length", "steps", "remasking", "rcr_score", "label", "n",
    "accuracy", "accuracy_ci_low", "accuracy_ci_high", "backslide_rate", "od_rate", "ever_correct_rate",
    "nfe_per_sequence", "wall_time_s", "tokens_per_s",
]


def remasking_name(row: dict) -> str:
    return f"rcr-{row['rcr_score']}" if row["remasking"] == "rcr" else row["remasking"]


def _write_csv(table: pd.DataFrame, path: str | Path) -> None:
    with atomic_path(path, suffix=".csv") as tmp:
        table.to_csv(tmp, index=False, float_format="%.4f")


def headline_metrics(headline: pd.DataFrame) -> dict:
    """Nested {model: {task: {remasking: {accuracy, ci, backslide_rate}}}} for `dvc metrics`."""
    out: dict = {}
    for _, r in headline.iterrows():
        out.setdefault(r["model"], {}).setdefault(r["task"], {})[r["remasking"]] = {
            "accuracy": round(float(r["accuracy"]), 4),
            "accuracy_ci_low": round(float(r["accuracy_ci_low"]), 4),
            "accuracy_ci_high": round(float(r["accuracy_ci_high"]), 4),
            "backslide_rate": round(float(r["backslide_rate"]), 4),
        }
    return out


def summarize(
    inputs: list[str | Path], out_csv: str | Path, headline_csv: str | Path | None = None, default_cell: dict | None = None,
    metrics_json: str | Path | None = None,
) -> pd.DataFrame:
    """Write the full sweep table; optionally the headline table (rows of the default cell only).
    ``inputs``: cell-group JSON files, or evaluation directories holding them."""
    rows = []
    files = [f for p in map(Path, inputs) for f in (sorted(p.glob("*.json")) if p.is_dir() else [p])]
    for path in files:
        for cell in read_json(path):
            cell = dict(cell)
            cell["remasking"] = remasking_name(cell)
            rows.append(cell)
    if not rows:
        raise ValueError(f"no evaluation cells in {[str(p) for p in inputs]}")
    table = pd.DataFrame(rows)
    table = table[[c for c in COLUMNS if c in table.columns]].sort_values(
        ["model", "task", "block_length", "steps", "remasking"]
    )
    _write_csv(table, out_csv)
    if headline_csv is not None:
        headline = table
        for key, value in (default_cell or {}).items():
            headline = headline[headline[key] == value]
        if headline.empty:
            raise ValueError(f"no evaluated cell matches the default decoding cell {default_cell}")
        _write_csv(headline, headline_csv)
        if metrics_json is not None:
            write_json(metrics_json, headline_metrics(headline))
    return table


# =============================================================================================
# Reading a finished run back: what the report notebook and the README snapshot show. Both call
# these functions, so the report and the README cannot disagree. Statistics: maskdiff.learning.
# =============================================================================================

METHOD_ORDER = ("base", "sft", "diffu_grpo", "mdpo", "mdpo_all_data", "mdpo_null", "mdpo_semi_ar", "mdpo_pure_diff")
METHOD_NAMES = {"base": "base", "sft": "SFT", "diffu_grpo": "diffu-GRPO", "mdpo": "MDPO (Answer Backslide set)",
                "mdpo_all_data": "MDPO (all data)", "mdpo_null": "MDPO null control (rewards permuted)", "mdpo_semi_ar": "MDPO (semi-AR rollouts)",
                "mdpo_pure_diff": "MDPO (pure-Diff rollouts)"}
TASK_NAMES = {"countdown": "Countdown", "arithmetic": "arithmetic", "math500": "MATH-500"}
TASK_ORDER = ("countdown", "math500", "arithmetic")
# Paired comparisons beyond "every trainer vs base" (A - B): the paper's head-to-heads, and the null
# control against the model it controls for (learning vs drift).
HEAD_TO_HEAD = (("mdpo", "diffu_grpo"), ("mdpo", "mdpo_all_data"), ("mdpo", "sft"), ("mdpo_all_data", "mdpo_null"))


def method_name(method: str) -> str:
    """Display name; a difference "a - b" names both."""
    if " - " in method:
        return " - ".join(method_name(m) for m in method.split(" - "))
    if method.endswith("]") and "[" in method:  # a per-task training run, mdpo[countdown]
        base, task = method[:-1].split("[", 1)
        return f"{method_name(base)} ({task})"
    return METHOD_NAMES.get(method, method)


def ordered(methods) -> list[str]:
    """Methods in the paper's order (base, SFT, diffu-GRPO, MDPO, ...), unknown ones last."""
    rank = {m: i for i, m in enumerate(METHOD_ORDER)}
    return sorted(set(methods), key=lambda m: (rank.get(m.split("[")[0], len(rank)), m))  # mdpo[countdown]: as mdpo


@dataclass
class Run:
    """A finished run's tables, default cell, seeds and training logs (read by :func:`load_run`)."""

    results: Path
    sweep: pd.DataFrame
    summary: pd.DataFrame
    cell: dict  # the default cell: gen_length, block_length, steps, remasking, label, group
    tasks: list[str]
    seeds: dict[str, list[int]]  # method -> seeds evaluated at the default cell (default remasking)
    logs: dict[str, list[dict]]  # trained model -> its metrics.jsonl events
    _problems: dict = field(default_factory=dict, repr=False)
    _cache: dict = field(default_factory=dict, repr=False)

    def model(self, method: str, seed: int) -> str:
        return method if seed == 0 else f"{method}-s{seed}"

    def default_rows(self) -> pd.DataFrame:
        """Every model's rows at the default cell and remasking, with method and seed columns."""
        c = self.cell
        rows = self.sweep[(self.sweep["block_length"] == c["block_length"]) & (self.sweep["steps"] == c["steps"])
                          & (self.sweep["remasking"] == c["remasking"])]
        split = [split_model(m) for m in rows["model"]]
        return rows.assign(method=[s[0] for s in split], seed=[s[1] for s in split])

    def outcomes(self, method: str, seed: int, task: str, key: str = "correct") -> dict[str, bool] | None:
        """``{problem id: correct}`` (or ``backslide``) of one model at the default cell; None when
        the problems file is missing."""
        model = self.model(method, seed)
        if (model, task) not in self._problems:
            path = self.results / "eval" / model / task / f"{self.cell['group']}.problems.jsonl"
            rows = [r for r in read_jsonl(path) if r["cell"] == self.cell["label"]] if path.exists() else None
            self._problems[(model, task)] = rows
        rows = self._problems[(model, task)]
        if rows is None:
            return None
        return {r["id"]: bool(r["reward"] > 0.5) if key == "correct" else bool(r["backslide"]) for r in rows}

    def runs(self, method: str) -> dict[int, list[dict]]:
        """``{seed: events}`` of a trained method's metrics logs."""
        out = {}
        for model, events in self.logs.items():
            m, seed = split_model(model)
            if m == method:
                out[seed] = events
        return dict(sorted(out.items()))

    def trained_methods(self) -> list[str]:
        return ordered({split_model(m)[0] for m in self.logs})

    def config(self, method: str) -> dict:
        """The config event of a method's first seed (every seed trains with the same settings)."""
        runs = self.runs(method)
        events = runs[min(runs)] if runs else []
        return next((e for e in events if e.get("event") == "config"), {})

    def n_test(self, task: str) -> int:
        rows = self.default_rows()
        rows = rows[rows["task"] == task]
        return int(rows["n"].max()) if not rows.empty else 0


def default_remasking(summary: pd.DataFrame) -> str:
    """The default cell's remasking rule: the one RL-seed replicates were evaluated with (they get
    only the default rule), else LCR when evaluated, else the first rule of the headline table."""
    replicas = summary[[split_model(m)[1] > 0 for m in summary["model"]]]
    if not replicas.empty:
        return str(replicas["remasking"].iloc[0])
    rules = list(dict.fromkeys(summary["remasking"]))
    return "lcr" if "lcr" in rules else rules[0]


def read_training_logs(results: str | Path) -> dict[str, list[dict]]:
    """Every trained model's metrics events (``models/<model>/metrics.jsonl``; the base model's
    pretraining log is left out). A model trained per task (``models/<model>/<task>/metrics.jsonl``,
    training.per_task) is one run per task, keyed ``<method>[<task>]`` with the model's seed suffix:
    ``mdpo-s1/countdown`` -> ``mdpo[countdown]-s1``."""
    logs = {}
    models = Path(Layout.at(results).models)
    for path in sorted(models.glob(f"*/{MODEL_METRICS}")):
        if path.parent.name != "base":
            logs[path.parent.name] = read_jsonl(path)
    for path in sorted(models.glob(f"*/*/{MODEL_METRICS}")):
        method, seed = split_model(path.parent.parent.name)
        logs[per_task_method(method, path.parent.name) + (f"-s{seed}" if seed else "")] = read_jsonl(path)
    return logs


def per_task_method(method: str, task: str) -> str:
    """The name under which a per-task model's training run is reported (``mdpo[countdown]``)."""
    return f"{method}[{task}]"


def load_run(results: str | Path) -> Run:
    """Read ``sweep.csv``, ``summary.csv`` and the training logs of a finished run."""
    results = Path(results)
    for name in ("sweep.csv", "summary.csv"):
        if not (results / name).is_file():
            raise InputError(f"{results / name} not found: is {results} a finished run's results directory?")
    sweep, summary = pd.read_csv(results / "sweep.csv"), pd.read_csv(results / "summary.csv")
    if summary.empty:
        raise InputError(f"{results / 'summary.csv'} has no rows")
    remasking = default_remasking(summary)
    head = summary[summary["remasking"] == remasking].iloc[0]
    cell = {"gen_length": int(head["gen_length"]), "block_length": int(head["block_length"]), "steps": int(head["steps"]),
            "remasking": remasking, "label": str(head["label"]),
            "group": f"B{int(head['block_length'])}-S{int(head['steps'])}"}
    tasks = sorted(sweep["task"].unique(), key=lambda t: (TASK_ORDER.index(t) if t in TASK_ORDER else len(TASK_ORDER), t))
    run = Run(results, sweep, summary, cell, tasks, {}, read_training_logs(results))
    seeds: dict[str, set[int]] = {}
    for model in run.default_rows()["model"]:
        method, seed = split_model(model)
        seeds.setdefault(method, set()).add(seed)
    run.seeds = {m: sorted(seeds[m]) for m in ordered(seeds)}
    return run


def _cached(fn):
    """Compute a table of a run once (the report shows them, then the README preview reuses them)."""

    @functools.wraps(fn)
    def wrapper(run: Run, *args):
        key = (fn.__name__, *args)
        if key not in run._cache:
            run._cache[key] = fn(run, *args)
        return run._cache[key]

    return wrapper


def update_events(events: list[dict]) -> list[dict]:
    return sorted((e for e in events if e.get("event") == "update"), key=lambda e: e["update"])


def eval_events(events: list[dict]) -> list[dict]:
    return sorted((e for e in events if e.get("event") == "eval"), key=lambda e: e["update"])


def series(events: list[dict], key: str) -> list:
    """One value per update event (None where the update did not log ``key``)."""
    return [e.get(key) for e in update_events(events)]


# ----------------------------------------------------------------------------- tables
@_cached
def seed_table(run: Run) -> list[dict]:
    """Per method and task at the default cell: each seed's accuracy with its Wilson interval, the
    mean / sd / min / max across seeds (:func:`maskdiff.learning.seed_spread`) and a sentence."""
    rows = run.default_rows()
    out = []
    for method in run.seeds:
        for task in run.tasks:
            sub = rows[(rows["method"] == method) & (rows["task"] == task)]
            if sub.empty:
                continue
            per_seed = {int(r.seed): (int(round(r.accuracy * r.n)), int(r.n)) for r in sub.itertuples()}
            spread = seed_spread(per_seed)
            backslide = sub.set_index("seed")["backslide_rate"].to_dict()
            for r in spread["seeds"]:
                r["backslide_rate"] = float(backslide[r["seed"]])
            out.append({"method": method, "task": task, **spread, "words": spread_in_words(spread)})
    return out


def pairs_among(methods: list[str]) -> list[tuple[str, str]]:
    """Every trainer vs the base model, then the head-to-heads (:data:`HEAD_TO_HEAD`) both sides have."""
    have = set(methods)
    pairs = [(m, "base") for m in methods if m != "base" and "base" in have]
    return pairs + [(a, b) for a, b in HEAD_TO_HEAD if a in have and b in have]


def comparison_pairs(run: Run) -> list[tuple[str, str]]:
    return pairs_among(list(run.seeds))


@_cached
def comparison_table(run: Run) -> list[dict]:
    """Paired tests at the default cell, per task and pair (A - B): pooled over seed pairs
    (:func:`maskdiff.learning.pair_seeds`) and per seed pair, with McNemar p and Newcombe interval
    of the accuracy difference, and the McNemar p of the Answer Backslide flag."""
    out = []
    for task in run.tasks:
        for a, b in comparison_pairs(run):
            per_seed, runs, back_runs = [], [], []
            for sa, sb in pair_seeds(run.seeds[a], run.seeds[b]):
                ra, rb = run.outcomes(a, sa, task), run.outcomes(b, sb, task)
                if ra is None or rb is None:
                    continue
                ba, bb = run.outcomes(a, sa, task, "backslide"), run.outcomes(b, sb, task, "backslide")
                runs.append((ra, rb))
                back_runs.append((ba, bb))
                back = paired_comparison(ba, bb)
                per_seed.append({"seed_a": sa, "seed_b": sb, **paired_comparison(ra, rb),
                                 "backslide_a": back["acc_a"], "backslide_b": back["acc_b"], "backslide_p": back["p_value"]})
            if not runs:
                continue
            pooled = pooled_paired_comparison(runs)
            back = pooled_paired_comparison(back_runs)
            out.append({"task": task, "a": a, "b": b, **pooled, "backslide_a": back["acc_a"], "backslide_b": back["acc_b"],
                        "backslide_p": back["p_value"], "per_seed": per_seed})
    return out


@_cached
def learning_table(run: Run) -> list[dict]:
    """Per trained method: did the training reward change (pooled over seeds and per seed,
    :func:`maskdiff.learning.learning_verdict`), and held-out accuracy at the first and the last
    evaluation of seed 0 (Wilson intervals over the trainer's ``eval_problems``)."""
    out = []
    for method in run.trained_methods():
        runs = run.runs(method)
        rewards = {s: series(ev, "reward_mean") for s, ev in runs.items()}
        pooled = learning_verdict(list(rewards.values()))
        per_seed = {s: learning_verdict([r]) for s, r in rewards.items()}
        held_out = {}
        for task, points in held_out_curves(run, method).items():
            if points:
                held_out[task] = {"start": points[0], "end": points[-1], "points": len(points)}
        out.append({"method": method, "seeds": sorted(runs), "pooled": pooled, "per_seed": per_seed,
                    "words": verdict_in_words(pooled), "held_out": held_out})
    return out


@_cached
def held_out_curves(run: Run, method: str, seed: int = 0) -> dict[str, list[dict]]:
    """``{task: [{update, accuracy, ci_low, ci_high, n, rollout_sequences}]}`` of one seed's validation
    curve; n is the number of problems the trainer logged (``eval_n/<task>``; logs without it: the
    config's ``eval_problems``, capped by the test set's size, as they were then read from it)."""
    events = run.runs(method).get(seed, [])
    cfg = run.config(method)
    budget = {e["update"]: e.get("rollout_sequences") for e in update_events(events)}
    budget[0] = 0
    out = {}
    evals = eval_events(events)
    for task in run.tasks:
        logged = [e[f"eval_n/{task}"] for e in evals if f"eval_n/{task}" in e]
        n = int(logged[0]) if logged else int(cfg.get("eval_problems") or 0)
        if not logged and run.n_test(task):
            n = min(n, run.n_test(task))
        points = held_out_points(evals, task, n) if n else []
        for p in points:
            p["rollout_sequences"] = budget.get(p["update"])
        out[task] = points
    return out


@_cached
def signal_table(run: Run) -> list[dict]:
    """Per RL method: share of prompt groups with a learning signal (``groups_with_signal``: a
    non-zero advantage), mean over updates and seeds; MDPO also the share with a final-reward
    spread (what diffu-GRPO's signal would have been on the same rollouts)."""
    out = []
    for method in run.trained_methods():
        runs = run.runs(method)
        signal = {s: series(ev, "groups_with_signal") for s, ev in runs.items()}
        if not any(finite(v) for v in signal.values()):
            continue
        spread = {s: series(ev, "groups_with_final_spread") for s, ev in runs.items()}
        row = {"method": method, "signal": signal_summary(signal)}
        if any(finite(v) for v in spread.values()):
            row["final_spread"] = signal_summary(spread)
        out.append(row)
    return out


@_cached
def budget_table(run: Run) -> list[dict]:
    """Each trained method's budget at the end of seed 0: updates, rollout sequences and rollout
    network calls (RL only), summed update seconds, and its last held-out accuracy per task."""
    out = []
    for method in run.trained_methods():
        runs = run.runs(method)
        ups = update_events(runs.get(0) or runs[min(runs)])
        last = ups[-1] if ups else {}
        row = {"method": method, "updates": int(last.get("update", 0)), "rollout_sequences": last.get("rollout_sequences"),
               "rollout_nfe": last.get("rollout_nfe"), "train_seconds": float(sum(finite(e.get("seconds") for e in ups))),
               "epochs": last.get("epochs"), "held_out": {}}
        for task, points in held_out_curves(run, method).items():
            if points:
                row["held_out"][task] = points[-1]
        out.append(row)
    return out


@_cached
def equal_budget_table(run: Run) -> list[dict]:
    """The RL trainers at an equal rollout budget: the largest number of rollout sequences every RL
    trainer (seed 0) reached, and each one's last held-out accuracy at or before that budget."""
    curves = {m: held_out_curves(run, m) for m in run.trained_methods()}
    finals = {}
    for method in curves:
        ups = update_events(run.runs(method).get(0, []))
        if ups and is_number(ups[-1].get("rollout_sequences")):
            finals[method] = ups[-1]["rollout_sequences"]
    if not finals:
        return []
    budget = min(finals.values())
    out = []
    for method in finals:
        for task, points in curves[method].items():
            before = [p for p in points if is_number(p.get("rollout_sequences")) and p["rollout_sequences"] <= budget]
            if before:
                out.append({"method": method, "task": task, "budget": budget, **before[-1]})
    return out


def remasking_gaps(sweep: pd.DataFrame) -> list[dict]:
    """Paired gaps over every matching cell (a cell = model x task x block x steps; seed-0 models):
    RCR-max - LCR, RCR-latest - LCR, RCR-max - RCR-latest, and semi-AR (shortest block) - pure-Diff."""
    sweep = sweep[[split_model(m)[1] == 0 for m in sweep["model"]]]
    gaps = []

    def gap(a: pd.DataFrame, b: pd.DataFrame, key: list[str], label: str, name_a: str, name_b: str) -> None:
        m = a.merge(b, on=key, suffixes=("_a", "_b"))
        if m.empty:
            return
        d = 100 * (m["accuracy_a"] - m["accuracy_b"])
        gaps.append({"comparison": label, "a": name_a, "b": name_b, "cells": int(len(m)), "mean_gap": float(d.mean()),
                     "a_better": int((d > 0).sum()), "b_better": int((d < 0).sum()), "ties": int((d == 0).sum())})

    key = ["model", "task", "block_length", "steps"]
    for a, b in (("rcr-max", "lcr"), ("rcr-latest", "lcr"), ("rcr-max", "rcr-latest")):
        gap(sweep[sweep["remasking"] == a], sweep[sweep["remasking"] == b], key, f"{a} - {b}", a, b)
    if not sweep.empty:
        semi, pure = int(sweep["block_length"].min()), int(sweep["gen_length"].iloc[0])
        if semi != pure:
            gap(sweep[sweep["block_length"] == semi], sweep[sweep["block_length"] == pure],
                ["model", "task", "steps", "remasking"], "semi-AR - pure-Diff", "semi-AR", "pure-Diff")
    return gaps


def mining_table(results: str | Path) -> dict[str, dict]:
    """``{task: stats.json}`` of the Answer Backslide mining."""
    return {p.parent.name: read_json(p) for p in sorted(Path(Layout.at(results).mining).glob("*/stats.json"))}


def median_step(hist: dict) -> float:
    """Median of a ``{step: count}`` histogram (lower median); nan when empty."""
    items = sorted((int(k), int(v)) for k, v in (hist or {}).items())
    total = sum(v for _, v in items)
    if not total:
        return float("nan")
    seen = 0
    for step, count in items:
        seen += count
        if 2 * seen >= total:
            return float(step)
    return float(items[-1][0])
