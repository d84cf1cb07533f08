"""One forward pass of a masked-diffusion network, padding handled honestly.

Models that honour ``attention_mask`` (the tiny Llama) get left-padded batches with position ids
counted from the first real token, so a prompt gets the same logits whatever it is batched with.
LLaDA's published modeling code ignores ``attention_mask``: padding it would silently change the
result, so a padded batch is refused and callers batch by equal prompt length instead.
"""

from __future__ import annotations

import torch

# model_type values whose modeling code is known to ignore attention_mask.
_IGNORES_ATTENTION_MASK = {"llada"}


def supports_padding(model: torch.nn.Module) -> bool:
    model_type = getattr(getattr(model, "config", None), "model_type", "")
    return model_type not in _IGNORES_ATTENTION_MASK


def model_device(model: torch.nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def sampling_device(model, inputs: torch.Tensor) -> torch.device:
    """Where a sampler keeps its state: on the model's device, or, for a plain callable standing in
    for a network (scripted test networks), where its inputs are."""
    return model_device(model) if isinstance(model, torch.nn.Module) else inputs.device


def forward_logits(
    model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Logits ``[B, N, V]`` (on the model's device) for a (partially masked) batch."""
    device = model_device(model)
    input_ids = input_ids.to(device)
    if attention_mask is None or bool(attention_mask.all()):
        return model(input_ids=input_ids).logits
    if not supports_padding(model):
        raise ValueError(
            f"{type(model).__name__} ignores attention_mask, so a padded batch would be silently wrong; "
            "batch prompts of equal length (maskdiff.batching.length_buckets) instead"
        )
    attention_mask = attention_mask.to(device)
    position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    return model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids).logits
