"""Transfer schedules: how many tokens of a block become unmasked at each denoising step.

* ``even`` (LLaDA): ``n // steps`` per step, the remainder going to the first steps.
* ``linear`` (MaskGIT-style, as in the MDPO code): cumulative ``n - floor(n * (1 - (i+1)/S))``.
* ``cosine`` (MaskGIT): cumulative ``n - floor(n * cos(pi/2 * (i+1)/S))``.

All return an integer tensor ``[..., steps]`` that sums to ``n`` exactly, batched over rows whose
number of masked tokens may differ.
"""

from __future__ import annotations

import math

import torch

SCHEDULES = ("even", "linear", "cosine")


def transfer_counts(n_masked: torch.Tensor | int, steps: int, kind: str = "even") -> torch.Tensor:
    """Tokens to unmask at each of ``steps`` steps for ``n_masked`` (scalar or ``[B]``) masked tokens."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    n = torch.as_tensor(n_masked, dtype=torch.long)
    if kind == "even":
        base = (n // steps).unsqueeze(-1).expand(*n.shape, steps)
        remainder = (n % steps).unsqueeze(-1)
        return base + (torch.arange(steps) < remainder).long()
    if kind not in SCHEDULES:
        raise ValueError(f"unknown schedule {kind!r}; choose one of {SCHEDULES}")
    frac = torch.arange(1, steps + 1, dtype=torch.float64) / steps
    remaining_frac = (1 - frac) if kind == "linear" else torch.cos(math.pi / 2 * frac)
    remaining_frac[-1] = 0.0  # exact end point (cos(pi/2) is not exactly 0 in floating point)
    cumulative = n.unsqueeze(-1) - torch.floor(n.unsqueeze(-1).double() * remaining_frac).long()
    previous = torch.cat([torch.zeros_like(cumulative[..., :1]), cumulative[..., :-1]], dim=-1)
    return cumulative - previous
