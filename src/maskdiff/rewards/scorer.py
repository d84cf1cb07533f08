"""Batch reward scoring for hot paths (every denoising step of every rollout).

Many completions share a final answer (consecutive denoising steps rarely change it),
so we reduce each completion to a cache key ``(task, reference, settings that change
the score, answer)`` and score each unique key once, optionally reusing a
:class:`RewardCache` across training steps.

Countdown scoring is microseconds of bounded pure Python: always in-process.  Math
scoring (sympy via ``math_verify``) is ~1 ms to seconds per answer, relies on
``signal.alarm`` and can stall in C code, so it always runs in the persistent worker
processes of ``maskdiff.rewards.workers``, under a per-answer and a per-batch deadline
(``RewardSettings.answer_timeout_s`` / ``batch_timeout_s``) enforced from this process.

Timeouts: an answer left unscored (per-answer bound, batch deadline, a worker that died
twice on it) scores 0 and is counted in ``RewardCache.timeouts`` (unique answers,
cumulative over the calls that used the cache; trainers log it as ``reward_timeouts``)
and in ``pool_stats()["timeouts"]`` (process-wide).  It is not cached the first time: a
timeout may be the machine's fault (a stopped or starved worker), not the answer's, so
the next batch that meets it tries again.  An answer that runs past the per-answer bound
a second time (in any batch using the same cache) is slow, not unlucky: it is cached as
0 so it stops costing ``answer_timeout_s`` per batch.  Answers the batch deadline left
unfinished are never cached.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Hashable, Sequence

import numpy as np

from maskdiff.rewards.countdown import extract_countdown_answer, score_countdown_answer
from maskdiff.rewards.math import math_text, score_math_text, simple_value
from maskdiff.rewards.settings import DEFAULT_SETTINGS, RewardSettings
from maskdiff.rewards.workers import get_pool, pool_stats, shutdown_pool, worker_pids

log = logging.getLogger(__name__)

TASKS = ("countdown", "math")
POOL_MIN_KEYS = 256  # up to this many unique math answers use one worker; more use `processes`
MAX_KEY_CHARS = 256  # longer verifier inputs are keyed by a 16-byte digest (bounded cache memory)

_MISSING = object()
__all__ = ["POOL_MIN_KEYS", "TASKS", "RewardCache", "math_reward", "pool_stats", "score_completions", "shutdown_pool",
           "worker_pids"]


class RewardCache:
    """Dict-backed memo of ``key -> reward`` with hit/miss counters.

    Bounded FIFO (dicts keep insertion order) so a long training run cannot grow it
    without limit; ``max_entries=None`` disables eviction.
    """

    def __init__(self, max_entries: int | None = 1_000_000) -> None:
        self.max_entries = max_entries
        self.hits = 0
        self.misses = 0
        self.timeouts = 0  # unique answers left unscored (scored 0)
        self._data: dict[Hashable, float] = {}
        self._strikes: dict[Hashable, int] = {}  # keys that ran past the per-answer bound once

    def get(self, key: Hashable) -> float | None:
        value = self._data.get(key, _MISSING)
        if value is _MISSING:
            self.misses += 1
            return None
        self.hits += 1
        return value  # type: ignore[return-value]

    def put(self, key: Hashable, value: float) -> None:
        self._data[key] = float(value)
        if self.max_entries is not None:
            while len(self._data) > self.max_entries:
                del self._data[next(iter(self._data))]

    def strike(self, key: Hashable) -> bool:
        """Record that ``key`` ran past the per-answer bound; True the second time (cache it as 0)."""
        if self._strikes.pop(key, 0) >= 1:
            return True
        self._strikes[key] = 1
        if self.max_entries is not None:
            while len(self._strikes) > self.max_entries:
                del self._strikes[next(iter(self._strikes))]
        return False

    def __contains__(self, key: Hashable) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)

    def clear(self) -> None:
        self._data.clear()
        self._strikes.clear()
        self.hits = self.misses = self.timeouts = 0

    def stats(self) -> dict[str, int]:
        return {"entries": len(self._data), "hits": self.hits, "misses": self.misses, "timeouts": self.timeouts}


# ---------------------------------------------------------------- math scoring
_FALLBACK_WARNED = False


def _score_math_items(
    items: list[tuple[str, str, str]], processes: int, pool_min_keys: int, settings: RewardSettings
) -> tuple[list[float], list[int]]:
    """``(scores, unscored, struck)`` (see ``WorkerPool.score``) from the worker pool; in-process
    only if no worker can be started here (e.g. inside a daemonic process), bounded then by
    math_verify's alarms."""
    global _FALLBACK_WARNED
    workers = processes if processes > 1 and len(items) > pool_min_keys else 1
    try:
        return get_pool().score(items, workers, settings.answer_timeout_s, settings.batch_timeout_s)
    except Exception as exc:  # noqa: BLE001 - cannot start workers: degrade, loudly once
        if not _FALLBACK_WARNED:
            log.warning("math reward workers unavailable (%s); scoring in-process without a hard deadline", exc)
            _FALLBACK_WARNED = True
    return [score_math_text(*item) for item in items], [], []


