"""Direction tests: every trainer loop, as it runs, moves the policy the way its objective says.

A scripted reward (1 when a completion starts with a digit: about 18% of a random tiny model's
samples) replaces the task reward inside the real loops of MDPO (on a "mined" subset and on all
data), diffu-GRPO and SFT. After a few updates the mean reward of fresh rollouts must rise by a
margin chance cannot produce at this size (512 rollouts: one standard error of a difference of two
such means is ~0.025, the margin below is 4 of them), and with the reward negated it must
fall. SFT has no reward: training on solutions that start with a digit must raise the
log-probability of those solutions, and training with the loss negated must lower it. A sign
error anywhere in a loop (advantage, loss, backward) fails these tests; the weight-change checks
of tests/test_trainers.py would not notice it.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import maskdiff.train.groups as groups
from maskdiff.io import read_jsonl, write_jsonl
from maskdiff.models import load_model, load_tokenizer, token_ids
from maskdiff.sampling.generate import DecodeSettings
from maskdiff.seeding import step_generator
from maskdiff.tasks.countdown import generate_countdown
from maskdiff.train.diffu_grpo import DiffuGRPOConfig, train_diffu_grpo
from maskdiff.train.mdpo import MDPOConfig, train_mdpo
from maskdiff.train.sft import SFTConfig, train_sft

GEN, STEPS, TEMPERATURE = 8, 4, 1.0
SHARED = dict(updates=8, lr=3e-3, gen_length=GEN, checkpoint_every=8, eval_every=0, eval_problems=1)
RL = dict(prompts_per_update=8, group_size=8, steps=STEPS, temperature=TEMPERATURE, beta=0.0)
# MDPO's token weights lambda_t * conf_t are small for a random model (conf ~ 1/55): a larger step.
MDPO = MDPOConfig(**SHARED | dict(updates=16, checkpoint_every=16), **RL | dict(prompts_per_update=16), top_k_steps=2,
                  semi_ar_block=4)
CONFIGS = {
    "mdpo": (train_mdpo, MDPO, "mined"),
    "mdpo_all_data": (train_mdpo, MDPO, "all"),
    "diffu_grpo": (train_diffu_grpo, DiffuGRPOConfig(**SHARED, **RL, block_length=4), "all"),
}
MARGIN = 0.10  # 4 standard errors of a difference of two 512-rollout means near 0.2


def starts_with_digit(kind, texts, refs, processes=0, cache=None, **kwargs):
    return np.array([float(bool(t) and t[0].isdigit()) for t in texts], dtype=np.float32)


def negated(kind, texts, refs, processes=0, cache=None, **kwargs):
    return 1.0 - starts_with_digit(kind, texts, refs)


@pytest.fixture(scope="module")
def world(new_world):
    root = new_world("direction")
    records = generate_countdown(64, seed=5, split="train")
    write_jsonl(root / "all.jsonl", records)
    write_jsonl(root / "mined.jsonl", records[:24])  # a small "Answer Backslide" subset
    return root


def fresh_reward(model_dir, records, seed=123, rollouts=512) -> float:
    """Mean scripted reward of ``rollouts`` fresh samples (8 per prompt), decoded as the trainers do."""
    model = load_model(str(model_dir))
    tokenizer = load_tokenizer(str(model_dir))
    ids = token_ids(tokenizer, model.config)
    prompts = [records[i % len(records)] for i in range(rollouts // 8)]
    settings = DecodeSettings(GEN, 4, STEPS, temperature=TEMPERATURE)
    out = groups.generate_groups(model, tokenizer, ids, prompts, 8, [settings] * rollouts, step_generator(seed, "fresh"))
    return float(starts_with_digit("countdown", groups.decode_completions(tokenizer, out.completions, ids.eos), None).mean())


@pytest.mark.parametrize("name", list(CONFIGS))
def test_rl_loop_raises_the_reward_and_lowers_it_when_negated(world, tmp_path, monkeypatch, name):
    train, cfg, data = CONFIGS[name]
    records = read_jsonl(world / "all.jsonl")
    before = fresh_reward(world / "base", records)
    results = {}
    for label, reward in (("reward", starts_with_digit), ("negated", negated)):
        monkeypatch.setattr(groups, "score_completions", reward)
        train(str(world / "base"), [str(world / f"{data}.jsonl")], str(tmp_path / label), str(tmp_path / f"ck-{label}"), cfg)
        results[label] = fresh_reward(tmp_path / label, records)
    assert 0.05 < before < 0.5, before
    assert results["reward"] > before + MARGIN, f"{name}: reward {before:.3f} -> {results['reward']:.3f}"
    assert results["negated"] < before - MARGIN, f"{name}: negated reward {before:.3f} -> {results['negated']:.3f}"


def solution_logprob(model_dir, records) -> float:
    """Mean log-probability of the reference solutions' tokens with the response fully masked
    (the one-pass estimate the trainers use), prompts clean."""
    from maskdiff.train.common import token_logps
    from maskdiff.train.data import build_supervised

    model = load_model(str(model_dir))
    tokenizer = load_tokenizer(str(model_dir))
    ids = token_ids(tokenizer, model.config)
    data = build_supervised(tokenizer, records, GEN, ids)
    batch = data.batch(list(range(len(records))), ids.pad)
    noisy = torch.where(batch["response_mask"], torch.full_like(batch["input_ids"], ids.mask), batch["input_ids"])
    with torch.no_grad():
        logp = token_logps(model, noisy, batch["input_ids"], batch["attention_mask"], mask_id=ids.mask)
    solution = batch["response_mask"] & (batch["input_ids"] != ids.eos)
    return float(logp[solution].mean())


def test_sft_loop_raises_the_solutions_logprob_and_lowers_it_when_negated(world, tmp_path, monkeypatch):
    import maskdiff.train.sft as sft

    records = [r | {"solution": f"{i % 10}+1"} for i, r in enumerate(generate_countdown(32, seed=6, split="train"))]
    write_jsonl(tmp_path / "sft.jsonl", records)
    cfg = SFTConfig(**SHARED | dict(updates=16, checkpoint_every=16), batch_size=32)
    before = solution_logprob(world / "base", records)
    train_sft(str(world / "base"), [str(tmp_path / "sft.jsonl")], str(tmp_path / "sft"), str(tmp_path / "ck"), cfg)
    after = solution_logprob(tmp_path / "sft", records)

    real = sft.masked_diffusion_loss
    monkeypatch.setattr(sft, "masked_diffusion_loss", lambda *a, **k: (lambda loss, n: (-loss, n))(*real(*a, **k)))
    train_sft(str(world / "base"), [str(tmp_path / "sft.jsonl")], str(tmp_path / "neg"), str(tmp_path / "ck-neg"),
              dataclasses.replace(cfg))
    negated_after = solution_logprob(tmp_path / "neg", records)
    assert after > before + 1.0, f"log p(solution) {before:.2f} -> {after:.2f}"
    assert negated_after < before - 1.0, f"negated: log p(solution) {before:.2f} -> {negated_after:.2f}"


def test_null_signal_control_does_not_learn_the_reward(world, tmp_path, monkeypatch):
    """MDPO with the rewards permuted within each group (the mdpo_null control) gets updates of the
    same size from the same rollouts, but no information: the scripted reward, which MDPO itself
    raises by more than MARGIN above, must not rise by MARGIN (a permutation that did nothing would)."""
    records = read_jsonl(world / "all.jsonl")
    before = fresh_reward(world / "base", records)
    monkeypatch.setattr(groups, "score_completions", starts_with_digit)
    train_mdpo(str(world / "base"), [str(world / "all.jsonl")], str(tmp_path / "null"), str(tmp_path / "ck"),
               dataclasses.replace(MDPO, null_signal=True))
    after = fresh_reward(tmp_path / "null", records)
    assert after < before + MARGIN, f"null control: reward {before:.3f} -> {after:.3f}"


def test_permute_within_groups_keeps_each_groups_rewards():
    from maskdiff.train.mdpo import permute_within_groups

    rewards = torch.arange(24, dtype=torch.float32).view(6, 4)  # 2 groups of 3 rollouts, 4 steps
    permuted = permute_within_groups(rewards, 3, torch.Generator().manual_seed(0))
    for g in range(2):
        assert sorted(permuted[3 * g : 3 * g + 3, 0].tolist()) == sorted(rewards[3 * g : 3 * g + 3, 0].tolist())
    assert not torch.equal(permuted, rewards)
    assert {tuple(r) for r in permuted.tolist()} == {tuple(r) for r in rewards.tolist()}  # whole trajectories move
