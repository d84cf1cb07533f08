"""README results generated from a run, never typed.

Two steps, both in the CLI:

1. ``maskdiff results-snapshot --results results/local --preset local --out docs/results/local.json``
   reads a finished run (through :func:`maskdiff.summary.load_run` and the same table functions the
   report notebook shows) and writes every number the README cites into one small JSON "snapshot"
   (:func:`build_snapshot`; keys in :data:`SNAPSHOT_KEYS`). The snapshot is committed.
2. ``maskdiff results-readme --snapshot docs/results/local.json --readme README.md`` rewrites the
   README text between ``<!-- results:begin -->`` and ``<!-- results:end -->`` from the snapshot
   alone (:func:`render_results`); ``--check`` only verifies that the README is what the snapshot
   gives (exit 2 otherwise). The generated text cites the snapshot path it was made from, and a test
   regenerates it from that committed file and compares.

Every number in the generated text is formatted from a snapshot value here, so the README cannot
drift from the run. Undefined statistics (one seed, no reward) are written "n/a".
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import re
from pathlib import Path

import pandas as pd

from .errors import InputError
from .io import read_json, write_json, write_text
from .learning import NA, fmt, fmt_pct, is_number, split_model
from .stats import wilson_interval
from .study import Study, base_seed_of, load_study
from .study_readme import render_study, render_tuning, study_snapshot, tuning_snapshot
from .summary import (TASK_NAMES, Run, budget_table, comparison_table, equal_budget_table, held_out_curves, learning_table,
                      load_run, median_step, method_name, mining_table, ordered, remasking_gaps, seed_table, signal_table)

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
SCHEMA = 2
SNAPSHOT_KEYS = ("schema", "preset", "date", "results_dir", "default_cell", "tasks", "n_test", "seeds", "updates",
                 "base", "base_grid", "default_cell_models", "trainers", "comparisons", "signal",
                 "learning", "budgets", "equal_budget", "mining", "decoding", "precision", "study", "tuning")


# ----------------------------------------------------------------------------- JSON hygiene
def _r(x, digits: int = 6):
    """Round for the snapshot (6 decimals: the README formats rates to 0.1 points, no double rounding); nan/inf/None -> None."""
    if not is_number(x):
        return None
    return round(float(x), digits)


def _p(x):
    """p-values keep 3 significant digits."""
    if not is_number(x):
        return None
    return float(f"{float(x):.3g}")


def _int(x):
    return int(x) if is_number(x) else None


def _relative(path: Path) -> str:
    """A path as the README should name it: relative to the working directory when inside it."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.as_posix()


