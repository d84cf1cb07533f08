"""Shared fixtures: a tiny random bidirectional model and its tokenizer (built in code, no hub)."""

from __future__ import annotations

import pytest
import torch

from maskdiff.models import TinyModelSpec, build_char_tokenizer, build_tiny_model, token_ids

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tokenizer():
    return build_char_tokenizer()


@pytest.fixture(scope="session")
def ids(tokenizer):
    return token_ids(tokenizer)


@pytest.fixture(scope="session")
def tiny_model(tokenizer, ids):
    spec = TinyModelSpec(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, max_positions=64)
    model = build_tiny_model(spec, len(tokenizer), {"mask": ids.mask, "pad": ids.pad, "eos": ids.eos}, seed=1)
    return model.eval()
