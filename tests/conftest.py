"""Shared fixtures: a tiny random bidirectional model and its tokenizer (built in code, no hub)."""

from __future__ import annotations

import pytest
import torch

from maskdiff.models import TinyModelSpec, build_char_tokenizer, build_tiny_model, token_ids

# One intra-op thread: the tensors in unit tests are tiny, and with two threads on a shared,
# loaded 2-core machine every op can wait ~10 ms on a thread barrier (measured 31 s vs 0.25 s).
torch.set_num_threads(1)


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
