"""One frozen, JSON-friendly settings object for every reward switch and deadline.

The defaults reproduce this project's behaviour before the switches existed, so
``RewardSettings()`` (or passing ``None``) changes nothing.  ``RewardSettings.released()``
gives the semantics of the MDPO authors' released reward code
(autonomousvision/mdpo, ``src/open_r1/rewards.py``: ``verify_math`` / ``verify_countdown``).
Every field is a str, bool or float so a config section maps onto the constructor
one-to-one (``RewardSettings.from_dict(cfg["rewards"])``) and ``to_dict()`` round-trips.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields

MATH_RULES = ("lenient", "released")
UNCLOSED_BOX_RULES = ("earlier_box", "raw_text")
COMPLETION_TEXTS = ("first_eos", "whole")


@dataclass(frozen=True, kw_only=True)
class RewardSettings:
    """Reward switches (which answers count) and deadlines (how long scoring may take)."""

    math_rule: str = "lenient"
    """Which math answers are extracted and checked.

    * ``"lenient"`` (this project; default): the last closed ``\\boxed{}`` is verified; without a box
      the text is parsed by math-verify with *unanchored* LaTeX and plain-expression extraction and,
      if that finds nothing, retried wrapped in ``\\boxed{}``.  Needed by the tiny local models,
      which emit bare answers (``\\frac{11}{12}``, ``-7``); it also credits prose such as
      "x = 7 and therefore...".
    * ``"released"`` (MDPO released code, ``verify_math``; the paper's reward): math-verify on the
      whole completion with *anchored* extraction only (boxed first, then "final answer is" /
      "answer:" followed by a LaTeX environment); no box and no anchor scores 0.
    """

    countdown_unary_minus: bool = False
    """Accept unary signs (``-3+5+7``) in Countdown expressions.

    False (this project; default): every number must be used as given.  True (MDPO released code
    ``verify_countdown`` and d1's ``countdown_reward_func``: both check the multiset of digit runs
    and ``eval`` the string, so ``-3`` and ``+3`` pass).
    """

    countdown_unclosed_box: str = "earlier_box"
    """What a Countdown answer is when the last ``\\boxed{`` is never closed.

    ``"earlier_box"`` (this project; default): the last *closed* box is used.
    ``"raw_text"`` (MDPO released code: its ``last_boxed_only_string`` returns None, ``remove_boxed``
    then raises and the verifier falls back): as if there were no box, i.e. the ``<answer>`` tag,
    else the raw text.
    """

    completion_text: str = "first_eos"
    """How generated token ids become the text a reward scores (final answers and every step's
    prediction ``x0_hat_t`` alike).

    ``"first_eos"`` (this project; default): the text up to the first EOS, special tokens dropped;
    what follows an EOS is not part of the answer.  ``"whole"`` (MDPO released code,
    ``mdpo_trainer.py``: ``batch_decode(..., skip_special_tokens=True)`` on the whole prediction):
    every position, special tokens dropped, so text after an EOS still counts (an intermediate
    prediction with a box after its EOS can score).
    """

    answer_timeout_s: float = 2.0
    """Hard bound (seconds) on scoring one math answer, enforced by the parent process: a worker
    that exceeds it (slow, stuck, stopped) is killed and replaced and the answer scores 0, counted
    as a timeout (cached as 0 only when the same answer times out a second time).  This project's choice: ~1000x a normal answer (2-3 ms even for
    a 3 kB completion), so only pathological answers (``9^{9^{9^{9}}}`` runs into math-verify's own
    3 s alarm) are cut.  The released code has no such bound beyond math-verify's alarms (5 s per
    parse or verify)."""

    batch_timeout_s: float = 300.0
    """Deadline (seconds) for one ``score_completions`` call's math answers; answers not scored by
    then score 0 and are counted as timeouts.  This project's choice: generous for paper-scale
    batches (~16k step completions at ~3 ms each), so it truncates only pathological batches;
    it caps what one batch can cost a run."""

    def __post_init__(self) -> None:
        """Reject wrong types and values at construction, naming the field."""
        for name, allowed in (("math_rule", MATH_RULES), ("countdown_unclosed_box", UNCLOSED_BOX_RULES),
                              ("completion_text", COMPLETION_TEXTS)):
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(f"rewards.{name}: {value!r} is not one of {list(allowed)}")
        if not isinstance(self.countdown_unary_minus, bool):
            raise ValueError(f"rewards.countdown_unary_minus: expected a bool, got {self.countdown_unary_minus!r}")
        for name in ("answer_timeout_s", "batch_timeout_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"rewards.{name}: expected a finite number of seconds > 0, got {value!r}")

    @classmethod
    def released(cls, **overrides: object) -> RewardSettings:
        """The MDPO released code's reward semantics (deadlines stay this project's)."""
        base = {"math_rule": "released", "countdown_unary_minus": True, "countdown_unclosed_box": "raw_text",
                "completion_text": "whole"}
        return cls(**{**base, **overrides})  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls, data: Mapping[str, object] | None) -> RewardSettings:
        """From a config section (None or {} = defaults); unknown keys are a ValueError naming them."""
        data = dict(data or {})
        unknown = sorted(set(data) - set(FIELD_NAMES))
        if unknown:
            raise ValueError(f"rewards: unknown key(s) {unknown}; allowed keys: {list(FIELD_NAMES)}")
        return cls(**data)  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def score_key(self, task: str) -> tuple:
        """The fields that can change ``task``'s score: part of every cache key, so one cache
        shared across settings never returns a score computed under other settings."""
        if task == "countdown":
            return (self.countdown_unary_minus, self.countdown_unclosed_box)
        return (self.math_rule,)


FIELD_NAMES = tuple(f.name for f in fields(RewardSettings))
DEFAULT_SETTINGS = RewardSettings()
