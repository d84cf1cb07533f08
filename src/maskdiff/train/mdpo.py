"""MDPO: Masked Diffusion Policy Optimization (He et al., arXiv 2508.13148).

Policy gradient that rewards every intermediate denoising step. For each prompt, G rollouts are
decoded with their trajectories; every step's full prediction x0_hat_t is scored (r_t). The step
score credits both the step's own improvement and what follows it:
    s_t = (r_t - r_{t-1}) + mean(r_{t+1..T-1}),  s_{T-1} = (r_{T-1} - r_{T-2}) + r_{T-1},  r_{-1} = 0,
and is normalised within the group per step: A_t = (s_t - mean_G s_t) / (std_G s_t + 1e-4). The K
steps with the largest summed |A_t| are trained on: input prompt + x_t, targets x0_hat_t at the
positions masked in x_t, token weight lambda_t * conf_t (conf detached, lambda_t = L / #masked),
PPO ratio clip, k2 KL to the frozen reference.

Choices the released code makes differently from the paper's text are configuration here:
``mu`` > 1 keeps real old log-probs (at mu = 1, the released default, the ratio is exactly 1).
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import asdict, dataclass, field

import torch
from tqdm import tqdm

from ..io import read_jsonl
from ..models.forward import model_device, supports_padding
from ..rewards import RewardCache
from ..sampling.generate import DecodeSettings, parse_remasking
from ..seeding import derive_seed, step_generator
from .common import (backward, balanced_chunks, clip_and_step, end_of_update, gather_rows, global_mean,
                     load_eval_sets, local_share, log_eval, save_final, setup_training, token_logps)
from .groups import build_sequences, generate_groups, sample_prompts, score_trajectory

log = logging.getLogger(__name__)

ROLLOUT_MODES = ("semi_ar", "pure_diff")


@dataclass(frozen=True)
class MDPOConfig:
    """Defaults are the local preset's; the paper's values are in the comments (DESIGN section 7)."""

    updates: int = 100  # optimizer updates; compared with the baselines at equal updates
    prompts_per_update: int = 8  # paper: 16 prompts per optimizer step
    group_size: int = 8  # G; paper 8
    top_k_steps: int = 8  # K; paper 8
    temperature: float = 0.4  # rollout sampling temperature; paper 0.4
    steps: int = 16  # denoising steps per rollout; paper 128
    gen_length: int = 16  # paper 512
    semi_ar_block: int = 4  # block length of semi-AR rollouts; paper 128
    rollout_modes: tuple[str, ...] = ROLLOUT_MODES  # drawn per rollout; paper: mixed
    remasking: str = "lcr"  # rollout remasking; paper LCR
    lr: float = 1e-4  # paper 7e-7 (8B model, bf16)
    warmup: int = 0
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    clip_eps: float = 0.2  # PPO clip; paper 0.2
    beta: float = 0.02  # k2 KL weight; paper 0.02
    mu: int = 1  # gradient updates per rollout batch; released code 1 (ratio == 1)
    adv_eps: float = 1e-4
    micro_batch: int = 512  # sequences per forward/backward (gradient accumulation beyond)
    checkpoint_every: int = 10
    eval_every: int = 10  # held-out accuracy every N updates (0 = only start and end)
    eval_problems: int = 256
    eval_cell: dict = field(default_factory=dict)  # decoding cell of the held-out evaluation
    reward_processes: int = 0
    mixed_precision: str = "no"

    def __post_init__(self) -> None:
        bad = set(self.rollout_modes) - set(ROLLOUT_MODES)
        if bad or not self.rollout_modes:
            raise ValueError(f"mdpo rollout_modes must be a non-empty subset of {ROLLOUT_MODES}, got {self.rollout_modes}")
        if self.checkpoint_every % self.mu or self.updates % self.mu:
            raise ValueError(f"mdpo updates ({self.updates}) and checkpoint_every ({self.checkpoint_every}) must be "
                             f"multiples of mu ({self.mu}): every rollout batch gives mu updates, and resume is exact")
        if self.top_k_steps > self.steps:
            raise ValueError(f"mdpo top_k_steps ({self.top_k_steps}) cannot exceed steps ({self.steps})")


# ----------------------------------------------------------------------------- pure functions
def step_scores(rewards: torch.Tensor) -> torch.Tensor:
    """``s_t`` from per-step rewards ``r`` ``[..., T]`` (see module docstring)."""
    steps = rewards.shape[-1]
    prev = torch.cat([torch.zeros_like(rewards[..., :1]), rewards[..., :-1]], dim=-1)
    gain = rewards - prev
    future_sum = rewards.flip(-1).cumsum(-1).flip(-1) - rewards  # sum of r_{t+1..T-1}
    future_count = torch.arange(steps - 1, -1, -1, device=rewards.device).clamp(min=1)
    scores = gain + future_sum / future_count
    scores[..., -1] = gain[..., -1] + rewards[..., -1]
    return scores


def step_advantages(scores: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """Group-normalise ``scores`` ``[P, G, T]`` per step over the G rollouts (unbiased std)."""
    mean = scores.mean(dim=1, keepdim=True)
    std = scores.std(dim=1, keepdim=True) if scores.shape[1] > 1 else torch.zeros_like(mean)
    return (scores - mean) / (std + eps)


def select_steps(advantages: torch.Tensor, k: int) -> torch.Tensor:
    """Indices ``[P, K]`` of the K steps with the largest sum over the group of |A_t|."""
    return advantages.abs().sum(dim=1).topk(k, dim=-1).indices


def token_weights(confidence: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
    """``lambda_t * conf_t`` per token (zero where not masked); lambda_t = L / #masked."""
    length = masked.shape[-1]
    n_masked = masked.sum(dim=-1, keepdim=True).clamp(min=1)
    return (length / n_masked) * confidence.float() * masked


def mdpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    ref_logp: torch.Tensor | None,
    advantages: torch.Tensor,
    weights: torch.Tensor,
    masked: torch.Tensor,
    clip_eps: float,
    beta: float,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Per sample: sum over masked tokens of [-(w * clipped ratio * A) + beta * k2 KL] / #masked; mean over samples."""
    device = logp.device
    old_logp, advantages, weights, masked = (t.to(device) for t in (old_logp, advantages, weights, masked))
    ref_logp = ref_logp.to(device) if ref_logp is not None else None
    ratio = torch.exp(logp - old_logp)
    adv = advantages.unsqueeze(-1)
    objective = torch.minimum(ratio * adv, ratio.clamp(1 - clip_eps, 1 + clip_eps) * adv)
    per_token = -(weights * objective)
    kl = torch.zeros_like(logp)
    if ref_logp is not None and beta > 0:
        kl = 0.5 * (ref_logp - logp) ** 2
        per_token = per_token + beta * kl
    maskf = masked.float()
    n_masked = maskf.sum(dim=-1).clamp(min=1)
    loss = ((per_token * maskf).sum(dim=-1) / n_masked).mean()
    total = maskf.sum().clamp(min=1)
    with torch.no_grad():
        stats = {
            "kl": float((kl * maskf).sum() / total),
            "clip_fraction": float((((ratio - 1).abs() > clip_eps).float() * maskf).sum() / total),
            "ratio_mean": float((ratio * maskf).sum() / total),
        }
    return loss, stats


# ----------------------------------------------------------------------------- the trainer
def rollout_settings(cfg: MDPOConfig, n_rows: int, seed: int, update: int) -> list[DecodeSettings]:
    """One decoding setting per rollout: its mode (semi-AR or pure-Diff) drawn from cfg.rollout_modes."""
    rng = random.Random(derive_seed(seed, "mdpo-modes", update))
    remasking, rcr_score = parse_remasking(cfg.remasking)
    blocks = {"semi_ar": cfg.semi_ar_block, "pure_diff": cfg.gen_length}
    return [
        DecodeSettings(cfg.gen_length, blocks[rng.choice(cfg.rollout_modes)], cfg.steps, remasking, rcr_score,
                       temperature=cfg.temperature)
        for _ in range(n_rows)
    ]


