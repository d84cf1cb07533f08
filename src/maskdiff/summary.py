"""Gather per-job evaluation JSONs into one tidy table (one row per model x task x cell)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .io import atomic_path, read_json

COLUMNS = [
    "model", "task", "gen_length", "block_length", "steps", "remasking", "rcr_score", "label", "n",
    "accuracy", "accuracy_ci_low", "accuracy_ci_high", "backslide_rate", "od_rate", "ever_correct_rate",
    "nfe_per_sequence", "wall_time_s", "tokens_per_s",
]


def remasking_name(row: dict) -> str:
    return f"rcr-{row['rcr_score']}" if row["remasking"] == "rcr" else row["remasking"]


def summarize(inputs: list[str | Path], out_csv: str | Path) -> pd.DataFrame:
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
    with atomic_path(out_csv, suffix=".csv") as tmp:
        table.to_csv(tmp, index=False, float_format="%.4f")
    return table
