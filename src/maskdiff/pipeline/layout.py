"""Where every output of a run lives: the one copy of the output paths.

The Snakefile rules (their ``output:``/``log:``/``benchmark:`` patterns, called with wildcards such
as ``"{task}"``), the DVC stage generator (the same paths for one preset) and the report code (the
files they read) all take their paths from here, so a renamed directory is renamed everywhere.

A *run* is a trained model's relative name: ``mdpo``, ``mdpo-s1``, or ``mdpo/countdown`` for a
model trained per task; models, checkpoints, logs, benchmarks, curves and tracker runs are all
named by it.

Imports nothing of maskdiff (the trainers write their metrics files by it, so editing the
workflow's other modules never reruns a trainer); which jobs a preset's DAG holds is
:mod:`maskdiff.pipeline.jobs`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


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


def run_below(path: str | os.PathLike, anchor: str) -> str:
    """``path`` below its last ``anchor`` directory, '/'-joined (``.../models/mdpo/countdown``,
    anchor ``models`` -> ``mdpo/countdown``); the last part without one."""
    parts = os.fspath(path).rstrip("/").split("/")
    if anchor in parts:
        tail = parts[len(parts) - parts[::-1].index(anchor):]
        if tail:
            return "/".join(tail)
    return parts[-1]


def checkpoint_run(checkpoint_dir: str | os.PathLike) -> str:
    """The run a checkpoint directory belongs to: ``checkpoints/mdpo-s1`` -> ``mdpo-s1``,
    ``checkpoints/mdpo/countdown`` (per task) -> ``mdpo/countdown``, a tuning point's
    ``tuning/sft/lr=0.0001,warmup=0/checkpoint`` -> ``tuning/sft/lr=0.0001,warmup=0`` (points of one
    search run side by side: each needs its own name)."""
    parts = os.fspath(checkpoint_dir).rstrip("/").split("/")
    if "tuning" in parts and parts[-1] == "checkpoint":
        return "tuning/" + run_below("/".join(parts[:-1]), "tuning")
    return run_below(checkpoint_dir, "checkpoints")


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
