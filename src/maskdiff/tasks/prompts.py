"""Prompt formats.

``compact`` prompts suit the tiny character-level models of the local presets; ``paper`` prompts
are the MDPO paper's protocol (DESIGN section 5) used with LLaDA-8B-Instruct.
"""

from __future__ import annotations

from ..errors import InputError

COUNTDOWN_PAPER_INSTRUCTION = (
    "Using only the provided numbers, create an arithmetic expression that evaluates to exactly the "
    "provided target number. You may use the operations +, -, *, and / as needed, but each number must "
    "be used exactly once. Think step-by-step and provide your final expression inside \\boxed{} tags "
    "without including an equals sign or the target number. For example: \\boxed{a + b * c}"
)

MATH_PAPER_SUFFIX = "\nLet's think step by step and output the final answer within \\boxed{}."

PROMPT_STYLES = ("compact", "paper")


def countdown_prompt(numbers: list[int], target: int | float, style: str = "compact") -> str:
    _check_style(style)
    if style == "compact":
        return ",".join(str(n) for n in numbers) + f"={_fmt_number(target)}"
    # The released MDPO code formats the numbers as a Python list: f"Numbers: {example['nums']}".
    nums = "[" + ", ".join(str(int(n)) for n in numbers) + "]"
    return f"{COUNTDOWN_PAPER_INSTRUCTION}\n\nNumbers: {nums}\nTarget: {_fmt_number(target)}"


def math_prompt(problem: str, style: str = "compact") -> str:
    _check_style(style)
    if style == "compact":
        return problem
    return problem + MATH_PAPER_SUFFIX


def _check_style(style: str) -> None:
    if style not in PROMPT_STYLES:
        raise InputError(f"unknown prompt style {style!r}; choose one of {PROMPT_STYLES}")


def _fmt_number(x: int | float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)
