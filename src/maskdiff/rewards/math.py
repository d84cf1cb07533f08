"""Math reward via ``math_verify`` (0.9): symbolic equivalence of the final answer.

Two rules (``RewardSettings.math_rule``):

* ``"lenient"`` (default, this project's original reward):

  - The **last** ``\\boxed{}`` wins.  ``math_verify`` on raw text would merge every box
    into a set (``\\boxed{3} ... \\boxed{5}`` -> ``{3, 5}``); the standard MATH/GSM8K
    evaluation (and the countdown reward here) takes the last box, so we reduce the
    completion to :func:`canonical_math_text` first.  This also makes the batch
    scorer's cache exact: equal canonical text always means an equal score.
  - Tiny local models emit a bare answer (``\\frac{11}{12}``, ``-7``) with no box; the text
    is parsed with *unanchored* extraction and, on failure, retried wrapped in ``\\boxed{}``
    (only for short text: long prose never yields a meaningful answer).  Hence lenient:
    "x = 7 and therefore..." scores 1 for gold 7.

* ``"released"``: the MDPO authors' ``verify_math`` semantics, see :func:`_score_released`.
  The whole completion is the verifier's input (no last-box reduction, no retry), so the
  cache key is the exact text; completions with neither ``\\boxed{`` nor the word "answer"
  cannot match any of its anchored patterns and score 0 without calling the verifier.

``math_verify`` bounds parse/verify time with ``signal.alarm``, which only works in a
process's main thread, and some inputs (``\\boxed{9^{9^{9^{9}}}}``) are slow even so.
:func:`~maskdiff.rewards.scorer.math_reward` therefore scores in the scorer's worker processes,
whose deadline is enforced from outside (see ``maskdiff.rewards.workers``), so it is safe and
bounded in any thread.  :func:`score_math_text` is the in-process verifier those
workers run.  ``math_verify`` (and sympy) are imported lazily, on the first verifier
call: the parent process only extracts text and never pays that import.
"""

from __future__ import annotations

import logging
import re
import threading
from fractions import Fraction
from functools import lru_cache

from maskdiff.rewards.countdown import last_boxed

PARSE_TIMEOUT_S = 3  # lenient rule; math_verify's signal.alarm only takes whole seconds
VERIFY_TIMEOUT_S = 3
RELEASED_TIMEOUT_S = 5  # the released code calls parse/verify with math_verify 0.9's defaults (5 s)
MAX_BOXED_CHARS = 1000  # no real final answer is this long; junk would only cost time
MAX_BARE_CHARS = 20000  # anchor-based extraction on bare prose is cheap, but bound it
MAX_RELEASED_CHARS = 20000  # LLaDA's 512-token completions are ~2k characters
BARE_RETRY_MAX_CHARS = 256

# Every pattern of the released prediction config needs "\boxed{" or the word "answer"
# (math_verify's regexes use (?i:answer), hence IGNORECASE here: a superset is safe).
_RELEASED_ANCHOR_RE = re.compile(r"\\boxed\{|answer", re.IGNORECASE)


def _normalise_ws(text: str) -> str:
    return " ".join(text.split())


# ------------------------------------------------------------------ extraction (parent process)
def extract_math_answer(completion: str) -> str | None:
    """Cheap cache key: last ``\\boxed{}`` content, else the stripped completion."""
    if not isinstance(completion, str):
        return None
    boxed = last_boxed(completion)
    answer = _normalise_ws(boxed if boxed is not None else completion)
    return answer or None


