"""Persistent math-verify worker processes whose deadlines are enforced from outside.

Why processes, and why this shape:

* math-verify bounds its work with ``signal.alarm``: only in a main thread, and not at all
  while C code holds the interpreter (a huge ``9^{9^{9^{9}}}`` stalls a thread for
  minutes).  Each worker scores answers in its own main thread, one answer at a time
  over a pipe, so the parent knows which answer each worker is on and since when.
* The parent enforces two deadlines: ``answer_timeout_s`` per answer (a worker past it,
  e.g. stuck or SIGSTOPped, is SIGKILLed and replaced; the answer scores 0) and
  ``batch_timeout_s`` per batch (answers not scored by then score 0).  A worker that dies
  (SIGKILL, OOM) is replaced and its answer retried once on the new worker.  Every answer
  not scored is counted in :data:`STATS` and returned to the caller (see the scorer for
  how timeouts are counted and cached).
* Workers are forked by a "forkserver" (not "fork": the parent usually holds torch with
  live OpenMP/intra-op threads, and forking a multi-threaded process can deadlock the
  child); the server preloads math_verify/sympy, so starting or replacing a worker
  costs milliseconds, not the ~0.5 s import.  Workers persist across calls.  Each holds
  at most ``DEPTH`` answers: the next one waits in its pipe, so no round trip idles it,
  and a per-answer clock starts when the previous answer's reply arrives.
* No worker outlives the parent: workers are daemonic, an ``atexit`` hook SIGKILLs them
  (SIGTERM would stay pending in a stopped process and hang multiprocessing's own exit
  join), each asks the kernel for SIGKILL when its parent (the forkserver, which exits
  with us) dies, and each exits on EOF of its pipe.
* Messages are pickled by hand and capped at ``MAX_MESSAGE_BYTES``, below the socket
  buffer, so even a send to a stopped worker never blocks the parent.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait

log = logging.getLogger(__name__)

DEPTH = 2  # answers in flight per worker
MAX_MESSAGE_BYTES = 48_000  # DEPTH of them fit the duplex pipe's socket buffer (~200 KB)
PRELOAD = ["maskdiff.rewards._warm"]
_RETRIES_AFTER_CRASH = 1


@dataclass
class PoolStats:
    """Cumulative counters of this process's worker pool (see :func:`pool_stats`)."""

    answers: int = 0  # answers scored by a worker
    timeouts: int = 0  # answers left unscored: per-answer bound, batch deadline, or repeated crash
    restarts: int = 0  # workers killed or found dead, and replaced
    started: int = 0  # worker processes started


STATS = PoolStats()


# ------------------------------------------------------------------ worker side
def _die_with_parent() -> None:
    """Tie this worker's life to the parent's (Linux; best effort otherwise).

    The forkserver hands every child a copy of its "alive" pipe, and exits only when all
    copies are closed: a stopped worker holding one would keep the server, and itself,
    alive after the parent dies.  So close it, then ask for SIGKILL when the forkserver
    (which exits with the parent) dies.
    """
    try:
        from multiprocessing import forkserver

        fd = forkserver._forkserver._forkserver_alive_fd  # type: ignore[attr-defined]
        if fd is not None:
            os.close(fd)
            forkserver._forkserver._forkserver_alive_fd = None  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001
        pass
    try:
        import ctypes

        parent = os.getppid()
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the server died before prctl took effect
            os._exit(0)
    except Exception:  # noqa: BLE001 - not Linux: the pipe EOF still ends an idle worker
        pass


def _worker_main(conn: Connection) -> None:
    """Score ``(seq, text, gold, rule)`` messages until the pipe closes."""
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    from maskdiff.rewards.math import score_math_text

    while True:
        try:
            seq, text, gold, rule = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):
            return
        score = score_math_text(text, gold, rule)
        try:
            conn.send_bytes(pickle.dumps((seq, score)))
        except OSError:
            return


# ------------------------------------------------------------------ parent side
class _Worker:
    """A worker and the answers it holds, in order: the head is being scored since ``started``,
    the rest wait in its pipe (``DEPTH`` in flight hides the round trip between answers)."""

    __slots__ = ("proc", "conn", "seq", "inflight", "started")

    def __init__(self, proc: multiprocessing.process.BaseProcess, conn: Connection) -> None:
        self.proc, self.conn = proc, conn
        self.seq = 0
        self.inflight: deque[tuple[int, int]] = deque()  # (item, seq)
        self.started = 0.0

    @property
    def item(self) -> int:
        """The answer being scored now (-1 when idle)."""
        return self.inflight[0][0] if self.inflight else -1


