"""Evaluate a model on a task over a grid of decoding cells.

For each cell (gen_length, block_length, steps, remasking) every test problem is decoded with its
trajectory recorded, and both the final completion and every step's full prediction ``x0_hat_t``
are scored. Per cell: accuracy with a 95% Wilson interval, the Answer Backslide rate (share of
problems whose final answer is wrong although some intermediate ``x0_hat_t`` was correct), the OD
rate (the same among wrong finals), NFE, wall time and tokens/s. Per problem: completion, reward,
and which steps were correct (a compact 0/1 string), never per-step text.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from .progress import progress as progress_bar

from .backslide import answer_backslide, backslide_rates
from .batching import decode_completions, encode_prompts, prompt_batches
from .errors import InputError
from .io import atomic_dir, write_json, write_jsonl
from .models.forward import model_device, supports_padding
from .models.loading import TokenIds
from .rewards import RewardCache, RewardSettings, score_completions
from .sampling.generate import DecodeSettings, generate
from .seeding import step_generator
from .stats import wilson_interval
from .tasks import reference_of, reward_kind

log = logging.getLogger(__name__)


def step_correctness(
    tokenizer, trajectory_x0: torch.Tensor, final_ids: torch.Tensor, ids: TokenIds, kind: str, refs: list[dict],
    processes: int = 0, rewards: RewardSettings | None = None, cache: RewardCache | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(step_rewards [B, T], final_rewards [B])`` for one batch's trajectory ``[T, B, L]``."""
    rewards = rewards or RewardSettings()
    steps, batch, length = trajectory_x0.shape
    texts = decode_completions(tokenizer, trajectory_x0.reshape(steps * batch, length), ids.eos, rewards.completion_text)
    step_rewards = score_completions(kind, texts, refs * steps, processes=processes, cache=cache,
                                     settings=rewards).reshape(steps, batch).T
    final_texts = decode_completions(tokenizer, final_ids, ids.eos, rewards.completion_text)
    final_rewards = score_completions(kind, final_texts, refs, processes=processes, cache=cache, settings=rewards)
    return step_rewards, final_rewards


def decode_and_score(
    model: torch.nn.Module,
    tokenizer,
    ids: TokenIds,
    records: list[dict],
    settings: DecodeSettings,
    batch_size: int,
    generator: torch.Generator,
    chat_template: bool = False,
    processes: int = 0,
    rewards: RewardSettings | None = None,
) -> tuple[list[dict], int, float]:
    """Decode every record with its trajectory and score every step; ``(rows, nfe_calls, decode_s)``.

    Rows (in record order) hold the completion, its reward and the Answer Backslide bookkeeping of
    :func:`maskdiff.backslide.answer_backslide` (which steps' ``x0_hat`` were correct as a 0/1
    string, the first and last correct step, the flag).
    """
    kind = reward_kind(records[0]["task"])
    cache = RewardCache()  # consecutive steps and rows share answers: score each once
    encoded = encode_prompts(tokenizer, [r["prompt"] for r in records], chat_template)
    rows: list[dict | None] = [None] * len(records)
    nfe_total, decode_time = 0, 0.0
    batches = list(prompt_batches(encoded, batch_size, ids.pad, supports_padding(model)))
    for indices, prompt_ids, attention_mask in progress_bar(batches, desc=settings.label, mininterval=5, leave=False):
        t0 = time.time()
        out = generate(model, prompt_ids, settings, ids, attention_mask, generator, record_trajectory=True)
        decode_time += time.time() - t0
        nfe_total += out.nfe
        refs = [reference_of(records[i]) for i in indices]
        step_rewards, final_rewards = step_correctness(
            tokenizer, out.trajectory.x0_hat, out.completions, ids, kind, refs, processes, rewards, cache
        )
        texts = decode_completions(tokenizer, out.completions, ids.eos, (rewards or RewardSettings()).completion_text)
        for j, index in enumerate(indices):
            flags = answer_backslide(step_rewards[j] > 0.5, bool(final_rewards[j] > 0.5))
            rows[index] = {
                "id": records[index]["id"],
                "completion": texts[j],
                "reward": float(final_rewards[j]),
                **{k: v for k, v in flags.as_row().items() if k != "final_correct"},
            }
    return rows, nfe_total, decode_time