# ----------------------------------------------------------------------------- the snapshot
def build_snapshot(results: str | Path, preset: str, date: str | None = None, run: Run | None = None,
                   replicates: list[str | Path] = (), tuned: str | Path | None = None) -> dict:
    """Every number the README shows, from a finished run's results directory, with its base-seed
    ``replicates`` (other results directories of the same preset: the seed-aware comparisons then
    span them all; without them, they are conditional on the one base model) and the ``tuned`` file
    the preset read. ``date`` defaults to the day ``summary.csv`` was written (UTC): the run's date."""
    results = Path(results)
    run = run or load_run(results)
    cell = run.cell
    if date is None:
        written = (results / "summary.csv").stat().st_mtime
        date = _dt.datetime.fromtimestamp(written, _dt.timezone.utc).date().isoformat()
    snap: dict = {
        "schema": SCHEMA, "preset": preset, "date": date,
        "results_dir": _relative(results),
        "default_cell": {k: cell[k] for k in ("gen_length", "block_length", "steps", "remasking", "label")},
        "tasks": run.tasks, "n_test": {t: run.n_test(t) for t in run.tasks},
        "seeds": max((len(s) for m, s in run.seeds.items() if m != "base"), default=0),
    }
    budgets = budget_table(run)
    snap["updates"] = max((b["updates"] for b in budgets), default=None)

    # ---- base model: default cell (exact Wilson intervals from the counts), test-set backslide, the grid
    base = {}
    for row in seed_table(run):
        if row["method"] == "base":
            x = row["seeds"][0]
            lo, hi = wilson_interval(round(x["backslide_rate"] * x["n"]), x["n"])
            base[row["task"]] = {"accuracy": _r(x["accuracy"]), "ci_low": _r(x["ci_low"]), "ci_high": _r(x["ci_high"]),
                                 "n": x["n"], "backslide_rate": _r(x["backslide_rate"]), "backslide_ci_low": _r(lo),
                                 "backslide_ci_high": _r(hi)}
    snap["base"] = {t: base[t] for t in run.tasks if t in base}
    grid = run.sweep[run.sweep["model"] == "base"].sort_values(["block_length", "steps", "remasking"])
    snap["base_grid"] = {t: [{"block_length": int(r.block_length), "steps": int(r.steps), "remasking": r.remasking,
                              "accuracy": _r(r.accuracy), "n": int(r.n)} for r in grid[grid["task"] == t].itertuples()]
                         for t in run.tasks if (grid["task"] == t).any()}

    # ---- every seed-0 model at the default cell, every remasking rule
    at_cell = run.sweep[(run.sweep["block_length"] == cell["block_length"]) & (run.sweep["steps"] == cell["steps"])]
    models: dict = {}
    for r in at_cell.itertuples():
        if split_model(r.model)[1] == 0:
            models.setdefault(r.model, {}).setdefault(r.task, {})[r.remasking] = {
                "accuracy": _r(r.accuracy), "ci_low": _r(r.accuracy_ci_low), "ci_high": _r(r.accuracy_ci_high),
                "backslide_rate": _r(r.backslide_rate)}
    snap["default_cell_models"] = models

    # ---- seeds
    trainers: dict = {}
    for row in seed_table(run):
        trainers.setdefault(row["method"], {})[row["task"]] = {
            "mean": _r(row["mean"]), "std": _r(row["std"]), "min": _r(row["min"]), "max": _r(row["max"]),
            "n_seeds": row["n_seeds"], "mean_half_width": _r(row["mean_half_width"]),
            "seeds": [{"seed": s["seed"], "accuracy": _r(s["accuracy"]), "ci_low": _r(s["ci_low"]),
                       "ci_high": _r(s["ci_high"]), "n": s["n"], "backslide_rate": _r(s["backslide_rate"])}
                      for s in row["seeds"]]}
    snap["trainers"] = trainers

    # ---- per-seed McNemar tests (diagnostics; the README's comparisons are the study's, below)
    snap["comparisons"] = [
        {"task": c["task"], "a": c["a"], "b": c["b"],
         "per_seed": [{"seed_a": x["seed_a"], "seed_b": x["seed_b"], "n": x["n"], "difference": _r(x["difference"]),
                       "ci_low": _r(x["ci_low"]), "ci_high": _r(x["ci_high"]), "p_value": _p(x["p_value"])}
                      for x in c["per_seed"]]}
        for c in comparison_table(run)]

    # ---- learning signal, learning verdicts, budgets
    snap["signal"] = {row["method"]: {"mean": _r(row["signal"]["mean"]), "min_seed": _r(row["signal"]["min_seed"]),
                                      "max_seed": _r(row["signal"]["max_seed"]), "n_seeds": row["signal"]["n_seeds"],
                                      "final_spread_mean": _r(row["final_spread"]["mean"]) if "final_spread" in row else None}
                      for row in signal_table(run)}
    learning = {}
    for row in learning_table(run):
        v = row["pooled"]
        held = {}
        for task, h in row["held_out"].items():
            points = held_out_curves(run, row["method"]).get(task, [])
            peak = max(points, key=lambda p: p["accuracy"]) if points else None
            held[task] = {"n": h["end"]["n"], "start_update": h["start"]["update"], "start": _r(h["start"]["accuracy"]),
                          "start_ci_low": _r(h["start"]["ci_low"]), "start_ci_high": _r(h["start"]["ci_high"]),
                          "end_update": h["end"]["update"], "end": _r(h["end"]["accuracy"]),
                          "end_ci_low": _r(h["end"]["ci_low"]), "end_ci_high": _r(h["end"]["ci_high"]),
                          "peak": _r(peak["accuracy"]) if peak else None, "peak_update": peak["update"] if peak else None}
        learning[row["method"]] = {
            "seeds": row["seeds"], "updates": v["updates"], "start": _r(v["start"]), "end": _r(v["end"]),
            "difference": _r(v["difference"]), "p_value": _p(v["p_value"]), "spearman_rho": _r(v["spearman_rho"], 3),
            "verdict": v["verdict"], "per_seed_verdicts": {str(s): x["verdict"] for s, x in row["per_seed"].items()},
            "held_out": held}
    snap["learning"] = learning
    snap["budgets"] = {b["method"]: {"updates": b["updates"], "rollout_sequences": _int(b["rollout_sequences"]),
                                     "rollout_nfe": _int(b["rollout_nfe"])} for b in budgets}
    equal = equal_budget_table(run)
    snap["equal_budget"] = None if not equal else {
        "rollout_sequences": _int(equal[0]["budget"]),
        "accuracy": {m: {e["task"]: {"update": e["update"], "accuracy": _r(e["accuracy"]), "ci_low": _r(e["ci_low"]),
                                     "ci_high": _r(e["ci_high"]), "n": e["n"]} for e in equal if e["method"] == m}
                     for m in dict.fromkeys(e["method"] for e in equal)}}

    # ---- mining, decoding rules, precision study
    mining = mining_table(results)
    snap["mining"] = {t: _mining(mining[t]) for t in [*run.tasks, *sorted(set(mining) - set(run.tasks))] if t in mining}
    snap["decoding"] = [{**g, "mean_gap": _r(g["mean_gap"], 2)} for g in remasking_gaps(run.sweep)]
    precision = results / "precision.csv"
    snap["precision"] = precision_headline(pd.read_csv(precision)) if precision.is_file() else None

    # ---- the replicated study (this run and its base-seed replicates) and the tuning behind it
    study = load_study([results, *map(Path, replicates)]) if replicates else Study({base_seed_of(results): run})
    snap["study"] = study_snapshot(study) | {"primary_base_seed": base_seed_of(results)}
    snap["tuning"] = tuning_snapshot(tuned) if tuned else None
    return snap


