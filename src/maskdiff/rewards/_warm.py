"""Imported only by the math workers' forkserver (``workers.PRELOAD``): one verifier call per
rule, so every worker forked from it starts with math_verify/sympy imported and their lazy
regexes and parser tables built (a fresh worker then costs milliseconds, not ~0.4 s)."""

from maskdiff.rewards.math import score_math_text

for _rule in ("lenient", "released"):
    score_math_text("The answer is \\boxed{\\frac{1}{2}}", "\\frac{1}{2}", _rule)
score_math_text("x = -7", "-7", "lenient")
