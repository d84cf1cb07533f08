"""Load tokenizers and models through the Hugging Face Auto classes.

The same function loads the tiny local model from ``results/<preset>/models/<name>`` and
LLaDA-8B-Instruct from the hub. Weights load only from safetensors. Remote code runs only for a
model id that the config lists explicitly in ``trust_remote_code_for`` (or a checkpoint trained
from such a model, which records its base id in ``config.maskdiff_base_model``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer


@dataclass(frozen=True)
class TokenIds:
    """The special ids every sampler and trainer needs."""

    mask: int
    pad: int
    eos: int


def _remote_code_allowed(name_or_path: str, allowed: list[str] | tuple[str, ...]) -> bool:
    if name_or_path in allowed:
        return True
    config_file = Path(name_or_path) / "config.json"
    if config_file.is_file():
        base = json.loads(config_file.read_text()).get("maskdiff_base_model")
        return base is not None and base in allowed
    return False


def load_tokenizer(name_or_path: str, trust_remote_code_for: list[str] | tuple[str, ...] = ()):
    trust = _remote_code_allowed(name_or_path, trust_remote_code_for)
    return AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=trust)


def load_model(
    name_or_path: str,
    trust_remote_code_for: list[str] | tuple[str, ...] = (),
    dtype: torch.dtype | str | None = None,
    device: str | torch.device | None = None,
) -> torch.nn.Module:
    """Load a masked-diffusion network (safetensors only) in eval mode."""
    trust = _remote_code_allowed(name_or_path, trust_remote_code_for)
    config = AutoConfig.from_pretrained(name_or_path, trust_remote_code=trust)
    auto_map = getattr(config, "auto_map", None) or {}
    auto_cls = AutoModelForCausalLM if (config.model_type == "llama" or "AutoModelForCausalLM" in auto_map) else AutoModel
    kwargs = {"trust_remote_code": trust, "use_safetensors": True}
    if dtype is not None:
        kwargs["dtype"] = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    model = auto_cls.from_pretrained(name_or_path, **kwargs)
    if getattr(model.config, "model_type", "") == "llama" and getattr(model.config, "is_causal", True):
        raise ValueError(
            f"{name_or_path}: a Llama config with is_causal=True is an autoregressive model, not a masked "
            "diffusion network (set is_causal: false)"
        )
    if device is not None:
        model.to(device)
    return model.eval()


def token_ids(tokenizer, model_config=None, mask_token_id: int | None = None) -> TokenIds:
    """Mask/pad/eos ids: explicit ``mask_token_id`` (LLaDA: 126336) wins over tokenizer and config."""
    mask = mask_token_id
    if mask is None:
        mask = getattr(tokenizer, "mask_token_id", None)
    if mask is None and model_config is not None:
        mask = getattr(model_config, "mask_token_id", None)
    if mask is None:
        raise ValueError("no mask token id: set model.mask_token_id in the config")
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    if eos is None:
        raise ValueError("tokenizer has no eos token")
    return TokenIds(mask=int(mask), pad=int(pad), eos=int(eos))


def fetch_model(name_or_path: str, out_dir: str, trust_remote_code_for: tuple[str, ...] = (), dtype: str | None = None) -> None:
    """Save a (hub) model and its tokenizer as the DAG's base model, in safetensors.

    The saved config records ``maskdiff_base_model`` so that remote code allowed for the hub id
    stays allowed for this copy and for every model trained from it, and nothing else.
    """
    from ..io import atomic_dir

    model = load_model(name_or_path, trust_remote_code_for, dtype=dtype)
    tokenizer = load_tokenizer(name_or_path, trust_remote_code_for)
    if _remote_code_allowed(name_or_path, trust_remote_code_for) and getattr(model.config, "auto_map", None):
        model.config.maskdiff_base_model = getattr(model.config, "maskdiff_base_model", None) or name_or_path
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
