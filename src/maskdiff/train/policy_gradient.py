"""What the policy-gradient trainers (diffu-GRPO, MDPO) share on top of the update loop: old and
reference log-probabilities computed once per rollout batch, before any of its ``mu`` updates, the
PPO ratio against them, and the rollout-budget bookkeeping.

A subclass provides :meth:`PolicyGradientTrainer.rollout` (samples of one batch on this rank),
:meth:`PolicyGradientTrainer.logps` (log-probabilities of a chunk's targets under a model, for one
input variant) and :meth:`PolicyGradientTrainer.objective` (the algorithm's loss of a chunk).
"""

from __future__ import annotations

import torch

from ..rewards import RewardCache
from .configs import RLConfig
from .trainer import Batch, Trainer


def clipped_surrogate(ratio: torch.Tensor, advantages: torch.Tensor, clip_eps: float) -> torch.Tensor:
    """PPO's clipped surrogate per token, min(r A, clip(r, 1 - eps, 1 + eps) A), with the policy
    ratio ``r`` per token and the advantage ``A`` per row (diffu-GRPO's and MDPO's objective)."""
    adv = advantages.unsqueeze(-1)
    return torch.minimum(ratio * adv, ratio.clamp(1 - clip_eps, 1 + clip_eps) * adv)


@torch.no_grad()
def ratio_stats(ratio: torch.Tensor, kl: torch.Tensor, maskf: torch.Tensor, clip_eps: float) -> dict[str, float]:
    """Token means over ``maskf`` of the KL term, the clipped share of ratios and the ratio."""
    total = maskf.sum().clamp(min=1)
    return {
        "kl": float((kl * maskf).sum() / total),
        "clip_fraction": float((((ratio - 1).abs() > clip_eps).float() * maskf).sum() / total),
        "ratio_mean": float((ratio * maskf).sum() / total),
    }


class PolicyGradientTrainer(Trainer):
    cfg: RLConfig

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.cache = RewardCache()
        self.rewards = self.setup.rewards

    # ---------------------------------------------------------------- what an algorithm provides
    def rollout(self, batch_index: int) -> Batch:
        raise NotImplementedError

    def input_variant(self, iteration: int) -> int:
        """Which input variant iteration ``iteration`` trains on (diffu-GRPO re-masks the prompt in
        each iteration; MDPO's inputs are the trajectory states, the same in every iteration)."""
        return 0

    def logps(self, model: torch.nn.Module, batch: Batch, chunk: list[int], variant: int) -> torch.Tensor:
        raise NotImplementedError

    def objective(self, logp: torch.Tensor, old: torch.Tensor, ref: torch.Tensor | None, batch: Batch,
                  chunk: list[int]) -> tuple[torch.Tensor, dict[str, float], float]:
        raise NotImplementedError

    # ---------------------------------------------------------------- shared
    def prepare(self, batch_index: int) -> Batch:
        batch = self.rollout(batch_index)
        cfg, setup = self.cfg, self.setup
        sequences = cfg.prompts_per_update * cfg.group_size * (batch_index + 1)
        batch.stats |= {"rollout_sequences": sequences, "rollout_nfe": sequences * cfg.steps}
        policy = setup.accelerator.unwrap_model(setup.model)
        batch.data["old"], batch.data["ref"] = {}, {}
        with self.timed("old_ref_logps"):
            for variant in sorted({self.input_variant(it) for it in range(cfg.mu)}):
                # With mu = 1 the ratio is 1 by construction: the old log-probs are the current ones.
                batch.data["old"][variant] = self._all_logps(policy, batch, variant) if cfg.mu > 1 else None
                batch.data["ref"][variant] = (self._all_logps(setup.ref_model, batch, variant)
                                              if setup.ref_model is not None else None)
        return batch

    @torch.no_grad()
    def after_update(self, update: int) -> None:
        """Every ``ref_sync_every`` updates the frozen reference moves towards the policy (see RLConfig)."""
        every, ref = self.cfg.ref_sync_every, self.setup.ref_model
        if not every or ref is None or update % every:
            return
        alpha = self.cfg.ref_sync_alpha
        policy = self.setup.accelerator.unwrap_model(self.setup.model)
        for target, source in zip(ref.parameters(), policy.parameters()):
            target.mul_(1.0 - alpha).add_(source.detach().to(target.device, target.dtype), alpha=alpha)

    def chunk_loss(self, batch: Batch, chunk: list[int], iteration: int):
        variant = self.input_variant(iteration)
        logp = self.logps(self.setup.model, batch, chunk, variant)
        old, ref = batch.data["old"][variant], batch.data["ref"][variant]
        old = old[chunk] if old is not None else logp.detach()
        ref = ref[chunk] if ref is not None else None
        return self.objective(logp, old, ref, batch, chunk)

    @torch.no_grad()
    def _all_logps(self, model: torch.nn.Module, batch: Batch, variant: int) -> torch.Tensor:
        parts = {}
        for chunk in batch.chunks:
            parts[tuple(chunk)] = self.logps(model, batch, chunk, variant).float().cpu()
        rows = sum(len(c) for c in batch.chunks)
        width = next(iter(parts.values())).shape[1]
        out = torch.empty((rows, width), dtype=torch.float32)
        for chunk, values in parts.items():
            out[list(chunk)] = values
        return out
