"""Binary task rewards (1.0 correct / 0.0 otherwise) for countdown and math.

The math reward pulls in sympy via math_verify (~0.5 s import), so it is loaded lazily:
importing this package for countdown scoring stays cheap, and so do pool workers.
"""

from __future__ import annotations

from typing import Any

from maskdiff.rewards.countdown import countdown_reward, extract_countdown_answer
from maskdiff.rewards.scorer import TASKS, RewardCache, score_completions, shutdown_pool

_LAZY_MATH = ("math_reward", "extract_math_answer", "canonical_math_text")

__all__ = [
    "TASKS",
    "RewardCache",
    "canonical_math_text",
    "countdown_reward",
    "extract_countdown_answer",
    "extract_math_answer",
    "math_reward",
    "score_completions",
    "shutdown_pool",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY_MATH:
        from maskdiff.rewards import math as _math

        return getattr(_math, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
