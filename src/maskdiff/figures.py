"""A finished run's training curves as tables and its headline figures as SVG files.

The curves (``curves/train/<run>.csv``: one row per update; ``curves/validation/<run>.csv``: one row
per validation point, a column per task) are what ``dvc plots diff`` draws for two commits or
experiments (the generated ``dvc.yaml`` names them); the figures (headline accuracy with intervals,
accuracy against steps, training reward and validation curves) are what ``snakemake --report``
attaches next to the tables. Runs are named as the tracking runs are: ``mdpo-s1``, per task
``mdpo/countdown``. The papermill report draws its own, richer figures from the same files.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .io import atomic_dir, read_jsonl
from .pipeline.layout import MODEL_METRICS, curve_file, run_below

TRAIN_COLUMNS = ("loss", "reward_mean", "reward_std", "groups_with_signal", "kl", "clip_fraction", "grad_norm", "lr",
                 "tokens_per_s")
EVAL_PREFIX = "eval_accuracy/"


def run_of(model_dir: str | Path) -> str:
    """``results/x/models/mdpo-s1`` -> ``mdpo-s1``; ``results/x/models/mdpo/countdown`` -> ``mdpo/countdown``."""
    return run_below(model_dir, "models")


def curve_tables(events: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(training rows, validation rows) of one run's metrics events."""
    updates = sorted((e for e in events if e.get("event") == "update"), key=lambda e: e["update"])
    train = pd.DataFrame([{"update": e["update"], **{k: e.get(k) for k in TRAIN_COLUMNS}} for e in updates],
                         columns=["update", *TRAIN_COLUMNS])
    evals = sorted((e for e in events if e.get("event") == "eval"), key=lambda e: e["update"])
    tasks = sorted({k[len(EVAL_PREFIX):] for e in evals for k in e if k.startswith(EVAL_PREFIX)})
    validation = pd.DataFrame([{"update": e["update"], **{t: e.get(EVAL_PREFIX + t) for t in tasks}} for e in evals],
                              columns=["update", *tasks])
    return train.dropna(axis=1, how="all"), validation


def write_curves(model_dirs: list[str | Path], out_dir: str | Path) -> list[str]:
    """One training table per trained model directory (and a validation table when it has a curve);
    the directory appears whole or not at all. Returns the run names."""
    runs = []
    with atomic_dir(out_dir) as tmp:
        for model_dir in model_dirs:
            run = run_of(model_dir)
            train, validation = curve_tables(read_jsonl(Path(model_dir) / MODEL_METRICS))
            for kind, table in (("train", train), ("validation", validation)):
                if len(table):
                    path = Path(curve_file(tmp, kind, run))
                    path.parent.mkdir(parents=True, exist_ok=True)
                    table.to_csv(path, index=False)
            runs.append(run)
    return runs


# ----------------------------------------------------------------------------- figures
def _seed0(models: pd.Series) -> pd.Series:
    from .learning import split_model

    return models.map(lambda m: split_model(m)[1] == 0)


def headline_figure(summary: pd.DataFrame, ax_grid) -> None:
    """Accuracy at the default cell (seed-0 models, LCR) with 95% intervals, one panel per task."""
    rows = summary[_seed0(summary["model"]) & (summary["remasking"] == "lcr")]
    for ax, (task, sub) in zip(ax_grid, rows.groupby("task", sort=True)):
        sub = sub.reset_index(drop=True)
        ax.barh(range(len(sub)), 100 * sub["accuracy"], color="#8fb3d9",
                xerr=[100 * (sub["accuracy"] - sub["accuracy_ci_low"]), 100 * (sub["accuracy_ci_high"] - sub["accuracy"])],
                capsize=3)
        ax.set_yticks(range(len(sub)), sub["model"])
        ax.set_title(f"{task} ({sub['label'].iloc[0]}, n={int(sub['n'].max())})", fontsize=9)
        ax.set_xlabel("accuracy % [95% CI]")


def write_figures(summary_csv: str | Path, sweep_csv: str | Path, curves_dir: str | Path, out_dir: str | Path) -> list[str]:
    """headline.svg, steps.svg, training_reward.svg and validation.svg (the last two only when a run
    logged them); the directory appears whole or not at all. Returns the file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.hashsalt"] = "maskdiff"  # the same run draws byte-identical files
    summary, sweep = pd.read_csv(summary_csv), pd.read_csv(sweep_csv)
    tasks = sorted(sweep["task"].unique())
    curves = Path(curves_dir)
    written = []
    with atomic_dir(out_dir) as tmp:
        def save(fig, name):
            fig.tight_layout()
            fig.savefig(tmp / name, metadata={"Date": None})
            plt.close(fig)
            written.append(name)

        fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 0.35 * summary["model"].nunique() + 1.5),
                                 squeeze=False)
        headline_figure(summary, axes[0])
        save(fig, "headline.svg")

        fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 3.4), squeeze=False)
        base = sweep[(sweep["model"] == "base")]
        for ax, task in zip(axes[0], tasks):
            for (block, remasking), g in base[base["task"] == task].groupby(["block_length", "remasking"]):
                g = g.sort_values("steps")
                ax.errorbar(g["steps"], 100 * g["accuracy"], capsize=2, marker="o", label=f"B{block} {remasking}",
                            yerr=[100 * (g["accuracy"] - g["accuracy_ci_low"]), 100 * (g["accuracy_ci_high"] - g["accuracy"])])
            ax.set_title(f"base model, {task}", fontsize=9)
            ax.set_xlabel("denoising steps")
            ax.set_ylabel("accuracy %")
            ax.legend(fontsize=7)
        save(fig, "steps.svg")

        train = {p.relative_to(curves / "train").with_suffix("").as_posix(): pd.read_csv(p)
                 for p in sorted((curves / "train").rglob("*.csv"))}
        rl = {run: t for run, t in train.items() if "reward_mean" in t}
        if rl:
            fig, ax = plt.subplots(figsize=(7, 3.6))
            for run, t in rl.items():
                ax.plot(t["update"], t["reward_mean"], lw=1.5 if "-s" not in run else 0.6, label=run)
            ax.set_xlabel("update")
            ax.set_ylabel("training reward (mean)")
            ax.legend(fontsize=6, ncol=2)
            save(fig, "training_reward.svg")
        validation = {p.relative_to(curves / "validation").with_suffix("").as_posix(): pd.read_csv(p)
                      for p in sorted((curves / "validation").rglob("*.csv"))}
        if validation:
            cols = sorted({c for v in validation.values() for c in v.columns if c != "update"})
            fig, axes = plt.subplots(1, len(cols), figsize=(5 * len(cols), 3.4), squeeze=False)
            for ax, task in zip(axes[0], cols):
                for run, v in validation.items():
                    if task in v:
                        ax.plot(v["update"], 100 * v[task], marker=".", label=run)
                ax.set_title(f"validation accuracy, {task}", fontsize=9)
                ax.set_xlabel("update")
                ax.set_ylabel("accuracy %")
                ax.legend(fontsize=6)
            save(fig, "validation.svg")
    return written
