"""Binary task rewards (1.0 correct / 0.0 otherwise) for countdown and math.

Importing this package is cheap: math_verify (sympy, ~0.5 s) is only imported by the
math worker processes (and by :func:`score_math_text` on first use), never for
countdown scoring or text extraction.  ``RewardSettings`` holds every switch and deadline.
"""

from __future__ import annotations

from maskdiff.rewards.countdown import countdown_reward, extract_countdown_answer
from maskdiff.rewards.math import (
    canonical_math_text,
    extract_math_answer,
    math_text,
    score_math_text,
)
from maskdiff.rewards.scorer import TASKS, RewardCache, math_reward, score_completions
from maskdiff.rewards.settings import RewardSettings
from maskdiff.rewards.workers import pool_stats, shutdown_pool, warm_up, worker_pids

__all__ = [
    "TASKS",
    "RewardCache",
    "RewardSettings",
    "canonical_math_text",
    "countdown_reward",
    "extract_countdown_answer",
    "extract_math_answer",
    "math_reward",
    "math_text",
    "pool_stats",
    "score_completions",
    "score_math_text",
    "shutdown_pool",
    "warm_up",
    "worker_pids",
]
