"""Load tokenizers and models through the Hugging Face Auto classes.

The same function loads the tiny local model from ``results/<preset>/models/<name>`` and
LLaDA-8B-Instruct from the hub. Weights load only from safetensors.

Remote code (the Python files a model directory ships, named by its ``auto_map``) runs only when
both hold:

* the model id is listed in ``trust_remote_code_for``, or the directory is a checkpoint trained
  from such a model (its config records the base id in ``maskdiff_base_model``); and
* every ``*.py`` file of the directory has the sha256 pinned in ``remote_code_sha256`` (the
  config's ``model.remote_code_sha256``, git-tracked). A directory's own claims cannot be trusted:
  anyone who can write it (a shared DVC remote, a copy from a colleague) could otherwise make it
  run any code it bundles just by naming the allowed base model. A hub id is fetched at the pinned
  ``revision`` and its code checked the same way before anything is imported.

``fetch_model`` saves the hashes it verified next to the model (``maskdiff_remote_code.json``) as
a record; loading never reads that record, only the config's pins.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import torch
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer

from ..errors import InputError
from ..io import sha256_file

REMOTE_CODE_RECORD = "maskdiff_remote_code.json"
_CODE_CONFIGS = ("config.json", "tokenizer_config.json", "processor_config.json", "preprocessor_config.json")
_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")


class RemoteCodeError(InputError):
    """A model directory's Python code is not the code the config pins: it is never imported."""


@dataclass(frozen=True)
class TokenIds:
    """The special ids every sampler and trainer needs."""

    mask: int
    pad: int
    eos: int


def remote_code_options(model_options: Mapping | None) -> dict:
    """The keyword arguments of :func:`load_model` / :func:`load_tokenizer` / :func:`fetch_model`
    that govern remote code, from a ``model_options`` dict (the config's ``model`` section as the
    rules pass it): ``trust_remote_code_for``, ``remote_code_sha256``, ``revision``."""
    opts = model_options or {}
    return {
        "trust_remote_code_for": tuple(opts.get("trust_remote_code_for") or ()),
        "remote_code_sha256": dict(opts.get("remote_code_sha256") or {}),
        "revision": opts.get("revision"),
    }


def _remote_code_allowed(name_or_path: str, allowed: list[str] | tuple[str, ...]) -> bool:
    """Whether the allow-list covers this model (the first of the two conditions; the hashes are the second)."""
    if name_or_path in allowed:
        return True
    config_file = Path(name_or_path) / "config.json"
    if config_file.is_file():
        base = json.loads(config_file.read_text()).get("maskdiff_base_model")
        return base is not None and base in allowed
    return False


def _auto_map_modules(directory: Path) -> set[str]:
    """The module files (``modeling_x.py``) that the directory's ``auto_map`` entries would import."""
    modules = set()
    for name in _CODE_CONFIGS:
        file = directory / name
        if not file.is_file():
            continue
        try:
            auto_map = json.loads(file.read_text()).get("auto_map") or {}
        except (json.JSONDecodeError, AttributeError) as exc:
            raise RemoteCodeError(f"{file}: not a JSON object ({exc})") from None
        for value in auto_map.values():
            for ref in value if isinstance(value, (list, tuple)) else [value]:
                if ref is None:
                    continue
                if "--" in str(ref):
                    raise RemoteCodeError(
                        f"{file}: auto_map entry {ref!r} refers to code in another repository; "
                        "only code inside the model directory, checked against the pinned hashes, may run"
                    )
                modules.add(str(ref).rsplit(".", 1)[0].replace(".", "/") + ".py")
    return modules


def remote_code_hashes(directory: str | os.PathLike) -> dict[str, str]:
    """sha256 of every Python file in a model directory (relative posix path -> hex digest)."""
    directory = Path(directory)
    return {p.relative_to(directory).as_posix(): sha256_file(p) for p in sorted(directory.rglob("*.py")) if p.is_file()}