@contextlib.contextmanager
def _main_module_hidden():
    """Start processes without the caller's ``__main__``: multiprocessing's forkserver (and each
    child it starts) imports the parent's main script by path or name before running the target,
    so a user's script or notebook without an ``if __name__ == "__main__":`` guard would run again
    inside every worker (its side effects twice, its imports in each worker, a torch import that
    outlasts the per-answer deadline and gets the worker killed over and over). The workers need
    nothing from ``__main__``: their target lives in this module. So ``__main__`` shows neither a
    spec nor a file while a process starts (``multiprocessing.spawn.get_preparation_data`` then
    sends no main module). Limits: a forkserver started earlier by other code of the process has
    already imported ``__main__``; and the attributes are briefly absent for other threads too."""
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    missing = object()
    saved = {k: main.__dict__.get(k, missing) for k in ("__file__", "__spec__")}
    main.__dict__.pop("__file__", None)
    main.__spec__ = None
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is missing:
                main.__dict__.pop(key, None)
            else:
                main.__dict__[key] = value


def _context() -> multiprocessing.context.BaseContext:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)  # only effective before the server first starts
    return ctx


class WorkerPool:
    """Workers plus the scheduling loop; one batch at a time (a lock serialises threads)."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.lock = threading.Lock()
        self.workers: list[_Worker] = []

    def pids(self) -> list[int]:
        return [w.proc.pid for w in self.workers if w.proc.pid is not None]

    def _spawn(self) -> _Worker:
        ctx = _context()
        parent_conn, child_conn = ctx.Pipe(duplex=True)
        proc = ctx.Process(target=_worker_main, args=(child_conn,), daemon=True, name="maskdiff-math-reward")
        with _main_module_hidden():
            proc.start()
        child_conn.close()
        STATS.started += 1
        return _Worker(proc, parent_conn)

    @staticmethod
    def _kill(worker: _Worker) -> None:
        try:
            worker.proc.kill()  # SIGKILL also ends a SIGSTOPped process
            worker.proc.join(timeout=5)
        except Exception:  # noqa: BLE001 - already gone
            pass
        worker.conn.close()

    def _replace(self, worker: _Worker) -> _Worker:
        self._kill(worker)
        STATS.restarts += 1
        new = self._spawn()
        self.workers[self.workers.index(worker)] = new
        return new

    def _ensure(self, n: int) -> None:
        while len(self.workers) < n:
            self.workers.append(self._spawn())

    def _drop(self, workers) -> None:
        """Kill workers that still hold an answer; they are restarted on demand."""
        for worker in list(workers):
            self._kill(worker)
            self.workers.remove(worker)
            STATS.restarts += 1

    def _send(self, worker: _Worker, item: int, payload: tuple[str, str, str]) -> None:
        """Queue ``item`` on a worker (OSError if it is gone, _TooLarge if no real answer)."""
        data = pickle.dumps((worker.seq + 1, *payload))
        if len(data) > MAX_MESSAGE_BYTES:
            raise _TooLarge
        worker.conn.send_bytes(data)
        worker.seq += 1
        if not worker.inflight:
            worker.started = time.monotonic()
        worker.inflight.append((item, worker.seq))

    def score(
        self, items: list[tuple[str, str, str]], n_workers: int, answer_timeout: float, batch_timeout: float
    ) -> tuple[list[float], list[int], list[int]]:
        """``(scores, unscored, struck)``: unscored items score 0; ``struck`` (a subset) are those
        that ran past ``answer_timeout`` or killed two workers, as opposed to those the batch
        deadline left unfinished or unsent."""
        scores = [0.0] * len(items)
        if not items:
            return scores, [], []
        deadline = time.monotonic() + batch_timeout
        queue = deque(range(len(items)))
        crashes: dict[int, int] = {}
        unscored: list[int] = []
        struck: list[int] = []

        def fail(worker: _Worker, strike: bool) -> _Worker:
            """Replace a worker that died or overran; its head answer failed, the rest go back."""
            if not worker.inflight:
                return self._replace(worker)
            head = worker.inflight.popleft()[0]
            if strike:
                unscored.append(head)
                struck.append(head)
            else:  # died: retry once
                crashes[head] = crashes.get(head, 0) + 1
                if crashes[head] > _RETRIES_AFTER_CRASH:
                    unscored.append(head)
                    struck.append(head)
                else:
                    queue.appendleft(head)
            queue.extendleft(item for item, _ in reversed(worker.inflight))
            worker.inflight.clear()
            return self._replace(worker)

        lost_sends = 0
        with self.lock:
            active: list[_Worker] = []
            try:
                self._ensure(max(1, min(n_workers, len(items))))
                active = self.workers[: max(1, min(n_workers, len(items)))]
                while queue or any(w.inflight for w in active):
                    for k, worker in enumerate(active):
                        while queue and len(worker.inflight) < DEPTH:
                            item = queue.popleft()
                            try:
                                self._send(worker, item, items[item])
                            except _TooLarge:  # deterministic: scores 0 like any junk
                                pass
                            except OSError:  # died while idle: replace, resend
                                queue.appendleft(item)
                                lost_sends += 1
                                if lost_sends > 2 * len(active) + 2:
                                    raise RuntimeError("math reward workers die as soon as they start") from None
                                worker = active[k] = fail(worker, strike=False)
                    now = time.monotonic()
                    if now >= deadline:
                        break
                    busy = {w.conn: k for k, w in enumerate(active) if w.inflight}
                    if not busy:
                        continue
                    wake = min([deadline] + [active[k].started + answer_timeout for k in busy.values()])
                    for conn in wait(list(busy), timeout=max(0.0, wake - now)):
                        k = busy[conn]  # type: ignore[index]
                        worker = active[k]
                        try:
                            while True:  # every reply already in the pipe
                                seq, score = pickle.loads(worker.conn.recv_bytes())
                                item, expected = worker.inflight[0]
                                if seq != expected:
                                    raise EOFError("out-of-step reply")
                                worker.inflight.popleft()
                                scores[item] = float(score)
                                STATS.answers += 1
                                worker.started = time.monotonic()
                                if not worker.inflight or not worker.conn.poll():
                                    break
                        except (EOFError, OSError, pickle.UnpicklingError, ValueError, TypeError, IndexError):
                            active[k] = fail(worker, strike=False)
                    now = time.monotonic()
                    for k, worker in enumerate(active):
                        if worker.inflight and now - worker.started >= answer_timeout:
                            active[k] = fail(worker, strike=True)
            except BaseException:
                self._drop(w for w in active if w.inflight)  # e.g. KeyboardInterrupt: no stale reply may reach a later batch
                raise
            # Batch deadline: answers still held by a worker, and those never sent, score 0.
            for worker in active:
                unscored.extend(item for item, _ in worker.inflight)
            self._drop(w for w in active if w.inflight)
            unscored.extend(queue)
            STATS.timeouts += len(unscored)
        return scores, unscored, struck

    def shutdown(self) -> None:
        # At exit a daemon thread may still hold the lock mid-batch: do not wait for its deadline.
        locked = self.lock.acquire(timeout=2)
        try:
            for worker in list(self.workers):
                self._kill(worker)
            self.workers.clear()
        finally:
            if locked:
                self.lock.release()


class _TooLarge(Exception):
    """A message beyond MAX_MESSAGE_BYTES (no real answer is this long): scores 0 unsent."""


_POOL: WorkerPool | None = None
_POOL_GUARD = threading.Lock()


def get_pool() -> WorkerPool:
    """This process's pool; a fresh one after ``fork`` (the inherited workers are the parent's)."""
    global _POOL
    with _POOL_GUARD:
        if _POOL is None or _POOL.pid != os.getpid():
            _POOL = WorkerPool()
        return _POOL


def shutdown_pool() -> None:
    """Kill this process's math workers (also registered with atexit); they restart on demand."""
    pool = _POOL
    if pool is not None and pool.pid == os.getpid():
        pool.shutdown()


def warm_up(processes: int = 1) -> threading.Thread:
    """Start the forkserver and ``processes`` workers in a background daemon thread, so the
    first math batch does not pay the one-off start-up (~1 s, more on a loaded machine).
    Optional: without it the first batch starts them.  Returns the (joinable) thread."""

    def run() -> None:
        try:
            pool = get_pool()
            with pool.lock:
                pool._ensure(max(1, processes))
        except Exception as exc:  # noqa: BLE001 - the first batch will retry or fall back
            log.debug("math reward warm-up failed: %s", exc)

    thread = threading.Thread(target=run, name="maskdiff-reward-warm-up", daemon=True)
    thread.start()
    return thread


def worker_pids() -> list[int]:
    """PIDs of the live workers (for monitoring and fault-injection tests)."""
    pool = _POOL
    return pool.pids() if pool is not None and pool.pid == os.getpid() else []


def pool_stats() -> dict[str, int]:
    """Cumulative counters: ``answers`` scored, ``timeouts`` (answers left unscored, scored 0),
    ``restarts`` (workers replaced), ``started`` (worker processes started)."""
    return {"answers": STATS.answers, "timeouts": STATS.timeouts, "restarts": STATS.restarts, "started": STATS.started}


atexit.register(shutdown_pool)
