"""The ancestral masked-diffusion sampler of MDLM/SEDD, with a network-call cache.

Time grid ``t_i = 1 - i/N`` (i = 0..N); a step goes from ``t`` to ``s = t - 1/N``. Each masked
position draws ONE categorical over vocabulary + mask:

    q_v    = p_v (alpha_s - alpha_t) / (1 - alpha_t)      (p = softmax of the logits, mask excluded)
    q_mask = (1 - alpha_s) / (1 - alpha_t)

with :func:`~maskdiff.sampling.categorical.sample_categorical_mdlm` (uniform -> -log -> divide ->
argmax), ``q`` computed in the sampling precision, exactly as the MDLM code does. ``precision="fp32"``
therefore reproduces the paper's bug: in float32 the exponential draw cannot go below ~6e-8, so a
token whose per-step probability ``q_v`` is much smaller than that (relative to ``q_mask ~ 1``) can
never be drawn, which truncates the tail and lowers the effective temperature more as N grows.
At the last step ``alpha_0 = 1``: ``q_mask = 0`` and everything left unmasks. Unmasked positions are
never resampled.

Cache: the network takes no time input, so a row whose tokens did not change since its last call
has the same logits; only rows that changed (and still have masks) are recomputed, by indexing the
batch. At most ``L`` calls per row whatever ``N`` is (the first call, then one per step that
unmasked something and left masks). With a model whose batched kernels are not bitwise invariant to
the batch size, cached and uncached runs may differ in the last float bits of the logits.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..models.forward import forward_logits, sampling_device
from ..models.loading import TokenIds
from .categorical import precision_dtype, sample_categorical_mdlm
from .fhs import _check_schedule, exclude_mask_logit, initial_state, masked_fraction


@dataclass
class AncestralOutput:
    sequences: torch.Tensor  # [B, P + L]
    prompt_length: int
    nfe_calls: int  # batched network invocations (each on a subset of rows)
    calls_per_row: torch.Tensor  # [B] long: network evaluations of each row (<= L with the cache)
    steps: int  # N

    @property
    def completions(self) -> torch.Tensor:
        return self.sequences[:, self.prompt_length :]

    @property
    def nfe(self) -> float:
        """Mean network evaluations per row: the NFE comparable with FHS's ``L``."""
        return float(self.calls_per_row.double().mean())

    @property
    def row_evaluations(self) -> int:
        """Total row evaluations (sum of ``calls_per_row``): the compute actually spent."""
        return int(self.calls_per_row.sum())


def step_probabilities(
    logits: torch.Tensor, mask_id: int, unmask_prob: float, stay_prob: float, dtype: torch.dtype
) -> torch.Tensor:
    """``q`` over vocabulary + mask (the mask id's slot holds ``q_mask``) for ``[M, V]`` logits."""
    p = torch.softmax(exclude_mask_logit(logits, mask_id, dtype), dim=-1)
    q = p * torch.tensor(unmask_prob, dtype=dtype)
    q[:, mask_id] = torch.tensor(stay_prob, dtype=dtype)
    return q


@torch.no_grad()
def ancestral_sample(
    model: torch.nn.Module,
    prompt_ids: torch.Tensor,
    gen_length: int,
    ids: TokenIds,
    num_steps: int,
    generator: torch.Generator | None = None,
    attention_mask: torch.Tensor | None = None,
    precision: str = "fp64",
    schedule: str = "linear",
    cache: bool = True,
    forward=forward_logits,
) -> AncestralOutput:
    """Sample ``gen_length`` tokens after each prompt in ``num_steps`` ancestral steps.

    Memory stays ``O(B L V)`` whatever ``num_steps`` is: logits are cached per row, and only the
    masked positions (``[M, V]``) are drawn at each step. The loop stops early once every position
    is unmasked (later steps would draw nothing). Without ``cache`` every row with masks left is
    recomputed at every step (the MDLM code's cost); the samples are the same.
    """
    if gen_length < 1 or num_steps < 1:
        raise ValueError(f"gen_length and num_steps must be >= 1, got {gen_length}, {num_steps}")
    _check_schedule(schedule)
    dtype = precision_dtype(precision)
    device = sampling_device(model, prompt_ids)
    x, full_mask = initial_state(prompt_ids.to(device), gen_length, ids, attention_mask)
    batch, prompt_len = prompt_ids.shape
    cached: torch.Tensor | None = None
    stale = torch.ones(batch, dtype=torch.bool, device=x.device)
    calls_per_row = torch.zeros(batch, dtype=torch.long)
    nfe_calls = 0
    for i in range(num_steps):
        gen = x[:, prompt_len:]
        masked = gen == ids.mask
        has_mask = masked.any(dim=-1)
        if not bool(has_mask.any()):
            break
        need = (stale & has_mask) if cache else has_mask
        if bool(need.any()):
            rows = need.nonzero().squeeze(-1)
            sub_mask = None if full_mask is None else full_mask[rows]
            logits = forward(model, x[rows], sub_mask)[:, prompt_len:]
            if cached is None:
                cached = logits.new_empty((batch, *logits.shape[1:]))
            cached[rows] = logits
            calls_per_row[rows.cpu()] += 1
            nfe_calls += 1
            stale[rows] = False

        m_t = float(masked_fraction((num_steps - i) / num_steps, schedule))
        m_s = float(masked_fraction((num_steps - i - 1) / num_steps, schedule)) if i < num_steps - 1 else 0.0
        q = step_probabilities(cached[masked], ids.mask, (m_t - m_s) / m_t, m_s / m_t, dtype)
        drawn = sample_categorical_mdlm(q, precision, generator).to(gen.device)
        new_gen = gen.clone()
        new_gen[masked] = drawn
        stale |= (new_gen != gen).any(dim=-1)
        x[:, prompt_len:] = new_gen
    return AncestralOutput(
        sequences=x, prompt_length=prompt_len, nfe_calls=nfe_calls, calls_per_row=calls_per_row, steps=num_steps
    )
