"""MDPO: Masked Diffusion Policy Optimization (He et al., arXiv 2508.13148).

Policy gradient that rewards every intermediate denoising step. For each prompt, G rollouts are
decoded with their trajectories; every step's full prediction x0_hat_t is scored (r_t). The step
score credits both the step's own improvement and what follows it:
    s_t = (r_t - r_{t-1}) + mean(r_{t+1..T-1}),  s_{T-1} = (r_{T-1} - r_{T-2}) + r_{T-1},  r_{-1} = 0,
and is normalised within the group per step: A_t = (s_t - mean_G s_t) / (std_G s_t + 1e-4). The K
steps with the largest summed |A_t| are trained on: input prompt + x_t, targets x0_hat_t at the
positions masked in x_t, token weight lambda_t * conf_t (conf detached, lambda_t = L / #masked),
PPO ratio clip, k2 KL to the frozen reference.

Where the released code (autonomousvision/mdpo) differs from the paper's text or leaves a choice
open, MDPOConfig has a switch (docs/fidelity.md has the sources): ``step_selection`` (the group's
K steps, or each rollout's own K as the released trainer), ``kl_weight`` (KL unweighted, times
conf_t as the released loss, or times lambda_t * conf_t), ``step_reduction`` (mean or, as the
released one-backward-per-step, sum over the K steps), the rollouts' ``confidence`` (untempered or
tempered), and ``mu`` > 1 keeps real old log-probs (at mu = 1, the released default, the ratio is 1).
"""

from __future__ import annotations

import logging
import random

import torch

from ..models.forward import model_device
from ..rewards import RewardSettings
from ..sampling.generate import DecodeSettings, parse_remasking
from ..seeding import derive_seed, step_generator
from .common import gather_rows, local_share, row_chunks, token_logps
from .configs import MDPOConfig
from .groups import build_sequences, generate_groups, read_train_records, sample_prompts, score_trajectory
from .policy_gradient import PolicyGradientTrainer, clipped_surrogate, ratio_stats
from .trainer import Batch

log = logging.getLogger(__name__)


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


def select_steps(advantages: torch.Tensor, k: int, mode: str = "group") -> torch.Tensor:
    """Indices ``[P, G, K]`` of the trained steps of every rollout: ``group`` = the K steps with the
    largest sum over the group of |A_t| (the same K for all G rollouts of a prompt), ``rollout`` =
    each rollout's own K largest |A_t| (the released trainer)."""
    scores = advantages.abs()
    if mode == "group":
        return scores.sum(dim=1, keepdim=True).topk(k, dim=-1).indices.expand(-1, advantages.shape[1], -1)
    if mode == "rollout":
        return scores.topk(k, dim=-1).indices
    raise ValueError(f"unknown step selection {mode!r}; choose group or rollout")


