"""Where every output of a run lives, and which jobs a preset's DAG holds: the one copy.

The Snakefile rules (their ``output:``/``log:``/``benchmark:`` patterns, called with wildcards such
as ``"{task}"``), the DVC stage generator (the same paths for one preset) and the report code (the
files they read) all take their paths from here, so a renamed directory is renamed everywhere.

A *run* is a trained model's relative name: ``mdpo``, ``mdpo-s1``, or ``mdpo/countdown`` for a
model trained per task; models, checkpoints, logs, benchmarks, curves and tracker runs are all
named by it.

This module imports no torch: Snakemake imports it on every invocation.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .models import split_model, trained_models, trains_per_task

SPLITS = ("pretrain", "train", "validation", "test")
# The mined training sets of a task (maskdiff.mining): every prompt, or the Answer Backslide ones.
MINED_SETS = ("all_data", "answer_backslide")
REFERENCE_COUNTDOWN_TEST = "data/reference/countdown_cd3_test.jsonl"  # the paper's Countdown test set
PAPER_TABLE = "data/reference/mdpo_paper_table1.csv"
REPORT_NOTEBOOK = "notebooks/report.ipynb"
PRECISION_NOTEBOOK = "notebooks/precision.ipynb"


def run_name(model: str, task: str | None = None) -> str:
    """``mdpo`` or, for a model trained per task, ``mdpo/countdown``."""
    return f"{model}/{task}" if task else model


MODEL_METRICS = "metrics.jsonl"  # a finished model directory's copy of its training metrics


def metrics_file(checkpoint_dir: str | os.PathLike) -> str:
    """A trainer's metrics log while it runs, next to its checkpoint directory (kept when the
    checkpoint is pruned; copied into the model directory as MODEL_METRICS at the end)."""
    return f"{os.fspath(checkpoint_dir)}.metrics.jsonl"


def curve_file(curves_dir: str | os.PathLike, kind: str, run: str) -> str:
    """``<curves>/<kind>/<run>.csv``: kind ``train`` (one row per update) or ``validation``."""
    return f"{os.fspath(curves_dir)}/{kind}/{run}.csv"


@dataclass(frozen=True)
class Layout:
    """The paths of one preset's run: ``data/<preset>/`` and ``results/<preset>/``."""

    data: str
    results: str

    @classmethod
    def of(cls, preset: str) -> "Layout":
        return cls(data=f"data/{preset}", results=f"results/{preset}")

    @classmethod
    def at(cls, results: str | os.PathLike) -> "Layout":
        """The layout of an existing results directory (report code: only results paths are used)."""
        return cls(data="", results=os.fspath(results))

    # ---- logs and benchmarks: <logs>/<rule>[/<parts>].log, <benchmarks>/<rule>[/<parts>].tsv
    @property
    def logs(self) -> str:
        return f"{self.results}/logs"

    @property
    def benchmarks(self) -> str:
        return f"{self.results}/benchmarks"

    def log_dir(self, *parts: str) -> str:
        return "/".join([self.logs, *parts])

    def log(self, *parts: str) -> str:
        return f"{self.log_dir(*parts)}.log"

    def benchmark_dir(self, *parts: str) -> str:
        return "/".join([self.benchmarks, *parts])

    def benchmark(self, *parts: str) -> str:
        return f"{self.benchmark_dir(*parts)}.tsv"

    # ---- task data
    def task_dir(self, task: str) -> str:
        return f"{self.data}/tasks/{task}"

    def task_file(self, task: str, split: str) -> str:
        return f"{self.task_dir(task)}/{split}.jsonl"

    def manifest(self, task: str) -> str:
        return f"{self.task_dir(task)}/manifest.json"

    # ---- models, checkpoints, tracker runs
    @property
    def models(self) -> str:
        return f"{self.results}/models"

    def model_dir(self, run: str) -> str:
        return f"{self.models}/{run}"

    @property
    def base_model(self) -> str:
        return self.model_dir("base")

    def checkpoint_dir(self, run: str) -> str:
        return f"{self.results}/checkpoints/{run}"

    def checkpoint_metrics(self, run: str) -> str:
        return metrics_file(self.checkpoint_dir(run))

    def model_metrics(self, run: str) -> str:
        """A finished model's copy of its training metrics."""
        return f"{self.model_dir(run)}/{MODEL_METRICS}"

    @property
    def tracking(self) -> str:
        return f"{self.results}/tracking"

    # ---- rollouts and mining
    def rollout_dir(self, task: str) -> str:
        return f"{self.results}/rollouts/{task}"

    def rollout_shard(self, task: str, item: str) -> str:
        return f"{self.rollout_dir(task)}/shard_{item}.jsonl"

    def rollout_log(self, task: str, item: str) -> str:
        return self.log("rollouts", task, f"shard_{item}")

    @property
    def mining(self) -> str:
        return f"{self.results}/mining"

    def mined(self, task: str, name: str) -> str:
        """``name``: one of MINED_SETS."""
        return f"{self.mining}/{task}/{name}.jsonl"

    def mining_stats(self, task: str) -> str:
        return f"{self.mining}/{task}/stats.json"

    # ---- evaluation and report
    def eval_dir(self, model: str, task: str) -> str:
        """One evaluation job's output: a JSON per cell group."""
        return f"{self.results}/eval/{model}/{task}"

    def eval_model_dir(self, model: str) -> str:
        return f"{self.results}/eval/{model}"

    def result(self, name: str) -> str:
        """A top-level result file or directory: sweep.csv, summary.csv, metrics.json, report.html,
        trajectories.json, curves, figures, precision.csv, precision.html, ..."""
        return f"{self.results}/{name}"

    def notebook(self, name: str) -> str:
        """An executed report notebook (papermill's output)."""
        return f"{self.results}/report/{name}.ipynb"

    def curve(self, kind: str, run: str) -> str:
        return curve_file(self.result("curves"), kind, run)

    def precision_part(self, part: str) -> str:
        return f"{self.results}/precision/{part}.csv"

    # ---- the tuning stage
    @property
    def tuning(self) -> str:
        return f"{self.results}/tuning"

    def tuning_point(self, model: str, point: str) -> str:
        return f"{self.tuning}/{model}/{point}"

    def tuning_model(self, model: str, point: str) -> str:
        return f"{self.tuning_point(model, point)}/model"

    def tuning_checkpoint(self, model: str, point: str) -> str:
        return f"{self.tuning_point(model, point)}/checkpoint"

    def tuning_score(self, model: str, point: str) -> str:
        """A point's validation scores at its final checkpoint."""
        return f"{self.tuning_point(model, point)}/validation.json"

    def tuning_stage(self, model: str, stage: int | str) -> str:
        return f"{self.tuning}/{model}/stage{stage}.json"

    def tuning_stage_log(self, model: str, stage: int | str) -> str:
        return self.log("tuning", model, f"stage{stage}")

    @property
    def tuning_chosen(self) -> str:
        """The tuning search's choice (``make tune`` copies it to config/tuned/<preset>.json)."""
        return f"{self.tuning}/chosen.json"


