"""Masked SFT: the LLaDA-style masked-diffusion loss on reference solutions (the MDPO paper's SFT
baseline), on the same training prompts the RL trainers see, so the comparison isolates the
objective. The prompt stays clean; each response token is masked with probability t ~ U(eps, 1).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field

import torch
from tqdm import tqdm

from ..io import read_jsonl
from ..seeding import step_generator
from .common import (backward, clip_and_step, end_of_update, global_mean, load_eval_sets, local_share, log_eval,
                     save_final, setup_training)
from .data import build_supervised
from .diffusion_loss import masked_diffusion_loss

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SFTConfig:
    updates: int = 100
    batch_size: int = 64
    lr: float = 1e-4  # paper 1e-5 (8B), 5 epochs over 3000 OpenR1 solutions
    warmup: int = 0
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    gen_length: int = 16
    checkpoint_every: int = 10
    eval_every: int = 10
    eval_problems: int = 256
    eval_cell: dict = field(default_factory=dict)
    mixed_precision: str = "no"


def train_sft(
    base_model: str,
    train_files: list[str],
    out_dir: str,
    ckpt_dir: str,
    cfg: SFTConfig,
    seed: int = 0,
    model_options: dict | None = None,
    eval_files: dict[str, str] | None = None,
) -> dict:
    records = [r for f in train_files for r in read_jsonl(f) if r.get("solution")]
    if not records:
        raise ValueError(f"no training records with a reference solution in {train_files}")
    setup = setup_training(base_model, ckpt_dir, cfg.lr, cfg.updates, cfg.warmup, cfg.weight_decay, 0.0,
                           model_options, cfg.mixed_precision, {"algorithm": "sft", **asdict(cfg), "train_records": len(records)}, data_files=train_files)
    data = build_supervised(setup.tokenizer, records, cfg.gen_length, setup.ids, setup.chat_template, ", ".join(train_files))
    eval_sets = load_eval_sets(eval_files or {}, cfg.eval_problems)
    update = setup.start_update
    if update == 0:
        log_eval(setup, eval_sets, cfg, 0, seed)
    bar = tqdm(total=cfg.updates, initial=update, desc="sft", mininterval=5, disable=not setup.is_main)
    while update < cfg.updates:
        t0 = time.time()
        # The update's batch is drawn globally (a pure function of seed and update: exact resume);
        # each rank takes its share and masks it with its own noise stream.
        g = step_generator(seed, "sft", update)
        indices = torch.randint(len(data), (min(cfg.batch_size, len(data)),), generator=g).tolist()
        batch = data.batch(local_share(indices, setup), setup.ids.pad)
        noise = step_generator(seed, "sft-mask", update, setup.rank)
        loss, n_masked = masked_diffusion_loss(setup.model, batch["input_ids"], batch["response_mask"], setup.ids.mask,
                                               batch["attention_mask"], generator=noise)
        backward(setup, loss, last=True)
        grad_norm = clip_and_step(setup, cfg.grad_clip)
        update += 1
        bar.update(1)
        seconds = time.time() - t0
        stats = global_mean(setup, {"loss": float(loss.detach()), "trained_tokens": n_masked})
        trained = int(round(stats["trained_tokens"] * setup.world))
        setup.metrics.log(event="update", update=update, loss=stats["loss"], grad_norm=grad_norm,
                          trained_tokens=trained, tokens_per_s=trained / max(seconds, 1e-9), seconds=seconds)
        end_of_update(setup, eval_sets, cfg, update, seed)
    bar.close()
    save_final(setup, out_dir, base_model)
    return {"updates": update}
