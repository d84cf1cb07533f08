"""Gather per-job evaluation JSONs into one tidy table (one row per model x task x cell)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .io import atomic_path, read_json, write_json

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
    """Write the full sweep table; optionally the headline table (rows of the default cell only)."""
    rows = []
    for path in inputs:
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
