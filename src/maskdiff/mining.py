"""Answer Backslide mining (the paper's later name: over-denoising).

A training prompt is an Answer Backslide sample iff some intermediate step's full prediction
``x0_hat_t`` was correct but the final answer is wrong. Mining gathers the rollout shards and
writes the mined training set (MDPO trains on it), the all-data set (the ablation), and
statistics: rates per decoding setting and where in the trajectory correct answers first appear
and last disappear.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

from .errors import InputError
from .io import read_jsonl, write_json, write_jsonl
from .stats import wilson_interval
from .tasks.records import read_task_records


def mine(train_records: list[dict], rollout_rows: list[dict]) -> tuple[list[dict], dict]:
    """``(answer_backslide_records, stats)`` from the training records and their rollouts."""
    by_id = {r["id"]: r for r in rollout_rows}
    missing = [r["id"] for r in train_records if r["id"] not in by_id]
    if missing:
        raise InputError(f"{len(missing)} training prompts have no rollout (first: {missing[:3]}); are all shards present?")
    mined = []
    for record in train_records:
        row = by_id[record["id"]]
        if row["backslide"]:
            mined.append({**record, "mining": {k: row[k] for k in ("block_length", "steps", "step_correct", "first_correct_step", "last_correct_step")}})
    return mined, backslide_stats(rollout_rows)


def backslide_stats(rows: list[dict]) -> dict:
    """Rates overall and per block length, plus first/last-correct step histograms."""

    def summarise(group: list[dict]) -> dict:
        n = len(group)
        correct = sum(r["reward"] > 0.5 for r in group)
        backslide = sum(bool(r["backslide"]) for r in group)
        low, high = wilson_interval(backslide, n)
        return {
            "n": n,
            "final_accuracy": correct / n if n else 0.0,
            "backslide": backslide,
            "backslide_rate": backslide / n if n else 0.0,
            "backslide_ci_low": low,
            "backslide_ci_high": high,
            "od_rate": backslide / (n - correct) if n > correct else 0.0,
            "ever_correct_rate": sum(r["first_correct_step"] is not None for r in group) / n if n else 0.0,
        }

    per_block: dict[int, list[dict]] = defaultdict(list)
    for r in rows:
        per_block[int(r["block_length"])].append(r)
    backslides = [r for r in rows if r["backslide"]]
    return {
        "overall": summarise(rows),
        "per_block_length": {str(b): summarise(g) for b, g in sorted(per_block.items())},
        "first_correct_step_hist": _hist(r["first_correct_step"] for r in rows if r["first_correct_step"] is not None),
        "backslide_first_correct_step_hist": _hist(r["first_correct_step"] for r in backslides),
        "backslide_last_correct_step_hist": _hist(r["last_correct_step"] for r in backslides),
        "steps": sorted({int(r["steps"]) for r in rows}),
    }


def _hist(values) -> dict[str, int]:
    return {str(k): v for k, v in sorted(Counter(int(v) for v in values).items())}


def mine_files(train_file: str | Path, shard_files: list[str | Path], out_mined: str | Path, out_all: str | Path, out_stats: str | Path) -> dict:
    train = read_task_records(train_file, "train")
    rows = [row for f in shard_files for row in read_jsonl(f)]
    mined, stats = mine(train, rows)
    stats["source"] = "rollouts"
    stats["mined"] = len(mined)
    write_jsonl(out_mined, mined)
    write_jsonl(out_all, train)
    write_json(out_stats, stats)
    return stats


def premined_files(records: list[dict], train_file: str | Path, out_mined: str | Path, out_all: str | Path, out_stats: str | Path, source: str) -> dict:
    """Use an externally mined set (the MDPO authors' OpenR1 file) instead of mining."""
    stats = {"source": source, "mined": len(records), "overall": None}
    write_jsonl(out_mined, records)
    write_jsonl(out_all, read_task_records(train_file, "train"))
    write_json(out_stats, stats)
    return stats
