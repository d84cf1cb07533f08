"""The tiny bidirectional transformer of the local presets.

A real ``transformers`` Llama with ``is_causal=False``: attention is bidirectional (with sdpa and
eager, with padding, and after save/load), there is no time input (the network is time-agnostic,
as masked diffusion needs), and it saves/loads with ``save_pretrained`` and the Auto classes like
any hub model, so the local and paper presets share every loading and sampling code path.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import LlamaConfig, LlamaForCausalLM


@dataclass(frozen=True)
class TinyModelSpec:
    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 512
    max_positions: int = 64


def build_tiny_model(spec: TinyModelSpec, vocab_size: int, token_ids: dict, seed: int = 0) -> LlamaForCausalLM:
    """A freshly initialised model; ``token_ids`` names pad/eos/mask ids stored in its config."""
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=spec.hidden_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_heads,
        intermediate_size=spec.intermediate_size,
        max_position_embeddings=spec.max_positions,
        is_causal=False,
        tie_word_embeddings=False,
        pad_token_id=token_ids["pad"],
        eos_token_id=token_ids["eos"],
        bos_token_id=None,
        mask_token_id=token_ids["mask"],
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    return model
