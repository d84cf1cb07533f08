"""Settings of the precision / First-Hitting-Sampler study (Zheng et al., arXiv 2409.02908).

Kept apart from :mod:`maskdiff.precision` (which needs torch) so that the workflow can build and
check them at parse time: a bad grid stops ``snakemake -n`` before any job.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .settings import require

PRECISION_NAMES = ("fp32", "fp64")
NOISE_SCHEDULES = ("linear", "cosine")  # as maskdiff.sampling.fhs (checked equal in the tests)


@dataclass(frozen=True)
class ModelFreeSettings:
    """Grid and budget of part (a). ``max_elements`` caps draws * (V + 1) per (setting, precision)."""

    vocab_sizes: tuple[int, ...] = (32, 1024, 32768, 131072)
    zipf_s: tuple[float, ...] = (1.0,)
    steps: tuple[int, ...] = (64, 256, 1024, 4096)
    times: tuple[float, ...] = (1.0,)
    precisions: tuple[str, ...] = ("fp32", "fp64")
    target_unmasks: int = 1500
    min_draws: int = 500
    max_elements: int = 2**27
    chunk_bytes: int = 2**29
    tail_frac: float = 0.01
    seed: int = 0
    analytic_vocab_sizes: tuple[int, ...] = (32, 1024, 32768, 131072, 1048576)
    analytic_steps: tuple[int, ...] = field(
        default_factory=lambda: tuple(int(n) for n in np.unique(np.round(np.logspace(1, 6, 26))))
    )

    def __post_init__(self) -> None:
        require(bool(self.vocab_sizes) and min(self.vocab_sizes) >= 2, f"vocab_sizes must be >= 2, got {list(self.vocab_sizes)}")
        require(bool(self.steps) and min(self.steps) >= 1, f"steps must be >= 1, got {list(self.steps)}")
        require(bool(self.times) and all(0 < t <= 1 for t in self.times), f"times must lie in (0, 1], got {list(self.times)}")
        require(bool(self.zipf_s) and all(z >= 0 for z in self.zipf_s), f"zipf_s must be >= 0, got {list(self.zipf_s)}")
        require(bool(self.precisions) and set(self.precisions) <= set(PRECISION_NAMES),
                f"precisions must be a non-empty subset of {list(PRECISION_NAMES)}, got {list(self.precisions)}")
        for name in ("target_unmasks", "min_draws", "max_elements", "chunk_bytes"):
            require(getattr(self, name) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")
        require(0 < self.tail_frac <= 1, f"tail_frac must lie in (0, 1], got {self.tail_frac}")
        require(min(self.analytic_vocab_sizes, default=2) >= 2 and min(self.analytic_steps, default=1) >= 1,
                "analytic_vocab_sizes must be >= 2 and analytic_steps >= 1")


@dataclass(frozen=True)
class ModelStudySettings:
    """Part (b). ``step_multiples`` gives N = m * gen_length for the ancestral sampler;
    ``fhs_tokens_per_call`` lists FHS variants (1 = exact, k > 1 = parallel)."""

    gen_length: int = 32
    step_multiples: tuple[int, ...] = (1, 4, 16, 64, 256, 1024)
    precisions: tuple[str, ...] = ("fp32", "fp64")
    fhs_tokens_per_call: tuple[int, ...] = (1, 2, 4)
    fhs_precision: str = "fp64"
    modes: tuple[str, ...] = ("prompted", "unconditional")
    num_unconditional: int = 128
    unconditional_prompt: str = "empty"  # or "eos": a single EOS token for models that need a prompt
    unconditional_length: int | None = None  # positions sampled unconditionally (None = gen_length)
    batch_size: int = 128
    schedule: str = "linear"
    seed: int = 0
    chat_template: bool = False

    def sampler_configs(self, mode: str = "prompted") -> list[dict]:
        length = self.length(mode)
        configs = [
            {"sampler": "ancestral", "precision": p, "steps": m * length, "tokens_per_call": None}
            for m in self.step_multiples for p in self.precisions
        ]
        configs += [
            {"sampler": "fhs", "precision": self.fhs_precision, "steps": None, "tokens_per_call": k}
            for k in self.fhs_tokens_per_call
        ]
        return configs

    def length(self, mode: str) -> int:
        """Positions sampled in ``mode``: the task's generation length, or a whole example's."""
        if mode == "unconditional" and self.unconditional_length:
            return self.unconditional_length
        return self.gen_length

    def __post_init__(self) -> None:
        require(self.gen_length >= 1, f"gen_length must be >= 1, got {self.gen_length}")
        require(bool(self.step_multiples) and min(self.step_multiples) >= 1,
                f"step_multiples must be >= 1, got {list(self.step_multiples)}")
        require(set(self.precisions) <= set(PRECISION_NAMES) and self.fhs_precision in PRECISION_NAMES,
                f"precisions must be among {list(PRECISION_NAMES)}")
        require(all(k >= 1 for k in self.fhs_tokens_per_call), f"fhs_tokens_per_call must be >= 1, got {list(self.fhs_tokens_per_call)}")
        require(bool(self.modes) and set(self.modes) <= {"prompted", "unconditional"},
                f"modes must be a non-empty subset of ['prompted', 'unconditional'], got {list(self.modes)}")
        require(self.unconditional_prompt in ("empty", "eos"), f"unconditional_prompt must be empty or eos, got {self.unconditional_prompt!r}")
        require(self.schedule in NOISE_SCHEDULES, f"schedule must be one of {list(NOISE_SCHEDULES)}, got {self.schedule!r}")
        for name in ("num_unconditional", "batch_size"):
            require(getattr(self, name) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")