def _pins_yaml(revision: str | None, hashes: Mapping[str, str]) -> str:
    lines = ["model:"]
    if revision:
        lines.append(f"  revision: {revision}")
    lines.append("  remote_code_sha256:")
    lines += [f"    {name}: {digest}" for name, digest in sorted(hashes.items())]
    return "\n".join(lines)


def verify_remote_code(directory: str | os.PathLike, pins: Mapping[str, str] | None, label: str | None = None) -> dict[str, str]:
    """Check every Python file of ``directory`` (and each file its ``auto_map`` names) against
    ``pins`` (file name -> sha256); return the verified hashes or raise :class:`RemoteCodeError`
    naming each unpinned, changed or missing file. Call before any ``trust_remote_code=True``."""
    directory = Path(directory)
    label = label or str(directory)
    pins = dict(pins or {})
    hashes = remote_code_hashes(directory)
    problems = []
    for module in sorted(_auto_map_modules(directory)):
        if module not in hashes:
            problems.append(f"{module}: named by auto_map but missing")
    for name, digest in hashes.items():
        if name not in pins:
            problems.append(f"{name}: not pinned (sha256 {digest})")
        elif pins[name].lower() != digest:
            problems.append(f"{name}: sha256 {digest} differs from the pinned {pins[name]}")
    if problems:
        hint = (
            "Set model.remote_code_sha256 in the config (reviewed code only)" if not pins
            else "This is not the code the config pins (model.remote_code_sha256); none of it was run"
        )
        raise RemoteCodeError(f"{label}: refusing to run its remote code: " + "; ".join(problems) + f". {hint}")
    return hashes


def _is_hub_id(name: str) -> bool:
    return bool(_HUB_ID.fullmatch(name)) and not Path(name).exists()


def _hub_code_snapshot(repo_id: str, revision: str | None) -> Path:
    """The repo's code and JSON files at ``revision`` (small: no weights), in the hub cache; the
    directory's name is the commit sha the revision resolved to."""
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(repo_id, revision=revision, allow_patterns=["*.py", "*.json"]))


def _source(name_or_path: str, allowed, pins, revision) -> tuple[bool, dict]:
    """``(trust_remote_code, from_pretrained kwargs)`` for one load: remote code only once verified."""
    if not _is_hub_id(name_or_path) and not Path(name_or_path).exists():
        raise FileNotFoundError(2, "model directory not found (nor a hub id 'owner/name')", name_or_path)
    if not _remote_code_allowed(name_or_path, allowed):
        if Path(name_or_path).is_dir() and _auto_map_modules(Path(name_or_path)):
            raise RemoteCodeError(
                f"{name_or_path} contains custom code (auto_map) that would need trust_remote_code=True, "
                "but neither it nor its maskdiff_base_model is in model.trust_remote_code_for"
            )
        return False, ({"revision": revision} if revision and _is_hub_id(name_or_path) else {})
    if _is_hub_id(name_or_path):
        snapshot = _hub_code_snapshot(name_or_path, revision)
        verify_remote_code(snapshot, pins, f"{name_or_path}@{snapshot.name}")
        return True, {"revision": snapshot.name}  # the verified commit, even if the branch moves on
    verify_remote_code(name_or_path, pins)
    return True, {}


def load_tokenizer(
    name_or_path: str,
    trust_remote_code_for: list[str] | tuple[str, ...] = (),
    *,
    remote_code_sha256: Mapping[str, str] | None = None,
    revision: str | None = None,
):
    trust, kwargs = _source(name_or_path, trust_remote_code_for, remote_code_sha256, revision)
    return AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=trust, **kwargs)


