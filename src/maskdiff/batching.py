"""Turn prompt texts into model-ready batches.

Two ways to batch prompts of different lengths: left padding with an attention mask (models that
honour it, like the tiny Llama) or buckets of equal length (LLaDA, whose modeling code ignores
the mask). ``prompt_batches`` picks the right one for a model.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterator

import torch


def encode_prompts(tokenizer, prompts: list[str], chat_template: bool = False) -> list[list[int]]:
    """Token ids per prompt; with ``chat_template`` the prompt becomes one user turn (LLaDA-Instruct)."""
    if chat_template:
        texts = [
            tokenizer.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True, tokenize=False)
            for p in prompts
        ]
        return [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    return [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]


def left_pad(sequences: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(ids, attention_mask)`` with every sequence right-aligned."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        if seq:
            ids[row, width - len(seq) :] = torch.tensor(seq, dtype=torch.long)
            mask[row, width - len(seq) :] = 1
    return ids, mask


def length_buckets(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Indices grouped by equal length, chunked to ``batch_size`` (shortest lengths first)."""
    groups: dict[int, list[int]] = defaultdict(list)
    for index, length in enumerate(lengths):
        groups[length].append(index)
    return [idx[i : i + batch_size] for _, idx in sorted(groups.items()) for i in range(0, len(idx), batch_size)]


def prompt_batches(
    encoded: list[list[int]], batch_size: int, pad_id: int, allow_padding: bool
) -> Iterator[tuple[list[int], torch.Tensor, torch.Tensor | None]]:
    """Yield ``(indices, prompt_ids, attention_mask_or_None)`` covering every prompt once.

    With padding allowed, prompts are sorted by length first so padding stays small; otherwise
    every batch holds prompts of one length and needs no mask at all.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    lengths = [len(e) for e in encoded]
    if allow_padding:
        order = sorted(range(len(encoded)), key=lambda i: (lengths[i], i))
        chunks = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    else:
        chunks = length_buckets(lengths, batch_size)
    for chunk in chunks:
        seqs = [encoded[i] for i in chunk]
        if len({len(s) for s in seqs}) == 1:
            yield chunk, torch.tensor(seqs, dtype=torch.long), None
        else:
            ids, mask = left_pad(seqs, pad_id)
            yield chunk, ids, mask


def decode_completions(tokenizer, completion_ids: torch.Tensor, eos_id: int, mode: str = "first_eos") -> list[str]:
    """Text of each generated region, special tokens dropped: up to (not including) its first EOS
    (``first_eos``), or every position (``whole``, as the released MDPO code decodes; see
    RewardSettings.completion_text)."""
    ids = completion_ids.long()
    if mode == "whole":
        return tokenizer.batch_decode(ids.tolist(), skip_special_tokens=True)
    if mode != "first_eos":
        raise ValueError(f"unknown completion text mode {mode!r}; choose first_eos or whole")
    is_eos = ids == eos_id
    has_eos = is_eos.any(dim=-1)
    first_eos = torch.where(has_eos, is_eos.float().argmax(dim=-1), torch.full_like(has_eos, ids.shape[-1], dtype=torch.long))
    rows = [row[:end] for row, end in zip(ids.tolist(), first_eos.tolist())]
    return tokenizer.batch_decode(rows, skip_special_tokens=True)
