"""The one update loop every trainer runs (the TRL pattern: one trainer per algorithm, shared
plumbing once).

An algorithm is a :class:`Trainer` subclass with two methods: :meth:`Trainer.prepare` builds the
batch of one update (or, for PPO-style trainers, of ``mu`` updates: rollouts, rewards, advantages
and samples), and :meth:`Trainer.chunk_loss` gives the loss of one micro-batch of it together with
the chunk's share of the update's objective. The loop below is written out nanoGPT-style and does
the rest for all of them: micro-batches balanced across ranks, gradient accumulation with
synchronisation after the last one, clipping, the optimizer step, metrics, held-out evaluation and
checkpoints. The direction tests (tests/test_trainer_direction.py) therefore cover the loop every
trainer uses.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field

import torch
from ..progress import progress as progress_bar

from ..rewards import RewardSettings
from .common import (TrainingSetup, backward, balanced_chunks, clip_and_step, end_of_update, global_mean,
                     load_eval_sets, log_eval, save_final, setup_training)
from .configs import TrainerConfig


@dataclass
class Batch:
    """What one prepared batch gives the loop: its micro-batches (row indices on this rank), the
    statistics logged with each of its updates, and whatever the algorithm needs for its loss."""

    chunks: list[list[int]]
    stats: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)


class Trainer:
    """Base of the trainers: subclasses implement :meth:`prepare` and :meth:`chunk_loss`."""

    name = "trainer"

    def __init__(self, setup: TrainingSetup, cfg: TrainerConfig, records: list[dict], seed: int,
                 eval_sets: dict[str, list[dict]], source: str = ""):
        self.setup, self.cfg, self.records, self.seed, self.eval_sets = setup, cfg, records, seed, eval_sets
        self.source = source  # where the records came from (named in messages about them)
        self.timings: dict[str, float] = {}  # seconds per part of the current update (logged as time_<part>_s)

    @classmethod
    def from_files(cls, records: list[dict], *, base_model: str, train_files: list[str], ckpt_dir: str,
                   cfg: TrainerConfig, seed: int = 0, model_options: dict | None = None,
                   eval_files: dict[str, str] | None = None, rewards: RewardSettings | None = None,
                   info: dict | None = None) -> "Trainer":
        """The trainer of ``records`` (read from ``train_files``) with what every trainer sets up the
        same way: the policy from ``base_model`` (and a frozen reference when ``cfg`` has a KL weight),
        the checkpoint in ``ckpt_dir`` it resumes from, the run's fingerprint and config record
        (``info`` added), and the validation sets of its curve."""
        setup = setup_training(base_model, ckpt_dir, cfg, getattr(cfg, "beta", 0.0), model_options, info,
                               data_files=train_files, rewards=rewards)
        return cls(setup, cfg, records, seed, load_eval_sets(eval_files or {}, cfg.eval_problems),
                   source=", ".join(train_files))

    @contextlib.contextmanager
    def timed(self, part: str):
        """Add the wall time of the block to ``part`` of the current update (where an update's time goes)."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings[part] = self.timings.get(part, 0.0) + time.perf_counter() - t0

    # ---------------------------------------------------------------- what an algorithm provides
    def prepare(self, batch_index: int) -> Batch:
        raise NotImplementedError

    def chunk_loss(self, batch: Batch, chunk: list[int], iteration: int) -> tuple[torch.Tensor, dict[str, float], float]:
        """``(loss, stats, share)``: the micro-batch's loss, its statistics, and its share of the
        update's objective over all ranks (the shares of all ranks' chunks sum to 1)."""
        raise NotImplementedError

    def after_update(self, update: int) -> None:
        """Hook after each optimizer step (e.g. a reference-model sync)."""

    # ---------------------------------------------------------------- the loop
    def run(self, out_dir: str, base_model: str) -> dict:
        setup, cfg = self.setup, self.cfg
        update = setup.start_update
        if update == 0:
            log_eval(setup, self.eval_sets, cfg, 0, self.seed)
        bar = progress_bar(total=cfg.updates, initial=update, desc=self.name, mininterval=5, disable=not setup.is_main)
        while update < cfg.updates:
            t0 = time.time()
            self.timings = {}
            # Checkpoints fall on batch boundaries (checkpoint_every is a multiple of mu); the last
            # batch gives fewer updates when updates is not a multiple of mu.
            batch = self.prepare(update // cfg.iterations)
            prepare_seconds = time.time() - t0
            passes = balanced_chunks(setup, batch.chunks)
            for iteration in range(min(cfg.iterations, cfg.updates - update)):
                t1 = time.time()
                if iteration:
                    self.timings = {}  # the batch's preparation is counted in its first update only
                sums: dict[str, float] = {}
                with self.timed("forward_backward"):
                    for i, (chunk, weight) in enumerate(passes):
                        loss, stats, share = self.chunk_loss(batch, chunk, iteration)
                        share *= weight
                        # DDP averages gradients over the ranks: scale by the world size so that the
                        # gradient is that of the global objective.
                        backward(setup, loss * (share * setup.world), last=i == len(passes) - 1)
                        for key, value in {"loss": float(loss.detach()), **stats}.items():
                            sums[key] = sums.get(key, 0.0) + value * share
                with self.timed("optimizer"):
                    grad_norm = clip_and_step(setup, cfg.grad_clip)
                update += 1
                bar.update(1)
                seconds = time.time() - t1 + (prepare_seconds if iteration == 0 else 0.0)
                # Each rank holds its chunks' share of the global objective: totals are sums over ranks.
                totals = {k: v * setup.world for k, v in global_mean(setup, sums).items()}
                tokens = batch.stats.get("trained_tokens") or totals.get("trained_tokens", 0)
                setup.metrics.log(event="update", update=update, grad_norm=grad_norm, lr=setup.scheduler.get_last_lr()[0],
                                  seconds=seconds, tokens_per_s=tokens / max(seconds, 1e-9), **batch.stats, **totals,
                                  **{f"time_{part}_s": value for part, value in self.timings.items()})
                shown = {k: f"{batch.stats[k]:.2f}" for k in ("reward_mean",) if k in batch.stats}
                bar.set_postfix(loss=f"{totals.get('loss', 0.0):.3f}", **shown)
                self.after_update(update)
                end_of_update(setup, self.eval_sets, cfg, update, self.seed)
        bar.close()
        save_final(setup, out_dir, base_model)
        return {"updates": update}
