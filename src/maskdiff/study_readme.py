"""The replicated study and the tuning search in the README snapshot: what they contribute to it
(:func:`study_snapshot`, :func:`tuning_snapshot`) and the README text they render to
(:func:`render_study`, :func:`render_tuning`). :mod:`maskdiff.results_readme` calls these; the
statistics are :mod:`maskdiff.study`'s, so the report notebook and the README show the same numbers.
"""

from __future__ import annotations

import json
from pathlib import Path

from .io import read_jsonl
from .learning import NA, fmt, fmt_p, fmt_pct, is_number
from .study import Study, accuracy_table, comparisons, learning
from .summary import TASK_NAMES, method_name

ALPHA = 0.05


def _r(x, digits: int = 6):
    return round(float(x), digits) if is_number(x) else None


def _p(x):
    return float(f"{float(x):.3g}") if is_number(x) else None


def _task(t: str) -> str:
    return TASK_NAMES.get(t, t)


# ----------------------------------------------------------------------------- snapshot
def habit_rate(results: Path, data: Path, cell_label: str) -> float | None:
    """Share of the base model's Countdown answers at the default cell that are the imperfect
    teacher's habit (the numbers added in the order given); None without Countdown."""
    problems = results / "eval" / "base" / "countdown"
    test = data / "tasks" / "countdown" / "test.jsonl"
    if not problems.is_dir() or not test.is_file():
        return None
    numbers = {r["id"]: r["numbers"] for r in read_jsonl(test)}
    rows = [r for p in sorted(problems.glob("*.problems.jsonl")) for r in read_jsonl(p) if r["cell"] == cell_label]
    if not rows:
        return None
    lazy = sum(r["completion"].strip() == "+".join(map(str, numbers[r["id"]])) for r in rows if r["id"] in numbers)
    return lazy / len(rows)


def study_snapshot(study: Study) -> dict:
    """The replicated study's numbers: accuracy per (base seed, RL seed), the seed-aware paired
    comparisons with Holm's adjustment, and the training-reward slopes."""
    runs = {b: run for b, run in study.runs.items()}
    any_run = runs[study.base_seeds[0]]
    habits = {}
    for b, run in runs.items():
        # results/<preset> -> data/<preset>, beside it under the same project root
        rate = habit_rate(run.results, run.results.resolve().parent.parent / "data" / run.results.name, run.cell["label"])
        if rate is not None:
            habits[str(b)] = _r(rate)
    return {
        "base_seeds": study.base_seeds,
        "results_dirs": {str(b): run.results.as_posix() for b, run in runs.items()},
        "rl_seeds": {m: {str(b): run.seeds.get(m, []) for b, run in runs.items()} for m in study.methods()},
        "n_test": {t: any_run.n_test(t) for t in study.tasks},
        "base_habit": habits,
        "accuracy": [{"method": a["method"], "task": a["task"], "mean": _r(a["mean"]), "sd_base": _r(a["sd_base"]),
                      "per_base": {str(k): _r(v) for k, v in a["per_base"].items()},
                      "per_run": {k: _r(v) for k, v in a["per_run"].items()}, "runs": a["runs"], "n": a["n"]}
                     for a in accuracy_table(study)],
        "comparisons": [{"task": c["task"], "a": c["a"], "b": c["b"], "mean": _r(c["mean"]), "low": _r(c["low"]),
                         "high": _r(c["high"]), "se": _r(c["se"]), "df": _r(c["df"], 2), "p": _p(c["p"]),
                         "p_holm": _p(c["p_holm"]), "units": c["units"], "runs": c["runs"], "problems": c["problems"],
                         "base_seeds": c["base_seeds"], "per_base": {str(k): _r(v) for k, v in c["per_base"].items()}}
                        for c in comparisons(study)],
        "learning": [{"method": x["method"], "first_quarter": _r(x["first_quarter"]), "last_quarter": _r(x["last_quarter"]),
                      "slope_per_100": _r(100 * x["mean"]) if is_number(x["mean"]) else None,
                      "low_per_100": _r(100 * x["low"]) if is_number(x["low"]) else None,
                      "high_per_100": _r(100 * x["high"]) if is_number(x["high"]) else None,
                      "p": _p(x["p"]), "p_holm": _p(x.get("p_holm")), "units": x["units"], "n": x["n"]}
                     for x in learning(study)],
    }


