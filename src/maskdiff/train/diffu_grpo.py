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
import time
from dataclasses import asdict, dataclass, field

import torch
from tqdm import tqdm

from ..io import read_jsonl
from ..models.forward import model_device
from ..rewards import RewardCache
from ..sampling.generate import DecodeSettings, parse_remasking
from ..seeding import step_generator
from .common import (backward, balanced_chunks, clip_and_step, end_of_update, gather_rows, global_mean,
                     load_eval_sets, local_share, log_eval, save_final, setup_training, token_logps)
from .groups import build_sequences, generate_groups, sample_prompts, score_rows
from .mdpo import _chunks

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DiffuGRPOConfig:
    """Defaults are the local preset's; the paper's values (as re-run by the MDPO authors) in comments."""

    updates: int = 100
    prompts_per_update: int = 8
    group_size: int = 6  # G; paper 6
    temperature: float = 0.1  # paper 0.1
    steps: int = 16  # paper 128
    gen_length: int = 16  # paper 512
    block_length: int = 4  # paper 32
    remasking: str = "lcr"
    lr: float = 1e-4  # paper 3e-6
    warmup: int = 0
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    clip_eps: float = 0.5  # paper 0.5
    beta: float = 0.04  # paper 0.04
    mu: int = 1  # policy iterations per rollout batch
    p_mask_prompt: float = 0.15  # paper 0.15
    micro_batch: int = 512
    checkpoint_every: int = 10
    eval_every: int = 10
    eval_problems: int = 256
    eval_cell: dict = field(default_factory=dict)
    reward_processes: int = 0
    mixed_precision: str = "no"

    def __post_init__(self) -> None:
        if self.checkpoint_every % self.mu or self.updates % self.mu:
            raise ValueError(f"diffu_grpo updates ({self.updates}) and checkpoint_every ({self.checkpoint_every}) must be "
                             f"multiples of mu ({self.mu}): every rollout batch gives mu updates, and resume is exact")


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
    adv = advantages.unsqueeze(-1)
    per_token = -torch.minimum(ratio * adv, ratio.clamp(1 - clip_eps, 1 + clip_eps) * adv)
    kl = torch.zeros_like(logp)
    if ref_logp is not None and beta > 0:
        d = ref_logp - logp
        kl = torch.exp(d) - d - 1
        per_token = per_token + beta * kl
    maskf = mask.float()
    total = maskf.sum().clamp(min=1)
    loss = (per_token * maskf).sum() / total
    with torch.no_grad():
        stats = {
            "kl": float((kl * maskf).sum() / total),
            "clip_fraction": float((((ratio - 1).abs() > clip_eps).float() * maskf).sum() / total),
            "ratio_mean": float((ratio * maskf).sum() / total),
        }
    return loss, stats


def masked_inputs(seq: torch.Tensor, width: int, attn: torch.Tensor | None, mask_id: int, p_mask_prompt: float,
                  generator: torch.Generator) -> torch.Tensor:
    """Prompt tokens masked with probability p (never padding); completion fully masked."""
    noisy = seq.clone()
    prompt_real = torch.ones_like(seq[:, :width], dtype=torch.bool) if attn is None else attn[:, :width].bool()
    hit = (torch.rand(seq[:, :width].shape, generator=generator) < p_mask_prompt) & prompt_real
    noisy[:, :width] = torch.where(hit, torch.full_like(noisy[:, :width], mask_id), noisy[:, :width])
    noisy[:, width:] = mask_id
    return noisy