def train_mdpo(
    base_model: str,
    train_files: list[str],
    out_dir: str,
    ckpt_dir: str,
    cfg: MDPOConfig,
    seed: int = 0,
    model_options: dict | None = None,
    eval_files: dict[str, str] | None = None,
    fallback_files: list[str] | None = None,
) -> dict:
    records = [r for f in train_files for r in read_jsonl(f)]
    source = "train"
    if not records and fallback_files:
        # Only with mining.fallback_to_all_data (tiny presets whose base model solves nothing):
        # recorded in the metrics so the report can say the mined set was empty.
        log.warning("no Answer Backslide prompts in %s; training on the fallback %s", train_files, fallback_files)
        records, source = [r for f in fallback_files for r in read_jsonl(f)], "fallback"
    if not records:
        raise ValueError(f"no training prompts in {train_files} (mining found no Answer Backslide samples; "
                         "set mining.fallback_to_all_data to train on all prompts instead)")
    setup = setup_training(base_model, ckpt_dir, cfg.lr, cfg.updates, cfg.warmup, cfg.weight_decay, cfg.beta,
                           model_options, cfg.mixed_precision,
                           {"algorithm": "mdpo", **asdict(cfg), "train_prompts": len(records), "train_source": source}, data_files=train_files)
    eval_sets = load_eval_sets(eval_files or {}, cfg.eval_problems)
    cache = RewardCache()
    ids, model = setup.ids, setup.model
    P, G, K = min(cfg.prompts_per_update, len(records)), cfg.group_size, cfg.top_k_steps
    update = setup.start_update
    if update == 0:
        log_eval(setup, eval_sets, cfg, 0, seed)
    bar = tqdm(total=cfg.updates, initial=update, desc="mdpo", mininterval=5, disable=not setup.is_main)
    while update < cfg.updates:
        t0 = time.time()
        batch_index = update // cfg.mu
        # The update's prompts and rollout modes are drawn globally; each rank rolls out its share.
        all_prompts, all_settings = sample_prompts(records, P, seed, batch_index), rollout_settings(cfg, P * G, seed, batch_index)
        local = local_share(list(range(P)), setup)
        prompts = [all_prompts[p] for p in local]
        settings = [all_settings[p * G + g] for p in local for g in range(G)]
        rollout = generate_groups(setup.accelerator.unwrap_model(model), setup.tokenizer, ids, prompts, G, settings,
                                  step_generator(seed, "mdpo-rollout", batch_index, setup.rank, device=model_device(model)),
                                  setup.chat_template, True)
        rewards = torch.from_numpy(score_trajectory(setup.tokenizer, ids, rollout, cfg.reward_processes, cache))  # [p*G, T]
        n_prompts, T = len(prompts), rewards.shape[1]
        scores = step_scores(rewards).view(n_prompts, G, T)
        adv = step_advantages(scores, cfg.adv_eps)
        chosen = select_steps(adv, K)  # [p, K]
        x_t, targets, weights, sample_adv, p_idx = training_samples(rollout, adv, chosen, ids.mask)
        masked = x_t == ids.mask
        prompt_lists = [rollout.prompt_ids[int(p)] for p in p_idx]
        chunks = _chunks(len(p_idx), cfg.micro_batch, prompt_lists, setup)
        unwrapped = setup.accelerator.unwrap_model(model)
        old_logp = _logps(unwrapped, prompt_lists, x_t, targets, ids, chunks, cfg.temperature) if cfg.mu > 1 else None
        ref_logp = _logps(setup.ref_model, prompt_lists, x_t, targets, ids, chunks, cfg.temperature) if setup.ref_model is not None else None
        rollout_time = time.time() - t0
        passes = balanced_chunks(setup, chunks)
        # Statistics of the rollout batch (all ranks), the same for each of its mu updates.
        all_rewards, all_adv = gather_rows(setup, rewards), gather_rows(setup, adv)
        final_r = all_rewards[:, -1]
        trained_tokens = int(gather_rows(setup, masked.sum().view(1)).sum())
        batch_stats = dict(
            reward_mean=float(final_r.mean()), reward_std=float(final_r.std(correction=0)),
            step_reward_mean=float(all_rewards.mean()),
            any_step_correct=float((all_rewards.max(dim=1).values > 0).float().mean()),
            adv_abs_mean=float(all_adv.abs().mean()), adv_max=float(all_adv.abs().max()),
            groups_with_signal=float((all_adv.abs().sum(dim=(1, 2)) > 0).float().mean()),
            selected_steps=chosen.flatten().tolist(), trained_tokens=trained_tokens,
        )
        for iteration in range(cfg.mu):
            t1 = time.time()
            stats_acc: dict[str, float] = {}
            total_loss = 0.0
            for i, (chunk, weight) in enumerate(passes):
                seq, attn, width = build_sequences([prompt_lists[j] for j in chunk], x_t[chunk], ids.pad)
                full_targets = torch.cat([seq[:, :width], targets[chunk]], dim=1)
                logp = token_logps(model, seq, full_targets, attn, cfg.temperature, ids.mask)[:, width:]
                old = old_logp[chunk] if old_logp is not None else logp.detach()
                ref = ref_logp[chunk] if ref_logp is not None else None
                loss, stats = mdpo_loss(logp, old, ref, sample_adv[chunk], weights[chunk], masked[chunk], cfg.clip_eps, cfg.beta)
                share = weight * len(chunk) / len(p_idx)
                backward(setup, loss * share, last=i == len(passes) - 1)
                total_loss += float(loss.detach()) * share
                for k, v in stats.items():
                    stats_acc[k] = stats_acc.get(k, 0.0) + v * share
            grad_norm = clip_and_step(setup, cfg.grad_clip)
            update += 1
            bar.update(1)
            step_time = time.time() - t1 + (rollout_time if iteration == 0 else 0.0)
            setup.metrics.log(
                event="update", update=update, grad_norm=grad_norm, **batch_stats,
                tokens_per_s=trained_tokens / max(step_time, 1e-9), seconds=step_time,
                reward_cache_hits=cache.hits, **global_mean(setup, {"loss": total_loss, **stats_acc}),
            )
            bar.set_postfix(reward=f"{batch_stats['reward_mean']:.2f}", loss=f"{total_loss:.3f}")
            end_of_update(setup, eval_sets, cfg, update, seed)
    bar.close()
    save_final(setup, out_dir, base_model)
    return {"updates": update}