# --------------------------------------------------------------------------- the jobs of a preset


def trained_runs(config: dict) -> list[tuple[str, str | None]]:
    """(model, task) of every training job; task None for a model trained on every task."""
    tasks = config["data"]["tasks"]
    return [(m, t) for m in trained_models(config) for t in (tasks if trains_per_task(config, m) else [None])]


def default_cell(config: dict) -> dict:
    """The headline decoding cell with LCR: validation curves and tuning scores use it."""
    dec = config["decoding"]
    return {k: dec[k] for k in ("gen_length", "block_length", "steps", "schedule", "compute_dtype")} | {"remasking": "lcr"}


def default_group(config: dict) -> str:
    dec = config["decoding"]
    return f"B{dec['block_length']}-S{dec['steps']}"


def cell_groups(config: dict, model: str = "base") -> list[str]:
    """Cell groups of a model's evaluation (each job, per task, decodes all of them): one per (block
    length, steps) pair of the grid plus the default cell; RL-seed replicates only the default cell."""
    if split_model(model)[1]:
        return [default_group(config)]
    grid = config["evaluation"]["grid"]
    groups = {f"B{b}-S{s}" for b in grid["block_length"] for s in grid["steps"]} | {default_group(config)}
    return sorted(groups, key=lambda g: tuple(int(p[1:]) for p in g.split("-")))


def group_cells(config: dict, group: str, model: str = "base") -> list[dict]:
    """Decoding cells of one group: every remasking rule of the grid (and the default one); the
    default rule only for RL-seed replicates."""
    block, steps = (int(part[1:]) for part in group.split("-"))
    dec = config["decoding"]
    remaskings = list(config["evaluation"]["grid"]["remasking"])
    if dec["remasking"] not in remaskings:
        remaskings.append(dec["remasking"])
    if split_model(model)[1]:
        remaskings = [dec["remasking"]]
    return [
        {"gen_length": dec["gen_length"], "block_length": block, "steps": steps, "remasking": r, "schedule": dec["schedule"],
         "compute_dtype": dec["compute_dtype"], "top_p": config["evaluation"]["top_p"]}
        for r in remaskings
    ]


def eval_groups(config: dict, model: str) -> list[dict]:
    """The evaluation job of a model (per task): every cell group with its cells and problem count
    (all test problems for the default cell, evaluation.grid_problems for the others)."""
    default = default_group(config)
    return [{"name": g, "cells": group_cells(config, g, model),
             "max_problems": 0 if g == default else config["evaluation"]["grid_problems"]}
            for g in cell_groups(config, model)]


def rollout_tasks(config: dict) -> list[str]:
    """Tasks whose Answer Backslide set is mined from rollouts (the others use a pre-mined file)."""
    return [t for t in config["data"]["tasks"] if t not in config["mining"]["premined"]]


def dag_benchmarks(config: dict, layout: Layout) -> list[str]:
    """Benchmark files of every job the report summarises (stale files of older grids excluded)."""
    tasks, b = config["data"]["tasks"], layout.benchmark
    files = [b("prepare_data", task) for task in tasks]
    files.append(b("fetch_base") if config["model"]["source"] == "pretrained" else b("pretrain_base"))
    n = config["rollouts"]["shards"]
    files += [b("rollout_shard", task, f"{i}-of-{n}") for task in rollout_tasks(config) for i in range(1, n + 1)]
    files += [b("mine_answer_backslide", task) for task in tasks]
    files += [b("train", run_name(m, t)) for m, t in trained_runs(config)]
    files += [b("evaluate", m, t) for m in ["base", *trained_models(config)] for t in tasks]
    return files + [b("aggregate_sweep")]
