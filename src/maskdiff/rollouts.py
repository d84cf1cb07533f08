"""Baseline rollouts: the base model decodes training prompts with per-step correctness recorded.

Each prompt is decoded greedily (LCR by default) with its block length drawn, seeded by the
prompt id, from the configured set (e.g. a short semi-AR block and the full length, as the MDPO
authors mine), so the draw does not depend on how prompts are sharded. A shard holds every
``num_shards``-th prompt; its output is compact: per-step correctness bits, the final completion
and its reward, never per-step text.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict

import torch

from .errors import InputError
from .evaluate import decode_and_score
from .models.forward import model_device
from .models.loading import TokenIds
from .sampling.generate import settings_from_config
from .seeding import derive_seed, step_generator


def shard_records(records: list[dict], shard: int, num_shards: int) -> list[dict]:
    if not 0 <= shard < num_shards:
        raise InputError(f"shard {shard} out of range for {num_shards} shards")
    return records[shard::num_shards]


def draw_block_length(record_id: str, block_lengths: list[int], seed: int) -> int:
    return random.Random(derive_seed(seed, "rollout-block", record_id)).choice(sorted(block_lengths))


def rollout_records(
    model: torch.nn.Module,
    tokenizer,
    ids: TokenIds,
    records: list[dict],
    settings: dict,
    seed: int = 0,
    batch_size: int = 64,
    chat_template: bool = False,
    processes: int = 0,
    rewards=None,
) -> list[dict]:
    """Decode ``records`` (one task) with the rollout settings: one row per record and block length
    decoded, grouped by record in record order.

    ``settings``: gen_length, steps, block_lengths (list), remasking, schedule, compute_dtype, and
    ``every_block_length``: decode each record with every block length (more rollouts per prompt
    for a small training set) instead of one drawn per record (the MDPO authors' mining).
    """
    by_block: dict[int, list[int]] = defaultdict(list)
    for index, record in enumerate(records):
        blocks = (sorted(settings["block_lengths"]) if settings.get("every_block_length")
                  else [draw_block_length(record["id"], settings["block_lengths"], seed)])
        for block in blocks:
            by_block[block].append(index)
    per_record: list[list[dict]] = [[] for _ in records]
    for block_length, indices in sorted(by_block.items()):
        cell = settings_from_config(
            {
                "gen_length": settings["gen_length"],
                "block_length": block_length,
                "steps": settings["steps"],
                "remasking": settings.get("remasking", "lcr"),
                "schedule": settings.get("schedule", "even"),
                "compute_dtype": settings.get("compute_dtype", "fp32"),
            }
        )
        subset = [records[i] for i in indices]
        generator = step_generator(seed, "rollout", block_length, subset[0]["id"], device=model_device(model))
        t0 = time.time()
        scored, _, _ = decode_and_score(model, tokenizer, ids, subset, cell, batch_size, generator, chat_template, processes,
                                        rewards)
        elapsed = time.time() - t0
        for i, row in zip(indices, scored):
            per_record[i].append({**row, "task": records[i]["task"], "block_length": block_length, "steps": cell.steps,
                                  "remasking": settings.get("remasking", "lcr"), "seconds": elapsed / len(indices)})
    return [row for rows in per_record for row in rows]
