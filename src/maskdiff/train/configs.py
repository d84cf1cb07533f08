"""Settings of the fine-tuning trainers: one base shared by all, one dataclass per algorithm.

Defaults are the ``local`` preset's, and this module is their one place: the preset does not restate
them. Each field's comment is its documentation (the config schema's ``training.sft`` /
``training.diffu_grpo`` / ``training.mdpo`` entries are generated from these fields and comments,
see ``x-documents`` in ``maskdiff.config_schema``) and gives the paper's value (and the released code's where
it differs); where the local value departs from the paper's, the comment says why.
``config/presets/paper.yaml`` sets the paper's values and cites them; ``docs/fidelity.md`` tabulates
every difference. The workflow builds these dataclasses from the config at parse time
(:func:`maskdiff.pipeline.trainer_settings.trainer_config`), so a bad field stops ``snakemake -n`` before any job.

Why the RL defaults depart from the paper at all (the tiny-scale RL regime): a ~1M-parameter model
at 27% (Countdown) / 6% (arithmetic) accuracy samples nearly the same completion G times at the
paper's low temperatures, so most prompt groups carry no reward spread and give no gradient
(measured: diffu-GRPO at temperature 0.1 had spread in 9% of its groups). Measured on the local
preset's base model over 20 updates: diffu-GRPO at temperature 1.0 has signal in 43% of its groups
with G = 8 and in 60% with G = 16; MDPO (mined set) in 92%.

This module imports no torch: Snakemake imports it on every invocation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..settings import as_dict, build, require

ROLLOUT_MODES = ("semi_ar", "pure_diff")
REMASKINGS = ("lcr", "rcr-max", "rcr-latest", "random")


def check_cell(cell: dict, key: str) -> None:
    """A decoding cell's shape rules (the sampler checks them again; here they fail at parse time)."""
    gen, block, steps = cell.get("gen_length"), cell.get("block_length"), cell.get("steps")
    if None in (gen, block, steps):
        return
    require(block >= 1 and gen % block == 0, f"{key}: block_length {block} must divide gen_length {gen}")
    require(steps % (gen // block) == 0, f"{key}: steps {steps} must be a multiple of the {gen // block} blocks")


@dataclass(frozen=True, kw_only=True)
class TrainerConfig:
    """What every trainer shares: the optimisation budget, checkpoints and held-out evaluation."""

    updates: int = 100  # optimizer updates; every method gets the same number (paper: 100, Sec. 4)
    lr: float = 1e-4  # peak learning rate (the local preset's: its tuned file, config/tuned/local.json)
    warmup: int = 0  # linear warm-up updates, then the lr_schedule
    # After the warm-up: constant, linear decay to 0 at the last update (Hugging Face's "linear", the
    # released SFT script's default), or cosine decay to lr_min_ratio.
    lr_schedule: Literal["constant", "linear", "cosine"] = "constant"
    lr_min_ratio: float = 0.0  # cosine's floor, a share of lr
    weight_decay: float = 0.0  # AdamW's decoupled weight decay
    adam_betas: tuple[float, float] = (0.9, 0.99)  # d1's diffu-GRPO (0.9, 0.99); released MDPO: HF default (0.9, 0.999)
    grad_clip: float = 1.0  # max gradient norm (also applied under DeepSpeed)
    gen_length: int = 16  # generated positions (paper 512)
    checkpoint_every: int = 10  # updates between resumable checkpoints
    eval_every: int = 10  # held-out accuracy at the start, every N updates and at the end (0 = never)
    eval_problems: int = 256  # validation problems per task per curve point (the first N of the validation split)
    eval_cell: dict = field(default_factory=dict)  # decoding cell of the held-out evaluation
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"  # accelerate's mixed precision of training (paper bf16)

    def __post_init__(self) -> None:
        for name in ("updates", "checkpoint_every", "eval_problems", "gen_length"):
            require(getattr(self, name) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")
        require(self.eval_every >= 0, f"eval_every must be >= 0, got {self.eval_every}")
        require(self.lr > 0, f"lr must be > 0, got {self.lr}")
        require(0 <= self.warmup <= self.updates, f"warmup must be in [0, updates={self.updates}], got {self.warmup}")
        require(0 <= self.lr_min_ratio <= 1, f"lr_min_ratio must be in [0, 1], got {self.lr_min_ratio}")
        require(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        require(self.grad_clip > 0, f"grad_clip must be > 0, got {self.grad_clip}")
        require(all(0 <= b < 1 for b in self.adam_betas), f"adam_betas must lie in [0, 1), got {self.adam_betas}")
        check_cell(self.eval_cell, "eval_cell")

    @property
    def iterations(self) -> int:
        """Optimizer updates per prepared batch (PPO's mu for the RL trainers)."""
        return 1


@dataclass(frozen=True, kw_only=True)
class SFTConfig(TrainerConfig):
    """Masked SFT on reference solutions (the paper's SFT baseline: lr 1e-5, 5 epochs over 3000 OpenR1
    solutions with \\boxed, DESIGN section 7)."""

    batch_size: int = 64  # sequences per update, drawn epoch by epoch (a fresh permutation per epoch)
    micro_batch: int = 512  # sequences per forward/backward on one process (gradient accumulation beyond)
    # Response tokens trained per example: solutions are EOS-filled to this length, longer ones are
    # truncated (counted in the metrics). None = gen_length.
    max_response_length: int | None = None
    # Prompt + solution tokens together (the released sft_llada.py's max_length, 1024): longer
    # solutions are cut to fit (counted). None = only max_response_length applies.
    max_length: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.batch_size >= 1 and self.micro_batch >= 1, f"batch_size and micro_batch must be >= 1, got "
                f"{self.batch_size} and {self.micro_batch}")
        require(self.max_response_length is None or self.max_response_length >= 2,
                f"max_response_length must be >= 2 (a token and an EOS), got {self.max_response_length}")
        require(self.max_length is None or self.max_length >= 2, f"max_length must be >= 2, got {self.max_length}")

    @property
    def response_length(self) -> int:
        return self.max_response_length or self.gen_length


@dataclass(frozen=True, kw_only=True)
class RLConfig(TrainerConfig):
    """What the policy-gradient trainers share: group rollouts, the PPO clip and the KL term."""

    # Prompts per update; tiny-scale departure (paper 16): MDPO's 8 x 8 = 64 rollouts per update, as
    # diffu-GRPO's.
    prompts_per_update: int = 8
    group_size: int = 8  # G rollouts per prompt; paper 8
    temperature: float = 1.0  # rollout sampling temperature
    # Confidence of a sampled token (remasking rank, MDPO's token weight): the untempered softmax
    # probability (LLaDA's generate) or the tempered one (released MDPO rollouts).
    confidence: Literal["untempered", "tempered"] = "untempered"
    steps: int = 16  # denoising steps per rollout
    remasking: Literal["lcr", "rcr-max", "rcr-latest", "random"] = "lcr"  # remasking rule of the rollouts (paper: LCR)
    clip_eps: float = 0.2  # PPO clip of the probability ratio to [1 - clip_eps, 1 + clip_eps]
    beta: float = 0.0  # KL weight (0 = no reference model)
    mu: int = 1  # optimizer updates per rollout batch (PPO iterations)
    micro_batch: int = 512  # sequences per forward/backward (gradient accumulation beyond)
    reward_processes: int = 0  # math-verify worker processes (0 = in-process)
    # The reference model follows the policy every ref_sync_every updates: ref <- alpha * policy +
    # (1 - alpha) * ref (TRL's SyncRefModelCallback, the MDPO authors' diffu-GRPO recipe: every 64,
    # alpha 0.6). 0 = a frozen reference.
    ref_sync_every: int = 0
    ref_sync_alpha: float = 0.6  # alpha of the reference sync (see ref_sync_every)
    # Network arithmetic of the rollouts (fp32, or bf16 autocast: faster on AMX CPUs); the draw stays fp64.
    # The workflow passes decoding.compute_dtype, whose default this is.
    compute_dtype: Literal["fp32", "bf16"] = "bf16"

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("prompts_per_update", "steps", "mu", "micro_batch"):
            require(getattr(self, name) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")
        require(self.group_size >= 2, f"group_size must be >= 2 (advantages compare rollouts of a prompt), got {self.group_size}")
        require(self.temperature >= 0, f"temperature must be >= 0, got {self.temperature}")
        require(self.clip_eps > 0, f"clip_eps must be > 0, got {self.clip_eps}")
        require(self.beta >= 0, f"beta must be >= 0, got {self.beta}")
        require(self.reward_processes >= 0, f"reward_processes must be >= 0, got {self.reward_processes}")
        require(self.ref_sync_every >= 0, f"ref_sync_every must be >= 0, got {self.ref_sync_every}")
        require(0 < self.ref_sync_alpha <= 1, f"ref_sync_alpha must be in (0, 1], got {self.ref_sync_alpha}")
        require(self.checkpoint_every % self.mu == 0,
                f"checkpoint_every ({self.checkpoint_every}) must be a multiple of mu ({self.mu}): every rollout batch "
                "gives mu updates, and a resumed run starts at a batch boundary (the last batch may give fewer)")

    @property
    def iterations(self) -> int:
        return self.mu


@dataclass(frozen=True, kw_only=True)
class DiffuGRPOConfig(RLConfig):
    """diffu-GRPO (d1), as re-run by the MDPO authors: lr 3e-6, block 32, 128 steps, gen 512,
    temperature 0.1, beta 0.04, eps 0.5, p_mask_prompt 0.15 (DESIGN section 7)."""

    # Tiny-scale departure (paper 0.1): rollouts must differ within a group (near-deterministic
    # rollouts of a tiny model give no signal; see the module docstring).
    temperature: float = 1.0
    clip_eps: float = 0.5  # PPO clip (the authors' diffu-GRPO recipe: epsilon 0.5)
    beta: float = 0.04  # k3 KL
    group_size: int = 16  # tiny-scale departure (paper 8): 60% of groups with reward spread (43% at 8)
    prompts_per_update: int = 4  # tiny-scale departure (paper 16): 4 x 16 = 64 rollouts per update, as MDPO's
    block_length: int = 4  # semi-AR rollouts (paper 32)
    p_mask_prompt: float = 0.15  # prompt tokens masked in the one-pass log-prob estimate

    def __post_init__(self) -> None:
        super().__post_init__()
        require(0 <= self.p_mask_prompt < 1, f"p_mask_prompt must be in [0, 1), got {self.p_mask_prompt}")
        check_cell({"gen_length": self.gen_length, "block_length": self.block_length, "steps": self.steps}, "block_length")


@dataclass(frozen=True, kw_only=True)
class MDPOConfig(RLConfig):
    """MDPO (He et al.): G=8 rollouts at temperature 0.4, LCR, 128 steps, gen 512, blocks drawn from
    {128, 512}; top K=8 steps; PPO clip 0.2; k2 KL beta 0.02; lr 7e-7 (DESIGN section 7).

    MDPO keeps RLConfig's group_size and prompts_per_update (their comments give the paper's values
    and why the local ones depart)."""

    temperature: float = 1.0  # tiny-scale departure (paper 0.4): as diffu-GRPO's, so neither is favoured
    clip_eps: float = 0.2  # PPO clip (released mdpo_config.py epsilon 0.2)
    beta: float = 0.02  # k2 KL
    # K, the denoising steps trained per rollout; tiny-scale departure (paper 8 of 128 steps): 4 of
    # 16 steps, half the training passes.
    top_k_steps: int = 4
    semi_ar_block: int = 4  # block length of semi-AR rollouts (paper 128)
    rollout_modes: tuple[str, ...] = ROLLOUT_MODES  # drawn per rollout; paper: mixed
    adv_eps: float = 1e-4  # added to the std over the group when each step's advantages are normalised
    # Which K steps are trained: the K with the largest group-summed |A_t| (one set per prompt), or
    # each rollout's own K largest |A_t| (released trainer).
    step_selection: Literal["group", "rollout"] = "group"
    # Weight of each token's KL term: none (a plain KL penalty), conf (times conf_t, as the released
    # loss multiplies the whole per-token loss by conf_t), token (times lambda_t * conf_t, as the policy term).
    kl_weight: Literal["none", "conf", "token"] = "none"
    # Reduction over the K selected steps of a rollout: mean (the loss does not grow with K) or sum.
    step_reduction: Literal["mean", "sum"] = "mean"
    # Block length of a rollout: drawn per rollout from rollout_modes, or, for a mined prompt, the
    # block its Answer Backslide rollout used (the released trainer reuses the mined block: Countdown
    # {32, 512}); prompts without one (a pre-mined set) are drawn.
    rollout_block: Literal["drawn", "mined"] = "drawn"
    # The null-signal control (model mdpo_null): rewards permuted within each group before the
    # advantages, so the update keeps its size and randomness but carries no information.
    null_signal: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        require(1 <= self.top_k_steps <= self.steps, f"top_k_steps ({self.top_k_steps}) must be in [1, steps={self.steps}]")
        require(bool(self.rollout_modes) and set(self.rollout_modes) <= set(ROLLOUT_MODES),
                f"rollout_modes must be a non-empty subset of {list(ROLLOUT_MODES)}, got {list(self.rollout_modes)}")
        require(self.adv_eps > 0, f"adv_eps must be > 0, got {self.adv_eps}")
        if "semi_ar" in self.rollout_modes:
            check_cell({"gen_length": self.gen_length, "block_length": self.semi_ar_block, "steps": self.steps}, "semi_ar_block")
        check_cell({"gen_length": self.gen_length, "block_length": self.gen_length, "steps": self.steps}, "steps")


# The algorithms: name -> settings class (read by the workflow, the schema and the CLI, which makes
# one `maskdiff train-<name>` subcommand per entry; its handler picks the trainer by this name) and
# the one line the CLI's help shows.
CONFIG_CLASSES = {"sft": SFTConfig, "diffu_grpo": DiffuGRPOConfig, "mdpo": MDPOConfig}
TITLES = {"sft": "masked SFT on reference solutions", "diffu_grpo": "diffu-GRPO (d1) baseline",
          "mdpo": "MDPO: rewards on every denoising step"}


def config_from_json(algorithm: str, values: dict) -> TrainerConfig:
    """A job's settings (the JSON the workflow passed) back into the dataclass, checked the same way."""
    return build(CONFIG_CLASSES[algorithm], values, f"training.{algorithm}")


def config_json(cfg: TrainerConfig) -> dict:
    return as_dict(cfg)
