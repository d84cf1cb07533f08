"""The batched masked-diffusion decoding engine (LLaDA-style semi-autoregressive blocks).

The sequence is ``prompt + gen_length`` masks. Blocks of ``block_length`` are decoded left to right
(``block_length == gen_length`` is pure diffusion); ``steps`` are split evenly across blocks. At
every step the network predicts every masked position (``x0_hat``); the remasking rule decides
which predictions are kept:

* ``lcr``    low-confidence remasking (LLaDA): commit the k most confident masked positions of the
             current block; committed tokens are frozen.
* ``rcr``    running-confidence remasking (MDPO): fill every masked position of the current and
             earlier blocks, then re-mask the positions with the lowest running score so exactly the
             scheduled number of masks remains. ``rcr_score="max"`` is the paper's running maximum
             of a position's confidences; ``"latest"`` is what the released code does (the
             confidence of its latest prediction).
* ``random`` commit k uniformly chosen masked positions of the current block (parallel FHS-style).

Exactly one network call per step (NFE == steps). Every operation is batched: rows may need
different numbers of tokens, handled with rank masks rather than per-row Python loops.

``compute_dtype="bf16"`` runs the network's forward under bfloat16 autocast (on CPUs with AMX or
AVX512-BF16 it is faster; ``benchmarks/roofline.py`` measures it); its logits are then copied to
float64 as in fp32 mode, so the categorical draw, the confidences and the remasking ranks are computed
in their stated precision -- from logits that were rounded to bfloat16 (8 bits of mantissa) by the
network: ties between near-equal logits become more frequent (the stable ranking breaks them by
position) and the drawn distribution is the bf16 network's. ``benchmarks/bf16_accuracy.py`` measures
what that does to accuracy. The library's default is fp32 (the reference-equality tests); the
pipeline's (``decoding.compute_dtype``) is bf16.
"""

from __future__ import annotations

from dataclasses import dataclass

import contextlib

import torch

from ..models.forward import forward_logits, sampling_device
from ..models.loading import TokenIds
from .categorical import PRECISIONS, gumbel_argmax, token_confidence, top_p_filter
from .schedules import SCHEDULES, transfer_counts

REMASKING = ("lcr", "rcr", "random")
CONFIDENCES = ("untempered", "tempered")
RCR_SCORES = ("max", "latest")
COMPUTE_DTYPES = ("fp32", "bf16")


@dataclass(frozen=True)
class DecodeSettings:
    """One decoding configuration (a cell of the evaluation grid)."""

    gen_length: int
    block_length: int
    steps: int
    remasking: str = "lcr"
    rcr_score: str = "max"
    schedule: str = "even"
    temperature: float = 0.0
    precision: str = "fp64"
    # Confidence of a sampled token at temperature > 0: its probability under the untempered softmax
    # (LLaDA's generate()) or under softmax(logits / temperature) (the released MDPO rollouts).
    confidence: str = "untempered"
    # Arithmetic of the network's forward: fp32, or bf16 autocast (the draw stays in ``precision``).
    compute_dtype: str = "fp32"
    # Nucleus filtering before every prediction (released MDPO evaluation: 0.95): tokens outside the
    # top_p mass are never predicted, and confidences are probabilities within the nucleus. 1 = off.
    top_p: float = 1.0

    def __post_init__(self) -> None:
        if self.gen_length < 1 or self.block_length < 1 or self.steps < 1:
            raise ValueError(f"gen_length, block_length and steps must be >= 1: {self}")
        if self.gen_length % self.block_length:
            raise ValueError(f"block_length {self.block_length} must divide gen_length {self.gen_length}")
        if self.steps % self.num_blocks:
            raise ValueError(f"steps {self.steps} must be a multiple of the number of blocks {self.num_blocks}")
        for name, value, choices in (
            ("remasking", self.remasking, REMASKING),
            ("rcr_score", self.rcr_score, RCR_SCORES),
            ("schedule", self.schedule, SCHEDULES),
            ("precision", self.precision, tuple(PRECISIONS)),
            ("confidence", self.confidence, CONFIDENCES),
            ("compute_dtype", self.compute_dtype, COMPUTE_DTYPES),
        ):
            if value not in choices:
                raise ValueError(f"decoding {name}={value!r} is not one of {choices}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")

    @property
    def num_blocks(self) -> int:
        return self.gen_length // self.block_length

    @property
    def steps_per_block(self) -> int:
        return self.steps // self.num_blocks

    @property
    def label(self) -> str:
        remask = f"rcr-{self.rcr_score}" if self.remasking == "rcr" else self.remasking
        return f"L{self.gen_length}-B{self.block_length}-S{self.steps}-{remask}"


