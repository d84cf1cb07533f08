"""The First-Hitting Sampler (FHS) of Zheng et al. (arXiv 2409.02908), exact for a time-agnostic network.

Under a masked-diffusion forward process every position is masked independently with probability
``1 - alpha(t)``. Reversing it, the ``n`` still-masked positions unmask at iid times, so the latest
of them (the next *first hitting* time going backwards) is ``tau_{n-1} = alpha^{-1}(1 - u^{1/n}
(1 - alpha(tau_n)))`` with ``u ~ U(0, 1)``; which position it is, is uniform among the masked ones,
and its token is drawn from the network's prediction for that position. Because the network takes
no time input (it is *time-agnostic*), neither the times nor the schedule change the samples: the
law of the final sequence is the order-agnostic autoregressive one, with exactly one network call
and one categorical draw per token. The times are still computed and reported (``unmask_times``)
since they are what an ancestral sampler with the same schedule would have produced.

``tokens_per_call = k > 1`` is the approximate parallel variant: ``k`` uniformly chosen positions
are filled from one network call (``ceil(L / k)`` calls), which ignores the dependence between the
``k`` tokens; ``k = L`` samples every position from its marginal (a product of marginals).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..models.forward import forward_logits, sampling_device
from ..models.loading import TokenIds
from .categorical import gumbel_argmax, precision_dtype

NOISE_SCHEDULES = ("linear", "cosine")


def _check_schedule(schedule: str) -> None:
    if schedule not in NOISE_SCHEDULES:
        raise ValueError(f"unknown noise schedule {schedule!r}; choose one of {NOISE_SCHEDULES}")


def alpha(t: torch.Tensor | float, schedule: str = "linear") -> torch.Tensor:
    """Probability that a token is still clean at time ``t``: linear ``1 - t``, cosine ``cos(pi t / 2)``."""
    _check_schedule(schedule)
    t = torch.as_tensor(t, dtype=torch.float64)
    return 1 - t if schedule == "linear" else torch.cos(math.pi / 2 * t)


def masked_fraction(t: torch.Tensor | float, schedule: str = "linear") -> torch.Tensor:
    """``1 - alpha(t)`` computed without cancellation (cosine: ``2 sin^2(pi t / 4)``)."""
    _check_schedule(schedule)
    t = torch.as_tensor(t, dtype=torch.float64)
    return t.clone() if schedule == "linear" else 2 * torch.sin(math.pi / 4 * t) ** 2


def time_of_masked_fraction(m: torch.Tensor, schedule: str = "linear") -> torch.Tensor:
    """Inverse of :func:`masked_fraction` (``alpha^{-1}(1 - m)``), stable for tiny ``m``."""
    _check_schedule(schedule)
    m = torch.as_tensor(m, dtype=torch.float64)
    return m.clone() if schedule == "linear" else (4 / math.pi) * torch.asin(torch.sqrt(m / 2))


@dataclass
class FHSOutput:
    sequences: torch.Tensor  # [B, P + L]
    prompt_length: int
    nfe: int  # network calls (each on the whole batch): ceil(L / tokens_per_call)
    unmask_times: torch.Tensor  # [B, L] float64, the (reverse-)time at which each position unmasked

    @property
    def completions(self) -> torch.Tensor:
        return self.sequences[:, self.prompt_length :]


def initial_state(
    prompt_ids: torch.Tensor, gen_length: int, ids: TokenIds, attention_mask: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``prompt + gen_length`` masks, and the attention mask extended over the generated region."""
    batch, prompt_len = prompt_ids.shape
    x = torch.full((batch, prompt_len + gen_length), ids.mask, dtype=torch.long, device=prompt_ids.device)
    x[:, :prompt_len] = prompt_ids
    full_mask = None
    if attention_mask is not None:
        ones = attention_mask.new_ones(batch, gen_length)
        full_mask = torch.cat([attention_mask, ones], dim=1).to(prompt_ids.device)
    return x, full_mask


def exclude_mask_logit(logits: torch.Tensor, mask_id: int, dtype: torch.dtype) -> torch.Tensor:
    """A copy of ``logits`` in ``dtype`` where the mask token can never be predicted."""
    out = logits.to(dtype).clone()
    if mask_id < out.shape[-1]:
        out[..., mask_id] = float("-inf")
    return out


@torch.no_grad()
def first_hitting_sample(
    model: torch.nn.Module,
    prompt_ids: torch.Tensor,
    gen_length: int,
    ids: TokenIds,
    generator: torch.Generator | None = None,
    attention_mask: torch.Tensor | None = None,
    temperature: float = 1.0,
    precision: str = "fp64",
    tokens_per_call: int = 1,
    schedule: str = "linear",
    forward=forward_logits,
) -> FHSOutput:
    """Sample ``gen_length`` tokens after each prompt (``[B, P]``, left-padded if ``attention_mask``).

    Every row has the same number of masks at every call, so the whole batch advances together:
    positions are chosen by ranking uniform keys over the masked positions (no per-row loops).
    Randomness per call, in order: position keys, the token draw, the time draws.
    """
    if gen_length < 1 or tokens_per_call < 1:
        raise ValueError(f"gen_length and tokens_per_call must be >= 1, got {gen_length}, {tokens_per_call}")
    _check_schedule(schedule)
    dtype = precision_dtype(precision)
    device = sampling_device(model, prompt_ids)
    x, full_mask = initial_state(prompt_ids.to(device), gen_length, ids, attention_mask)
    batch, prompt_len = prompt_ids.shape
    draw_device = generator.device if generator is not None else torch.device("cpu")
    # Track log(1 - alpha(tau)) rather than tau: products of u^{1/n} stay exact in log space.
    log_masked = torch.zeros(batch, dtype=torch.float64)
    times = torch.full((batch, gen_length), float("nan"), dtype=torch.float64)
    remaining, nfe = gen_length, 0
    while remaining > 0:
        k = min(tokens_per_call, remaining)
        logits = forward(model, x, full_mask)[:, prompt_len:]
        nfe += 1
        gen = x[:, prompt_len:]
        keys = torch.rand(gen.shape, dtype=torch.float64, generator=generator, device=draw_device).to(device)
        keys = torch.where(gen == ids.mask, keys, torch.full_like(keys, -1.0))
        chosen = keys.argsort(dim=-1, descending=True)[:, :k]  # [B, k], a uniform random order
        picked = logits.gather(1, chosen.unsqueeze(-1).expand(-1, -1, logits.shape[-1]))
        tokens = gumbel_argmax(exclude_mask_logit(picked, ids.mask, dtype), temperature, precision, generator)
        x[:, prompt_len:] = gen.scatter(1, chosen, tokens.to(gen.dtype))

        u = torch.rand((batch, k), dtype=torch.float64, generator=generator, device=draw_device).cpu()
        n_left = remaining - torch.arange(k, dtype=torch.float64)  # masks left before each hit
        log_masked_k = log_masked.unsqueeze(-1) + torch.cumsum(torch.log(u) / n_left, dim=-1)
        times.scatter_(1, chosen.cpu(), time_of_masked_fraction(torch.exp(log_masked_k), schedule))
        log_masked = log_masked_k[:, -1]
        remaining -= k
    return FHSOutput(sequences=x, prompt_length=prompt_len, nfe=nfe, unmask_times=times)