def _mining(s: dict) -> dict:
    if not s.get("overall"):
        return {"source": s.get("source"), "mined": s.get("mined"), "overall": None}
    o = s["overall"]
    return {
        "source": s.get("source"), "mined": s.get("mined"), "prompts": s.get("prompts"),
        "rollouts_per_prompt": _r(s.get("rollouts_per_prompt"), 2), "mined_prompt_rate": _r(s.get("mined_prompt_rate")),
        "overall": {"n": o["n"], "backslide": o["backslide"], "backslide_rate": _r(o["backslide_rate"]),
                    "backslide_ci_low": _r(o["backslide_ci_low"]), "backslide_ci_high": _r(o["backslide_ci_high"]),
                    "od_rate": _r(o["od_rate"]), "final_accuracy": _r(o["final_accuracy"])},
        "per_block_length": {b: _r(g["backslide_rate"]) for b, g in s.get("per_block_length", {}).items()},
        "first_correct_median": _r(median_step(s.get("backslide_first_correct_step_hist")), 1),
        "last_correct_median": _r(median_step(s.get("backslide_last_correct_step_hist")), 1),
        "steps": max(s.get("steps") or [0]) or None,
    }


def precision_headline(table: pd.DataFrame) -> dict:
    """The precision / FHS study's headline (what the README's precision bullets say)."""
    out: dict = {"model_free": [], "fp64_min_ratio": None, "model": {}}
    analytic = table[table["part"] == "model_free_analytic"]
    for (vocab, s, t), g in analytic[analytic["precision"] == "fp32"].groupby(["vocab", "zipf_s", "t"]):
        g = g.sort_values("steps")
        low = g[g["entropy_ratio"] < 0.95]
        last = g.iloc[-1]
        out["model_free"].append({
            "vocab": int(vocab), "zipf_s": _r(s, 3), "t": _r(t, 3),
            "first_steps_below_95": _int(low["steps"].iloc[0]) if not low.empty else None,
            "max_steps": _int(last["steps"]), "ratio_at_max": _r(last["entropy_ratio"]),
            "temperature_at_max": _r(last["eff_temperature"], 3)})
    fp64 = analytic[analytic["precision"] == "fp64"]
    if not fp64.empty:
        out["fp64_min_ratio"] = _r(fp64["entropy_ratio"].min(), 6)
    model = table[table["part"] == "model"]
    for mode in dict.fromkeys(model["mode"]):
        sub = model[model["mode"] == mode]
        anc = sub[sub["sampler"] == "ancestral"]
        exact = sub[(sub["sampler"] == "fhs") & (sub["tokens_per_call"] == 1)]
        row: dict = {}
        if not anc.empty:
            top = anc["steps"].max()
            at_top = anc[anc["steps"] == top].groupby("precision").first()
            row["max_steps"] = _int(top)
            row["max_steps_per_length"] = _int(anc["steps_per_length"].max())
            if {"fp32", "fp64"} <= set(at_top.index):
                row["fp32_minus_fp64_entropy"] = _r(at_top.loc["fp32", "entropy_mean"] - at_top.loc["fp64", "entropy_mean"], 3)
                row["entropy_se"] = _r(math.hypot(at_top.loc["fp32", "entropy_sem"], at_top.loc["fp64", "entropy_sem"]), 3)
                row["fp64_wall_s"] = _r(at_top.loc["fp64", "wall_time_s"], 2)
        if not exact.empty:
            row["fhs_entropy"] = _r(exact["entropy_mean"].iloc[0], 3)
            row["fhs_nfe"] = _r(exact["nfe_mean"].iloc[0], 1)
            row["fhs_wall_s"] = _r(exact["wall_time_s"].iloc[0], 2)
        fp64_anc = anc[anc["precision"] == "fp64"]
        if not fp64_anc.empty:
            row["fp64_entropy_range"] = [_r(fp64_anc["entropy_mean"].min(), 3), _r(fp64_anc["entropy_mean"].max(), 3)]
        for col in ("accuracy", "valid_rate"):
            if col in sub and sub[col].notna().any():
                row[f"{col}_range"] = [_r(sub[col].min()), _r(sub[col].max())]
        out["model"][mode] = row
    return out


