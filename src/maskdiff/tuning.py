"""The tuning stage: a staged grid search per trainer, every point scored on the validation split at
its final checkpoint, a selection rule fixed in the config before the run.

The config's ``tuning`` section declares, per stage, a grid of trainer settings (stage 1: the
learning rate; stage 2, at the stage-1 choice: warm-up and the KL weight; a ``select: false`` stage
such as the update budget is trained and reported but chooses nothing). A point is one assignment
of the tuned keys, named ``key=value,...`` (its directory under ``results/<preset>/tuning/<model>/``);
points of different stages that assign the same values are the same point, trained once. Each
point trains at the trainer's full update budget with the untuned settings of the preset plus the
point's values, and is scored on validation (the default decoding cell, every validation problem):
never on the test set, never at a "best" intermediate checkpoint.

Selection (:func:`select`): the highest mean validation accuracy over tasks; exact ties go to the
config's ``tie_break`` order (by default the smaller learning rate, then the shorter warm-up, then
the larger KL weight). The search's output (:func:`summarise`) names the chosen values per model
with the grid, every point's scores and training-reward trend, and the run that produced them;
``make tune`` copies it to ``config/tuned/<preset>.json``, which the preset reads
(``training.tuned``), so ``make run`` never tunes.

This module imports no torch: the workflow imports it at parse time.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from .errors import InputError

TUNED_KEYS = ("lr", "warmup", "beta", "updates")


INTEGER_KEYS = ("warmup", "updates")


def point_name(values: dict) -> str:
    """``{"lr": 1e-05, "warmup": 0}`` -> ``lr=1e-05,warmup=0`` (keys in TUNED_KEYS order). Canonical:
    rates print as floats and counts as integers whatever their YAML type, so one point has one name
    (``beta: 0`` and ``beta: 0.0`` are the same point, trained once)."""
    return ",".join(f"{k}={_fmt(k, values[k])}" for k in TUNED_KEYS if k in values)


def _fmt(key: str, value) -> str:
    if key in INTEGER_KEYS:
        if float(value) != int(value):
            raise InputError(f"tuning: {key} must be a whole number of updates, got {value}")
        return str(int(value))
    return repr(float(value))


def parse_point(name: str) -> dict:
    """The inverse of :func:`point_name`; a malformed name is an InputError."""
    values = {}
    for part in name.split(","):
        key, sep, text = part.partition("=")
        if not sep or key not in TUNED_KEYS:
            raise InputError(f"tuning point {name!r}: expected key=value pairs of {list(TUNED_KEYS)}")
        try:
            values[key] = int(text) if key in INTEGER_KEYS else float(text)
        except ValueError:
            raise InputError(f"tuning point {name!r}: {key}={text!r} is not a number") from None
    return values


def stage_grid(stage: dict, algorithm: str, fields: set[str]) -> dict[str, list]:
    """A stage's grid for one algorithm: keys the trainer has (a grid over a key it lacks, e.g. the
    KL weight of SFT, is skipped); a key's values are a list, or per algorithm a mapping of lists."""
    grid = {}
    for key, values in stage["grid"].items():
        if isinstance(values, dict):
            values = values.get(algorithm)
        if key in fields and values:
            grid[key] = list(values)
    return grid


def stage_points(stage: dict, algorithm: str, fields: set[str], chosen: dict, defaults: dict) -> list[dict]:
    """The points of one stage for a trainer: the stage's grid (:func:`stage_grid`), every other
    tuned key at its earlier choice or, before any choice, at the trainer's default."""
    grid = stage_grid(stage, algorithm, fields)
    base = {k: chosen.get(k, defaults[k]) for k in TUNED_KEYS if k in fields}
    points = [dict(base)]
    for key, values in grid.items():
        points = [p | {key: v} for p in points for v in values]
    unique = {point_name(p): p for p in points}
    return list(unique.values())


def tie_key(values: dict, tie_break: list[dict]) -> tuple:
    """Sort key of a point under the config's tie-break order (``{"key": ..., "prefer": smaller|larger}``)."""
    out = []
    for rule in tie_break:
        v = values.get(rule["key"], 0)
        out.append(v if rule["prefer"] == "smaller" else -v)
    return tuple(out)


