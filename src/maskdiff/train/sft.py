"""Masked SFT: the LLaDA-style masked-diffusion loss on reference solutions (the MDPO paper's SFT
baseline), on the same training prompts the RL trainers see, so the comparison isolates the
objective. The prompt stays clean; each response token is masked with probability t ~ U(eps, 1).
"""

from __future__ import annotations

import logging

import torch

from ..errors import InputError
from ..rewards import RewardSettings
from ..seeding import step_generator
from .common import local_share, row_chunks
from .configs import SFTConfig
from .data import SupervisedBatchSource, build_supervised
from .diffusion_loss import masked_diffusion_loss
from .groups import read_train_records
from .trainer import Batch, Trainer

log = logging.getLogger(__name__)


class SFTTrainer(Trainer):
    """The masked-diffusion loss on reference solutions, one micro-batch per rank and update."""

    name = "sft"
    cfg: SFTConfig

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        cfg, setup = self.cfg, self.setup
        self.data: SupervisedBatchSource = build_supervised(
            setup.tokenizer, self.records, cfg.response_length, setup.ids, setup.chat_template, self.source,
            truncate=True, max_total_length=cfg.max_length)
        if self.data.truncated:
            log.warning("%d of %d reference solutions truncated to %d tokens", self.data.truncated, len(self.records),
                        cfg.response_length)

    def prepare(self, batch_index: int) -> Batch:
        # The update's batch is drawn globally (a pure function of seed and update: exact resume);
        # each rank takes its share, in micro-batches, each masked with its own noise stream.
        indices = epoch_batch(len(self.data), self.cfg.batch_size, batch_index, self.seed)
        local = local_share(indices, self.setup)
        # Micro-batches of equal prompt length for models that ignore attention masks (never pad them).
        chunks = row_chunks(self.setup, len(local), self.cfg.micro_batch, [self.data.prompts[i] for i in local])
        epoch = (batch_index + 1) * self.cfg.batch_size / len(self.data)
        return Batch(chunks, {"batch_rows": len(indices), "epochs": epoch, "truncated_solutions": self.data.truncated},
                     {"local": local, "batch_index": batch_index, "global_rows": len(indices)})

    def chunk_loss(self, batch: Batch, chunk: list[int], iteration: int):
        rows, ids = self.data.batch([batch.data["local"][i] for i in chunk], self.setup.ids.pad), self.setup.ids
        noise = step_generator(self.seed, "sft-mask", batch.data["batch_index"], self.setup.rank, chunk[0])
        loss, n_masked = masked_diffusion_loss(self.setup.model, rows["input_ids"], rows["response_mask"], ids.mask,
                                               rows["attention_mask"], generator=noise)
        return loss, {"trained_tokens": float(n_masked) * batch.data["global_rows"] / len(chunk)}, len(chunk) / batch.data["global_rows"]


def epoch_batch(n: int, batch_size: int, batch_index: int, seed: int) -> list[int]:
    """Rows of batch ``batch_index`` when the data is read epoch by epoch, each epoch in a fresh
    seeded order (so ``epochs`` means what it says; a pure function of its arguments)."""
    orders: dict[int, list[int]] = {}
    out = []
    for i in range(batch_index * batch_size, (batch_index + 1) * batch_size):
        epoch, position = divmod(i, n)
        if epoch not in orders:
            orders[epoch] = torch.randperm(n, generator=step_generator(seed, "sft-epoch", epoch)).tolist()
        out.append(orders[epoch][position])
    return out


def train_sft(
    base_model: str,
    train_files: list[str],
    out_dir: str,
    ckpt_dir: str,
    cfg: SFTConfig,
    seed: int = 0,
    model_options: dict | None = None,
    eval_files: dict[str, str] | None = None,
    rewards: RewardSettings | None = None,
) -> dict:
    # Only records with a reference solution are SFT data (the paper preset's Countdown training
    # problems have none: its SFT data are the OpenR1 solutions); none at all is an error.
    all_records = read_train_records(train_files, require_solution=False)
    records = [r for r in all_records if r.get("solution")]
    if not records:
        raise InputError(f"no training record with a reference solution in {train_files}: nothing to fine-tune on")
    if len(records) < len(all_records):
        log.info("SFT on the %d of %d training records that have a reference solution", len(records), len(all_records))
    trainer = SFTTrainer.from_files(records, base_model=base_model, train_files=train_files, ckpt_dir=ckpt_dir, cfg=cfg,
                                    seed=seed, model_options=model_options, eval_files=eval_files, rewards=rewards,
                                    info={"train_records": len(records)})
    return trainer.run(out_dir, base_model)
