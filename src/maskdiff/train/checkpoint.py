"""Atomic, resumable training checkpoints.

A checkpoint directory holds the model in ``save_pretrained`` form (safetensors), the optimizer,
scheduler and RNG states (``trainer_state.pt``, loaded with ``weights_only=True``) and
``progress.json`` (update count and anything the trainer needs to continue exactly). The whole
directory is replaced atomically, so a kill mid-save leaves the previous checkpoint intact. So does
a full disk, which is reported as such (:class:`~maskdiff.io.DiskFullError` naming the file):
torch.save alone would say only ``[enforce fail at inline_container.cc] . unexpected pos``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..io import atomic_dir, read_json, recover_dir, reporting_disk_full, sha256_file, write_json

log = logging.getLogger(__name__)
PACKAGE_DIR = Path(__file__).resolve().parents[1]


def run_fingerprint(config: dict, data_files: list[str | Path] = ()) -> str:
    """Identity of a training run: its config, its data and the library's source code.

    A checkpoint is resumed only by a run with the same fingerprint, so an interrupted job
    continues exactly, while a changed config, dataset or code starts afresh instead of silently
    mixing two experiments.
    """
    h = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
    for path in data_files:
        h.update(sha256_file(path).encode())
    for source in sorted(PACKAGE_DIR.rglob("*.py")):
        h.update(source.relative_to(PACKAGE_DIR).as_posix().encode())
        h.update(source.read_bytes())
    return h.hexdigest()


def save_checkpoint(
    ckpt_dir: str | Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler,
    progress: dict,
    generators: dict[str, torch.Generator] | None = None,
    tokenizer=None,
    reference: torch.nn.Module | None = None,
) -> None:
    """``reference``: a reference model that changes during training (synced to the policy), saved
    beside it so a resumed run continues with the same reference."""
    ckpt_dir = Path(ckpt_dir)
    kept = f" (the previous checkpoint in {ckpt_dir} is kept)"
    with atomic_dir(ckpt_dir) as tmp:
        with reporting_disk_full(ckpt_dir / "model.safetensors", kept):
            model.save_pretrained(tmp, safe_serialization=True)
        if reference is not None:
            save_reference(tmp, reference, kept)
        if tokenizer is not None:
            with reporting_disk_full(ckpt_dir / "tokenizer.json", kept):
                tokenizer.save_pretrained(tmp)
        state = {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else {},
            "torch_rng": torch.get_rng_state(),
            "generators": {name: g.get_state() for name, g in (generators or {}).items()},
        }
        with reporting_disk_full(ckpt_dir / "trainer_state.pt", kept):
            torch.save(state, tmp / "trainer_state.pt")
        with reporting_disk_full(ckpt_dir / "progress.json", kept):
            write_json(tmp / "progress.json", progress)


REFERENCE_FILE = "reference.safetensors"


def save_reference(directory: Path, reference: torch.nn.Module, kept: str = "") -> None:
    state = {k: v.detach().contiguous().cpu() for k, v in reference.state_dict().items()}
    with reporting_disk_full(directory / REFERENCE_FILE, kept):
        save_file(state, str(directory / REFERENCE_FILE))


def load_reference(ckpt_dir: str | Path, reference: torch.nn.Module) -> bool:
    """Restore a checkpoint's synced reference model in place; False when the checkpoint has none."""
    path = Path(ckpt_dir) / REFERENCE_FILE
    if not path.is_file():
        return False
    reference.load_state_dict(load_file(str(path)))
    return True


def read_progress(ckpt_dir: str | Path, fingerprint: str | None = None) -> dict | None:
    """``progress.json`` of the run's checkpoint, or None when there is none of this run (none at
    all, or one whose fingerprint differs: a different experiment). A checkpoint left aside by a
    kill in the middle of its replacement is recovered first."""
    ckpt_dir = recover_dir(ckpt_dir)
    if not (ckpt_dir / "progress.json").is_file():
        return None
    progress = read_json(ckpt_dir / "progress.json")
    if fingerprint is not None and progress.get("fingerprint") != fingerprint:
        log.warning("%s belongs to a different run (config, data or code changed); starting afresh", ckpt_dir)
        return None
    return progress


def load_checkpoint(
    ckpt_dir: str | Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler,
    generators: dict[str, torch.Generator] | None = None,
    fingerprint: str | None = None,
) -> dict | None:
    """Restore everything in place; return ``progress``, or None when there is no checkpoint of
    this run (none at all, or one whose fingerprint differs: a different experiment)."""
    progress = read_progress(ckpt_dir, fingerprint)
    if progress is None:
        return None
    ckpt_dir = Path(ckpt_dir)
    weights = load_file(str(ckpt_dir / "model.safetensors"))
    missing, unexpected = model.load_state_dict(weights, strict=False)
    # lm_head may be tied to the embeddings and then absent from the file; anything else is a mismatch.
    if unexpected or any("lm_head" not in k for k in missing):
        raise ValueError(f"{ckpt_dir}: checkpoint does not match the model (missing {missing}, unexpected {unexpected})")
    state = torch.load(ckpt_dir / "trainer_state.pt", weights_only=True)
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state["scheduler"]:
        scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    for name, g in (generators or {}).items():
        if name in state["generators"]:
            g.set_state(state["generators"][name])
    return progress
