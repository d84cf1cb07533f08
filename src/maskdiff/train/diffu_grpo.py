"""diffu-GRPO (d1; Zhao et al. 2025): GRPO adapted to masked diffusion LMs, the MDPO paper's RL baseline.

G completions per prompt are rewarded only at the end; the advantage is reward minus the group mean
(no std normalisation). The per-token log-probability of a completion is estimated in ONE forward
pass: the prompt with each token masked with probability p_mask_prompt and the completion fully
masked. The same mask (seed) is used for old, reference and current policy within an iteration.
Loss: PPO-clipped ratio (eps 0.5) plus beta * k3 KL (exp(d) - d - 1, d = log ref - log pi),
averaged over all completion tokens of the batch (up to and including the first EOS).
"""

from __future__ import annotations

import logging

import torch

from ..models.forward import model_device
from ..rewards import RewardSettings
from ..sampling.generate import DecodeSettings, parse_remasking
from ..seeding import step_generator
from .common import gather_rows, local_share, row_chunks, token_logps
from .configs import DiffuGRPOConfig
from .groups import build_sequences, generate_groups, read_train_records, sample_prompts, score_rows
from .policy_gradient import PolicyGradientTrainer, clipped_surrogate, ratio_stats
from .trainer import Batch

log = logging.getLogger(__name__)


def group_advantages(rewards: torch.Tensor) -> torch.Tensor:
    """``r - mean_group(r)`` for rewards ``[P, G]`` (d1 drops GRPO's std normalisation)."""
    return rewards - rewards.mean(dim=1, keepdim=True)


def completion_mask(completions: torch.Tensor, eos_id: int) -> torch.Tensor:
    """True up to and including the first EOS of each completion."""
    is_eos = completions == eos_id
    after_first = (is_eos.long().cumsum(dim=-1) - is_eos.long()) > 0
    return ~after_first


def grpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    ref_logp: torch.Tensor | None,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_eps: float,
    beta: float,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Token-level mean over ``mask`` of -min(ratio A, clip(ratio) A) + beta * k3 KL."""
    device = logp.device
    old_logp, advantages, mask = (t.to(device) for t in (old_logp, advantages, mask))
    ref_logp = ref_logp.to(device) if ref_logp is not None else None
    ratio = torch.exp(logp - old_logp)
    per_token = -clipped_surrogate(ratio, advantages, clip_eps)
    kl = torch.zeros_like(logp)
    if ref_logp is not None and beta > 0:
        d = ref_logp - logp
        kl = torch.exp(d) - d - 1
        per_token = per_token + beta * kl
    maskf = mask.float()
    loss = (per_token * maskf).sum() / maskf.sum().clamp(min=1)
    return loss, ratio_stats(ratio, kl, maskf, clip_eps)


def masked_inputs(seq: torch.Tensor, width: int, attn: torch.Tensor | None, mask_id: int, p_mask_prompt: float,
                  generator: torch.Generator) -> torch.Tensor:
    """Prompt tokens masked with probability p (never padding); completion fully masked."""
    noisy = seq.clone()
    prompt_real = torch.ones_like(seq[:, :width], dtype=torch.bool) if attn is None else attn[:, :width].bool()
    hit = (torch.rand(seq[:, :width].shape, generator=generator) < p_mask_prompt) & prompt_real
    noisy[:, :width] = torch.where(hit, torch.full_like(noisy[:, :width], mask_id), noisy[:, :width])
    noisy[:, width:] = mask_id
    return noisy


class DiffuGRPOTrainer(PolicyGradientTrainer):
    """G completions per prompt rewarded at the end; one-pass log-probs on masked inputs."""

    name = "diffu-grpo"
    cfg: DiffuGRPOConfig

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        cfg = self.cfg
        remasking, rcr_score = parse_remasking(cfg.remasking)
        self.settings = DecodeSettings(cfg.gen_length, cfg.block_length, cfg.steps, remasking, rcr_score,
                                       temperature=cfg.temperature, confidence=cfg.confidence,
                                       compute_dtype=cfg.compute_dtype)

    def rollout(self, batch_index: int) -> Batch:
        setup, cfg, ids = self.setup, self.cfg, self.setup.ids
        P, G = min(cfg.prompts_per_update, len(self.records)), cfg.group_size
        prompts = local_share(sample_prompts(self.records, P, self.seed, batch_index), setup)  # this rank's share
        n_rows = len(prompts) * G
        policy = setup.accelerator.unwrap_model(setup.model)
        with self.timed("sampling"):
            rollout = generate_groups(policy, setup.tokenizer, ids, prompts, G, [self.settings] * n_rows,
                                      step_generator(self.seed, "grpo-rollout", batch_index, setup.rank, device=model_device(policy)),
                                      setup.chat_template)
        with self.timed("scoring"):
            rewards = torch.from_numpy(score_rows(setup.tokenizer, ids, prompts, G, rollout.completions, cfg.reward_processes,
                                                  self.cache, self.rewards))
        adv = group_advantages(rewards.view(len(prompts), G)).reshape(-1)
        comp_mask = completion_mask(rollout.completions, ids.eos)
        prompt_lists = [rollout.row_prompt(r) for r in range(n_rows)]
        # Token-level mean over the whole update (all ranks): a chunk's share is its tokens / all tokens.
        all_tokens = int(gather_rows(setup, comp_mask.sum().view(1)).sum())
        all_rewards = gather_rows(setup, rewards)
        stats = dict(
            reward_mean=float(all_rewards.mean()), reward_std=float(all_rewards.std(correction=0)),
            adv_abs_mean=float(gather_rows(setup, adv).abs().mean()),
            groups_with_signal=float((all_rewards.view(-1, G).std(dim=1, correction=0) > 0).float().mean()),
            trained_tokens=all_tokens, reward_cache_hits=self.cache.hits, reward_timeouts=self.cache.timeouts,
        )
        data = dict(batch_index=batch_index, prompt_lists=prompt_lists, completions=rollout.completions, adv=adv,
                    comp_mask=comp_mask, all_tokens=all_tokens)
        return Batch(row_chunks(setup, n_rows, cfg.micro_batch, prompt_lists), stats, data)

    def input_variant(self, iteration: int) -> int:
        return iteration  # a fresh prompt mask per iteration (the same for old, reference and current policy)

    def logps(self, model, batch: Batch, chunk: list[int], variant: int) -> torch.Tensor:
        d = batch.data
        seq, attn, width = build_sequences([d["prompt_lists"][i] for i in chunk], d["completions"][chunk], self.setup.ids.pad)
        generator = step_generator(self.seed, "grpo-mask", d["batch_index"], variant, self.setup.rank, chunk[0])
        noisy = masked_inputs(seq, width, attn, self.setup.ids.mask, self.cfg.p_mask_prompt, generator)
        return token_logps(model, noisy, seq, attn, mask_id=self.setup.ids.mask)[:, width:]

    def objective(self, logp, old, ref, batch: Batch, chunk: list[int]):
        d, cfg = batch.data, self.cfg
        loss, stats = grpo_loss(logp, old, ref, d["adv"][chunk], d["comp_mask"][chunk], cfg.clip_eps, cfg.beta)
        return loss, stats, float(d["comp_mask"][chunk].sum()) / max(d["all_tokens"], 1)


def train_diffu_grpo(
    base_model: str,
    train_files: list[str],
    out_dir: str,
    ckpt_dir: str,
    cfg: DiffuGRPOConfig,
    seed: int = 0,
    model_options: dict | None = None,
    eval_files: dict[str, str] | None = None,
    rewards: RewardSettings | None = None,
) -> dict:
    records = read_train_records(train_files)
    trainer = DiffuGRPOTrainer.from_files(records, base_model=base_model, train_files=train_files, ckpt_dir=ckpt_dir,
                                          cfg=cfg, seed=seed, model_options=model_options, eval_files=eval_files,
                                          rewards=rewards, info={"train_prompts": len(records)})
    return trainer.run(out_dir, base_model)