def select(scored: list[dict], tie_break: list[dict]) -> dict:
    """The chosen point of a stage: the highest ``mean_accuracy``, exact ties by ``tie_break``."""
    if not scored:
        raise InputError("no scored tuning points to select from")
    best = max(s["mean_accuracy"] for s in scored)
    tied = [s for s in scored if s["mean_accuracy"] == best]
    return min(tied, key=lambda s: tie_key(s["values"], tie_break))


def read_point(directory: str | Path) -> dict:
    """One trained and scored point: its values, validation scores and training-reward trend."""
    from .io import read_jsonl
    from .learning import finite, quarters
    from .replicates import slope

    directory = Path(directory)
    scores = json.loads((directory / "validation.json").read_text())
    updates = [e for e in read_jsonl(directory / "model" / "metrics.jsonl") if e.get("event") == "update"]
    reward = finite(e.get("reward_mean") for e in updates)  # SFT logs no reward
    first, last = quarters(reward)
    mean = lambda xs: sum(xs) / len(xs) if xs else math.nan  # noqa: E731
    return {
        "point": directory.name, "values": parse_point(directory.name), **scores,
        "reward_first_quarter": mean(first), "reward_last_quarter": mean(last),
        "reward_slope_per_100_updates": 100 * slope(reward) if reward else math.nan,
        "reward_curve": reward,
        "kl_last": updates[-1].get("kl") if updates else None,
        "loss_last": updates[-1].get("loss") if updates else None,
    }


def stage_result(model: str, stage_index: int, stage: dict, points: list[dict], previous: dict | None,
                 tie_break: list[dict]) -> dict:
    """A stage's table and, for a selecting stage, its choice (carried forward: later stages start
    from it)."""
    chosen = dict((previous or {}).get("chosen", {}))
    result = {"model": model, "stage": stage_index, "name": stage["name"], "select": stage.get("select", True),
              "grid": stage["grid"], "points": points}
    if result["select"]:
        winner = select(points, tie_break)
        chosen |= winner["values"]
        result["winner"] = winner["point"]
    result["chosen"] = chosen
    return result


def summarise(stage_files: list[str | Path], settings: dict, run: dict) -> dict:
    """The search's output: per model the chosen values, every stage's table, the rule and the run."""
    models: dict[str, dict] = {}
    for path in stage_files:
        stage = json.loads(Path(path).read_text())
        entry = models.setdefault(stage["model"], {"stages": []})
        entry["stages"].append(stage)
    for entry in models.values():
        entry["stages"].sort(key=lambda s: s["stage"])
        entry["chosen"] = entry["stages"][-1]["chosen"]
    return {
        "selection": {"metric": "mean validation accuracy over tasks at the final checkpoint (default cell)",
                      "tie_break": settings["tie_break"]},
        "grid": settings["stages"],
        "run": run,
        "chosen": {m: e["chosen"] for m, e in sorted(models.items())},
        "models": models,
    }


def read_tuned(path: str | Path) -> dict[str, dict]:
    """``{model: {key: value}}`` of a tuned file (the ``chosen`` table); errors name the file."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: tuned file not found (run `make tune`, or set training.tuned: null)") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    chosen = data.get("chosen") if isinstance(data, dict) else None
    if not isinstance(chosen, dict):
        raise InputError(f"{path}: expected an object with a 'chosen' table of model -> settings")
    for model, values in chosen.items():
        bad = set(values) - set(TUNED_KEYS) if isinstance(values, dict) else {"<not an object>"}
        if bad:
            raise InputError(f"{path}: chosen.{model}: unknown tuned keys {sorted(bad)} (allowed {list(TUNED_KEYS)})")
    return chosen


def validation_scores(model, tokenizer, ids, task_records: dict[str, list[dict]], cell, seed: int = 0,
                      chat_template: bool = False, rewards=None, batch_size: int = 128) -> dict:
    """Accuracy on every task's validation problems at one decoding cell, and their mean (the
    tuning score). Imports torch lazily: the workflow imports this module at parse time."""
    from .evaluate import evaluate_cell

    per_task = {}
    for task, records in task_records.items():
        summary, _ = evaluate_cell(model, tokenizer, ids, records, cell, batch_size, seed, chat_template, rewards=rewards)
        per_task[task] = {"n": summary["n"], "accuracy": summary["accuracy"], "ci_low": summary["accuracy_ci_low"],
                          "ci_high": summary["accuracy_ci_high"]}
    return {"validation": per_task, "mean_accuracy": sum(t["accuracy"] for t in per_task.values()) / len(per_task)}
