"""Group rollouts for the RL trainers: G completions per prompt, scored per step or at the end.

A batch of P prompts is expanded to P*G rows (row = prompt index * G + member). Rows may decode
with different block lengths (MDPO's mixed semi-AR / pure-Diff rollouts): each block length is
generated as its own batch and the results are put back in row order. Prompts of unequal length
are left-padded for models that honour attention masks, or generated per equal-length bucket.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch

from ..tasks.records import read_task_files
from ..batching import decode_completions, encode_prompts, left_pad, length_buckets
from ..models.forward import supports_padding
from ..models.loading import TokenIds
from ..rewards import RewardSettings, score_completions
from ..sampling.generate import DecodeSettings, generate
from ..seeding import derive_seed
from ..tasks import reference_of, reward_kind


@dataclass
class GroupRollout:
    prompts: list[dict]  # P records
    group_size: int
    prompt_ids: list[list[int]]  # P token lists
    completions: torch.Tensor  # [P*G, L]
    block_lengths: list[int]  # per row
    x_t: torch.Tensor | None = None  # [T, P*G, L] (trajectory rollouts only)
    x0_hat: torch.Tensor | None = None
    confidence: torch.Tensor | None = None

    def row_prompt(self, row: int) -> list[int]:
        return self.prompt_ids[row // self.group_size]


def read_train_records(files: list[str], allow_empty: bool = False, require_solution: bool | None = None) -> list[dict]:
    """The training prompts of a trainer: every record of ``files``, validated (errors name the
    file, line and id); an empty file is an error unless ``allow_empty`` (a mined set may be empty)."""
    return read_task_files(files, "train", allow_empty=allow_empty, require_solution=require_solution)


def sample_prompts(records: list[dict], n: int, seed: int, update: int) -> list[dict]:
    """The prompts of one update: a pure function of (seed, update), so resuming is exact."""
    rng = random.Random(derive_seed(seed, "prompts", update))
    if n >= len(records):
        return rng.sample(records, len(records))
    return rng.sample(records, n)


def generate_groups(
    model: torch.nn.Module,
    tokenizer,
    ids: TokenIds,
    prompts: list[dict],
    group_size: int,
    settings_per_row: list[DecodeSettings],
    generator: torch.Generator,
    chat_template: bool = False,
    record_trajectory: bool = False,
    batch_size: int = 256,
) -> GroupRollout:
    """Decode ``group_size`` completions per prompt; row r uses ``settings_per_row[r]``."""
    n_rows = len(prompts) * group_size
    if len(settings_per_row) != n_rows:
        raise ValueError(f"need {n_rows} row settings, got {len(settings_per_row)}")
    encoded = encode_prompts(tokenizer, [p["prompt"] for p in prompts], chat_template)
    gen_length = settings_per_row[0].gen_length
    completions = torch.empty((n_rows, gen_length), dtype=torch.long)
    traj_parts: dict[str, torch.Tensor] = {}
    padding = supports_padding(model)
    by_settings: dict[DecodeSettings, list[int]] = {}
    for row, s in enumerate(settings_per_row):
        by_settings.setdefault(s, []).append(row)
    was_training = model.training
    model.eval()
    for settings, rows in by_settings.items():
        # Chunks of rows: any mix of prompt lengths if the model takes padding, else equal lengths.
        if padding:
            chunks = [rows[i : i + batch_size] for i in range(0, len(rows), batch_size)]
        else:
            lengths = [len(encoded[r // group_size]) for r in rows]
            chunks = [[rows[i] for i in idx] for idx in length_buckets(lengths, batch_size)]
        for chunk in chunks:
            seqs = [encoded[r // group_size] for r in chunk]
            prompt_ids, mask = left_pad(seqs, ids.pad)
            if bool(mask.all()):
                mask = None
            out = generate(model, prompt_ids, settings, ids, mask, generator, record_trajectory)
            completions[chunk] = out.completions.cpu()
            if record_trajectory:
                for name in ("x_t", "x0_hat", "confidence"):
                    part = getattr(out.trajectory, name)
                    if name not in traj_parts:
                        traj_parts[name] = torch.empty((part.shape[0], n_rows, gen_length), dtype=part.dtype)
                    traj_parts[name][:, chunk] = part
    model.train(was_training)
    return GroupRollout(prompts, group_size, encoded, completions, [s.block_length for s in settings_per_row], **traj_parts)


def score_rows(tokenizer, ids: TokenIds, prompts: list[dict], group_size: int, completion_ids: torch.Tensor,
               processes: int = 0, cache=None, rewards: RewardSettings | None = None) -> np.ndarray:
    """Binary reward per row ``[P*G]`` (prompts may mix tasks; each is scored by its own reward)."""
    rewards = rewards or RewardSettings()
    texts = decode_completions(tokenizer, completion_ids, ids.eos, rewards.completion_text)
    scores = np.zeros(len(texts), dtype=np.float32)
    rows_by_kind: dict[str, list[int]] = {}
    for row in range(len(texts)):
        rows_by_kind.setdefault(reward_kind(prompts[row // group_size]["task"]), []).append(row)
    for kind, rows in rows_by_kind.items():
        refs = [reference_of(prompts[r // group_size]) for r in rows]
        scores[rows] = score_completions(kind, [texts[r] for r in rows], refs, processes=processes, cache=cache,
                                         settings=rewards)
    return scores


def score_trajectory(tokenizer, ids: TokenIds, rollout: GroupRollout, processes: int = 0, cache=None,
                     rewards: RewardSettings | None = None) -> np.ndarray:
    """Reward of every step's full prediction: ``[P*G, T]``."""
    steps = rollout.x0_hat.shape[0]
    flat = rollout.x0_hat.transpose(0, 1).reshape(-1, rollout.x0_hat.shape[-1])  # row-major: row, then step
    prompts_rep = [p for p in rollout.prompts for _ in range(rollout.group_size * steps)]
    return score_rows(tokenizer, ids, prompts_rep, 1, flat, processes, cache, rewards).reshape(-1, steps)


def build_sequences(prompt_ids: list[list[int]], responses: torch.Tensor, pad_id: int) -> tuple[torch.Tensor, torch.Tensor | None, int]:
    """``(input_ids [B, P+L], attention_mask or None, prompt_width)`` with prompts left-padded."""
    ids, mask = left_pad(prompt_ids, pad_id)
    seq = torch.cat([ids, responses.long()], dim=1)
    if bool(mask.all()):
        return seq, None, ids.shape[1]
    return seq, torch.cat([mask, torch.ones_like(responses, dtype=mask.dtype)], dim=1), ids.shape[1]
