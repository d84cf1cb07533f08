"""Trainers end to end on a tiny model: they learn, log, save, and resume exactly."""

from __future__ import annotations

import importlib

import pytest
import torch

from maskdiff.io import read_jsonl, write_jsonl
from maskdiff.tasks.countdown import generate_countdown
from maskdiff.train.diffu_grpo import DiffuGRPOConfig, train_diffu_grpo
from maskdiff.train.mdpo import MDPOConfig, train_mdpo
from maskdiff.train.sft import SFTConfig, train_sft
from helpers import weights
from parity_reward_cli import parity_reward  # a reward a random model earns half the time

EVAL_CELL = {"gen_length": 8, "block_length": 8, "steps": 4, "remasking": "lcr"}
CONFIGS = {
    "sft": (train_sft, SFTConfig(updates=4, batch_size=8, gen_length=12, checkpoint_every=2, eval_every=2,
                                 eval_problems=4, eval_cell=EVAL_CELL | {"gen_length": 12, "block_length": 12})),
    "diffu_grpo": (train_diffu_grpo, DiffuGRPOConfig(updates=4, prompts_per_update=2, group_size=3, steps=4, gen_length=8,
                                                     block_length=4, temperature=1.0, mu=2, checkpoint_every=2,
                                                     eval_every=2, eval_problems=4, eval_cell=EVAL_CELL)),
    "mdpo": (train_mdpo, MDPOConfig(updates=4, prompts_per_update=2, group_size=3, top_k_steps=2, steps=4, gen_length=8,
                                    semi_ar_block=4, temperature=1.0, mu=2, checkpoint_every=2, eval_every=2,
                                    eval_problems=4, eval_cell=EVAL_CELL)),
}


@pytest.fixture(scope="module")
def world(new_world):
    root = new_world("world")
    records = generate_countdown(12, seed=0, split="train")
    write_jsonl(root / "train.jsonl", records)
    write_jsonl(root / "test.jsonl", generate_countdown(4, seed=0, split="test"))
    return root


def _killed_after(module, name: str, should_die, train, *args, **kwargs):
    """Run ``train`` with ``module.name`` wrapped so that the run dies (an exception) right after a
    call for which ``should_die(*call_args)`` is true."""
    real = getattr(module, name)

    def call_then_die(*a, **k):
        real(*a, **k)
        if should_die(*a):
            raise KeyboardInterrupt

    setattr(module, name, call_then_die)
    try:
        with pytest.raises(KeyboardInterrupt):
            train(*args, **kwargs)
    finally:
        setattr(module, name, real)


def _interrupted(train, *args, **kwargs):
    """Kill ``train`` right after its first checkpoint is written."""
    import maskdiff.train.common as common

    _killed_after(common, "save_checkpoint", lambda *a: True, train, *args, **kwargs)