def evaluate_cell(
    model: torch.nn.Module,
    tokenizer,
    ids: TokenIds,
    records: list[dict],
    settings: DecodeSettings,
    batch_size: int = 64,
    seed: int = 0,
    chat_template: bool = False,
    processes: int = 0,
    rewards: RewardSettings | None = None,
) -> tuple[dict, list[dict]]:
    """Decode and score every record under one decoding setting; return (summary, per-problem rows)."""
    if not records:
        raise InputError("no problems to evaluate")
    task = records[0]["task"]
    started = time.time()
    generator = step_generator(seed, "evaluate", task, settings.label, device=model_device(model))
    rows, nfe_total, decode_time = decode_and_score(
        model, tokenizer, ids, records, settings, batch_size, generator, chat_template, processes, rewards
    )
    n = len(records)
    correct = sum(int(r["reward"] > 0.5) for r in rows)
    rates = backslide_rates(rows)
    low, high = wilson_interval(correct, n)
    summary = {
        **asdict(settings),
        "label": settings.label,
        "task": task,
        "n": n,
        "accuracy": correct / n,
        "accuracy_ci_low": low,
        "accuracy_ci_high": high,
        "backslide_rate": rates["backslide_rate"],
        "od_rate": rates["od_rate"],
        "ever_correct_rate": rates["ever_correct_rate"],
        "nfe_per_sequence": settings.steps,
        "nfe_calls": nfe_total,
        "wall_time_s": time.time() - started,
        "decode_time_s": decode_time,
        "tokens_per_s": n * settings.gen_length / max(decode_time, 1e-9),
        "seed": seed,
    }
    return summary, rows


def evaluate_grid(
    model, tokenizer, *, ids: TokenIds, records: list[dict], cells: list[DecodeSettings], out_json: str | Path,
    out_problems: str | Path, batch_size: int = 64, seed: int = 0, chat_template: bool = False,
    processes: int = 0, model_name: str = "", rewards: RewardSettings | None = None,
) -> list[dict]:
    """Evaluate every cell of ``cells`` on ``records``; write ``out_json`` (a JSON list of the cell
    summaries, each with ``model_name``) and ``out_problems`` (one JSONL of per-problem rows, each
    with its model and cell label); return the summaries. Everything after the model and its
    tokenizer is keyword-only: ``processes`` reward worker processes (0: in-process), ``rewards``
    the run's reward settings (default: RewardSettings())."""
    summaries, problem_rows = [], []
    for settings in cells:
        summary, rows = evaluate_cell(model, tokenizer, ids, records, settings, batch_size, seed, chat_template, processes,
                                      rewards)
        summary["model"] = model_name
        summaries.append(summary)
        problem_rows.extend({"model": model_name, "cell": settings.label, **row} for row in rows)
        log.info("%s %s: accuracy %.3f [%.3f, %.3f], backslide %.3f, %.0f tok/s", model_name, settings.label,
                 summary["accuracy"], summary["accuracy_ci_low"], summary["accuracy_ci_high"],
                 summary["backslide_rate"], summary["tokens_per_s"])
    write_jsonl(out_problems, problem_rows)
    write_json(out_json, summaries)
    return summaries


def evaluate_groups(
    model, tokenizer, ids: TokenIds, records: list[dict], groups: list[dict], out_dir: str | Path, batch_size: int = 64,
    seed: int = 0, chat_template: bool = False, processes: int = 0, model_name: str = "",
    rewards: RewardSettings | None = None,
) -> None:
    """Every cell group of one model on one task, in one process: ``groups`` holds ``{"name",
    "cells" (DecodeSettings), "max_problems" (0 = all)}``; writes ``<out_dir>/<name>.json`` and
    ``<name>.problems.jsonl`` per group. The directory appears whole or not at all."""
    with atomic_dir(out_dir) as tmp:
        for group in groups:
            subset = records[: group["max_problems"] or None]
            evaluate_grid(model, tokenizer, ids=ids, records=subset, cells=group["cells"],
                          out_json=tmp / f"{group['name']}.json", out_problems=tmp / f"{group['name']}.problems.jsonl",
                          batch_size=batch_size, seed=seed, chat_template=chat_template, processes=processes,
                          model_name=model_name, rewards=rewards)
