"""What every fine-tuning trainer shares: model/optimizer set-up with accelerate, a frozen
reference model for the KL term, exact resume, periodic held-out evaluation, and saving.

Every algorithm (sft.py, diffu_grpo.py, mdpo.py) runs the one update loop of trainer.py
(:class:`maskdiff.train.trainer.Trainer`); this module holds the plumbing that loop and the
algorithms share.

Several processes (``accelerate launch --num_processes N``, DDP or DeepSpeed ZeRO-2): each rank
rolls out its share of an update's prompts (:func:`local_share`), every rank runs the same number
of micro-batches (:func:`balanced_chunks`, gradient synchronisation is collective), gradients are
synchronised (and DeepSpeed steps) only after the last micro-batch (:func:`backward`), and only the
main process writes metrics, checkpoints and the final model. Under DeepSpeed the optimizer state
is partitioned across ranks, so checkpoints go through ``accelerator.save_state``.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import InitProcessGroupKwargs
from accelerate.utils import DistributedType

from ..evaluate import decode_and_score
from ..pipeline.layout import MODEL_METRICS, metrics_file
from ..io import JsonlLogger, NullLogger, atomic_dir, replace_dir, truncate_metrics, write_json
from ..models.forward import forward_logits, model_device, supports_padding
from ..models.loading import TokenIds, load_model, load_tokenizer, remote_code_options, token_ids
from ..rewards import RewardSettings
from ..sampling.generate import settings_from_config
from ..tasks.records import read_task_records
from ..tracking import TrackedMetrics, accelerator_kwargs, run_name, settings_from_env
from ..seeding import step_generator
from ..settings import as_dict
from .checkpoint import load_checkpoint, load_reference, read_progress, run_fingerprint, save_checkpoint, save_reference
from .configs import TrainerConfig
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
    metrics: TrackedMetrics | NullLogger  # metrics.jsonl (and the trackers) on the main process
    ckpt_dir: Path
    chat_template: bool = False
    extra: dict = field(default_factory=dict)
    rewards: RewardSettings = field(default_factory=RewardSettings)  # how completions are scored

    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    @property
    def rank(self) -> int:
        return self.accelerator.process_index

    @property
    def world(self) -> int:
        return self.accelerator.num_processes

    @property
    def deepspeed(self) -> bool:
        return self.accelerator.distributed_type == DistributedType.DEEPSPEED


def setup_training(
    base_model: str,
    ckpt_dir: str | Path,
    cfg: TrainerConfig,
    beta: float = 0.0,
    model_options: dict | None = None,
    config_record: dict | None = None,
    data_files: list[str] = (),
    rewards: RewardSettings | None = None,
) -> TrainingSetup:
    """Load the policy (and a frozen reference copy when ``beta > 0``), resume if a checkpoint exists."""
    opts = model_options or {}
    remote = remote_code_options(opts)
    # Without GPUs: cpu=True (multi-process launches then run DDP over gloo), except under a
    # DeepSpeed launch, which cpu=True would switch off (DeepSpeed runs on the CPU too, for checks).
    deepspeed_launch = os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true"
    # A held-out curve point or a checkpoint of an 8B model can keep ranks apart for a while: allow
    # two hours at a collective instead of the default (10-30 min) before a rank is declared dead.
    tracking, run = settings_from_env(), run_name(ckpt_dir)
    accelerator = Accelerator(cpu=not torch.cuda.is_available() and not deepspeed_launch, mixed_precision=cfg.mixed_precision,
                              kwargs_handlers=[InitProcessGroupKwargs(timeout=datetime.timedelta(hours=2))],
                              **accelerator_kwargs(tracking, run))
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() != accelerator.num_processes:
        # Every rank would then believe it is the main process and write the same files.
        raise RuntimeError(f"accelerate sees {accelerator.num_processes} process(es) but torch.distributed "
                           f"{dist.get_world_size()}: check the accelerate launch config")
    deepspeed = accelerator.distributed_type == DistributedType.DEEPSPEED
    if deepspeed:
        ds_config = accelerator.state.deepspeed_plugin.deepspeed_config
        # The trainers feed their own micro-batches (no DataLoader to infer a size from); the value
        # only enters DeepSpeed's bookkeeping, gradient accumulation is driven by backward().
        if ds_config.get("train_micro_batch_size_per_gpu", "auto") == "auto":
            ds_config["train_micro_batch_size_per_gpu"] = 1
        # DeepSpeed clips inside its step and ignores clip_grad_norm_'s value: the trainer's
        # grad_clip must be the engine's, whatever the launch config says.
        ds_config["gradient_clipping"] = cfg.grad_clip
    tokenizer = load_tokenizer(base_model, **remote)
    model = load_model(base_model, dtype=opts.get("dtype"), **remote)
    ids = token_ids(tokenizer, model.config, opts.get("mask_token_id"))
    ref_model = None
    if beta > 0:
        ref_model = copy.deepcopy(model).eval()
        ref_model.requires_grad_(False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=cfg.adam_betas)
    scheduler = build_scheduler(optimizer, cfg.updates, cfg.warmup, cfg.lr_schedule, cfg.lr_min_ratio)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    if ref_model is not None:
        ref_model.to(accelerator.device)
    ckpt_dir = Path(ckpt_dir)
    rewards = rewards or RewardSettings()
    record = {"algorithm": type(cfg).__name__, **as_dict(cfg), "rewards": rewards.to_dict(), **(config_record or {})}
    fingerprint = run_fingerprint({"base_model": base_model, "processes": accelerator.num_processes, **record},
                                  list(data_files) + _weight_files(base_model))
    if deepspeed:
        progress = read_progress(ckpt_dir, fingerprint)
        if progress:
            accelerator.load_state(str(ckpt_dir))
    else:
        progress = load_checkpoint(ckpt_dir, accelerator.unwrap_model(model), optimizer, scheduler, fingerprint=fingerprint)
    start = progress["update"] if progress else 0
    if start:
        log.info("resuming from update %d (%s)", start, ckpt_dir)
        if ref_model is not None and load_reference(ckpt_dir, ref_model):
            log.info("the synced reference model resumes from the checkpoint too")
    metrics_path = Path(metrics_file(ckpt_dir))
    metrics: TrackedMetrics | NullLogger = NullLogger()
    if accelerator.is_main_process:
        if start == 0 and metrics_path.exists():
            metrics_path.unlink()  # a stale log from a run that never checkpointed
        if start:
            truncate_metrics(metrics_path, start)
        metrics = TrackedMetrics(JsonlLogger(metrics_path, append=start > 0), accelerator, tracking, run,
                                 {"base_model": base_model, "processes": accelerator.num_processes, **record}, "update",
                                 fresh=start == 0)
        if start == 0:
            clip = model.gradient_clipping() if deepspeed else cfg.grad_clip
            metrics.log(event="config", base_model=base_model, processes=accelerator.num_processes,
                        effective_grad_clip=clip, **record)
    model.train()
    synced = ref_model is not None and getattr(cfg, "ref_sync_every", 0) > 0  # the reference changes: checkpoint it
    return TrainingSetup(accelerator, model, ref_model, tokenizer, ids, optimizer, scheduler, start, metrics, ckpt_dir,
                         bool(opts.get("chat_template")), {"fingerprint": fingerprint, "synced_reference": synced}, rewards)


def _weight_files(model_dir: str) -> list[str]:
    """A local base model's weights belong to the run's identity (a hub id is pinned by name)."""
    path = Path(model_dir)
    return sorted(str(p) for p in path.glob("*.safetensors")) if path.is_dir() else []


def checkpoint(setup: TrainingSetup, update: int) -> None:
    """An atomic checkpoint of everything needed to continue exactly (written by the main process;
    under DeepSpeed every rank saves its optimizer partition through ``accelerator.save_state``)."""
    acc = setup.accelerator
    progress = {"update": update, "fingerprint": setup.extra["fingerprint"]}
    if setup.deepspeed:
        partial = setup.ckpt_dir.with_name(f".{setup.ckpt_dir.name}.partial")
        if setup.is_main:
            shutil.rmtree(partial, ignore_errors=True)
        acc.wait_for_everyone()
        acc.save_state(str(partial))
        acc.wait_for_everyone()
        if setup.is_main:
            write_json(partial / "progress.json", progress)
            if setup.extra.get("synced_reference"):
                save_reference(partial, setup.ref_model)
            replace_dir(partial, setup.ckpt_dir)
    elif setup.is_main:
        save_checkpoint(setup.ckpt_dir, acc.unwrap_model(setup.model), setup.optimizer, setup.scheduler, progress,
                        reference=setup.ref_model if setup.extra.get("synced_reference") else None)
    acc.wait_for_everyone()


def save_final(setup: TrainingSetup, out_dir: str | Path, base_model: str) -> None:
    """The trained model in ``save_pretrained`` form, its tokenizer and its metrics log (main process)."""
    setup.metrics.close()
    setup.accelerator.wait_for_everyone()
    if setup.is_main:
        model = setup.accelerator.unwrap_model(setup.model)
        base = getattr(model.config, "maskdiff_base_model", None)
        if base is None and not Path(base_model).exists():
            model.config.maskdiff_base_model = base_model  # lets remote code load for allow-listed bases
        with atomic_dir(out_dir) as tmp:
            model.save_pretrained(tmp, safe_serialization=True)
            setup.tokenizer.save_pretrained(tmp)
            (tmp / MODEL_METRICS).write_text(Path(metrics_file(setup.ckpt_dir)).read_text())
    setup.accelerator.wait_for_everyone()


def local_share(items: list, setup: TrainingSetup) -> list:
    """This rank's share of an update's prompts (rank r takes items r, r + N, ...).

    Every rank must get the same number, or ranks would run different numbers of passes."""
    if len(items) % setup.world:
        raise ValueError(f"prompts_per_update ({len(items)}) must be a multiple of the number of processes ({setup.world})")
    return items[setup.rank :: setup.world]


def row_chunks(setup: TrainingSetup, n: int, micro_batch: int, prompt_lists: list[list[int]]) -> list[list[int]]:
    """Row chunks for forward passes: micro-batches, split further by prompt length for models
    that ignore attention masks (never pad them)."""
    if supports_padding(setup.accelerator.unwrap_model(setup.model)):
        return [list(range(i, min(i + micro_batch, n))) for i in range(0, n, micro_batch)]
    by_len: dict[int, list[int]] = {}
    for i, p in enumerate(prompt_lists):
        by_len.setdefault(len(p), []).append(i)
    return [rows[i : i + micro_batch] for rows in by_len.values() for i in range(0, len(rows), micro_batch)]


def balanced_chunks(setup: TrainingSetup, chunks: list[list[int]]) -> list[tuple[list[int], float]]:
    """``(chunk, weight)`` pairs, as many on every rank: gradient synchronisation is collective, so
    a rank with fewer micro-batches (e.g. prompts bucketed by length) repeats its last one with
    weight 0."""
    if setup.world == 1:
        return [(c, 1.0) for c in chunks]
    counts = setup.accelerator.gather(torch.tensor([len(chunks)], device=setup.accelerator.device))
    most = int(counts.max())
    return [(c, 1.0) for c in chunks] + [(chunks[-1], 0.0)] * (most - len(chunks))


def backward(setup: TrainingSetup, loss: torch.Tensor, last: bool) -> None:
    """Backward of one micro-batch. Gradients accumulate locally and are synchronised across ranks
    only after the last micro-batch of an update; under DeepSpeed that is also where the engine
    clips and steps (with ``sync_gradients`` always on it would step after every micro-batch)."""
    acc = setup.accelerator
    acc.gradient_state._set_sync_gradients(last)
    try:
        with contextlib.nullcontext() if last else acc.no_sync(setup.model):
            acc.backward(loss)
    finally:
        acc.gradient_state._set_sync_gradients(True)


def global_mean(setup: TrainingSetup, values: dict[str, float]) -> dict[str, float]:
    """Per-rank statistics averaged over the ranks (for the metrics log)."""
    if setup.world == 1 or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=setup.accelerator.device)
    return dict(zip(keys, setup.accelerator.reduce(t, reduction="mean").tolist()))


def gather_rows(setup: TrainingSetup, t: torch.Tensor) -> torch.Tensor:
    """A per-row tensor from every rank, concatenated (rank order), on the CPU."""
    if setup.world == 1:
        return t
    return setup.accelerator.gather(t.to(setup.accelerator.device)).cpu()


def clip_and_step(setup: TrainingSetup, grad_clip: float) -> float:
    grad_norm = setup.accelerator.clip_grad_norm_(setup.model.parameters(), grad_clip)
    setup.optimizer.step()
    setup.scheduler.step()
    setup.optimizer.zero_grad(set_to_none=True)
    return float(grad_norm) if grad_norm is not None else float("nan")


def token_logps(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    targets: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    temperature: float = 1.0,
    mask_id: int | None = None,
) -> torch.Tensor:
    """``log p(targets)`` at every position ``[B, N]`` from one forward pass on ``input_ids``.

    With ``mask_id`` the mask token is excluded from the softmax, as in the sampler (which never
    predicts it), so the policy scored here is the policy that produced the rollouts."""
    logits = forward_logits(model, input_ids, attention_mask).float()
    if temperature != 1.0:
        logits = logits / temperature
    if mask_id is not None and mask_id < logits.shape[-1]:
        logits[..., mask_id] = float("-inf")
    return torch.gather(F.log_softmax(logits, dim=-1), -1, targets.to(logits.device).unsqueeze(-1)).squeeze(-1)


@torch.no_grad()
def held_out_accuracy(
    setup: TrainingSetup, eval_sets: dict[str, list[dict]], cell: dict, batch_size: int, seed: int
) -> dict[str, float]:
    """Accuracy per task on validation problems at one decoding cell (for training curves), with the
    problems shared out over the ranks (rank r decodes problems r, r + N, ...) and the counts summed:
    on 8 GPUs a curve point costs an eighth, and no rank idles at a barrier for the whole of it."""
    model = setup.accelerator.unwrap_model(setup.model)
    was_training = model.training
    model.eval()
    settings = settings_from_config(cell)
    out = {}
    for task, records in eval_sets.items():
        share = records[setup.rank :: setup.world]
        correct = 0
        if share:
            rows, _, _ = decode_and_score(model, setup.tokenizer, setup.ids, share, settings, batch_size,
                                          step_generator(seed, "train-eval", task, setup.rank, device=model_device(model)),
                                          setup.chat_template, rewards=setup.rewards)
            correct = sum(r["reward"] > 0.5 for r in rows)
        if setup.world > 1:
            correct = int(setup.accelerator.reduce(torch.tensor([correct], device=setup.accelerator.device), "sum"))
        out[f"eval_accuracy/{task}"] = correct / len(records)
        out[f"eval_n/{task}"] = len(records)  # what the curve's intervals are over
    model.train(was_training)
    return out


def log_eval(setup: TrainingSetup, eval_sets: dict[str, list[dict]], cfg, update: int, seed: int) -> None:
    """Validation accuracy for the training curves: before training, every ``cfg.eval_every`` updates,
    at the end; never with ``eval_every`` 0 (every rank decodes its share; the main process logs)."""
    due = cfg.eval_every and (update in (0, cfg.updates) or update % cfg.eval_every == 0)
    if eval_sets and due:
        accuracy = held_out_accuracy(setup, eval_sets, cfg.eval_cell, 128, seed)
        setup.metrics.log(event="eval", update=update, **accuracy)
        setup.accelerator.wait_for_everyone()


def end_of_update(setup: TrainingSetup, eval_sets: dict[str, list[dict]], cfg, update: int, seed: int) -> None:
    """What follows every optimizer step in every trainer: evaluation when due, then a checkpoint."""
    log_eval(setup, eval_sets, cfg, update, seed)
    if update % cfg.checkpoint_every == 0 and update < cfg.updates:
        checkpoint(setup, update)


def load_eval_sets(files: dict[str, str], limit: int) -> dict[str, list[dict]]:
    return {task: read_task_records(path, "validation")[: limit or None] for task, path in files.items()}