# ----------------------------------------------------------------------------- rendering
def _task(t: str) -> str:
    return TASK_NAMES.get(t, t)


def _acc_ci(a, lo, hi, digits: int = 1) -> str:
    return f"{fmt_pct(a, digits)} [{fmt_pct(lo, digits)}, {fmt_pct(hi, digits)}]" if is_number(a) else NA


def _int_text(x) -> str:
    return f"{x:,}" if is_number(x) else NA


def _mode(block: int, gen: int) -> str:
    return "pure-Diff" if block == gen else "semi-AR"


def _rule_rank(r: str) -> tuple:
    order = ("lcr", "rcr-max", "rcr-latest", "random")
    return (order.index(r) if r in order else len(order), r)


def _rule(r: str) -> str:
    return {"lcr": "LCR", "rcr-max": "RCR-max", "rcr-latest": "RCR-latest", "random": "random"}.get(r, r)


def render_results(snap: dict, source: str) -> str:
    """The README section (between the markers, markers excluded) from a snapshot; ``source`` is
    the snapshot's path as the README cites it."""
    missing = [k for k in SNAPSHOT_KEYS if k not in snap]
    if missing:
        raise InputError(f"{source}: not a results snapshot (missing keys {missing}); make it with `maskdiff results-snapshot`")
    c, tasks = snap["default_cell"], snap["tasks"]
    gen = c["gen_length"]
    out = [f"<!-- generated by `maskdiff results-readme --snapshot {source}`: regenerate it, do not edit by hand -->", ""]
    n_text = ", ".join(f"{_task(t)} {snap['n_test'][t]}" for t in tasks)
    dirs = list(snap["study"]["results_dirs"].values())
    out.append(
        f"Preset `{snap['preset']}`, run of {snap['date']}. Every number below is read from the snapshot "
        f"[`{source}`]({source}) (`maskdiff results-snapshot` of {', '.join(f'`{d}`' for d in dirs)}); the report "
        f"(`{snap['results_dir']}/report.html`) has the full grid, curves and tests. Default cell: block {c['block_length']} "
        f"({_mode(c['block_length'], gen)}), {c['steps']} steps, {_rule(c['remasking'])}, generation length {gen}; test "
        f"problems per task: {n_text}; {snap['updates'] if snap['updates'] is not None else NA} gradient updates per trainer.")
    out.append("")

    # ---- base model
    base = snap["base"]
    if base:
        parts = [f"{_task(t)} **{fmt_pct(b['accuracy'])}%** [{fmt_pct(b['ci_low'])}, {fmt_pct(b['ci_high'])}]"
                 for t, b in base.items()]
        back = [f"{_task(t)} {fmt_pct(b['backslide_rate'])}% [{fmt_pct(b['backslide_ci_low'])}, {fmt_pct(b['backslide_ci_high'])}]"
                for t, b in base.items()]
        out.append(f"**Base model** at the default cell: {', '.join(parts)}; Answer Backslide on the test problems "
                   f"(a step was right, the final answer is wrong): {', '.join(back)}.")
        out.append("")
    grid = snap["base_grid"]
    if grid:
        rules = sorted({r["remasking"] for g in grid.values() for r in g}, key=_rule_rank)
        settings = sorted({(r["block_length"], r["steps"]) for g in grid.values() for r in g})
        n_grid = sorted({r["n"] for g in grid.values() for r in g})
        out.append(f"Base model by setting ({' / '.join(_rule(r) for r in rules)}, %; "
                   f"n = {', '.join(str(n) for n in n_grid)} problems per cell):")
        out.append("")
        out.append("| task | " + " | ".join(f"block {b}, {s} steps" for b, s in settings) + " |")
        out.append("|---|" + "---|" * len(settings))
        for t, g in grid.items():
            cells = {(r["block_length"], r["steps"], r["remasking"]): r["accuracy"] for r in g}
            out.append(f"| {_task(t)} | " + " | ".join(" / ".join(fmt_pct(cells.get((b, s, r))) for r in rules)
                                                       for b, s in settings) + " |")
        out.append("")

    # ---- mining
    mining = snap["mining"]
    if mining:
        parts, steps_text = [], []
        for t, m in mining.items():
            if m.get("overall") is None:
                parts.append(f"{_task(t)}: a pre-mined set (`{m['source']}`, {_int_text(m['mined'])} samples)")
                continue
            o = m["overall"]
            blocks = ", ".join(f"block {b}: {fmt_pct(r)}%" for b, r in sorted(m["per_block_length"].items(), key=lambda x: -int(x[0])))
            parts.append(f"{_task(t)} {fmt_pct(o['backslide_rate'])}% [{fmt_pct(o['backslide_ci_low'])}, "
                         f"{fmt_pct(o['backslide_ci_high'])}] of {_int_text(o['n'])} rollouts ({fmt(m['rollouts_per_prompt'], 0)} per "
                         f"prompt; {_int_text(m['mined'])} of {_int_text(m['prompts'])} prompts mined, {fmt_pct(m['mined_prompt_rate'])}%; "
                         f"{fmt_pct(o['od_rate'])}% of wrong finals; {blocks})")
            if is_number(m["first_correct_median"]):
                steps_text.append(f"{_task(t)}: first right at step {fmt(m['first_correct_median'], 0)}, last right at step "
                                  f"{fmt(m['last_correct_median'], 0)} of {m['steps']}")
        text = f"**Answer Backslide** in the base model's rollouts of the training prompts: {'; '.join(parts)}."
        if steps_text:
            text += f" Backsliding rollouts (medians, 0-based steps): {'; '.join(steps_text)}."
        out.append(text)
        out.append("")

    models = snap["default_cell_models"]
    if models:
        rules = sorted({r for per_task in models.values() for cells in per_task.values() for r in cells}, key=_rule_rank)
        cols = [(t, r) for t in tasks for r in rules]
        out.append("Seed 0 of every model at the default cell by remasking rule (accuracy % [95% CI] / Answer Backslide %):")
        out.append("")
        out.append("| model | " + " | ".join(f"{_task(t)} {_rule(r)}" for t, r in cols) + " |")
        out.append("|---|" + "---|" * len(cols))
        for model in ordered(models):
            cells = []
            for t, r in cols:
                x = models[model].get(t, {}).get(r)
                cells.append(f"{_acc_ci(x['accuracy'], x['ci_low'], x['ci_high'])} / {fmt_pct(x['backslide_rate'])}" if x else NA)
            out.append(f"| {method_name(model)} | " + " | ".join(cells) + " |")
        out.append("")

    # ---- the study: comparisons with seed-aware intervals, learning slopes
    if snap["tuning"]:
        out += render_tuning(snap["tuning"])
    out += render_study(snap["study"], tasks)

    # ---- training of the base seed 0 run: signal, budgets, validation curves
    learning = snap["learning"]
    if learning:
        out.append(f"**Training, run `{snap['results_dir']}`** (base seed {snap['study']['primary_base_seed']}; the report "
                   "has the curves and the per-seed McNemar diagnostics): validation accuracy of RL seed 0 at the first "
                   "and the last point of its curve (never the test set):")
        out.append("")
        for method, v in learning.items():
            held = []
            for t, h in v["held_out"].items():
                peak = ""
                if is_number(h["peak"]) and h["peak"] > max(h["end"], h["start"]):
                    peak = f" (peak {fmt_pct(h['peak'])}% at update {h['peak_update']})"
                held.append(f"{_task(t)} {fmt_pct(h['start'])}% -> {fmt_pct(h['end'])}%{peak}")
            n = next(iter(v["held_out"].values()))["n"] if v["held_out"] else None
            out.append(f"* {method_name(method)}: " + (f"validation (n = {n}) {', '.join(held)}" if held else "no validation curve") + ".")
        signal = snap["signal"]
        if signal:
            parts = []
            for method, s in signal.items():
                extra = (f" ({fmt_pct(s['final_spread_mean'])}% with a final-reward spread)"
                         if s["final_spread_mean"] is not None else "")
                parts.append(f"{method_name(method)} {fmt_pct(s['mean'])}%{extra}")
            out.append("* Prompt groups with a learning signal (a non-zero advantage; mean over updates and seeds): "
                       + ", ".join(parts) + ".")
        rl = {m: b for m, b in snap["budgets"].items() if b["rollout_sequences"] is not None}
        if rl:
            out.append("* Budgets at the end (seed 0): " + ", ".join(
                f"{method_name(m)} {b['updates']} updates, {_int_text(b['rollout_sequences'])} rollout sequences "
                f"({_int_text(b['rollout_nfe'])} network calls)" for m, b in rl.items()) + ".")
        eq = snap["equal_budget"]
        if eq:
            per_task = []
            for t in tasks:
                vals = [f"{method_name(m)} {fmt_pct(a[t]['accuracy'])}%" for m, a in eq["accuracy"].items() if t in a]
                if vals:
                    per_task.append(f"{_task(t)}: {', '.join(vals)}")
            out.append(f"* At an equal rollout budget ({_int_text(eq['rollout_sequences'])} sequences, the smallest final "
                       f"budget), validation accuracy: {'; '.join(per_task)}.")
        out.append("")

    # ---- decoding rules
    if snap["decoding"]:
        parts = [f"{_rule(g['a'])} - {_rule(g['b'])} {fmt(g['mean_gap'], 2, True)} points on average over {g['cells']} cells "
                 f"({g['a_better']} better, {g['b_better']} worse, {g['ties']} tied)" for g in snap["decoding"]]
        out.append("**Decoding rules** (seed-0 models, every matched cell of the grid): " + "; ".join(parts) + ".")
        out.append("")

    # ---- precision / FHS
    prec = snap["precision"]
    if prec:
        out.append(f"**Precision / FHS study** (`{snap['results_dir']}/precision.html`):")
        mf = []
        for r in prec["model_free"]:
            if r["first_steps_below_95"] is None:
                mf.append(f"V = {r['vocab']}: keeps >= 95% of the entropy up to N = {_int_text(r['max_steps'])}")
            else:
                mf.append(f"V = {r['vocab']}: below 95% from N = {_int_text(r['first_steps_below_95'])} (ratio "
                          f"{fmt(r['ratio_at_max'], 3)}, temperature {fmt(r['temperature_at_max'], 2)} at N = {_int_text(r['max_steps'])})")
        zipf = sorted({r["zipf_s"] for r in prec["model_free"]})
        if mf:
            out.append(f"* Model-free (analytic, fp32, Zipf({', '.join(fmt(z, 1) for z in zipf)}) against the mask class): "
                       + "; ".join(mf)
                       + f"; fp64's lowest entropy ratio {fmt(prec['fp64_min_ratio'], 5)}.")
        for mode, r in prec["model"].items():
            bits = []
            if "fp32_minus_fp64_entropy" in r:
                bits.append(f"fp32 - fp64 entropy at N = {_int_text(r['max_steps'])} ({r['max_steps_per_length']} L): "
                            f"{fmt(r['fp32_minus_fp64_entropy'], 3, True)} +- {fmt(r['entropy_se'], 3)} nats")
            if "fhs_entropy" in r and "fp64_entropy_range" in r:
                bits.append(f"FHS entropy {fmt(r['fhs_entropy'], 3)} vs fp64 ancestral {fmt(r['fp64_entropy_range'][0], 3)}-"
                            f"{fmt(r['fp64_entropy_range'][1], 3)}")
            if "fhs_wall_s" in r and "fp64_wall_s" in r and is_number(r["fhs_wall_s"]) and r["fhs_wall_s"] > 0:
                bits.append(f"FHS {fmt(r['fhs_wall_s'], 2)} s vs fp64 ancestral {fmt(r['fp64_wall_s'], 2)} s at the largest N")
            if "accuracy_range" in r:
                bits.append(f"accuracy {fmt_pct(r['accuracy_range'][0])}-{fmt_pct(r['accuracy_range'][1])}%")
            if "valid_rate_range" in r:
                bits.append(f"valid examples {fmt_pct(r['valid_rate_range'][0])}-{fmt_pct(r['valid_rate_range'][1])}%")
            if bits:
                out.append(f"* Base model, {mode} samples: " + "; ".join(bits) + ".")
        out.append("")
    while out and out[-1] == "":
        out.pop()
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------------------- the README
_SECTION = re.compile(re.escape(BEGIN) + r"\n(?P<body>.*?)" + re.escape(END), re.S)


