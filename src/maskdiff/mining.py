"""Answer Backslide mining (the paper's later name: over-denoising).

A training prompt is an Answer Backslide sample iff some intermediate step's full prediction
``x0_hat_t`` was correct but the final answer is wrong. Mining gathers the rollout shards and
writes the mined training set (MDPO trains on it), the all-data set (the ablation), and
statistics: rates per decoding setting and where in the trajectory correct answers first appear
and last disappear.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from .errors import InputError
from .io import read_jsonl, write_json, write_jsonl
from .backslide import backslide_rates, step_histograms
from .tasks.records import read_task_records


def mine(train_records: list[dict], rollout_rows: list[dict]) -> tuple[list[dict], dict]:
    """``(answer_backslide_records, stats)`` from the training records and their rollouts (one or
    several per prompt: a prompt is mined when any of its rollouts backslides)."""
    by_id: dict[str, list[dict]] = defaultdict(list)
    for row in rollout_rows:
        by_id[row["id"]].append(row)
    missing = [r["id"] for r in train_records if r["id"] not in by_id]
    if missing:
        raise InputError(f"{len(missing)} training prompts have no rollout (first: {missing[:3]}); are all shards present?")
    mined = []
    for record in train_records:
        backslid = [row for row in by_id[record["id"]] if row["backslide"]]
        if backslid:
            mined.append({**record, "mining": [{k: row[k] for k in MINING_FIELDS} for row in backslid]})
    stats = backslide_stats(rollout_rows)
    stats["prompts"] = len(train_records)
    stats["rollouts_per_prompt"] = len(rollout_rows) / max(len(train_records), 1)
    stats["mined_prompt_rate"] = len(mined) / max(len(train_records), 1)
    return mined, stats


MINING_FIELDS = ("block_length", "steps", "step_correct", "first_correct_step", "last_correct_step")


def backslide_stats(rows: list[dict]) -> dict:
    """Rates over all rollouts and per block length, plus first/last-correct step histograms."""
    per_block: dict[int, list[dict]] = defaultdict(list)
    for r in rows:
        per_block[int(r["block_length"])].append(r)
    return {
        "overall": backslide_rates(rows),
        "per_block_length": {str(b): backslide_rates(g) for b, g in sorted(per_block.items())},
        **step_histograms(rows),
        "steps": sorted({int(r["steps"]) for r in rows}),
    }


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
