"""What every fine-tuning trainer shares: model/optimizer set-up with accelerate, a frozen
reference model for the KL term, exact resume, periodic held-out evaluation, and saving.

Each algorithm (sft.py, diffu_grpo.py, mdpo.py) keeps its own loop written out in full; this
module only holds the plumbing they would otherwise repeat.
"""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate import Accelerator

from ..evaluate import decode_and_score
from ..io import JsonlLogger, atomic_dir, read_jsonl
from ..models.forward import forward_logits, model_device
from ..models.loading import TokenIds, load_model, load_tokenizer, token_ids
from ..sampling.generate import settings_from_config
from ..seeding import step_generator
from .checkpoint import load_checkpoint, run_fingerprint, save_checkpoint
from .schedule import build_scheduler

log = logging.getLogger(__name__)


@dataclass
class TrainingSetup:
    accelerator: Accelerator
    model: torch.nn.Module
    ref_model: torch.nn.Module | None
    tokenizer: object
    ids: TokenIds
    optimizer: torch.optim.Optimizer
    scheduler: object
    start_update: int
    metrics: JsonlLogger
    ckpt_dir: Path
    chat_template: bool = False
    extra: dict = field(default_factory=dict)


def setup_training(
    base_model: str,
    ckpt_dir: str | Path,
    lr: float,
    updates: int,
    warmup: int = 0,
    weight_decay: float = 0.0,
    beta: float = 0.0,
    model_options: dict | None = None,
    mixed_precision: str = "no",
    config_record: dict | None = None,
    data_files: list[str] = (),
) -> TrainingSetup:
    """Load the policy (and a frozen reference copy when ``beta > 0``), resume if a checkpoint exists."""
    opts = model_options or {}
    trust = tuple(opts.get("trust_remote_code_for", []))
    accelerator = Accelerator(cpu=not torch.cuda.is_available(), mixed_precision=mixed_precision)
    tokenizer = load_tokenizer(base_model, trust)
    model = load_model(base_model, trust, dtype=opts.get("dtype"))
    ids = token_ids(tokenizer, model.config, opts.get("mask_token_id"))
    ref_model = None
    if beta > 0:
        ref_model = copy.deepcopy(model).eval()
        ref_model.requires_grad_(False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, betas=(0.9, 0.99))
    scheduler = build_scheduler(optimizer, updates, warmup, "constant", 1.0)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    if ref_model is not None:
        ref_model.to(accelerator.device)
    ckpt_dir = Path(ckpt_dir)
    fingerprint = run_fingerprint({"base_model": base_model, **(config_record or {})},
                                  list(data_files) + _weight_files(base_model))
    progress = load_checkpoint(ckpt_dir, accelerator.unwrap_model(model), optimizer, scheduler, fingerprint=fingerprint)
    start = progress["update"] if progress else 0
    if start:
        log.info("resuming from update %d (%s)", start, ckpt_dir)
    metrics_path = ckpt_dir.parent / f"{ckpt_dir.name}.metrics.jsonl"
    if start == 0 and metrics_path.exists():
        metrics_path.unlink()  # a stale log from a run that never checkpointed
    metrics = JsonlLogger(metrics_path, append=start > 0)
    if start == 0:
        metrics.log(event="config", base_model=base_model, **(config_record or {}))
    else:
        _truncate_metrics(metrics_path, start)
    model.train()
    return TrainingSetup(accelerator, model, ref_model, tokenizer, ids, optimizer, scheduler, start, metrics, ckpt_dir,
                         bool(opts.get("chat_template")), {"fingerprint": fingerprint})


def _weight_files(model_dir: str) -> list[str]:
    """A local base model's weights belong to the run's identity (a hub id is pinned by name)."""
    path = Path(model_dir)
    return sorted(str(p) for p in path.glob("*.safetensors")) if path.is_dir() else []


