"""Deterministic random streams.

Every stage takes a seed; each consumer derives its own generator from (seed, purpose, index) so
results do not depend on the order in which other consumers drew numbers, and a resumed job sees
exactly the stream an uninterrupted job would have seen.
"""

from __future__ import annotations

import hashlib
import random

import numpy as np
import torch


def derive_seed(seed: int, *parts: object) -> int:
    """A 63-bit seed from a base seed and any labels (stable across processes and Python runs)."""
    text = "/".join([str(seed), *map(str, parts)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") & ((1 << 63) - 1)


def step_generator(seed: int, *parts: object, device: str | torch.device = "cpu") -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(derive_seed(seed, *parts))
    return g


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (1 << 32))
    torch.manual_seed(seed)