@dataclass
class Trajectory:
    """Per-step record of the generated region, compact: ``[T, B, L]`` each.

    ``x_t`` is the state before step t (masks included), ``x0_hat`` the full prediction at step t
    (every masked position filled), ``confidence`` the probability of each ``x0_hat`` token at the
    positions masked in ``x_t`` (1 elsewhere), stored as float16.
    """

    x_t: torch.Tensor
    x0_hat: torch.Tensor
    confidence: torch.Tensor


@dataclass
class GenerationOutput:
    sequences: torch.Tensor  # [B, P + L]
    prompt_length: int
    nfe: int
    trajectory: Trajectory | None = None

    @property
    def completions(self) -> torch.Tensor:
        return self.sequences[:, self.prompt_length :]


def compact_int_dtype(vocab_size: int) -> torch.dtype:
    return torch.int16 if vocab_size <= torch.iinfo(torch.int16).max else torch.int32


def rank_along_last(key: torch.Tensor, descending: bool) -> torch.Tensor:
    """Rank (0 = first) of every entry along the last dim, ties broken by position."""
    order = key.argsort(dim=-1, descending=descending, stable=True)
    positions = torch.arange(key.shape[-1], device=key.device).expand_as(order)
    return torch.empty_like(order).scatter_(-1, order, positions)


