"""Shared fixtures: a tiny random bidirectional model and its tokenizer (built in code, no hub), and
fresh directories holding them saved."""

from __future__ import annotations

from pathlib import Path

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


@pytest.fixture(scope="session")
def new_world(tmp_path_factory, tokenizer, tiny_model):
    """``new_world(name)``: a fresh directory holding the tiny model and its tokenizer saved as
    ``base/`` (each test module's ``world`` fixture adds its own data files)."""

    def make(name: str) -> Path:
        root = tmp_path_factory.mktemp(name)
        tiny_model.save_pretrained(root / "base")
        tokenizer.save_pretrained(root / "base")
        return root

    return make
