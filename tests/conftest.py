"""Shared fixtures: a tiny random bidirectional model and its tokenizer (built in code, no hub), fresh
directories holding them saved, and the smoke DAG run up to training (shared by the DVC and workflow
integration tests)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from maskdiff.models import TinyModelSpec, build_char_tokenizer, build_tiny_model, token_ids
from workflow_helpers import GIT, SMOKE_PRODUCED, copy_project, run, smoke_stages, snakemake

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


@pytest.fixture(scope="session")
def smoke_up_to_training(tmp_path_factory):
    """A git repo of the project (branch main, one commit) that ran the smoke DAG up to training and
    the precision study: the DVC tests' producer (test_dvc_stages.py), and the first part of the
    workflow tests' smoke run (test_workflow.py finishes a copy), so the part they share runs once.
    Tests never change it: they work on ``clone_tree`` copies."""
    work = copy_project(tmp_path_factory.mktemp("smoke_up_to_training") / "project")
    run(["git", "init", "-q", "-b", "main"], work)
    run(["git", "add", "-A"], work)
    run([*GIT, "commit", "-q", "-m", "project"], work)
    targets = [t for s in smoke_stages(work, *SMOKE_PRODUCED) for t in s.targets]
    snakemake(work, "--configfile=config/presets/smoke.yaml", *targets, timeout=1800)
    return work

