"""Pretrain the tiny model from scratch with the masked-diffusion loss (the local 'base model').

Stands in for LLaDA-8B-Instruct in the local presets: the model learns the generated tasks'
pretraining split (prompt + reference solution) so that it lands between 0% and 100% accuracy,
leaving room for decoding rules and RL fine-tuning to move it. Written out nanoGPT-style: data,
forward, loss, backward, step, log, checkpoint.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from accelerate import Accelerator
from ..progress import progress as progress_bar

from ..errors import InputError
from ..io import JsonlLogger, atomic_dir, truncate_metrics
from ..pipeline.layout import MODEL_METRICS, metrics_file
from ..models.loading import token_ids
from ..models.tiny import TinyModelSpec, build_tiny_model
from ..models.tokenizer import build_char_tokenizer
from ..seeding import step_generator
from ..tasks.records import read_task_files
from ..tracking import TrackedMetrics, accelerator_kwargs, run_name, settings_from_env
from .checkpoint import load_checkpoint, run_fingerprint, save_checkpoint
from .data import build_supervised
from .diffusion_loss import masked_diffusion_loss
from .schedule import build_scheduler

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PretrainConfig:
    """Settings of the from-scratch pretraining (config section ``pretrain``; defaults equal the
    schema's, tested).

    Pretraining keeps its own short loop and its names (``steps``, ``warmup_steps``) rather than the
    fine-tuning trainers' :class:`maskdiff.train.trainer.Trainer` loop (``updates``, ``warmup``): it
    starts from a random initialisation with no reference model, no rollouts, no ``mu`` iterations
    and no validation curve, so that loop's plumbing would go unused; and its names are config keys
    of every preset, so renaming them would change every stored base model's parameters (and rerun
    it) for no change in what it computes."""

    steps: int = 3000
    batch_size: int = 128
    lr: float = 2e-3
    warmup_steps: int = 200
    lr_decay: str = "cosine"
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    adam_betas: tuple[float, float] = (0.9, 0.98)  # AdamW's (beta1, beta2): 0.98, the usual choice for transformer pretraining
    checkpoint_every: int = 250
    log_every: int = 10
    seed: int = 0
    # Share of rows trained as whole examples (every token maskable, as in LLaDA pretraining), so
    # that unconditional samples are meaningful; 0 = every row conditional on a clean prompt.
    unconditional_fraction: float = 0.1
    unconditional_length: int = 32  # tokens of a whole example (problem, space, solution, EOS fill)


def pretrain(
    data_files: list[str | Path],
    out_dir: str | Path,
    ckpt_dir: str | Path,
    model_spec: TinyModelSpec,
    cfg: PretrainConfig,
    gen_length: int,
    charset: str | None = None,
) -> dict:
    """Train, checkpointing to ``ckpt_dir`` (resumed if present); save the final model to ``out_dir``."""
    tracking, run = settings_from_env(), run_name(ckpt_dir)
    accelerator = Accelerator(cpu=not torch.cuda.is_available(), **accelerator_kwargs(tracking, run))
    tokenizer = build_char_tokenizer(charset) if charset else build_char_tokenizer()
    ids = token_ids(tokenizer)
    # Validated per file: an empty or malformed file of one task is an error, not a model that
    # silently learnt only the other task.
    records = read_task_files(data_files, "pretrain")
    if not records:
        raise InputError("no pretraining data files given")
    if not 0.0 <= cfg.unconditional_fraction <= 1.0:
        raise ValueError(f"pretrain.unconditional_fraction must be in [0, 1], got {cfg.unconditional_fraction}")
    data = build_supervised(tokenizer, records, gen_length, ids, source=", ".join(str(p) for p in data_files),
                            unconditional_length=cfg.unconditional_length if cfg.unconditional_fraction > 0 else None)
    model = build_tiny_model(model_spec, len(tokenizer), {"mask": ids.mask, "pad": ids.pad, "eos": ids.eos}, cfg.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=tuple(cfg.adam_betas))
    scheduler = build_scheduler(optimizer, cfg.steps, cfg.warmup_steps, cfg.lr_decay, cfg.min_lr_ratio)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)

    ckpt_dir, out_dir = Path(ckpt_dir), Path(out_dir)
    fingerprint = run_fingerprint({"pretrain": asdict(cfg), "model": asdict(model_spec), "gen_length": gen_length,
                                   "charset": charset}, data_files)
    progress = load_checkpoint(ckpt_dir, accelerator.unwrap_model(model), optimizer, scheduler,
                               fingerprint=fingerprint) or {"step": 0}
    start = progress["step"]
    if start:
        log.info("resuming pretraining from update %d (%s)", start, ckpt_dir)
    metrics_path = Path(metrics_file(ckpt_dir))
    if start:
        truncate_metrics(metrics_path, start, key="step")  # records after the checkpoint come again
    config = {**asdict(cfg), "model": asdict(model_spec), "records": len(data),
              "parameters": sum(p.numel() for p in model.parameters())}
    metrics = TrackedMetrics(JsonlLogger(metrics_path, append=start > 0), accelerator, tracking, run, config, "step",
                             fresh=start == 0)
    if start == 0:
        metrics.log(event="config", **config)
    model.train()
    started = time.time()
    tokens_seen = 0
    bar = progress_bar(range(start, cfg.steps), initial=start, total=cfg.steps, desc="pretrain", mininterval=5)
    for step in bar:
        # Data and masking noise are a pure function of (seed, step): resuming is exact.
        g = step_generator(cfg.seed, "pretrain", step)
        indices = torch.randint(len(data), (cfg.batch_size,), generator=g).tolist()
        whole = None
        if cfg.unconditional_fraction > 0:
            whole = (torch.rand(cfg.batch_size, generator=g) < cfg.unconditional_fraction).tolist()
        batch = data.batch(indices, ids.pad, whole)
        loss, n_masked = masked_diffusion_loss(
            model, batch["input_ids"], batch["response_mask"], ids.mask, batch["attention_mask"], generator=g
        )
        accelerator.backward(loss)
        grad_norm = accelerator.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        tokens_seen += int(batch["input_ids"].numel())
        done = step + 1
        if done % cfg.log_every == 0 or done == cfg.steps:
            elapsed = time.time() - started
            metrics.log(event="update", step=done, loss=loss.item(), grad_norm=float(grad_norm),
                        lr=scheduler.get_last_lr()[0], masked_tokens=n_masked, tokens_per_s=tokens_seen / max(elapsed, 1e-9))
            bar.set_postfix(loss=f"{loss.item():.3f}")
        if done % cfg.checkpoint_every == 0 and done < cfg.steps:
            save_checkpoint(ckpt_dir, accelerator.unwrap_model(model), optimizer, scheduler,
                            {"step": done, "fingerprint": fingerprint})
    metrics.close()

    final = accelerator.unwrap_model(model)
    with atomic_dir(out_dir) as tmp:
        final.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / MODEL_METRICS).write_text(metrics_path.read_text())
    return {"steps": cfg.steps, "final_loss": loss.item() if cfg.steps > start else None}
