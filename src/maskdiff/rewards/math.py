"""Math reward via ``math_verify`` (0.9): symbolic equivalence of the final answer.

Conventions (and why):

* The **last** ``\\boxed{}`` wins.  ``math_verify`` on raw text would merge every box
  into a set (``\\boxed{3} ... \\boxed{5}`` -> ``{3, 5}``); the standard MATH/GSM8K
  evaluation (and the countdown reward here) takes the last box, so we reduce the
  completion to :func:`canonical_math_text` first.  This also makes the batch
  scorer's cache exact: equal canonical text always means an equal score.
* Tiny local models emit a bare answer (``\\frac{11}{12}``, ``-7``) with no box, which
  ``math_verify`` does not extract (bare ``-7`` parses to nothing), so on failure we
  retry with the text wrapped in ``\\boxed{}`` -- only for short text, because feeding
  long prose to latex2sympy is slow and never yields a meaningful answer.
* ``math_verify`` bounds parse/verify time with ``signal.alarm``, which only works in
  the main thread of a process.  In any other thread we pass ``None`` (no timeout)
  instead of letting it raise; the batch scorer calls us only from main threads.
"""

from __future__ import annotations

import threading
from functools import lru_cache

from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify
from math_verify.errors import TimeoutException

from maskdiff.rewards.countdown import last_boxed

PARSE_TIMEOUT_S = 3  # math_verify's signal.alarm only takes whole seconds
VERIFY_TIMEOUT_S = 3
MAX_BOXED_CHARS = 1000  # no real final answer is this long; junk would only cost time
MAX_BARE_CHARS = 20000  # anchor-based extraction on bare prose is cheap, but bound it
BARE_RETRY_MAX_CHARS = 256

_PRED_CONFIG = (LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig())
_GOLD_CONFIG = (LatexExtractionConfig(),)


def _normalise_ws(text: str) -> str:
    return " ".join(text.split())


def extract_math_answer(completion: str) -> str | None:
    """Cheap cache key: last ``\\boxed{}`` content, else the stripped completion."""
    if not isinstance(completion, str):
        return None
    boxed = last_boxed(completion)
    answer = _normalise_ws(boxed if boxed is not None else completion)
    return answer or None


def canonical_math_text(completion: str) -> str | None:
    """The text actually handed to the verifier: ``\\boxed{last box}`` or the bare text.

    Unlike :func:`extract_math_answer` it keeps the boxed/bare distinction, because the
    two are parsed differently (bare text goes through anchor-based extraction first).
    None (score 0, verifier skipped) for empty or absurdly long answers.
    """
    if not isinstance(completion, str):
        return None
    boxed = last_boxed(completion)
    if boxed is not None:
        answer = _normalise_ws(boxed)
        if not answer or len(answer) > MAX_BOXED_CHARS:
            return None
        return f"\\boxed{{{answer}}}"
    answer = _normalise_ws(completion)
    if not answer or len(answer) > MAX_BARE_CHARS:
        return None
    return answer


def _timeout(seconds: int) -> int | None:
    """signal.alarm raises outside the main thread; run unbounded there instead."""
    return seconds if threading.current_thread() is threading.main_thread() else None


@lru_cache(maxsize=4096)
def _parse_gold(gold: str) -> tuple:
    """Parse a reference answer once per process; bare ``-7`` needs a wrapper to parse."""
    gold = gold.strip()
    if "\\boxed" in gold or "$" in gold:
        candidates = [gold, f"\\boxed{{{gold}}}"]
    else:
        candidates = [f"\\boxed{{{gold}}}", f"${gold}$"]
    for text in candidates:
        parsed = parse(text, list(_GOLD_CONFIG), parsing_timeout=_timeout(PARSE_TIMEOUT_S))
        if parsed:
            return tuple(parsed)
    return ()


def _parse_pred(text: str) -> list:
    parsed = parse(text, list(_PRED_CONFIG), parsing_timeout=_timeout(PARSE_TIMEOUT_S))
    if not parsed and len(text) <= BARE_RETRY_MAX_CHARS and "\\boxed" not in text:
        parsed = parse(
            f"\\boxed{{{text}}}", list(_PRED_CONFIG), parsing_timeout=_timeout(PARSE_TIMEOUT_S)
        )
    return parsed


def score_math_text(text: str | None, gold: str) -> float:
    """Score canonical text (see :func:`canonical_math_text`); never raises."""
    try:
        if not isinstance(text, str) or not text or len(text) > MAX_BARE_CHARS:
            return 0.0
        gold_parsed = _parse_gold(str(gold))
        if not gold_parsed:
            return 0.0
        pred = _parse_pred(text)
        if not pred:
            return 0.0
        ok = verify(list(gold_parsed), pred, timeout_seconds=_timeout(VERIFY_TIMEOUT_S))
        return 1.0 if ok else 0.0
    except (Exception, TimeoutException):  # noqa: BLE001 - TimeoutException is a BaseException
        return 0.0


def math_reward(completion: str, gold: str) -> float:
    """1.0 iff the completion's final answer is mathematically equal to ``gold``."""
    try:
        return score_math_text(canonical_math_text(completion), gold)
    except (Exception, TimeoutException):  # noqa: BLE001
        return 0.0
