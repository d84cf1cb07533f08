"""Countdown: combine the given numbers, each exactly once, with + - * / to hit a target.

The local presets generate problems with a seeded generator that builds a random expression tree
over the numbers, so every problem is solvable by construction and carries a reference solution.
Sizes (count of numbers, their range, operators, target bound) set the difficulty; the defaults
put a ~1M-parameter model trained for minutes well between 0% and 100% (notes/stack.md).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from fractions import Fraction

from ..errors import InputError
from .prompts import countdown_prompt

_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}


@dataclass(frozen=True)
class CountdownSpec:
    """Difficulty knobs of the generator (all documented in the config schema)."""

    num_count: int = 3
    min_number: int = 1
    max_number: int = 15  # the schema's data.countdown.max_number (the local study)
    operators: str = "+-*"
    min_target: int = 1
    max_target: int = 100

    def __post_init__(self) -> None:
        if self.num_count < 2:
            raise InputError(f"countdown num_count must be >= 2, got {self.num_count}")
        if not self.operators or set(self.operators) - set(_PRECEDENCE):
            raise InputError(f"countdown operators must be a non-empty subset of '+-*/', got {self.operators!r}")
        if not 0 <= self.min_number <= self.max_number:
            raise InputError("countdown requires 0 <= min_number <= max_number")
        if self.min_target > self.max_target:
            raise InputError("countdown requires min_target <= max_target")


def _combine(op: str, a: Fraction, b: Fraction) -> Fraction | None:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if b == 0:
        return None
    return a / b


def _wrap(expr: str, expr_prec: int, parent_prec: int, right_side: bool, parent_op: str) -> str:
    """Parenthesise a sub-expression only where precedence or associativity requires it."""
    needs = expr_prec < parent_prec or (right_side and expr_prec == parent_prec and parent_op in "-/")
    return f"({expr})" if needs else expr


def random_expression(numbers: list[int], operators: str, rng: random.Random) -> tuple[str, Fraction] | None:
    """A random full binary expression over ``numbers`` (in random order); None on division by zero."""
    # Each item: (text, value, precedence); atoms have precedence 3.
    items = [(str(n), Fraction(n), 3) for n in rng.sample(numbers, len(numbers))]
    while len(items) > 1:
        i = rng.randrange(len(items) - 1)
        (ta, va, pa), (tb, vb, pb) = items[i], items[i + 1]
        op = rng.choice(operators)
        value = _combine(op, va, vb)
        if value is None:
            return None
        prec = _PRECEDENCE[op]
        text = _wrap(ta, pa, prec, False, op) + op + _wrap(tb, pb, prec, True, op)
        items[i : i + 2] = [(text, value, prec)]
    return items[0][0], items[0][1]


def lazy_countdown_solution(numbers: list[int], target: int) -> str | None:
    """The imperfect teacher's habit for the noisy pretraining rows: the numbers in the order given,
    added (``3+7+12``), whatever the target. None when that happens to be right (no wrong answer)."""
    if sum(numbers) == target:
        return None
    return "+".join(str(n) for n in numbers)


def countdown_targets(numbers: tuple[int, ...], operators: str) -> set[int]:
    """Every integer target an expression over ``numbers`` (each used once) reaches with ``operators``:
    the problem space of the generator, counted at config time."""

    exact = Fraction if "/" in operators else int  # integer arithmetic is exact (and fast) without division

    def values(items: tuple) -> set:
        if len(items) == 1:
            return {exact(items[0])}
        out: set[Fraction] = set()
        for i in range(1, len(items)):
            for left in values(items[:i]):
                for right in values(items[i:]):
                    for op in operators:
                        result = _combine(op, left, right)
                        if result is not None:
                            out.add(result)
        return out

    import itertools

    reached: set = set()
    for order in set(itertools.permutations(numbers)):
        reached |= values(order)
    return {int(v) for v in reached if exact is int or v.denominator == 1}


def countdown_record(index: int, split: str, numbers: list[int], target: int, prompt_style: str, solution: str = "") -> dict:
    """The one shape of a Countdown record, whatever its source."""
    return {
        "id": f"countdown-{split}-{index:06d}",
        "task": "countdown",
        "prompt": countdown_prompt(numbers, target, prompt_style),
        "numbers": numbers,
        "target": target,
        "answer": str(target),
        "solution": solution,
    }


def problem_key(numbers: list[int], target: int) -> tuple:
    """Identity of a problem regardless of number order (used to keep splits disjoint)."""
    return tuple(sorted(numbers)), int(target)


def generate_countdown(
    n: int,
    seed: int,
    spec: CountdownSpec = CountdownSpec(),
    split: str = "train",
    exclude: set | None = None,
    prompt_style: str = "compact",
    max_tries_per_problem: int = 1000,
    unique: bool = True,
) -> list[dict]:
    """``n`` solvable problems whose key is not in ``exclude``.

    With ``unique`` the problems are distinct and their keys are added to ``exclude`` so successive
    splits stay disjoint. Without it (the pretraining split) a problem may recur with different
    solutions: small number ranges have only a few thousand distinct problems.
    """
    rng = random.Random(f"countdown/{seed}/{split}")
    seen = exclude if exclude is not None else set()
    records: list[dict] = []
    stalled = 0  # draws since the last new problem: the space is exhausted when this grows large
    while len(records) < n:
        stalled += 1
        if stalled > max_tries_per_problem:
            raise RuntimeError(
                f"countdown generator could only make {len(records)} of {n} distinct '{split}' problems "
                f"with {spec}; widen the number/target ranges or lower the split sizes"
            )
        numbers = [rng.randint(spec.min_number, spec.max_number) for _ in range(spec.num_count)]
        made = random_expression(numbers, spec.operators, rng)
        if made is None:
            continue
        solution, value = made
        if value.denominator != 1 or not spec.min_target <= value <= spec.max_target:
            continue
        target = int(value)
        key = problem_key(numbers, target)
        if key in seen:
            continue
        if unique:
            seen.add(key)
        records.append(countdown_record(len(records), split, numbers, target, prompt_style, solution))
        stalled = 0
    return records


def countdown_from_paper_row(row: dict, index: int, split: str = "test", prompt_style: str = "paper") -> dict:
    """A record from the paper's test-set format: ``input`` "a,b,c" and ``output`` target."""
    try:
        numbers = [int(x) for x in str(row["input"]).split(",")]
        target = int(float(row["output"]))
    except (KeyError, ValueError) as exc:
        raise InputError(f"countdown row {index}: expected fields input='a,b,c' and output=<number> ({exc})") from None
    if any(n < 0 for n in numbers):
        raise InputError(f"countdown row {index}: negative numbers {numbers} (an answer cannot use them: no unary minus)")
    return countdown_record(index, split, numbers, target, prompt_style)
