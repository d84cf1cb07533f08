"""No reward call can stall a run: faults injected into the math worker processes.

Each test is bounded by its own deadlines (a few seconds); the slow answer is a real
one, ``\\boxed{9^{9^{9^{9}}}}`` (math-verify spends ~3 s on it before its own alarm, and
in a non-main thread it used to freeze the process for minutes).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from maskdiff.rewards import (
    RewardCache,
    RewardSettings,
    math_reward,
    pool_stats,
    score_completions,
    shutdown_pool,
    warm_up,
    worker_pids,
)
from maskdiff.rewards.workers import get_pool

TOWER = "\\boxed{9^{9^{9^{9}}}}"


def _batch(n: int, offset: int = 0) -> tuple[list[str], list[dict]]:
    """n distinct, correct, quick answers (\\dfrac: verified in the workers, not the fast path)."""
    texts = [f"\\boxed{{\\dfrac{{{k + 1}}}{{{k + 2}}}}}" for k in range(offset, offset + n)]
    return texts, [{"answer": f"\\frac{{{k + 1}}}{{{k + 2}}}"} for k in range(offset, offset + n)]


def _gone(pid: int, within: float = 5.0) -> bool:
    end = time.monotonic() + within
    while time.monotonic() < end:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(")")[-1].split()[0] == "Z":  # a zombie is dead
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


def _warm(processes: int) -> list[int]:
    texts, refs = _batch(2 * processes, offset=10_000 + 100 * processes)
    score_completions("math", texts, refs, processes=processes, pool_min_keys=0)
    pids = worker_pids()
    assert len(pids) >= processes
    return pids


def _signal_worker_when_busy(sig: int, item_at_least: int) -> tuple[threading.Thread, list[int]]:
    """Send ``sig`` to the first worker seen holding an item >= ``item_at_least`` (mid-batch)."""
    hit: list[int] = []

    def watch() -> None:
        end = time.monotonic() + 15
        while time.monotonic() < end and not hit:
            for worker in list(get_pool().workers):
                if worker.item >= item_at_least and worker.proc.pid:
                    os.kill(worker.proc.pid, sig)
                    hit.append(worker.proc.pid)
                    return
            time.sleep(0.0005)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread, hit


def test_sigstopped_worker_mid_batch_times_out_and_is_replaced() -> None:
    _warm(2)
    settings = RewardSettings(answer_timeout_s=1.5, batch_timeout_s=30.0)
    texts, refs = _batch(200)
    cache = RewardCache()
    before = pool_stats()
    watcher, stopped = _signal_worker_when_busy(signal.SIGSTOP, item_at_least=10)
    start = time.monotonic()
    out = score_completions("math", texts, refs, processes=2, pool_min_keys=0, cache=cache, settings=settings)
    elapsed = time.monotonic() - start
    watcher.join()
    assert stopped, "the batch ended before the worker could be stopped"
    assert elapsed < 15
    # Exactly the answer the stopped worker held scores 0, is counted, and is not cached.
    assert out.sum() == len(texts) - 1 and cache.timeouts == 1 and len(cache) == len(texts) - 1
    after = pool_stats()
    assert after["timeouts"] - before["timeouts"] == 1 and after["restarts"] > before["restarts"]
    assert stopped[0] not in worker_pids() and _gone(stopped[0])
    # The next batch works (the stopped worker was killed and replaced), and the timed-out
    # answer, not cached, is scored now.
    again = score_completions("math", texts, refs, processes=2, pool_min_keys=0, cache=cache, settings=settings)
    assert again.sum() == len(texts) and cache.timeouts == 1


def test_slow_answer_is_bounded_and_cached_at_its_second_timeout() -> None:
    _warm(1)
    settings = RewardSettings(answer_timeout_s=1.0, batch_timeout_s=30.0)
    texts, refs = _batch(3)
    cache = RewardCache()
    for timeouts in (1, 2):  # not cached after one timeout (it may be the machine's fault) ...
        start = time.monotonic()
        out = score_completions("math", [TOWER, *texts], [{"answer": "1"}, *refs], cache=cache, settings=settings)
        assert time.monotonic() - start < 6
        assert out.tolist() == [0.0, 1.0, 1.0, 1.0] and cache.timeouts == timeouts
    assert len(cache) == 4  # ... but cached as 0 after the second: it is the answer's fault
    answers = pool_stats()["answers"]
    start = time.monotonic()
    assert score_completions("math", [TOWER], [{"answer": "1"}], cache=cache, settings=settings).tolist() == [0.0]
    assert time.monotonic() - start < 0.5 and pool_stats()["answers"] == answers and cache.timeouts == 2


def test_batch_deadline_scores_the_rest_zero() -> None:
    _warm(2)
    settings = RewardSettings(answer_timeout_s=15.0, batch_timeout_s=1.0)
    towers = [f"\\boxed{{{k}^{{9^{{9^{{9}}}}}}}}" for k in range(2, 8)]  # ~3 s each, 6 of them
    cache = RewardCache()
    before = pool_stats()["timeouts"]
    start = time.monotonic()
    out = score_completions("math", towers, [{"answer": "1"}] * 6, processes=2, pool_min_keys=0, cache=cache,
                            settings=settings)
    assert time.monotonic() - start < 3.5
    assert out.tolist() == [0.0] * 6 and cache.timeouts == 6 and len(cache) == 0
    assert pool_stats()["timeouts"] - before == 6
    texts, refs = _batch(4, offset=500)  # workers killed at the deadline restart on demand
    assert score_completions("math", texts, refs, processes=2, pool_min_keys=0).sum() == 4


def test_sigkilled_worker_is_replaced() -> None:
    pids = _warm(2)
    os.kill(pids[0], signal.SIGKILL)  # dies while idle: the next send finds it gone
    assert _gone(pids[0])
    texts, refs = _batch(40, offset=1000)
    cache = RewardCache()
    assert score_completions("math", texts, refs, processes=2, pool_min_keys=0, cache=cache).sum() == 40
    assert cache.timeouts == 0 and pids[0] not in worker_pids()
    # Killed mid-batch: its answer is retried once on the replacement, so nothing is lost.
    texts, refs = _batch(200, offset=2000)
    watcher, killed = _signal_worker_when_busy(signal.SIGKILL, item_at_least=10)
    out = score_completions("math", texts, refs, processes=2, pool_min_keys=0, cache=cache)
    watcher.join()
    assert killed and out.sum() == 200 and cache.timeouts == 0
    assert killed[0] not in worker_pids() and len(worker_pids()) >= 2


def test_math_reward_off_the_main_thread_is_bounded() -> None:
    results: dict[str, float] = {}

    def run() -> None:  # default settings: bounded by the default answer_timeout_s (2 s)
        results["tower"] = math_reward(TOWER, "1")
        results["ok"] = math_reward("\\boxed{\\frac{2}{4}}", "\\frac{1}{2}")

    thread = threading.Thread(target=run, daemon=True)
    start = time.monotonic()
    thread.start()
    thread.join(timeout=15)
    assert not thread.is_alive(), "math_reward froze in a thread"
    assert time.monotonic() - start < 8
    assert results == {"tower": 0.0, "ok": 1.0}


def test_warm_up_and_oversized_messages() -> None:
    shutdown_pool()
    warm_up(2).join(timeout=30)
    assert len(worker_pids()) == 2
    cache = RewardCache()
    huge = "The answer is \\boxed{1} " + "\U0001f600" * 19_000  # under the char cap, over the message cap
    out = score_completions("math", [huge, "\\boxed{1}"], [{"answer": "1"}] * 2, cache=cache,
                            settings=RewardSettings(math_rule="released"))
    assert out.tolist() == [0.0, 1.0] and cache.timeouts == 0 and len(cache) == 2  # 0, deterministic: cached


def test_no_workers_falls_back_to_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """E.g. inside a daemonic process, which may not start children: score here instead."""
    import maskdiff.rewards.scorer as scorer

    def refuse() -> None:
        raise AssertionError("daemonic processes are not allowed to have children")

    monkeypatch.setattr(scorer, "get_pool", refuse)
    texts, refs = _batch(3, offset=700)
    assert score_completions("math", texts + ["\\boxed{0}"], refs + [{"answer": "1"}]).tolist() == [1, 1, 1, 0]


_CHILD = textwrap.dedent(
    """
    import os, signal, sys, time
    from maskdiff.rewards import score_completions, worker_pids
    score_completions("math", ["\\\\boxed{1.0}", "\\\\boxed{2.0}"], [{"answer": "1"}] * 2, processes=2, pool_min_keys=0)
    print(" ".join(map(str, worker_pids())), flush=True)
    os.kill(worker_pids()[0], signal.SIGSTOP)  # a stopped worker must not hold up the exit
    if sys.argv[1] == "hang":
        time.sleep(60)
    """
)


@pytest.mark.parametrize("how", ["exit", "killed"])
def test_no_worker_outlives_its_parent(how: str) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, "hang" if how == "killed" else "exit"], stdout=subprocess.PIPE, text=True
    )
    try:
        pids = [int(p) for p in child.stdout.readline().split()]  # type: ignore[union-attr]
        assert len(pids) == 2
        if how == "killed":
            child.kill()  # no atexit: the forkserver exits, the kernel kills its children
        assert child.wait(timeout=15) in (0, -signal.SIGKILL)
        assert all(_gone(pid, within=10) for pid in pids)
    finally:
        child.kill()
        child.wait()
