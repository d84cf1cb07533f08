"""Batch reward scoring for hot paths (every denoising step of every rollout).

Many completions share a final answer (consecutive denoising steps rarely change it),
so we reduce each completion to a cache key ``(task, reference, answer)`` and score
each unique key once, optionally reusing a :class:`RewardCache` across training steps.

Countdown scoring is microseconds of pure Python: always in-process.  Math scoring
(sympy via ``math_verify``) is ~1 ms to seconds per answer and relies on
``signal.alarm`` timeouts, which only fire in a process's main thread; large batches
therefore go to a persistent process pool whose workers run tasks in their main
thread.  The pool uses the "forkserver" start method rather than "fork": the parent
usually holds torch with live OpenMP/intra-op thread pools, and forking a
multi-threaded process can deadlock the child on locks held by threads that were not
copied.  A forkserver forks workers from a clean single-threaded server (cheaper than
"spawn", which would re-import everything per worker).
"""

from __future__ import annotations

import atexit
import math
import multiprocessing
from collections.abc import Hashable, Sequence
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from maskdiff.rewards.countdown import extract_countdown_answer, score_countdown_answer

TASKS = ("countdown", "math")
POOL_MIN_KEYS = 256  # below this, pool start-up/IPC costs more than it saves

_MISSING = object()


class RewardCache:
    """Dict-backed memo of ``key -> reward`` with hit/miss counters.

    Bounded FIFO (dicts keep insertion order) so a long training run cannot grow it
    without limit; ``max_entries=None`` disables eviction.
    """

    def __init__(self, max_entries: int | None = 1_000_000) -> None:
        self.max_entries = max_entries
        self.hits = 0
        self.misses = 0
        self._data: dict[Hashable, float] = {}

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

    def __contains__(self, key: Hashable) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)

    def clear(self) -> None:
        self._data.clear()
        self.hits = self.misses = 0

    def stats(self) -> dict[str, int]:
        return {"entries": len(self._data), "hits": self.hits, "misses": self.misses}


# ---------------------------------------------------------------- math worker pool
_POOL: ProcessPoolExecutor | None = None
_POOL_SIZE = 0


def _math_worker(items: list[tuple[str, str]]) -> list[float]:
    """Module-level (picklable) worker: scores (canonical_text, gold) pairs."""
    from maskdiff.rewards.math import score_math_text

    return [score_math_text(text, gold) for text, gold in items]


def _get_pool(processes: int) -> ProcessPoolExecutor:
    global _POOL, _POOL_SIZE
    if _POOL is None or _POOL_SIZE != processes:
        shutdown_pool()
        context = multiprocessing.get_context("forkserver")
        _POOL = ProcessPoolExecutor(max_workers=processes, mp_context=context)
        _POOL_SIZE = processes
    return _POOL


def shutdown_pool() -> None:
    """Stop the persistent math worker pool (also registered with atexit)."""
    global _POOL, _POOL_SIZE
    if _POOL is not None:
        _POOL.shutdown(wait=True, cancel_futures=True)
    _POOL, _POOL_SIZE = None, 0


atexit.register(shutdown_pool)


def _score_math_items(
    items: list[tuple[str, str]], processes: int, chunk_size: int, pool_min_keys: int
) -> list[float]:
    from maskdiff.rewards.math import score_math_text

    if processes > 1 and len(items) > pool_min_keys:
        size = max(1, min(chunk_size, math.ceil(len(items) / processes)))
        chunks = [items[i : i + size] for i in range(0, len(items), size)]
        try:
            pool = _get_pool(processes)
            return [r for chunk in pool.map(_math_worker, chunks) for r in chunk]
        except Exception:  # noqa: BLE001 - broken pool etc.: degrade to in-process
            shutdown_pool()
    return [score_math_text(text, gold) for text, gold in items]


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
) -> np.ndarray:
    """Binary rewards (float32 0/1), one per completion; ``references[i]`` goes with ``completions[i]``.

    Raises ValueError only for caller bugs (unknown task, length mismatch, malformed
    reference); model output can never make this raise.
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; valid choices: {', '.join(TASKS)}")
    if len(completions) != len(references):
        raise ValueError(
            f"{len(completions)} completions but {len(references)} references"
        )
    if cache is None:
        cache = RewardCache(max_entries=None)
    if task == "math":
        from maskdiff.rewards.math import canonical_math_text as extract
    else:
        extract = extract_countdown_answer

    rewards = np.zeros(len(completions), dtype=np.float32)
    pending: dict[tuple, list[int]] = {}  # uncached key -> completion indices
    payloads: dict[tuple, object] = {}
    ref_keys: dict[int, tuple[str, object]] = {}
    for i, (completion, ref) in enumerate(zip(completions, references)):
        answer = extract(completion) if isinstance(completion, str) else None
        if answer is None:
            continue  # scores 0 without touching the verifier or the cache
        ref_id = id(ref)
        if ref_id not in ref_keys:
            ref_keys[ref_id] = _reference_key(task, ref)
        ref_key, payload = ref_keys[ref_id]
        key = (task, ref_key, answer)
        if key in pending:
            pending[key].append(i)
            cache.hits += 1  # in-batch duplicate: served without a verifier call
            continue
        cached = cache.get(key)
        if cached is not None:
            rewards[i] = cached
        else:
            pending[key] = [i]
            payloads[key] = payload

    keys = list(pending)
    if task == "countdown":
        scores = [score_countdown_answer(k[2], *payloads[k]) for k in keys]  # type: ignore[misc]
    else:
        items = [(k[2], payloads[k]) for k in keys]
        scores = _score_math_items(items, processes, chunk_size, pool_min_keys)  # type: ignore[arg-type]
    for key, score in zip(keys, scores):
        cache.put(key, score)
        rewards[pending[key]] = score
    return rewards