def permute_within_groups(rewards: torch.Tensor, group_size: int, generator: torch.Generator) -> torch.Tensor:
    """The null-signal control: each group's per-rollout reward trajectories ``[P*G, T]`` handed to
    its rollouts in a random order, so the advantages keep their distribution but lose any link to
    what the rollouts did. A model trained on them moves by drift alone."""
    n_groups = rewards.shape[0] // group_size
    order = torch.rand(n_groups, group_size, generator=generator).argsort(dim=1)
    rows = (order + torch.arange(n_groups).unsqueeze(1) * group_size).reshape(-1)
    return rewards[rows]


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
    kl_weight: str = "none",
    confidence: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Per sample: sum over masked tokens of [-(w * clipped ratio * A) + beta * k2 KL] / #masked,
    mean over samples. The KL term is weighted per ``kl_weight``: ``none``, ``conf`` (times
    ``confidence``, as the released loss) or ``token`` (times ``weights``)."""
    device = logp.device
    old_logp, advantages, weights, masked = (t.to(device) for t in (old_logp, advantages, weights, masked))
    ref_logp = ref_logp.to(device) if ref_logp is not None else None
    ratio = torch.exp(logp - old_logp)
    per_token = -(weights * clipped_surrogate(ratio, advantages, clip_eps))
    kl = torch.zeros_like(logp)
    if ref_logp is not None and beta > 0:
        kl = 0.5 * (ref_logp - logp) ** 2
        if kl_weight == "none":
            kl_term = kl
        elif kl_weight == "conf":
            kl_term = confidence.to(device).float() * kl
        elif kl_weight == "token":
            kl_term = weights * kl
        else:
            raise ValueError(f"unknown kl_weight {kl_weight!r}; choose none, conf or token")
        per_token = per_token + beta * kl_term
    maskf = masked.float()
    n_masked = maskf.sum(dim=-1).clamp(min=1)
    loss = ((per_token * maskf).sum(dim=-1) / n_masked).mean()
    return loss, ratio_stats(ratio, kl, maskf, clip_eps)


# ----------------------------------------------------------------------------- the trainer
def rollout_settings(cfg: MDPOConfig, n_rows: int, seed: int, update: int,
                     mined_blocks: list[int | None] | None = None) -> list[DecodeSettings]:
    """One decoding setting per rollout: its mode (semi-AR or pure-Diff) drawn from cfg.rollout_modes;
    with ``rollout_block: mined``, a row whose prompt has a mined block length (``mined_blocks``, one
    per row) uses that block instead (the draw is still made, so the other rows' draws do not move)."""
    rng = random.Random(derive_seed(seed, "mdpo-modes", update))
    remasking, rcr_score = parse_remasking(cfg.remasking)
    blocks = {"semi_ar": cfg.semi_ar_block, "pure_diff": cfg.gen_length}
    drawn = [blocks[rng.choice(cfg.rollout_modes)] for _ in range(n_rows)]
    if cfg.rollout_block == "mined" and mined_blocks is not None:
        drawn = [mined if mined else block for block, mined in zip(drawn, mined_blocks)]
    return [
        DecodeSettings(cfg.gen_length, block, cfg.steps, remasking, rcr_score,
                       temperature=cfg.temperature, confidence=cfg.confidence, compute_dtype=cfg.compute_dtype)
        for block in drawn
    ]


def mined_block(record: dict) -> int | None:
    """The block length of a mined prompt's (first) Answer Backslide rollout, if mining recorded one."""
    mining = record.get("mining")
    return int(mining[0]["block_length"]) if mining and mining[0].get("block_length") else None


class MDPOTrainer(PolicyGradientTrainer):
    """G trajectory rollouts per prompt, every step's prediction rewarded, K steps trained on."""

    name = "mdpo"
    cfg: MDPOConfig

    def rollout(self, batch_index: int) -> Batch:
        setup, cfg, ids = self.setup, self.cfg, self.setup.ids
        P, G, K = min(cfg.prompts_per_update, len(self.records)), cfg.group_size, cfg.top_k_steps
        # The batch's prompts and rollout modes are drawn globally; each rank rolls out its share.
        all_prompts = sample_prompts(self.records, P, self.seed, batch_index)
        all_settings = rollout_settings(cfg, P * G, self.seed, batch_index,
                                        [mined_block(all_prompts[r // G]) for r in range(P * G)])
        local = local_share(list(range(P)), setup)
        prompts = [all_prompts[p] for p in local]
        settings = [all_settings[p * G + g] for p in local for g in range(G)]
        policy = setup.accelerator.unwrap_model(setup.model)
        with self.timed("sampling"):
            rollout = generate_groups(policy, setup.tokenizer, ids, prompts, G, settings,
                                      step_generator(self.seed, "mdpo-rollout", batch_index, setup.rank, device=model_device(policy)),
                                      setup.chat_template, True)
        with self.timed("scoring"):
            rewards = torch.from_numpy(score_trajectory(setup.tokenizer, ids, rollout, cfg.reward_processes, self.cache,
                                                        self.rewards))  # [p*G, T]
        n_prompts, T = len(prompts), rewards.shape[1]
        signal = rewards
        if cfg.null_signal:
            signal = permute_within_groups(rewards, G, step_generator(self.seed, "mdpo-null", batch_index, setup.rank))
        adv = step_advantages(step_scores(signal).view(n_prompts, G, T), cfg.adv_eps)
        chosen = select_steps(adv, K, cfg.step_selection)  # [p, G, K]
        x_t, targets, weights, sample_adv, p_idx, confidence = training_samples(rollout, adv, chosen, ids.mask)
        masked = x_t == ids.mask
        prompt_lists = [rollout.prompt_ids[int(p)] for p in p_idx]
        # Statistics of the rollout batch (all ranks), the same for each of its mu updates.
        all_rewards, all_adv = gather_rows(setup, rewards), gather_rows(setup, adv)
        final_r = all_rewards[:, -1]
        stats = dict(
            reward_mean=float(final_r.mean()), reward_std=float(final_r.std(correction=0)),
            step_reward_mean=float(all_rewards.mean()),
            any_step_correct=float((all_rewards.max(dim=1).values > 0).float().mean()),
            adv_abs_mean=float(all_adv.abs().mean()), adv_max=float(all_adv.abs().max()),
            adv_abs_mean_per_step=all_adv.abs().mean(dim=(0, 1)).tolist(),
            groups_with_signal=float((all_adv.abs().sum(dim=(1, 2)) > 0).float().mean()),
            groups_with_final_spread=float((final_r.view(-1, G).std(dim=1, correction=0) > 0).float().mean()),
            selected_steps=chosen.flatten().tolist(), trained_tokens=int(gather_rows(setup, masked.sum().view(1)).sum()),
            reward_cache_hits=self.cache.hits, reward_timeouts=self.cache.timeouts,
        )
        data = dict(x_t=x_t, targets=targets, weights=weights, adv=sample_adv, masked=masked, prompt_lists=prompt_lists,
                    confidence=confidence,
                    rows_all=len(p_idx) * setup.world)
        return Batch(row_chunks(setup, len(p_idx), cfg.micro_batch, prompt_lists), stats, data)

    def logps(self, model, batch: Batch, chunk: list[int], variant: int) -> torch.Tensor:
        d = batch.data
        seq, attn, width = build_sequences([d["prompt_lists"][j] for j in chunk], d["x_t"][chunk], self.setup.ids.pad)
        full_targets = torch.cat([seq[:, :width], d["targets"][chunk]], dim=1)
        return token_logps(model, seq, full_targets, attn, self.cfg.temperature, self.setup.ids.mask)[:, width:]

    def objective(self, logp, old, ref, batch: Batch, chunk: list[int]):
        d, cfg = batch.data, self.cfg
        loss, stats = mdpo_loss(logp, old, ref, d["adv"][chunk], d["weights"][chunk], d["masked"][chunk], cfg.clip_eps,
                                cfg.beta, cfg.kl_weight, d["confidence"][chunk])
        # Mean over all samples of all ranks; "sum" over the K steps of a rollout is K times that.
        reduction = cfg.top_k_steps if cfg.step_reduction == "sum" else 1
        return loss, stats, reduction * len(chunk) / d["rows_all"]


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
    rewards: RewardSettings | None = None,
) -> dict:
    records, source = read_train_records(train_files, allow_empty=True), "train"
    if not records and not fallback_files:
        raise ValueError(f"no training prompts in {train_files} (mining found no Answer Backslide samples; "
                         "set mining.fallback_to_all_data to train on all prompts instead)")
    if not records:
        # Only with mining.fallback_to_all_data (tiny presets whose base model solves nothing):
        # recorded in the metrics so the report can say the mined set was empty.
        log.warning("no Answer Backslide prompts in %s; training on the fallback %s", train_files, fallback_files)
        records, source = read_train_records(fallback_files), "fallback"
    trainer = MDPOTrainer.from_files(records, base_model=base_model, train_files=train_files, ckpt_dir=ckpt_dir,
                                     cfg=cfg, seed=seed, model_options=model_options, eval_files=eval_files,
                                     rewards=rewards, info={"train_prompts": len(records), "train_source": source})
    return trainer.run(out_dir, base_model)


def training_samples(rollout, adv: torch.Tensor, chosen: torch.Tensor, mask_id: int):
    """The training samples of one rollout batch: every (prompt p, k-th chosen step, rollout g), in
    that order, flattened to ``M = p*K*G`` rows; ``chosen`` ``[P, G, K]`` holds each rollout's steps.
    Returns ``(x_t, targets, weights, advantages, prompt index, confidence)``: input state, the step's
    full prediction as targets, ``lambda_t * conf_t`` token weights, the step's advantage ``A[p, g, t]``
    and ``conf_t`` itself."""
    P, G, K = chosen.shape
    p_idx = torch.arange(P).view(P, 1, 1).expand(P, K, G).reshape(-1)
    g_idx = torch.arange(G).view(1, 1, G).expand(P, K, G).reshape(-1)
    t_idx = chosen.permute(0, 2, 1).reshape(-1)  # [P, K, G] order
    rows = p_idx * G + g_idx
    x_t = rollout.x_t[t_idx, rows].long()
    targets = rollout.x0_hat[t_idx, rows].long()
    confidence = rollout.confidence[t_idx, rows].float()
    weights = token_weights(confidence, x_t == mask_id)
    return x_t, targets, weights, adv[p_idx, g_idx, t_idx].float(), p_idx, confidence