@torch.no_grad()
def generate(
    model: torch.nn.Module,
    prompt_ids: torch.Tensor,
    settings: DecodeSettings,
    ids: TokenIds,
    attention_mask: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    record_trajectory: bool = False,
    forward=forward_logits,
) -> GenerationOutput:
    """Decode ``gen_length`` tokens after each prompt (``prompt_ids`` ``[B, P]``, left-padded if
    ``attention_mask`` is given)."""
    s = settings
    batch, prompt_len = prompt_ids.shape
    device = sampling_device(model, prompt_ids)
    prompt_ids = prompt_ids.to(device)
    length = s.gen_length
    x = torch.full((batch, prompt_len + length), ids.mask, dtype=torch.long, device=device)
    x[:, :prompt_len] = prompt_ids
    full_mask = None
    if attention_mask is not None:
        full_mask = torch.cat([attention_mask.to(device), attention_mask.new_ones(batch, length).to(device)], dim=1)

    position = torch.arange(length, device=device)
    network_precision = forward_precision(s.compute_dtype, device)
    running_score = torch.full((batch, length), float("-inf"), dtype=torch.float64, device=device)
    record: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    nfe = 0
    for block in range(s.num_blocks):
        lo, hi = block * s.block_length, (block + 1) * s.block_length
        in_block = (position >= lo) & (position < hi)  # current block only
        started = position < hi  # current and earlier blocks; never the prompt or future blocks
        n_block = (x[:, prompt_len + lo : prompt_len + hi] == ids.mask).sum(dim=-1)
        counts = transfer_counts(n_block.cpu(), s.steps_per_block, s.schedule).to(device)  # [B, S]
        masks_left = n_block.unsqueeze(-1) - counts.cumsum(dim=-1)  # masks remaining after each step
        for step in range(s.steps_per_block):
            # One float64 copy of the logits serves the confidences and (fp64) the draw.
            with network_precision:
                logits = forward(model, x, full_mask)[:, prompt_len:]
            logits = logits.to(torch.float64, copy=True)
            nfe += 1
            # Confidence = probability of the prediction under the full softmax, [MASK] included
            # in the normaliser, as in LLaDA's generate().
            tempered = s.confidence == "tempered" and s.temperature > 0
            log_norm = torch.logsumexp(logits / s.temperature if tempered else logits, dim=-1)
            if ids.mask < logits.shape[-1]:
                # [MASK] is never a prediction. LLaDA's generate() does not exclude it from the
                # argmax, so it could "commit" a mask and leave a hole: the engine's one deviation.
                logits[..., ids.mask] = float("-inf")
            if s.top_p < 1.0:
                logits = top_p_filter(logits, s.top_p)
                log_norm = torch.logsumexp(logits / s.temperature if tempered else logits, dim=-1)
            gen = x[:, prompt_len:]
            masked = gen == ids.mask
            predicted = gumbel_argmax(logits, s.temperature, s.precision, generator)
            confidence = token_confidence(logits / s.temperature if tempered else logits, predicted, log_norm)
            x0_hat = torch.where(masked, predicted, gen)
            if record_trajectory:
                dtype = compact_int_dtype(logits.shape[-1])
                conf16 = torch.where(masked, confidence, torch.ones_like(confidence)).to(torch.float16)
                record.append((gen.to(dtype).cpu(), x0_hat.to(dtype).cpu(), conf16.cpu()))

            if s.remasking == "rcr":
                fill = masked & started
                new_gen = torch.where(fill, x0_hat, gen)
                updated = confidence if s.rcr_score == "latest" else torch.maximum(running_score, confidence)
                running_score = torch.where(fill, updated, running_score)
                if step < s.steps_per_block - 1:
                    key = torch.where(started, running_score, torch.full_like(running_score, float("inf")))
                    lowest = rank_along_last(key, descending=False) < masks_left[:, step : step + 1]
                    new_gen = torch.where(lowest & started, torch.full_like(new_gen, ids.mask), new_gen)
            else:
                candidates = masked & in_block
                if s.remasking == "lcr":
                    key = confidence
                else:
                    key = torch.rand(confidence.shape, dtype=torch.float64, generator=generator,
                                     device=generator.device if generator is not None else device).to(device)
                key = torch.where(candidates, key, torch.full_like(key, float("-inf")))
                chosen = (rank_along_last(key, descending=True) < counts[:, step : step + 1]) & candidates
                new_gen = torch.where(chosen, x0_hat, gen)
            x[:, prompt_len:] = new_gen

    trajectory = None
    if record_trajectory:
        trajectory = Trajectory(*(torch.stack(parts) for parts in zip(*record)))
    return GenerationOutput(sequences=x, prompt_length=prompt_len, nfe=nfe, trajectory=trajectory)


def forward_precision(compute_dtype: str, device: torch.device):
    """The context a network forward runs in: bf16 autocast on the model's device, or nothing."""
    if compute_dtype == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def parse_remasking(name: str) -> tuple[str, str]:
    """Config name -> ``(remasking, rcr_score)``: ``lcr``, ``random``, ``rcr-max``, ``rcr-latest``."""
    if name in ("lcr", "random"):
        return name, "max"
    if name in ("rcr-max", "rcr-latest", "rcr"):
        return "rcr", name.split("-", 1)[1] if "-" in name else "max"
    raise ValueError(f"unknown remasking {name!r}; choose lcr, rcr-max, rcr-latest or random")


def settings_from_config(cell: dict) -> DecodeSettings:
    """A DecodeSettings from a config-style dict (``remasking`` may be ``rcr-max`` etc.)."""
    cell = dict(cell)
    remasking, rcr_score = parse_remasking(cell.pop("remasking", "lcr"))
    cell.setdefault("rcr_score", rcr_score)
    return DecodeSettings(remasking=remasking, **cell)