def training_samples(rollout, adv: torch.Tensor, chosen: torch.Tensor, mask_id: int):
    """The training samples of one rollout batch: every (prompt p, chosen step t, rollout g), in
    that order, flattened to ``M = p*K*G`` rows. Returns ``(x_t, targets, weights, advantages,
    prompt index)``: input state, the step's full prediction as targets, ``lambda_t * conf_t``
    token weights and the step's advantage ``A[p, g, t]``."""
    P, K = chosen.shape
    G = adv.shape[1]
    p_idx = torch.arange(P).view(P, 1, 1).expand(P, K, G).reshape(-1)
    t_idx = chosen.view(P, K, 1).expand(P, K, G).reshape(-1)
    g_idx = torch.arange(G).view(1, 1, G).expand(P, K, G).reshape(-1)
    rows = p_idx * G + g_idx
    x_t = rollout.x_t[t_idx, rows].long()
    targets = rollout.x0_hat[t_idx, rows].long()
    weights = token_weights(rollout.confidence[t_idx, rows], x_t == mask_id)
    return x_t, targets, weights, adv[p_idx, g_idx, t_idx].float(), p_idx


def _chunks(n: int, micro_batch: int, prompt_lists: list[list[int]], setup) -> list[list[int]]:
    """Row chunks for forward passes: micro-batches, split further by prompt length for models
    that ignore attention masks (never pad them)."""
    if supports_padding(setup.accelerator.unwrap_model(setup.model)):
        return [list(range(i, min(i + micro_batch, n))) for i in range(0, n, micro_batch)]
    by_len: dict[int, list[int]] = {}
    for i, p in enumerate(prompt_lists):
        by_len.setdefault(len(p), []).append(i)
    return [rows[i : i + micro_batch] for rows in by_len.values() for i in range(0, len(rows), micro_batch)]


@torch.no_grad()
def _logps(model, prompt_lists, x_t, targets, ids, chunks, temperature) -> torch.Tensor:
    out = torch.empty(targets.shape, dtype=torch.float32)
    for chunk in chunks:
        seq, attn, width = build_sequences([prompt_lists[i] for i in chunk], x_t[chunk], ids.pad)
        full_targets = torch.cat([seq[:, :width], targets[chunk]], dim=1)
        out[chunk] = token_logps(model, seq, full_targets, attn, temperature, ids.mask)[:, width:].float().cpu()
    return out
