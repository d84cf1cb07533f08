"""Categorical sampling with explicit floating-point precision.

Gumbel-max draws ``argmax(logits/T + g)``, ``g = -log(-log u)``. In float32 the largest uniform
below 1 is ``1 - 2**-24``, so ``g`` can never exceed ``-log(-log(1 - 2**-24)) ~= 16.64`` (float64:
~36.74). The truncated tail means tokens far below the leader can never win: sampling is silently
colder than asked for (Zheng et al., arXiv 2409.02908). Precision is therefore a parameter:
``fp64`` by default, ``fp32`` only to reproduce that effect.
"""

from __future__ import annotations

import torch

PRECISIONS = {"fp64": torch.float64, "fp32": torch.float32}


def precision_dtype(precision: str) -> torch.dtype:
    try:
        return PRECISIONS[precision]
    except KeyError:
        raise ValueError(f"unknown precision {precision!r}; choose one of {sorted(PRECISIONS)}") from None


def gumbel_from_uniform(u: torch.Tensor) -> torch.Tensor:
    """``-log(-log u)`` in the dtype of ``u`` (u = 0 gives -inf: that token never wins)."""
    return -torch.log(-torch.log(u))


def gumbel_noise_max(precision: str) -> float:
    """The largest Gumbel draw the precision can produce (from the largest uniform below 1)."""
    dtype = precision_dtype(precision)
    one = torch.tensor(1.0, dtype=dtype)
    return float(gumbel_from_uniform(torch.nextafter(one, torch.zeros_like(one))))


def gumbel_noise(
    shape: torch.Size | tuple,
    precision: str = "fp64",
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Standard Gumbel noise computed entirely in the given precision, drawn on the generator's device."""
    if generator is not None:
        device = generator.device
    return gumbel_from_uniform(torch.rand(shape, dtype=precision_dtype(precision), generator=generator, device=device))


def gumbel_argmax(
    logits: torch.Tensor,
    temperature: float,
    precision: str = "fp64",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Sample token ids from ``softmax(logits / temperature)``; temperature 0 is argmax."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    dtype = precision_dtype(precision)
    logits = logits.to(dtype)
    if temperature == 0:
        return logits.argmax(dim=-1)
    noise = gumbel_noise(logits.shape, precision, generator, logits.device).to(logits.device)
    return (logits / temperature + noise).argmax(dim=-1)


def sample_categorical_mdlm(
    probs: torch.Tensor, precision: str = "fp64", generator: torch.Generator | None = None
) -> torch.Tensor:
    """Categorical draw exactly as the MDLM/SEDD code does it: ``argmax(probs / (-log(u + 1e-10)))``.

    ``-log u`` is an Exponential(1) draw; in float32 its smallest value is ~5.96e-8 (u = 1 - 2**-24),
    which caps how far a small probability can be boosted: the source of the low-temperature bug.
    """
    dtype = precision_dtype(precision)
    probs = probs.to(dtype)
    u = torch.rand(probs.shape, dtype=dtype, generator=generator,
                   device=generator.device if generator is not None else probs.device).to(probs.device)
    exponential = 1e-10 - (u + 1e-10).log()
    return (probs / exponential).argmax(dim=-1)


def token_confidence(logits: torch.Tensor, tokens: torch.Tensor, log_norm: torch.Tensor | None = None) -> torch.Tensor:
    """Probability (float64) of ``tokens`` under ``softmax(logits)``, without materialising probs.

    ``log_norm`` is the softmax's log-normaliser when it is not that of ``logits`` itself (the
    sampler excludes [MASK] from the argmax but keeps it in the normaliser, as LLaDA does)."""
    logits = logits.to(torch.float64)
    picked = logits.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    return torch.exp(picked - (torch.logsumexp(logits, dim=-1) if log_norm is None else log_norm))


def top_p_filter(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Nucleus filtering: per row, drop every token whose more probable tokens already hold more than
    ``top_p`` of the mass (the top token always stays; Hugging Face's rule, as the released MDPO
    evaluation's ``top_p_logits``, default 0.95), i.e. set its logit to -inf. A copy; ``top_p >= 1``
    returns the logits unchanged."""
    if top_p >= 1.0:
        return logits
    if not 0.0 < top_p:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    ordered, order = logits.sort(dim=-1, descending=True)
    cumulative = ordered.softmax(dim=-1).cumsum(dim=-1)
    drop_sorted = (cumulative - ordered.softmax(dim=-1)) > top_p  # the mass before this token exceeds top_p (HF)
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))