def load_model(
    name_or_path: str,
    trust_remote_code_for: list[str] | tuple[str, ...] = (),
    dtype: torch.dtype | str | None = None,
    device: str | torch.device | None = None,
    *,
    remote_code_sha256: Mapping[str, str] | None = None,
    revision: str | None = None,
) -> torch.nn.Module:
    """Load a masked-diffusion network (safetensors only) in eval mode; remote code only if
    allow-listed and matching ``remote_code_sha256`` (see the module docstring)."""
    trust, source_kwargs = _source(name_or_path, trust_remote_code_for, remote_code_sha256, revision)
    config = AutoConfig.from_pretrained(name_or_path, trust_remote_code=trust, **source_kwargs)
    auto_map = getattr(config, "auto_map", None) or {}
    auto_cls = AutoModelForCausalLM if (config.model_type == "llama" or "AutoModelForCausalLM" in auto_map) else AutoModel
    kwargs = {"trust_remote_code": trust, "use_safetensors": True, **source_kwargs}
    if dtype is not None:
        kwargs["dtype"] = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    model = auto_cls.from_pretrained(name_or_path, **kwargs)
    if getattr(model.config, "model_type", "") == "llama" and getattr(model.config, "is_causal", True):
        raise InputError(
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
        raise InputError("no mask token id: set model.mask_token_id in the config")
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    if eos is None:
        raise InputError("tokenizer has no eos token")
    return TokenIds(mask=int(mask), pad=int(pad), eos=int(eos))


def fetch_model(
    name_or_path: str,
    out_dir: str,
    trust_remote_code_for: tuple[str, ...] = (),
    dtype: str | None = None,
    *,
    remote_code_sha256: Mapping[str, str] | None = None,
    revision: str | None = None,
) -> None:
    """Save a (hub) model and its tokenizer as the DAG's base model, in safetensors.

    With remote code (allow-listed), the code is checked first: a hub id must have a pinned
    ``revision`` and every code file its pinned sha256. Otherwise the step fails with the revision
    and hashes it saw and the YAML to paste into the preset once the code has been reviewed (run
    it where the hub is reachable). The saved config records ``maskdiff_base_model``, so the
    allow-list covers this copy and every model trained from it (still subject to the pins), and
    ``maskdiff_remote_code.json`` records what was verified.
    """
    from ..io import atomic_dir, write_json

    allowed = _remote_code_allowed(name_or_path, trust_remote_code_for)
    record = None
    if allowed:
        hub = _is_hub_id(name_or_path)
        code_dir = _hub_code_snapshot(name_or_path, revision) if hub else Path(name_or_path)
        seen_revision = code_dir.name if hub else None
        hashes = remote_code_hashes(code_dir)
        problem = None
        if hub and not revision:
            problem = "model.revision is not set (the hub branch can move: pin the commit)"
        else:
            try:
                verify_remote_code(code_dir, remote_code_sha256, name_or_path)
            except RemoteCodeError as exc:
                problem = str(exc)
        if problem:
            raise RemoteCodeError(
                f"fetch-model {name_or_path}: {problem}\n"
                f"Seen: revision {seen_revision or '(local directory)'}, remote code sha256 "
                f"{json.dumps(hashes, sort_keys=True)}\n"
                "After reviewing that code, pin it in the preset (config/presets/<preset>.yaml):\n"
                + _pins_yaml(seen_revision, hashes)
            )
        record = {"source": name_or_path, "revision": seen_revision, "sha256": hashes,
                  "note": "informational: loading checks the config's model.remote_code_sha256, not this file"}
        revision = seen_revision or revision
    pins = {"remote_code_sha256": remote_code_sha256, "revision": revision}
    model = load_model(name_or_path, trust_remote_code_for, dtype=dtype, **pins)
    tokenizer = load_tokenizer(name_or_path, trust_remote_code_for, **pins)
    if allowed and getattr(model.config, "auto_map", None):
        model.config.maskdiff_base_model = getattr(model.config, "maskdiff_base_model", None) or name_or_path
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        if record is not None:
            verify_remote_code(tmp, remote_code_sha256, f"{out_dir} (as saved)")  # loadable with the same pins
            write_json(tmp / REMOTE_CODE_RECORD, record)
