"""Arithmetic with LaTeX answers: the local stand-in for MATH-500.

Problems are short expressions over small integers whose exact value is an integer or a reduced
fraction, written as LaTeX (``-7``, ``\\frac{11}{12}``, ``-\\frac{3}{2}``) and scored by the same
math-verify reward as MATH-500, so the reward path of the paper preset is exercised locally.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from fractions import Fraction

from ..errors import InputError
from .prompts import math_prompt

# Problem templates: a format string over operands and an exact evaluator.
_TEMPLATES = {
    "a+b*c": (3, lambda a, b, c: a + b * c),
    "a*b-c": (3, lambda a, b, c: a * b - c),
    "(a-b)*c": (3, lambda a, b, c: (a - b) * c),
    "a/b": (2, lambda a, b: Fraction(a, b)),
    "a/b+c": (3, lambda a, b, c: Fraction(a, b) + c),
    "a/b-c/d": (4, lambda a, b, c, d: Fraction(a, b) - Fraction(c, d)),
}


@dataclass(frozen=True)
class ArithmeticSpec:
    min_number: int = 1
    max_number: int = 9
    templates: tuple[str, ...] = tuple(_TEMPLATES)

    def __post_init__(self) -> None:
        unknown = set(self.templates) - set(_TEMPLATES)
        if unknown or not self.templates:
            raise InputError(f"arithmetic templates must be a non-empty subset of {sorted(_TEMPLATES)}, got {sorted(unknown)}")
        if not 1 <= self.min_number <= self.max_number:
            raise InputError("arithmetic requires 1 <= min_number <= max_number")


def latex_number(value: Fraction) -> str:
    """Exact LaTeX of a rational: integers plainly, others as a reduced \\frac with a leading sign."""
    value = Fraction(value)
    if value.denominator == 1:
        return str(value.numerator)
    sign = "-" if value < 0 else ""
    return f"{sign}\\frac{{{abs(value.numerator)}}}{{{value.denominator}}}"


# The imperfect teacher's misconceptions, one per template (operands a, b, c, d): left to right
# without precedence (a+b*c), parentheses dropped ((a-b)*c), the fraction inverted (a/b), the whole
# number added to the denominator (a/b+c), fractions subtracted across (a/b-c/d). "a*b-c" has none.
_MISCONCEPTIONS = {
    "a+b*c": lambda a, b, c: (a + b) * c,
    "(a-b)*c": lambda a, b, c: a - b * c,
    "a/b": lambda a, b: Fraction(b, a),
    "a/b+c": lambda a, b, c: Fraction(a, b + c),
    "a/b-c/d": lambda a, b, c, d: Fraction(a - c, b - d) if b != d else None,
}


def misconceived_answer(record: dict) -> str | None:
    """The answer the imperfect teacher writes for a record of its template (for the noisy
    pretraining rows); None where the template has no misconception or it happens to be right."""
    wrong = _MISCONCEPTIONS.get(record["template"])
    value = wrong(*record["operands"]) if wrong else None
    if value is None:
        return None
    answer = latex_number(value)
    return None if answer == record["answer"] else answer


def _render(template: str, operands: list[int]) -> str:
    out = template
    for name, value in zip("abcd", operands):
        out = out.replace(name, str(value))
    return out + "="


def generate_arithmetic(
    n: int,
    seed: int,
    spec: ArithmeticSpec = ArithmeticSpec(),
    split: str = "train",
    exclude: set | None = None,
    prompt_style: str = "compact",
    max_tries_per_problem: int = 1000,
    unique: bool = True,
) -> list[dict]:
    """``n`` problems whose prompts are not in ``exclude``; with ``unique`` they are distinct and
    added to ``exclude`` (the pretraining split may repeat a problem)."""
    rng = random.Random(f"arithmetic/{seed}/{split}")
    seen = exclude if exclude is not None else set()
    records: list[dict] = []
    stalled = 0  # draws since the last new problem: the space is exhausted when this grows large
    while len(records) < n:
        stalled += 1
        if stalled > max_tries_per_problem:
            raise RuntimeError(
                f"arithmetic generator could only make {len(records)} of {n} distinct '{split}' problems; "
                "widen max_number or add templates"
            )
        template = rng.choice(spec.templates)
        arity, fn = _TEMPLATES[template]
        operands = [rng.randint(spec.min_number, spec.max_number) for _ in range(arity)]
        problem = _render(template, operands)
        if problem in seen:
            continue
        if unique:
            seen.add(problem)
        answer = latex_number(fn(*operands))
        records.append(
            {
                "id": f"arithmetic-{split}-{len(records):06d}",
                "task": "arithmetic",
                "prompt": math_prompt(problem, prompt_style),
                "answer": answer,
                "solution": answer,
                "template": template,
                "operands": operands,
            }
        )
        stalled = 0
    return records