def readme_section(text: str, path: str = "README.md") -> str | None:
    """The text between the markers (None when the README has none; InputError when malformed)."""
    if BEGIN not in text and END not in text:
        return None
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
        raise InputError(f"{path}: needs exactly one {BEGIN} followed by one {END}")
    match = _SECTION.search(text)
    if match is None:
        raise InputError(f"{path}: {BEGIN} must end its line")
    return match["body"]


def cited_snapshot(section: str) -> str | None:
    """The snapshot path a generated section cites (its first line)."""
    match = re.search(r"maskdiff results-readme --snapshot (\S+?)`", section)
    return match[1] if match else None


def update_readme(text: str, snap: dict, source: str, path: str = "README.md") -> str:
    """``text`` with the section between the markers replaced by :func:`render_results`."""
    if readme_section(text, path) is None:
        raise InputError(f"{path}: no results markers; add a line {BEGIN} and a line {END} where the results go")
    start = text.index(BEGIN) + len(BEGIN) + 1
    return text[:start] + render_results(snap, source) + text[text.index(END):]


# ----------------------------------------------------------------------------- CLI
def snapshot_command(results: str, preset: str | None, out: str, date: str | None = None,
                     replicates: list[str] = (), tuned: str | None = None) -> dict:
    for path in [results, *replicates]:
        if not Path(path).is_dir():
            raise InputError(f"{path}: no such results directory")
    path = Path(results)
    snap = build_snapshot(path, preset or path.name, date, replicates=list(replicates), tuned=tuned)
    write_json(out, snap)
    return snap


def readme_command(snapshot: str, readme: str, check: bool = False) -> bool:
    """Rewrite (or with ``check`` only compare) the README section; True when it was up to date."""
    snap = read_json(snapshot)
    text = Path(readme).read_text()
    # Cited relative to the README, so that the link in the rendered README resolves.
    source = Path(os.path.relpath(Path(snapshot).resolve(), Path(readme).resolve().parent)).as_posix()
    new = update_readme(text, snap, source, readme)
    if new == text:
        return True
    if check:
        raise InputError(f"{readme}: the results section differs from {snapshot}; run "
                         f"`maskdiff results-readme --snapshot {snapshot} --readme {readme}`")
    write_text(readme, new)
    return False