def tuning_snapshot(path: str | Path) -> dict:
    """The tuning search behind a tuned file: its rule, run, choice and every point's scores."""
    data = json.loads(Path(path).read_text())
    models = {}
    for model, entry in data["models"].items():
        stages = []
        for s in entry["stages"]:
            stages.append({"stage": s["stage"], "name": s["name"], "select": s["select"], "winner": s.get("winner"),
                           "points": [{"point": p["point"], "mean": _r(p["mean_accuracy"]),
                                       "validation": {t: _r(v["accuracy"]) for t, v in p["validation"].items()},
                                       "n": {t: v["n"] for t, v in p["validation"].items()},
                                       "reward_first_quarter": _r(p["reward_first_quarter"]),
                                       "reward_last_quarter": _r(p["reward_last_quarter"])} for p in s["points"]]})
        models[model] = {"chosen": entry["chosen"], "stages": stages}
    return {"file": Path(path).as_posix(), "selection": data["selection"], "run": data["run"], "chosen": data["chosen"],
            "models": models}


# ----------------------------------------------------------------------------- text
def _signed_pts(x) -> str:
    return fmt_pct(x, 1, True)


def comparison_words(c: dict) -> str:
    """One comparison's verdict: a difference when Holm's p is below 5%, else what the interval allows."""
    what = f"{method_name(c['a'])} - {method_name(c['b'])} on {_task(c['task'])}"
    interval = f"{_signed_pts(c['mean'])} points [{_signed_pts(c['low'])}, {_signed_pts(c['high'])}]"
    if is_number(c["p_holm"]) and c["p_holm"] < ALPHA:
        side = "above" if c["mean"] > 0 else "below"
        return f"{method_name(c['a'])} **{side}** {method_name(c['b'])} on {_task(c['task'])}: {interval}, Holm p = {fmt_p(c['p_holm'])}"
    return f"{what}: no difference established ({interval}, Holm p = {fmt_p(c['p_holm'])})"


def slope_words(x: dict, bold: str = "**") -> str:
    """A trainer's training-reward trend in words (slopes per 100 updates, as in the snapshot)."""
    units = x["units"][:-1] if x["n"] == 1 else x["units"]  # "1 RL seed", "3 RL seeds"
    head = f"reward {fmt(x['first_quarter'], 3)} -> {fmt(x['last_quarter'], 3)}; slope {fmt(x['slope_per_100'], 3, True)} per 100 updates"
    if not is_number(x["p_holm"]):
        return f"{head} in {x['n']} run{'s' if x['n'] != 1 else ''}: {bold}n/a{bold} (one run per base model: no test across runs)"
    verdict = ("rose" if x["slope_per_100"] > 0 else "fell") if x["p_holm"] < ALPHA else "no trend established"
    return (f"{head} [{fmt(x['low_per_100'], 3, True)}, {fmt(x['high_per_100'], 3, True)}] over {x['n']} {units}, "
            f"Holm p = {fmt_p(x['p_holm'])}: {bold}{verdict}{bold}")


def render_tuning(tuning: dict) -> list[str]:
    run = tuning["run"]
    out = [f"**Tuning** (`make tune`, run of {run.get('date', NA)} at commit `{(run.get('commit') or NA)[:10]}` from the "
           f"preset's base model; the chosen values are [`{tuning['file']}`]({tuning['file']}), which the preset "
           f"reads): every point trained for its full update budget and scored once, at its final checkpoint, on the "
           f"validation split (never the test set); selection: the highest {tuning['selection']['metric']}, exact ties "
           "to " + ", then ".join(f"the {r['prefer']} {r['key']}" for r in tuning["selection"]["tie_break"]) + ".", ""]
    tasks = sorted({t for m in tuning["models"].values() for s in m["stages"] for p in s["points"] for t in p["validation"]},
                   key=lambda t: list(TASK_NAMES).index(t) if t in TASK_NAMES else 99)
    out.append("| model | stage | point (lr, warm-up, KL weight, updates) | " + " | ".join(f"{_task(t)} val %" for t in tasks)
               + " | mean % | training reward q1 -> q4 |")
    out.append("|---|---|---|" + "---|" * len(tasks) + "---|---|")
    for model, entry in tuning["models"].items():
        for s in entry["stages"]:
            for p in s["points"]:
                chosen = " **(chosen)**" if p["point"] == s.get("winner") else ""
                reward = (f"{fmt(p['reward_first_quarter'], 3)} -> {fmt(p['reward_last_quarter'], 3)}"
                          if p["reward_first_quarter"] is not None else "n/a (SFT)")
                stage = s["name"] + ("" if s["select"] else " (reported only)")
                out.append(f"| {method_name(model)} | {stage} | `{p['point']}`{chosen} | "
                           + " | ".join(fmt_pct(p["validation"].get(t)) for t in tasks)
                           + f" | {fmt_pct(p['mean'])} | {reward} |")
    out.append("")
    out.append("Chosen: " + "; ".join(f"{method_name(m)} " + ", ".join(f"{k} {v}" for k, v in sorted(c.items()) if k != "updates")
                                      for m, c in tuning["chosen"].items())
               + " (the null control uses MDPO (all data)'s values).")
    out.append("")
    return out