def train_diffu_grpo(
    base_model: str,
    train_files: list[str],
    out_dir: str,
    ckpt_dir: str,
    cfg: DiffuGRPOConfig,
    seed: int = 0,
    model_options: dict | None = None,
    eval_files: dict[str, str] | None = None,
) -> dict:
    records = [r for f in train_files for r in read_jsonl(f)]
    if not records:
        raise ValueError(f"no training prompts in {train_files}")
    setup = setup_training(base_model, ckpt_dir, cfg.lr, cfg.updates, cfg.warmup, cfg.weight_decay, cfg.beta,
                           model_options, cfg.mixed_precision, {"algorithm": "diffu_grpo", **asdict(cfg), "train_prompts": len(records)}, data_files=train_files)
    eval_sets = load_eval_sets(eval_files or {}, cfg.eval_problems)
    cache = RewardCache()
    ids, model = setup.ids, setup.model
    P, G = min(cfg.prompts_per_update, len(records)), cfg.group_size
    remasking, rcr_score = parse_remasking(cfg.remasking)
    settings = DecodeSettings(cfg.gen_length, cfg.block_length, cfg.steps, remasking, rcr_score, temperature=cfg.temperature)
    update = setup.start_update
    if update == 0:
        log_eval(setup, eval_sets, cfg, 0, seed)
    bar = tqdm(total=cfg.updates, initial=update, desc="diffu-grpo", mininterval=5, disable=not setup.is_main)
    while update < cfg.updates:
        t0 = time.time()
        batch_index = update // cfg.mu
        prompts = local_share(sample_prompts(records, P, seed, batch_index), setup)  # this rank's share
        n_rows = len(prompts) * G
        rollout = generate_groups(setup.accelerator.unwrap_model(model), setup.tokenizer, ids, prompts, G, [settings] * n_rows,
                                  step_generator(seed, "grpo-rollout", batch_index, setup.rank, device=model_device(model)),
                                  setup.chat_template)
        rewards = torch.from_numpy(score_rows(setup.tokenizer, ids, prompts, G, rollout.completions, cfg.reward_processes, cache))
        adv = group_advantages(rewards.view(len(prompts), G)).reshape(-1)
        comp_mask = completion_mask(rollout.completions, ids.eos)
        prompt_lists = [rollout.row_prompt(r) for r in range(n_rows)]
        chunks = _chunks(n_rows, cfg.micro_batch, prompt_lists, setup)
        # Old and reference log-probs for every iteration's mask, before any update of this batch.
        old_logps, ref_logps = [], []
        for it in range(cfg.mu):
            old_logps.append(_grpo_logps(setup.accelerator.unwrap_model(model), prompt_lists, rollout.completions, ids,
                                         chunks, cfg.p_mask_prompt, seed, batch_index, it, setup.rank) if cfg.mu > 1 else None)
            ref_logps.append(_grpo_logps(setup.ref_model, prompt_lists, rollout.completions, ids, chunks,
                                         cfg.p_mask_prompt, seed, batch_index, it, setup.rank) if setup.ref_model is not None else None)
        rollout_time = time.time() - t0
        # Token-level mean over the whole update (all ranks): each token's loss / all tokens; the
        # factor world undoes the gradient averaging over ranks.
        all_tokens = int(gather_rows(setup, comp_mask.sum().view(1)).sum())
        passes = balanced_chunks(setup, chunks)
        # Statistics of the rollout batch (all ranks), the same for each of its mu updates.
        all_rewards = gather_rows(setup, rewards)
        batch_stats = dict(
            reward_mean=float(all_rewards.mean()), reward_std=float(all_rewards.std(correction=0)),
            adv_abs_mean=float(gather_rows(setup, adv).abs().mean()),
            groups_with_signal=float((all_rewards.view(-1, G).std(dim=1, correction=0) > 0).float().mean()),
            trained_tokens=all_tokens,
        )
        for it in range(cfg.mu):
            t1 = time.time()
            stats_acc: dict[str, float] = {}
            total_loss = 0.0
            batches = _masked_batches(prompt_lists, rollout.completions, ids, [c for c, _ in passes], cfg.p_mask_prompt,
                                      seed, batch_index, it, setup.rank)
            for i, ((chunk, seq, attn, width, noisy), (_, weight)) in enumerate(zip(batches, passes)):
                logp = token_logps(model, noisy, seq, attn, mask_id=ids.mask)[:, width:]
                old = old_logps[it][chunk] if old_logps[it] is not None else logp.detach()
                ref = ref_logps[it][chunk] if ref_logps[it] is not None else None
                loss, stats = grpo_loss(logp, old, ref, adv[chunk], comp_mask[chunk], cfg.clip_eps, cfg.beta)
                share = weight * float(comp_mask[chunk].sum()) / max(all_tokens, 1)
                backward(setup, loss * share * setup.world, last=i == len(passes) - 1)
                total_loss += float(loss.detach()) * share
                for k, v in stats.items():
                    stats_acc[k] = stats_acc.get(k, 0.0) + v * share
            grad_norm = clip_and_step(setup, cfg.grad_clip)
            update += 1
            bar.update(1)
            step_time = time.time() - t1 + (rollout_time if it == 0 else 0.0)
            sums = global_mean(setup, {"loss": total_loss, **stats_acc})
            setup.metrics.log(
                event="update", update=update, grad_norm=grad_norm, **batch_stats,
                tokens_per_s=all_tokens / max(step_time, 1e-9), seconds=step_time, reward_cache_hits=cache.hits,
                # Shares are over all ranks' tokens: the update's totals are the sums over ranks.
                **{k: v * setup.world for k, v in sums.items()},
            )
            bar.set_postfix(reward=f"{batch_stats['reward_mean']:.2f}", loss=f"{total_loss:.3f}")
            end_of_update(setup, eval_sets, cfg, update, seed)
    bar.close()
    save_final(setup, out_dir, base_model)
    return {"updates": update}


def _masked_batches(prompt_lists, completions, ids, chunks, p_mask_prompt, seed, batch_index, iteration, rank=0):
    """The iteration's masked inputs, identical for old / reference / current policy (one seed)."""
    generator = step_generator(seed, "grpo-mask", batch_index, iteration, rank)
    for chunk in chunks:
        seq, attn, width = build_sequences([prompt_lists[i] for i in chunk], completions[chunk], ids.pad)
        yield chunk, seq, attn, width, masked_inputs(seq, width, attn, ids.mask, p_mask_prompt, generator)


@torch.no_grad()
def _grpo_logps(model, prompt_lists, completions, ids, chunks, p_mask_prompt, seed, batch_index, iteration, rank=0) -> torch.Tensor:
    out = torch.empty(completions.shape, dtype=torch.float32)
    for chunk, seq, attn, width, noisy in _masked_batches(prompt_lists, completions, ids, chunks, p_mask_prompt, seed,
                                                          batch_index, iteration, rank):
        out[chunk] = token_logps(model, noisy, seq, attn, mask_id=ids.mask)[:, width:].float().cpu()
    return out