def _truncate_metrics(path: Path, update: int) -> None:
    """Drop records logged after the checkpoint we resume from (they will be logged again)."""
    keep = [r for r in read_jsonl(path) if r.get("update", 0) <= update]
    path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in keep))


def checkpoint(setup: TrainingSetup, update: int) -> None:
    save_checkpoint(setup.ckpt_dir, setup.accelerator.unwrap_model(setup.model), setup.optimizer, setup.scheduler,
                    {"update": update, "fingerprint": setup.extra["fingerprint"]})


def save_final(setup: TrainingSetup, out_dir: str | Path, base_model: str) -> None:
    """The trained model in ``save_pretrained`` form, its tokenizer and its metrics log."""
    setup.metrics.close()
    model = setup.accelerator.unwrap_model(setup.model)
    base = getattr(model.config, "maskdiff_base_model", None)
    if base is None and not Path(base_model).exists():
        model.config.maskdiff_base_model = base_model  # lets remote code load for allow-listed bases
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        setup.tokenizer.save_pretrained(tmp)
        metrics = setup.ckpt_dir.parent / f"{setup.ckpt_dir.name}.metrics.jsonl"
        (tmp / "metrics.jsonl").write_text(metrics.read_text())


def clip_and_step(setup: TrainingSetup, grad_clip: float) -> float:
    grad_norm = setup.accelerator.clip_grad_norm_(setup.model.parameters(), grad_clip)
    setup.optimizer.step()
    setup.scheduler.step()
    setup.optimizer.zero_grad(set_to_none=True)
    return float(grad_norm)


def token_logps(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    targets: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    temperature: float = 1.0,
) -> torch.Tensor:
    """``log p(targets)`` at every position ``[B, N]`` from one forward pass on ``input_ids``."""
    logits = forward_logits(model, input_ids, attention_mask).float()
    if temperature != 1.0:
        logits = logits / temperature
    return torch.gather(F.log_softmax(logits, dim=-1), -1, targets.to(logits.device).unsqueeze(-1)).squeeze(-1)


@torch.no_grad()
def held_out_accuracy(
    setup: TrainingSetup, eval_sets: dict[str, list[dict]], cell: dict, batch_size: int, seed: int
) -> dict[str, float]:
    """Accuracy per task on held-out problems at one decoding cell (for training curves)."""
    model = setup.accelerator.unwrap_model(setup.model)
    was_training = model.training
    model.eval()
    settings = settings_from_config(cell)
    out = {}
    for task, records in eval_sets.items():
        rows, _, _ = decode_and_score(model, setup.tokenizer, setup.ids, records, settings, batch_size,
                                      step_generator(seed, "train-eval", task, device=model_device(model)),
                                      setup.chat_template)
        out[f"eval_accuracy/{task}"] = sum(r["reward"] > 0.5 for r in rows) / len(rows)
    model.train(was_training)
    return out


def log_eval(setup: TrainingSetup, eval_sets: dict[str, list[dict]], cfg, update: int, seed: int) -> None:
    """Held-out accuracy for the training curves: before training, every ``cfg.eval_every`` updates, at the end."""
    due = update in (0, cfg.updates) or (cfg.eval_every and update % cfg.eval_every == 0)
    if eval_sets and due:
        setup.metrics.log(event="eval", update=update, **held_out_accuracy(setup, eval_sets, cfg.eval_cell, 128, seed))


def end_of_update(setup: TrainingSetup, eval_sets: dict[str, list[dict]], cfg, update: int, seed: int) -> None:
    """What follows every optimizer step in every trainer: evaluation when due, then a checkpoint."""
    log_eval(setup, eval_sets, cfg, update, seed)
    if update % cfg.checkpoint_every == 0 and update < cfg.updates:
        checkpoint(setup, update)


def load_eval_sets(files: dict[str, str], limit: int) -> dict[str, list[dict]]:
    return {task: read_jsonl(path)[: limit or None] for task, path in files.items()}