def render_study(study: dict, tasks: list[str]) -> list[str]:
    bases = study["base_seeds"]
    out = []
    counts = sorted({len(v) for m, per in study["rl_seeds"].items() if m != "base" for v in per.values() if v})
    rl_text = NA if not counts else str(counts[0]) if counts[0] == counts[-1] else f"{counts[0]}-{counts[-1]}"
    out.append(f"**The replicated study**: {len(bases)} base models (pretraining seeds {', '.join(map(str, bases))}: "
               f"{', '.join(f'`{d}`' for d in study['results_dirs'].values())}), each with its own Answer Backslide mining "
               f"and its own trainers ({rl_text} RL seeds per trainer and base model); test problems per task: "
               + ", ".join(f"{_task(t)} {n}" for t, n in study["n_test"].items()) + ".")
    out.append("")
    if study["base_habit"]:
        out.append("Base models' Countdown answers that are the pretraining teacher's habit (the numbers added in order): "
                   + ", ".join(f"seed {b} {fmt_pct(v)}%" for b, v in study["base_habit"].items()) + ".")
        out.append("")
    out.append("**Every model at the default cell** (accuracy %: mean over base seeds of each base seed's mean over its RL "
               "seeds; each base seed's value in brackets):")
    out.append("")
    out.append("| model | " + " | ".join(_task(t) for t in tasks) + " |")
    out.append("|---|" + "---|" * len(tasks))
    acc = {(a["method"], a["task"]): a for a in study["accuracy"]}
    for method in dict.fromkeys(a["method"] for a in study["accuracy"]):
        cells = []
        for t in tasks:
            a = acc.get((method, t))
            cells.append(f"{fmt_pct(a['mean'])} ({', '.join(fmt_pct(v) for v in a['per_base'].values())})" if a else NA)
        out.append(f"| {method_name(method)} | " + " | ".join(cells) + " |")
    out.append("")
    comps = study["comparisons"]
    if comps:
        units = sorted({c["units"] for c in comps})
        out.append("**Comparisons** at the default cell: the paired per-problem difference A - B for every (base seed, RL "
                   "seed) against that base seed's own base model (trainers against each other: RL seed k with RL seed k), "
                   f"averaged; the 95% interval counts {' / '.join(units)} (two-way random effects, base seeds x problems, "
                   "Satterthwaite's degrees of freedom); p-values Holm-adjusted over the whole table.")
        out.append("")
        out.append("| A - B | task | difference, points [95% CI] | df | p | Holm p | per base seed |")
        out.append("|---|---|---|---|---|---|---|")
        for c in comps:
            out.append(f"| {method_name(c['a'])} - {method_name(c['b'])} | {_task(c['task'])} | {_signed_pts(c['mean'])} "
                       f"[{_signed_pts(c['low'])}, {_signed_pts(c['high'])}] | {fmt(c['df'], 1)} | {fmt_p(c['p'])} | "
                       f"{fmt_p(c['p_holm'])} | {', '.join(_signed_pts(v) for v in c['per_base'].values())} |")
        out.append("")
        for c in comps:
            out.append(f"* {comparison_words(c)}.")
        out.append("")
    learn = study["learning"]
    if learn:
        out.append("**Did the trainers learn?** The least-squares slope of each run's training reward (the final-answer "
                   "reward of its rollouts) over the updates, averaged within base seeds and tested across them (t test; "
                   "Holm over the trainers); the first- and last-quarter means are pooled over all runs:")
        out.append("")
        for x in learn:
            out.append(f"* {method_name(x['method'])}: {slope_words(x)}.")
        out.append("")
    return out