def _math_key(text: str) -> Hashable:
    if len(text) <= MAX_KEY_CHARS:
        return text
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


# ---------------------------------------------------------------- public entry point
def _reference_key(task: str, ref: dict) -> tuple[str, object]:
    """Canonical reference identity plus the payload the scorer needs."""
    try:
        if task == "countdown":
            numbers = [int(n) for n in ref["numbers"]]
            target = float(ref["target"])
            return f"{sorted(numbers)}={target!r}", (numbers, target)
        answer = str(ref["answer"]).strip()
        return answer, answer
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"malformed {task} reference {ref!r}: {exc}") from exc


def score_completions(
    task: str,
    completions: Sequence[str],
    references: Sequence[dict],
    processes: int = 0,
    chunk_size: int = 256,
    cache: RewardCache | None = None,
    pool_min_keys: int = POOL_MIN_KEYS,
    settings: RewardSettings | None = None,
) -> np.ndarray:
    """Binary rewards (float32 0/1), one per completion; ``references[i]`` goes with ``completions[i]``.

    ``processes``: math worker processes for batches of more than ``pool_min_keys`` unique
    answers (smaller batches, and ``processes`` <= 1, use one worker).  ``chunk_size`` is
    unused (kept for callers): workers take one answer at a time so each has a deadline.
    ``settings`` (None = ``RewardSettings()``) chooses the reward rules and deadlines.
    Raises ValueError only for caller bugs (unknown task, length mismatch, malformed
    reference); model output can never make this raise.
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; valid choices: {', '.join(TASKS)}")
    if len(completions) != len(references):
        raise ValueError(
            f"{len(completions)} completions but {len(references)} references"
        )
    settings = settings or DEFAULT_SETTINGS
    if cache is None:
        cache = RewardCache(max_entries=None)
    rule = settings.math_rule
    unclosed = settings.countdown_unclosed_box
    score_key = settings.score_key(task)

    rewards = np.zeros(len(completions), dtype=np.float32)
    pending: dict[tuple, list[int]] = {}  # uncached key -> completion indices
    payloads: dict[tuple, tuple] = {}
    ref_keys: dict[int, tuple[str, object]] = {}
    for i, (completion, ref) in enumerate(zip(completions, references)):
        if not isinstance(completion, str):
            continue
        answer = extract_countdown_answer(completion, unclosed) if task == "countdown" else math_text(completion, rule)
        if answer is None:
            continue  # scores 0 without touching the verifier or the cache
        ref_id = id(ref)
        if ref_id not in ref_keys:
            ref_keys[ref_id] = _reference_key(task, ref)
        ref_key, payload = ref_keys[ref_id]
        key = (task, ref_key, score_key, answer if task == "countdown" else _math_key(answer))
        if key in pending:
            pending[key].append(i)
            cache.hits += 1  # in-batch duplicate: served without a verifier call
            continue
        cached = cache.get(key)
        if cached is not None:
            rewards[i] = cached
        else:
            pending[key] = [i]
            payloads[key] = (answer, payload)

    keys = list(pending)
    unscored: list[int] = []
    struck: list[int] = []
    if task == "countdown":
        unary = settings.countdown_unary_minus
        scores = [score_countdown_answer(payloads[k][0], *payloads[k][1], unary) for k in keys]  # type: ignore[misc]
    elif keys:
        scores = [None] * len(keys)
        if rule == "lenient":  # integers and fractions against a numeric gold: exact, in-process
            for j, k in enumerate(keys):
                answer, gold = payloads[k]
                pred, ref = simple_value(answer), simple_value(str(gold))
                if pred is not None and ref is not None:
                    scores[j] = 1.0 if pred == ref else 0.0
        rest = [j for j, score in enumerate(scores) if score is None]
        items = [(*payloads[keys[j]], rule) for j in rest]
        verified, unscored_rest, struck_rest = (_score_math_items(items, processes, pool_min_keys, settings)
                                                if items else ([], [], []))
        for j, score in zip(rest, verified):
            scores[j] = score
        unscored, struck = [rest[j] for j in unscored_rest], [rest[j] for j in struck_rest]
    else:
        scores = []
    skip = set(unscored) - {j for j in struck if cache.strike(keys[j])}  # second strike: cache the 0
    cache.timeouts += len(unscored)
    for j, (key, score) in enumerate(zip(keys, scores)):
        if j not in skip:
            cache.put(key, score)
        rewards[pending[key]] = score
    return rewards


def math_reward(completion: str, gold: str, settings: RewardSettings | None = None) -> float:
    """1.0 iff the completion's final answer is mathematically equal to ``gold``.

    One completion through :func:`score_completions`: scored in the worker processes, so the call
    is bounded by ``settings.answer_timeout_s`` from any thread; never raises.
    """
    try:
        return float(score_completions("math", [completion], [{"answer": gold}], settings=settings)[0])
    except Exception:  # noqa: BLE001
        return 0.0
