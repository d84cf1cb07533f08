"""Which jobs a preset's DAG holds, from its config: the training runs (model, task), the
evaluation cell groups and their cells, the tasks mined from rollouts, and the benchmark file of
every job the report summarises. The Snakefile rules and the DVC stage generator read these; the
paths are :mod:`maskdiff.pipeline.layout`'s.

This module imports no torch: Snakemake imports it on every invocation.
"""

from __future__ import annotations

from .layout import Layout, run_name
from .models import split_model, trained_models, trains_per_task


def eval_models(config: dict) -> list[str]:
    """Every evaluated model: the base model and each trained one."""
    return ["base", *trained_models(config)]


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
    files += [b("evaluate", m, t) for m in eval_models(config) for t in tasks]
    return files + [b("aggregate_sweep")]