def _interrupted_after_update(train, module, update, *args, **kwargs):
    """Kill ``train`` right after update ``update`` was logged (past a checkpoint, so the metrics
    log holds records that the resumed job must not duplicate)."""
    _killed_after(module, "end_of_update", lambda setup, eval_sets, cfg, done, seed: done == update, train, *args, **kwargs)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_trainer_runs_logs_and_resumes_exactly(world, tmp_path, name, monkeypatch):
    train, cfg = CONFIGS[name]
    import maskdiff.train.groups as groups

    monkeypatch.setattr(groups, "score_completions", parity_reward)
    args = dict(seed=0, eval_files={"countdown": str(world / "test.jsonl")})
    train(str(world / "base"), [str(world / "train.jsonl")], str(tmp_path / "straight"), str(tmp_path / "ck1"), cfg, **args)

    # Interrupted after the checkpoint at update 2, then resumed by a fresh call.
    _interrupted(train, str(world / "base"), [str(world / "train.jsonl")], str(tmp_path / "never"), str(tmp_path / "ck2"),
                 cfg, **args)
    assert not (tmp_path / "never").exists()
    train(str(world / "base"), [str(world / "train.jsonl")], str(tmp_path / "resumed"), str(tmp_path / "ck2"), cfg, **args)

    a, b = weights(tmp_path / "straight"), weights(tmp_path / "resumed")
    assert all(torch.equal(a[k], b[k]) for k in a), "resume must reproduce the uninterrupted run exactly"
    # Killed after update 3 (one past the checkpoint at 2): update 3 is redone, logged once.
    module = importlib.import_module("maskdiff.train.trainer")  # the update loop every trainer runs
    _interrupted_after_update(train, module, 3, str(world / "base"), [str(world / "train.jsonl")], str(tmp_path / "never"),
                              str(tmp_path / "ck3"), cfg, **args)
    train(str(world / "base"), [str(world / "train.jsonl")], str(tmp_path / "resumed3"), str(tmp_path / "ck3"), cfg, **args)
    c = weights(tmp_path / "resumed3")
    assert all(torch.equal(a[k], c[k]) for k in a)
    assert [r["update"] for r in read_jsonl(tmp_path / "resumed3" / "metrics.jsonl") if r.get("event") == "update"] == [1, 2, 3, 4]
    base = weights(world / "base")
    assert any(not torch.equal(a[k], base[k]) for k in a), "training must change the weights"
    log = read_jsonl(tmp_path / "resumed" / "metrics.jsonl")
    assert [r["update"] for r in log if r.get("event") == "update"] == [1, 2, 3, 4]
    assert [r["update"] for r in log if r.get("event") == "eval"] == [0, 2, 4]
    assert all("eval_accuracy/countdown" in r for r in log if r.get("event") == "eval")
    if name != "sft":
        updates = [r for r in log if r.get("event") == "update"]
        assert all(k in updates[0] for k in ("reward_mean", "kl", "clip_fraction", "grad_norm", "tokens_per_s"))
        # mu = 2: the second update of a rollout batch uses real old log-probs, so the ratio moves off 1.
        assert any(u["ratio_mean"] != pytest.approx(1.0, abs=1e-9) for u in updates[1::2])
        assert all(u["ratio_mean"] == pytest.approx(1.0, abs=1e-6) for u in updates[0::2])
        # Before the first step the policy is the reference: the KL is exactly 0 only if the
        # reference scores the very same inputs (diffu-GRPO: the same prompt mask).
        assert updates[0]["kl"] == 0.0


def test_changed_config_does_not_resume(world, tmp_path):
    train, cfg = CONFIGS["sft"]
    import dataclasses

    _interrupted(train, str(world / "base"), [str(world / "train.jsonl")], str(tmp_path / "x"), str(tmp_path / "ck"), cfg)
    other = dataclasses.replace(cfg, lr=cfg.lr * 2)
    train(str(world / "base"), [str(world / "train.jsonl")], str(tmp_path / "y"), str(tmp_path / "ck"), other)
    log = read_jsonl(tmp_path / "y" / "metrics.jsonl")
    assert [r["update"] for r in log if r.get("event") == "update"] == [1, 2, 3, 4], "must start afresh"
    assert log[0]["event"] == "config" and log[0]["lr"] == other.lr


def test_mdpo_refuses_an_empty_mined_set(world, tmp_path):
    write_jsonl(tmp_path / "empty.jsonl", [])
    train, cfg = CONFIGS["mdpo"]
    with pytest.raises(ValueError, match="fallback_to_all_data"):
        train(str(world / "base"), [str(tmp_path / "empty.jsonl")], str(tmp_path / "m"), str(tmp_path / "ck"), cfg)
    train(str(world / "base"), [str(tmp_path / "empty.jsonl")], str(tmp_path / "m"), str(tmp_path / "ck"), cfg,
          fallback_files=[str(world / "train.jsonl")])
    assert read_jsonl(tmp_path / "m" / "metrics.jsonl")[0]["train_source"] == "fallback"
