"""The masked-diffusion training loss (LLaDA pretraining / SFT).

Per sequence draw ``t ~ U(eps, 1)``, mask each response token with probability ``t``, and take the
cross-entropy on masked positions only, weighted by ``1/t`` and normalised by the response length
(an upper bound on the negative log-likelihood). Prompt tokens are never masked.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..models.forward import forward_logits


def mask_responses(
    input_ids: torch.Tensor,
    response_mask: torch.Tensor,
    mask_id: int,
    generator: torch.Generator | None = None,
    eps: float = 1e-3,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(noisy_ids, masked, p_mask)``: each response token masked with its row's probability t."""
    batch, width = input_ids.shape
    t = eps + (1 - eps) * torch.rand(batch, generator=generator, device=input_ids.device)
    p_mask = t.unsqueeze(-1).expand(batch, width)
    masked = (torch.rand(batch, width, generator=generator, device=input_ids.device) < p_mask) & response_mask.bool()
    noisy = torch.where(masked, torch.full_like(input_ids, mask_id), input_ids)
    return noisy, masked, p_mask


def diffusion_loss_from_logits(
    logits: torch.Tensor,
    targets: torch.Tensor,
    masked: torch.Tensor,
    p_mask: torch.Tensor,
    response_mask: torch.Tensor,
) -> torch.Tensor:
    """``sum_masked CE / (t * response_length) / batch`` (LLaDA's SFT normaliser).

    The batch may live on the CPU (its noise comes from a CPU generator) while the logits are on
    the model's device: everything is moved to the logits' device."""
    targets, masked, p_mask, response_mask = (t.to(logits.device) for t in (targets, masked, p_mask, response_mask))
    response_len = response_mask.sum(dim=-1, keepdim=True).clamp(min=1).expand_as(masked)
    token_ce = F.cross_entropy(logits[masked].float(), targets[masked], reduction="none")
    return (token_ce / p_mask[masked] / response_len[masked]).sum() / targets.shape[0]


def masked_diffusion_loss(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    response_mask: torch.Tensor,
    mask_id: int,
    attention_mask: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    eps: float = 1e-3,
) -> tuple[torch.Tensor, int]:
    """Loss and number of masked tokens for one batch."""
    noisy, masked, p_mask = mask_responses(input_ids, response_mask, mask_id, generator, eps)
    logits = forward_logits(model, noisy, attention_mask)
    return diffusion_loss_from_logits(logits, input_ids, masked, p_mask, response_mask), int(masked.sum())
