"""Countdown reward: does the completion's expression hit the target using every number once?

Rewards are computed for every denoising step of every rollout, so this module is
pure Python, allocation-light, and bounded: hostile or half-denoised text must cost
microseconds and can never raise.  Expressions are *never* executed; they are parsed
with ``ast.parse(..., mode="eval")`` and walked by a tiny whitelist interpreter that
works in exact rational arithmetic (``fractions.Fraction``), so ``6/4*2`` is exactly 3.

Design choice (default): unary minus is rejected.  The countdown game gives a multiset of
non-negative integers to be used "as given", and negating one (``-3+5+7``) is not an
operation between numbers.  The peers differ: the MDPO released ``verify_countdown``
(autonomousvision/mdpo ``src/open_r1/rewards.py``) and d1's ``countdown_reward_func``
(dllm-reasoning/d1 ``diffu-grpo/reward_func.py``) only compare the multiset of digit runs
(``re.findall(r"\\d+")``) and ``eval`` the string, so they accept unary minus (and plus).
``RewardSettings.countdown_unary_minus=True`` reproduces that, still without ``eval``.

The released verifier also differs when the last ``\\boxed{`` is unclosed: there the
box extraction raises and it falls back to the ``<answer>`` tag, else the raw text,
whereas this project uses the last closed box; ``RewardSettings.countdown_unclosed_box``
selects either.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from fractions import Fraction

from maskdiff.rewards.settings import DEFAULT_SETTINGS, RewardSettings

MAX_EXPR_CHARS = 200
MAX_AST_NODES = 32
MAX_MAGNITUDE = 10**12
TOLERANCE = 1e-5

_BOXED_RE = re.compile(r"\\boxed\s*\{")
# After normalisation an acceptable expression contains only these characters; this
# rejects identifiers, attribute access, strings, lambdas, etc. before parsing at all.
_ALLOWED_CHARS_RE = re.compile(r"[0-9+\-*/()\s]+")
_NUMBER_RE = re.compile(r"\s*-?\d+(?:\.\d+)?\s*")
_REPLACEMENTS = (
    ("\\times", "*"),
    ("\\cdot", "*"),
    ("\\div", "/"),
    ("\u00d7", "*"),  # ×
    ("\u00f7", "/"),  # ÷
    ("\\left", ""),
    ("\\right", ""),
    ("$", ""),
)
_BINOPS = {ast.Add, ast.Sub, ast.Mult, ast.Div}
_UNARYOPS = {ast.USub, ast.UAdd}


def _boxes(text: str) -> tuple[str | None, bool]:
    """``(content of the last closed box, whether the last-opened box is closed)``.

    One linear pass with a brace stack, so a 10k-character string full of unclosed
    ``\\boxed{`` costs O(n) rather than O(n^2).  "Last closed" means the closed box whose
    opening appears last.  ``(None, True)`` when there is no box at all.
    """
    starts = {m.end() - 1: m.end() for m in _BOXED_RE.finditer(text)}
    if not starts:
        return None, True
    last_content_start = max(starts.values())
    stack: list[int] = []
    best_start = -1
    best: str | None = None
    for i, ch in enumerate(text):
        if ch == "{":
            stack.append(i)
        elif ch == "}" and stack:
            opened = stack.pop()
            content_start = starts.get(opened)
            if content_start is not None and content_start > best_start:
                best_start = content_start
                best = text[content_start:i]
    return best, best_start == last_content_start


def last_boxed(text: str) -> str | None:
    """Content of the last *closed* ``\\boxed{...}`` in ``text`` (nested braces allowed);
    unclosed boxes are ignored."""
    return _boxes(text)[0]


def _last_answer_tag(text: str) -> str | None:
    """Content of the last ``<answer>...</answer>`` (found with rfind: linear time)."""
    end = text.rfind("</answer>")
    if end < 0:
        return None
    start = text.rfind("<answer>", 0, end)
    if start < 0:
        return None
    return text[start + len("<answer>") : end]


def extract_countdown_answer(completion: str, unclosed_box: str = "earlier_box") -> str | None:
    """Last closed ``\\boxed{}``, else last ``<answer>`` tag, else the whole text (stripped).

    The final fallback exists because the tiny local models emit a bare expression
    such as ``7*3+12`` with no wrapper.  With ``unclosed_box="raw_text"`` an unclosed last
    box discards the boxes (the released verifier's fallback).  None when nothing
    non-empty remains.
    """
    if not isinstance(completion, str):
        return None
    answer, last_closed = _boxes(completion)
    if not last_closed and unclosed_box == "raw_text":
        answer = None
    if answer is None:
        answer = _last_answer_tag(completion)
    if answer is None:
        answer = completion
    answer = answer.strip()
    return answer or None


def _as_int(value: object) -> int:
    """Numbers must be integral; accept 3 or 3.0 but not 3.5, True or "3"."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"not a number: {value!r}")
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(f"not an integer: {value!r}")
    return int(value)


def _normalise(answer: str, target: float) -> str | None:
    """Map LaTeX/Unicode operators to Python ones; drop a trailing ``= target``."""
    expr = answer
    for old, new in _REPLACEMENTS:
        expr = expr.replace(old, new)
    if "=" in expr:
        lhs, rhs = expr.split("=", 1)
        # Only a literal equal to the target may follow '='; '1+2=4' or '1+2==3' are rejected.
        if not _NUMBER_RE.fullmatch(rhs) or abs(float(rhs) - target) > TOLERANCE:
            return None
        expr = lhs
    expr = expr.strip()
    if not expr or len(expr) > MAX_EXPR_CHARS or not _ALLOWED_CHARS_RE.fullmatch(expr):
        return None
    return expr


def _evaluate(node: ast.AST, literals: list[int], unary: bool = False) -> Fraction:
    """Whitelist interpreter: non-negative int constants and + - * / only (and unary
    + - when ``unary``)."""
    if isinstance(node, ast.Expression):
        return _evaluate(node.body, literals, unary)
    if isinstance(node, ast.Constant):
        value = node.value
        if type(value) is not int or value < 0 or value > MAX_MAGNITUDE:
            raise ValueError("disallowed constant")
        literals.append(value)
        return Fraction(value)
    if unary and isinstance(node, ast.UnaryOp) and type(node.op) in _UNARYOPS:
        value = _evaluate(node.operand, literals, unary)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        left = _evaluate(node.left, literals, unary)
        right = _evaluate(node.right, literals, unary)
        if isinstance(node.op, ast.Add):
            result = left + right
        elif isinstance(node.op, ast.Sub):
            result = left - right
        elif isinstance(node.op, ast.Mult):
            result = left * right
        else:
            result = left / right  # ZeroDivisionError is caught by the caller
        if abs(result) > MAX_MAGNITUDE:
            raise ValueError("intermediate result too large")
        return result
    raise ValueError(f"disallowed node {type(node).__name__}")


def _bounded_value(expr: str, literals: list[int], unary: bool = False) -> Fraction | None:
    """Parse an already character-checked expression and evaluate it with the whitelist
    interpreter (collecting its integer literals); None when the tree exceeds MAX_AST_NODES.
    Disallowed nodes, huge values and division by zero raise: the callers turn that into 0 / None."""
    tree = ast.parse(expr, mode="eval")
    if sum(1 for _ in ast.walk(tree)) > MAX_AST_NODES:
        return None
    return _evaluate(tree, literals, unary)


def evaluate_expression(expr: str) -> Fraction | None:
    """Exact value of an arithmetic expression over non-negative integers and + - * / (the same
    whitelist interpreter, never ``eval``), or None for anything else."""
    try:
        if not isinstance(expr, str) or not expr or len(expr) > MAX_EXPR_CHARS or not _ALLOWED_CHARS_RE.fullmatch(expr):
            return None
        return _bounded_value(expr, [])
    except Exception:  # noqa: BLE001 - garbage in, None out
        return None


def score_countdown_answer(
    answer: str | None, numbers: list[int], target: float, unary_minus: bool = False
) -> float:
    """Score an already-extracted answer; the scorer caches on ``answer`` (and the switch)
    so this is exact.  ``unary_minus`` accepts unary signs, as the released verifier does."""
    try:
        if not isinstance(answer, str) or not answer:
            return 0.0
        target_f = float(target)
        wanted = Counter(_as_int(n) for n in numbers)
        expr = _normalise(answer, target_f)
        if expr is None:
            return 0.0
        literals: list[int] = []
        value = _bounded_value(expr, literals, unary_minus)
        if value is None or Counter(literals) != wanted:
            return 0.0
        return 1.0 if abs(float(value) - target_f) <= TOLERANCE else 0.0
    except Exception:  # noqa: BLE001 - a reward must never crash training
        return 0.0


def countdown_reward(
    completion: str, numbers: list[int], target: float, settings: RewardSettings | None = None
) -> float:
    """1.0 iff the extracted expression uses ``numbers`` exactly once and equals ``target``."""
    try:
        s = settings or DEFAULT_SETTINGS
        answer = extract_countdown_answer(completion, s.countdown_unclosed_box)
        return score_countdown_answer(answer, numbers, target, s.countdown_unary_minus)
    except Exception:  # noqa: BLE001
        return 0.0
