"""A replicated study: runs of one preset that differ only in the base model's pretraining seed, read
together so that every comparison counts the variation it generalises over.

Each run (a results directory: its base model, its mining, its trainers with their RL seeds) is
read by :func:`maskdiff.summary.load_run`; the base seed comes from the base model's pretraining
log. For a comparison A - B on a task, every (base seed b, RL seed r) gives the per-problem paired
difference at the default cell: A's run r against B's run r (or against b's base model), on the
same test problems. :func:`maskdiff.replicates.seed_aware_difference` turns them into an interval
over base seeds, RL seeds and problems; Holm's method adjusts the family of comparisons. Whether a
trainer learned is the slope of its training reward, tested across base seeds.

A single run is a study with one base seed: the same tables, with intervals conditional on that
base model (they say so).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError
from .io import read_jsonl
from .learning import finite
from .pipeline.layout import Layout
from .replicates import holm, seed_aware_difference, slope_test
from .learning import pair_seeds
from .summary import Run, load_run, ordered, pairs_among, series


@dataclass
class Study:
    runs: dict[int, Run]  # base seed -> run

    @property
    def base_seeds(self) -> list[int]:
        return sorted(self.runs)

    @property
    def tasks(self) -> list[str]:
        return self.runs[self.base_seeds[0]].tasks

    def methods(self) -> list[str]:
        """Methods evaluated at the default cell in every run."""
        common = set.intersection(*(set(r.seeds) for r in self.runs.values()))
        return ordered(common)


def base_seed_of(results: str | Path) -> int:
    """The pretraining seed of a run's base model (its log's config event; 0 for a fetched model)."""
    path = Path(Layout.at(results).model_metrics("base"))
    if not path.is_file():
        return 0
    config = next((e for e in read_jsonl(path) if e.get("event") == "config"), {})
    return int(config.get("seed", 0))


def load_study(results_dirs: list[str | Path]) -> Study:
    runs: dict[int, Run] = {}
    for results in results_dirs:
        seed = base_seed_of(results)
        if seed in runs:
            raise InputError(f"{results} and {runs[seed].results} have the same base seed {seed}: not replicates")
        runs[seed] = load_run(results)
    if not runs:
        raise InputError("a study needs at least one results directory")
    cells = {(r.cell["block_length"], r.cell["steps"], r.cell["remasking"]) for r in runs.values()}
    if len(cells) > 1:
        raise InputError(f"the runs' default cells differ ({sorted(cells)}): not replicates of one preset")
    first = runs[min(runs)]
    for seed, run in runs.items():
        for task in first.tasks:
            ids, reference = run.outcomes("base", 0, task), first.outcomes("base", 0, task)
            if ids is not None and reference is not None and set(ids) != set(reference):
                raise InputError(f"{run.results} and {first.results} evaluated different {task} test problems: "
                                 "not replicates of one preset")
    return Study(runs)


def _outcome_vector(run: Run, method: str, seed: int, task: str, ids: list[str]) -> np.ndarray | None:
    outcomes = run.outcomes(method, seed, task)
    if outcomes is None or not set(ids) <= set(outcomes):
        return None
    return np.array([outcomes[i] for i in ids], dtype=float)


def paired_differences(study: Study, a: str, b: str, task: str) -> dict[int, dict[int, np.ndarray]]:
    """``{base seed: {RL seed: A - B per problem}}``; B is the base model (one per base seed) or a
    trainer paired seed for seed. Problems: those every model of the run was decoded on."""
    out: dict[int, dict[int, np.ndarray]] = {}
    for base_seed, run in study.runs.items():
        seeds_a = run.seeds.get(a, [])
        seeds_b = run.seeds.get(b, [])
        reference = run.outcomes("base", 0, task)
        if reference is None:
            continue
        ids = sorted(reference)
        per = {}
        for r, rb in pair_seeds(seeds_a, seeds_b):
            va, vb = _outcome_vector(run, a, r, task, ids), _outcome_vector(run, b, rb, task, ids)
            if va is not None and vb is not None:
                per[r] = va - vb
        if per:
            out[base_seed] = per
    return out


def comparisons(study: Study) -> list[dict]:
    """Every comparison per task with its seed-aware interval, raw p and Holm-adjusted p (family:
    every row of this table)."""
    rows = []
    for task in study.tasks:
        for a, b in pairs_among(study.methods()):
            diffs = paired_differences(study, a, b, task)
            if diffs:
                rows.append({"task": task, "a": a, "b": b, **seed_aware_difference(diffs)})
    for row, adjusted in zip(rows, holm([r["p"] for r in rows])):
        row["p_holm"] = adjusted
    return rows


def accuracy_table(study: Study) -> list[dict]:
    """Per method and task: accuracy of every (base seed, RL seed) at the default cell, the mean of
    the base-seed means, and their spread."""
    out = []
    for method in study.methods():
        for task in study.tasks:
            per_run, per_base = {}, {}
            for base_seed, run in study.runs.items():
                rows = run.default_rows()
                rows = rows[(rows["method"] == method) & (rows["task"] == task)]
                accs = {int(r.seed): float(r.accuracy) for r in rows.itertuples()}
                if accs:
                    per_run |= {f"{base_seed}/{s}": v for s, v in sorted(accs.items())}
                    per_base[base_seed] = float(np.mean(list(accs.values())))
            if per_base:
                values = list(per_base.values())
                out.append({"method": method, "task": task, "per_run": per_run, "per_base": per_base,
                            "mean": float(np.mean(values)), "sd_base": float(np.std(values, ddof=1)) if len(values) > 1 else float("nan"),
                            "runs": len(per_run), "n": int(study.runs[min(per_base)].n_test(task))})
    return out


# A trainer and its control see the same prompts in the same order (same RL seed), so the per-update
# difference of their training rewards is free of the prompt order, which moves every single curve:
# its slope is learning beyond drift.
LEARNING_CONTROLS = (("mdpo_all_data", "mdpo_null"),)


def _reward_series(study: Study, method: str) -> dict[int, dict[int, list]]:
    per_base = {b: {s: series(ev, "reward_mean") for s, ev in run.runs(method).items()} for b, run in study.runs.items()}
    return {b: per for b, per in per_base.items() if per}


def _difference_series(study: Study, a: str, b: str) -> dict[int, dict[int, list]]:
    """Per (base seed, RL seed) the per-update training reward of ``a`` minus ``b``'s."""
    ra, rb = _reward_series(study, a), _reward_series(study, b)
    out: dict[int, dict[int, list]] = {}
    for base, per in ra.items():
        for seed, values in per.items():
            other = rb.get(base, {}).get(seed)
            if other is not None and len(other) == len(values):
                out.setdefault(base, {})[seed] = [x - y if x is not None and y is not None else None
                                                  for x, y in zip(values, other)]
    return out


def learning(study: Study) -> list[dict]:
    """Per trained method: the slope of the training reward per run and its test across base seeds,
    with the first- and last-quarter means pooled over runs (descriptive); then each trainer minus
    its control (:data:`LEARNING_CONTROLS`), update by update. Holm over all rows."""
    out = []
    methods = study.methods()
    rows = [(m, _reward_series(study, m)) for m in methods]
    rows += [(f"{a} - {b}", _difference_series(study, a, b)) for a, b in LEARNING_CONTROLS if a in methods and b in methods]
    for method, series_by in rows:
        if not any(finite(v) for per in series_by.values() for v in per.values()):
            continue
        first, last = [], []
        for per in series_by.values():
            for values in per.values():
                vals = finite(values)
                q = len(vals) // 4
                if q:
                    first.append(float(np.mean(vals[:q])))
                    last.append(float(np.mean(vals[-q:])))
        test = slope_test(series_by)
        out.append({"method": method, "first_quarter": float(np.mean(first)) if first else float("nan"),
                    "last_quarter": float(np.mean(last)) if last else float("nan"), **test})
    for row, adjusted in zip(out, holm([r["p"] for r in out])):
        row["p_holm"] = adjusted
    return out

