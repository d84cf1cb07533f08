"""Trainer math on tiny tensors, against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from maskdiff.train.diffu_grpo import DiffuGRPOConfig, completion_mask, group_advantages, grpo_loss, masked_inputs
from maskdiff.train.mdpo import MDPOConfig, mdpo_loss, select_steps, step_advantages, step_scores, token_weights


def test_step_scores_by_hand():
    r = torch.tensor([[0.0, 1.0, 1.0, 0.0]])
    # t=0: (0-0) + mean(1,1,0)=2/3; t=1: (1-0) + mean(1,0)=1.5; t=2: (1-1) + mean(0)=0; t=3: (0-1) + 0 = -1
    assert step_scores(r).tolist()[0] == pytest.approx([2 / 3, 1.5, 0.0, -1.0])
    r = torch.tensor([[1.0, 1.0, 1.0]])
    # t=0: 1 + 1; t=1: 0 + 1; t=2 (last): 0 + 1
    assert step_scores(r).tolist()[0] == pytest.approx([2.0, 1.0, 1.0])


def test_step_advantages_normalise_per_step_within_group():
    scores = torch.tensor([[[1.0, 0.0], [3.0, 0.0]]])  # P=1, G=2, T=2
    adv = step_advantages(scores, eps=1e-4)
    std = math.sqrt(2.0)  # unbiased std of (1, 3)
    assert adv[0, :, 0].tolist() == pytest.approx([-1 / (std + 1e-4), 1 / (std + 1e-4)])
    assert adv[0, :, 1].tolist() == [0.0, 0.0], "no spread at a step -> no advantage"


def test_select_steps_by_summed_abs_advantage():
    adv = torch.tensor([[[0.1, -2.0, 0.5], [0.1, 1.0, -0.6]]])  # sums of |A|: 0.2, 3.0, 1.1
    assert select_steps(adv, 2).tolist() == [[[1, 2], [1, 2]]], "one set of K steps for the whole group"


def test_select_steps_per_rollout_differs_from_group_selection():
    """``rollout`` (the released trainer): each rollout its own K largest |A_t|."""
    adv = torch.tensor([[[3.0, 0.0, 0.1], [0.0, 0.2, 0.0]]])  # group sums 3.0, 0.2, 0.1
    assert select_steps(adv, 1, "group").tolist() == [[[0], [0]]]
    assert select_steps(adv, 1, "rollout").tolist() == [[[0], [1]]]
    with pytest.raises(ValueError, match="step selection"):
        select_steps(adv, 1, "best")


def test_mdpo_loss_kl_weight_none_conf_token():
    """none: plain KL; conf: KL x conf_t (the released loss); token: KL x lambda_t * conf_t."""
    logp = torch.log(torch.tensor([[0.5, 0.2]]))
    ref = torch.log(torch.tensor([[0.25, 0.1]]))
    w, conf = torch.tensor([[3.0, 0.5]]), torch.tensor([[0.75, 0.125]])
    masked, zero_adv = torch.tensor([[True, True]]), torch.tensor([0.0])
    kl = 0.5 * math.log(2.0) ** 2  # both tokens: log ref - log pi = -log 2
    loss = {mode: float(mdpo_loss(logp, logp.detach(), ref, zero_adv, w, masked, 0.2, 1.0, mode, conf)[0])
            for mode in ("none", "conf", "token")}
    assert loss["none"] == pytest.approx(kl)
    assert loss["conf"] == pytest.approx((0.75 + 0.125) * kl / 2)
    assert loss["token"] == pytest.approx((3.0 + 0.5) * kl / 2)
    with pytest.raises(ValueError, match="kl_weight"):
        mdpo_loss(logp, logp.detach(), ref, zero_adv, w, masked, 0.2, 1.0, "lambda", conf)


def test_token_weights():
    conf = torch.tensor([[0.5, 0.25, 1.0, 0.8]])
    masked = torch.tensor([[True, True, False, False]])
    # lambda = L / #masked = 4 / 2 = 2
    assert token_weights(conf, masked).tolist() == [[1.0, 0.5, 0.0, 0.0]]


def test_mdpo_loss_by_hand():
    logp = torch.log(torch.tensor([[0.5, 0.2]]))
    old = torch.log(torch.tensor([[0.25, 0.2]]))  # ratios 2.0 and 1.0
    ref = torch.log(torch.tensor([[0.5, 0.1]]))
    adv = torch.tensor([1.0])
    w = torch.tensor([[1.0, 2.0]])
    masked = torch.tensor([[True, True]])
    loss, stats = mdpo_loss(logp, old, ref, adv, w, masked, clip_eps=0.2, beta=0.1)
    kl = [0.0, 0.5 * math.log(0.5) ** 2]
    expected = (-(1.0 * 1.2 * 1.0) - (2.0 * 1.0 * 1.0) + 0.1 * sum(kl)) / 2  # ratio 2 clipped to 1.2
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    assert stats["clip_fraction"] == pytest.approx(0.5)
    # Negative advantage: min picks the unclipped (more pessimistic) term for ratio > 1 + eps.
    loss_neg, _ = mdpo_loss(logp, old, None, -adv, w, masked, 0.2, 0.0)
    assert float(loss_neg) == pytest.approx((1.0 * 2.0 + 2.0 * 1.0) / 2)


def test_mdpo_update_raises_logprob_of_positive_advantage_steps():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 5, requires_grad=True)
    targets = torch.tensor([[1, 2, 3], [0, 4, 2]])
    masked = torch.ones(2, 3, dtype=torch.bool)
    adv = torch.tensor([1.0, -1.0])

    def logp_of(lg):
        return torch.log_softmax(lg, -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)

    lp = logp_of(logits)
    loss, _ = mdpo_loss(lp, lp.detach(), None, adv, torch.ones(2, 3), masked, 0.2, 0.0)
    loss.backward()
    with torch.no_grad():
        new = logits - 0.5 * logits.grad
        before, after = logp_of(logits).sum(-1), logp_of(new).sum(-1)
    assert after[0] > before[0], "positive advantage: log-prob must rise"
    assert after[1] < before[1], "negative advantage: log-prob must fall"


def test_group_advantages_have_no_std():
    r = torch.tensor([[1.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
    assert group_advantages(r).tolist() == [[0.5, -0.5, -0.5, 0.5], [0.0, 0.0, 0.0, 0.0]]


def test_grpo_loss_by_hand_k3_kl():
    logp = torch.log(torch.tensor([[0.5, 0.5, 0.9]]))
    old = torch.log(torch.tensor([[0.25, 0.5, 0.9]]))  # ratio 2 (clipped at 1.5 with eps 0.5), 1, 1
    ref = torch.log(torch.tensor([[0.25, 0.5, 0.9]]))
    mask = torch.tensor([[True, True, False]])
    loss, stats = grpo_loss(logp, old, ref, torch.tensor([2.0]), mask, clip_eps=0.5, beta=0.04)
    d = math.log(0.25) - math.log(0.5)
    k3 = math.exp(d) - d - 1
    expected = ((-1.5 * 2.0 + 0.04 * k3) + (-1.0 * 2.0 + 0.0)) / 2
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    assert stats["kl"] == pytest.approx(k3 / 2, rel=1e-5)


def test_completion_mask_includes_first_eos_only():
    eos = 2
    comp = torch.tensor([[5, 6, 2, 2, 2], [5, 5, 5, 5, 5], [2, 7, 2, 2, 2]])
    assert completion_mask(comp, eos).tolist() == [
        [True, True, True, False, False], [True] * 5, [True, False, False, False, False]]


def test_masked_inputs_masks_prompt_with_p_and_completion_fully():
    seq = torch.arange(10, 10 + 2 * 400).view(2, 400)
    attn = torch.ones_like(seq)
    attn[0, :50] = 0  # padding is never masked
    noisy = masked_inputs(seq, 300, attn, mask_id=1, p_mask_prompt=0.15, generator=torch.Generator().manual_seed(0))
    assert bool((noisy[:, 300:] == 1).all())
    assert not bool((noisy[0, :50] == 1).any())
    frac = float((noisy[1, :300] == 1).float().mean())
    assert 0.10 < frac < 0.20
    again = masked_inputs(seq, 300, attn, 1, 0.15, torch.Generator().manual_seed(0))
    assert torch.equal(noisy, again), "same seed, same mask (old / ref / current)"


def test_mdpo_config_validation():
    with pytest.raises(ValueError, match="rollout_modes"):
        MDPOConfig(rollout_modes=("zigzag",))
    with pytest.raises(ValueError, match="multiple of mu"):
        MDPOConfig(mu=3, updates=9, checkpoint_every=10)  # a checkpoint inside a rollout batch
    with pytest.raises(ValueError, match="multiple of mu"):
        DiffuGRPOConfig(mu=2, updates=5, checkpoint_every=3)
    assert DiffuGRPOConfig(mu=12, updates=100, checkpoint_every=24).iterations == 12  # the last batch gives 4


def test_mdpo_training_samples_pair_state_target_weight_and_advantage_of_one_rollout_step():
    """Each training row must take x_t, x0_hat_t, conf_t and A[p, g, t] from the same (p, g, t)."""
    from types import SimpleNamespace

    from maskdiff.train.mdpo import training_samples

    P, G, T, L, mask = 2, 3, 4, 5, 99
    # Encode (step, row) in the tensors so every gathered value says where it came from.
    step = torch.arange(T).view(T, 1, 1).expand(T, P * G, L)
    row = torch.arange(P * G).view(1, P * G, 1).expand(T, P * G, L)
    code = step * 10 + row
    x_t = torch.where(torch.arange(L) < 2, code, torch.full_like(code, mask))  # 3 masked positions per state
    rollout = SimpleNamespace(x_t=x_t, x0_hat=code + 1000, confidence=(code.float() + 1) / 100)
    adv = torch.arange(P * G * T, dtype=torch.float32).view(P, G, T)
    # K = 2 steps per rollout, different for every rollout (step_selection "rollout")
    chosen = torch.tensor([[[3, 1], [0, 2], [1, 0]], [[0, 2], [2, 3], [3, 1]]])
    x, targets, weights, sample_adv, p_idx, conf = training_samples(rollout, adv, chosen, mask)
    assert x.shape == (P * 2 * G, L) and p_idx.tolist() == [0] * 6 + [1] * 6
    for m in range(P * 2 * G):
        p, k, g = m // (2 * G), (m // G) % 2, m % G
        t, r = int(chosen[p, g, k]), p * G + g
        assert x[m, 0] == t * 10 + r and (x[m, 2:] == mask).all()
        assert (targets[m] == t * 10 + r + 1000).all()
        assert sample_adv[m] == adv[p, g, t]
        lam = L / 3  # lambda_t = L / #masked
        assert weights[m, :2].eq(0).all()
        assert torch.allclose(weights[m, 2:], torch.full((3,), lam * (t * 10 + r + 1) / 100))
        assert torch.allclose(conf[m], torch.full((L,), (t * 10 + r + 1) / 100))
