"""Learning-rate schedules: linear warm-up, then constant, linear decay to zero (Hugging Face's
``linear``), or cosine decay to a floor."""

from __future__ import annotations

import math

import torch


DECAYS = ("constant", "linear", "cosine")


def warmup_lr_lambda(total_steps: int, warmup_steps: int, decay: str = "cosine", min_ratio: float = 0.1):
    if decay not in DECAYS:
        raise ValueError(f"unknown lr decay {decay!r}; choose one of {', '.join(DECAYS)}")

    def factor(step: int) -> float:
        if warmup_steps and step < warmup_steps:
            return (step + 1) / warmup_steps
        if decay == "constant":
            return 1.0
        if decay == "linear":
            return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def build_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int, decay: str, min_ratio: float):
    return torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_lr_lambda(total_steps, warmup_steps, decay, min_ratio))