def canonical_math_text(completion: str) -> str | None:
    """The text the lenient verifier sees: ``\\boxed{last box}`` or the bare text.

    Unlike :func:`extract_math_answer` it keeps the boxed/bare distinction, because the
    two are parsed differently (bare text goes through unanchored extraction first).
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


def released_math_text(completion: str) -> str | None:
    """The text the released verifier sees: the completion itself, unchanged.

    None (score 0 without the verifier, exactly as the released code would score it)
    when no anchored pattern can match; also None beyond ``MAX_RELEASED_CHARS``.
    """
    if not isinstance(completion, str) or len(completion) > MAX_RELEASED_CHARS:
        return None
    return completion if _RELEASED_ANCHOR_RE.search(completion) else None


_SIMPLE_NUMBER = re.compile(r"(-?)(?:(\d{1,12})|\\frac\{(\d{1,12})\}\{(\d{1,12})\})")


def simple_value(text: str) -> Fraction | None:
    """The exact value of an integer or a ``\\frac{a}{b}`` (optionally negative, optionally the whole
    content of one ``\\boxed{}``), else None. Such answers (nearly all the local models' answers and
    golds) are compared exactly in-process by the lenient rule, as math-verify would judge them,
    without a round trip to a worker."""
    if text.startswith("\\boxed{") and text.endswith("}"):
        text = text[len("\\boxed{") : -1]
    match = _SIMPLE_NUMBER.fullmatch(text.strip())
    if match is None:
        return None
    sign, integer, numerator, denominator = match.groups()
    if integer is not None:
        value = Fraction(int(integer))
    elif int(denominator) == 0:
        return None
    else:
        value = Fraction(int(numerator), int(denominator))
    return -value if sign else value


def math_text(completion: str, rule: str) -> str | None:
    """Verifier input under ``rule`` (None = scores 0 without a verifier call)."""
    return released_math_text(completion) if rule == "released" else canonical_math_text(completion)


# ------------------------------------------------------------------ verifier (worker processes)
@lru_cache(maxsize=1)
def _mv():
    """Import math_verify once and build the extraction configs (sympy import ~0.5 s)."""
    from latex2sympy2_extended import NormalizationConfig
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify
    from math_verify.errors import TimeoutException

    # The released config sets equations=True, which still acts (an "a = b = c" answer keeps its
    # last part) but logs a deprecation warning on every parse: keep the behaviour, drop the noise.
    logging.getLogger("latex2sympy2_extended.math_normalization").setLevel(logging.ERROR)
    lenient_pred = (LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig())
    # The released prediction config, checked against autonomousvision/mdpo
    # src/open_r1/rewards.py, verify_math (which follows huggingface/open-r1's accuracy_reward):
    #     LatexExtractionConfig(
    #         normalization_config=NormalizationConfig(nits=False, malformed_operators=False,
    #             basic_latex=True, equations=True, boxed="all", units=True),
    #         boxed_match_priority=0, try_extract_without_anchor=False)
    #     with parse(..., extraction_mode="first_match"); gold: parse(solution,
    #     extraction_mode="first_match", extraction_config=[LatexExtractionConfig()]), retried
    #     as "$" + solution + "$" when empty; verify(gold_parsed, answer_parsed).
    released_pred = LatexExtractionConfig(
        normalization_config=NormalizationConfig(
            basic_latex=True, units=True, malformed_operators=False, nits=False, boxed="all", equations=True
        ),
        boxed_match_priority=0,
        try_extract_without_anchor=False,
    )
    return {
        "parse": parse,
        "verify": verify,
        "Timeout": TimeoutException,
        "latex": LatexExtractionConfig(),
        "lenient_pred": lenient_pred,
        "released_pred": released_pred,
    }


def _timeout(seconds: int) -> int | None:
    """signal.alarm raises outside the main thread; run unbounded there instead (the worker
    pool's outside deadline is the bound that always holds)."""
    return seconds if threading.current_thread() is threading.main_thread() else None


@lru_cache(maxsize=4096)
def _parse_gold_lenient(gold: str) -> tuple:
    """Parse a reference answer once per process; bare ``-7`` needs a wrapper to parse."""
    mv = _mv()
    gold = gold.strip()
    if "\\boxed" in gold or "$" in gold:
        candidates = [gold, f"\\boxed{{{gold}}}"]
    else:
        candidates = [f"\\boxed{{{gold}}}", f"${gold}$"]
    for text in candidates:
        parsed = mv["parse"](text, [mv["latex"]], parsing_timeout=_timeout(PARSE_TIMEOUT_S))
        if parsed:
            return tuple(parsed)
    return ()


def _score_lenient(text: str, gold: str) -> float:
    mv = _mv()
    if len(text) > MAX_BARE_CHARS:
        return 0.0
    gold_parsed = _parse_gold_lenient(gold)
    if not gold_parsed:
        return 0.0
    config = list(mv["lenient_pred"])
    pred = mv["parse"](text, config, parsing_timeout=_timeout(PARSE_TIMEOUT_S))
    if not pred and len(text) <= BARE_RETRY_MAX_CHARS and "\\boxed" not in text:
        pred = mv["parse"](f"\\boxed{{{text}}}", config, parsing_timeout=_timeout(PARSE_TIMEOUT_S))
    if not pred:
        return 0.0
    return 1.0 if mv["verify"](list(gold_parsed), pred, timeout_seconds=_timeout(VERIFY_TIMEOUT_S)) else 0.0


@lru_cache(maxsize=4096)
def _parse_gold_released(gold: str) -> tuple:
    """Released gold parsing: first match of the default LaTeX config, else the text in ``$``."""
    mv = _mv()
    for text in (gold, f"${gold}$"):
        parsed = mv["parse"](
            text, [mv["latex"]], extraction_mode="first_match", parsing_timeout=_timeout(RELEASED_TIMEOUT_S)
        )
        if parsed:
            return tuple(parsed)
    return ()


def _score_released(text: str, gold: str) -> float:
    """MDPO's ``verify_math``: anchored extraction on the whole completion, first match only.

    An unparseable gold scores 0 (the released code returns False; open-r1's
    accuracy_reward would give 1); verifier errors score 0.
    """
    mv = _mv()
    gold_parsed = _parse_gold_released(gold)
    if not gold_parsed:
        return 0.0
    pred = mv["parse"](
        text, [mv["released_pred"]], extraction_mode="first_match", parsing_timeout=_timeout(RELEASED_TIMEOUT_S)
    )
    return 1.0 if mv["verify"](list(gold_parsed), pred, timeout_seconds=_timeout(RELEASED_TIMEOUT_S)) else 0.0


def score_math_text(text: str | None, gold: str, rule: str = "lenient") -> float:
    """Score verifier input (see :func:`math_text`) in this process; never raises.

    Bounded only by math_verify's alarms, i.e. only in a main thread: callers outside the
    worker processes should use :func:`~maskdiff.rewards.scorer.math_reward` or the batch scorer.
    """
    try:
        if not isinstance(text, str) or not text:
            return 0.0
        if rule == "released":
            return _score_released(text, str(gold))
        return _score_lenient(text, str(gold))
    except BaseException as exc:  # noqa: BLE001 - TimeoutException is a BaseException
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        return 0.0

