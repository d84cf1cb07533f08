"""The settings each model of the workflow trains with: the shared training keys, the preset's
tuned file and the algorithm's own section, merged into the trainer's config dataclass
(:mod:`maskdiff.train.configs`) and checked at parse time, so a bad field stops ``snakemake -n``.

This module imports no torch: Snakemake imports it on every invocation.
"""

from __future__ import annotations

from ..settings import SettingsError, build
from ..train.configs import CONFIG_CLASSES, TrainerConfig
from .models import MDPO_MODES, TRAINERS, split_model


# Tuned settings the preset reads from its tuned file (the update budget is the study's, not tuned).
APPLIED_TUNED_KEYS = ("lr", "warmup", "beta")
# A model without its own tuning uses another's choice: the null control is MDPO (all data)'s twin.
TUNED_AS = {"mdpo_null": "mdpo_all_data", "mdpo_semi_ar": "mdpo", "mdpo_pure_diff": "mdpo"}


def tuned_values(config: dict, method: str) -> dict:
    """The values of ``training.tuned`` (a file written by the tuning stage) that ``method`` trains
    with; {} without a tuned file or for a model the file does not cover."""
    path = config["training"].get("tuned")
    if not path:
        return {}
    from ..tuning import read_tuned

    chosen = read_tuned(path)
    values = chosen.get(method) or chosen.get(TUNED_AS.get(method, method)) or {}
    return {k: v for k, v in values.items() if k in APPLIED_TUNED_KEYS}


def trainer_config(config: dict, model: str, tuned: bool = True) -> TrainerConfig:
    """The settings ``model`` trains with, each field from the first of:

    1. the algorithm's own section ``training.<algorithm>``;
    2. the tuned values of ``training.tuned`` (``tuned=False``: the untuned settings a tuning point
       starts from); a key both tuned and set in the section is an error (one source per value);
    3. what the workflow shares: ``updates``, ``eval_every``, ``eval_problems`` and
       ``checkpoint_every`` from ``training.<key>``, the RL trainers' ``steps`` and ``compute_dtype``
       from ``decoding``, ``reward_processes`` from ``evaluation``, the rollout block
       (``block_length`` / ``semi_ar_block``) = the smallest of ``evaluation.grid.block_length``;
    4. the dataclass default (the one place of every other default).

    So ``training.<algorithm>.<key>`` is a per-algorithm override of ``training.<key>`` for the four
    shared keys (the paper preset's diffu-GRPO states its ``checkpoint_every``): the training.*
    value applies to every trainer whose section does not set the key. Some fields are the
    workflow's alone, and ``maskdiff.config`` rejects them in a section (the schema's
    ``x-set-by-workflow``): ``gen_length`` and ``eval_cell`` (from ``decoding``), and MDPO's
    ``rollout_modes`` and ``null_signal`` (chosen by the model name: the ablation's modes, the null
    control). Seed replicates skip the validation curves (``eval_every`` 0 whatever the section
    says; their final accuracy comes from the evaluation jobs). Raises naming the key path."""
    method, seed = split_model(model)
    algorithm = TRAINERS[method]
    t, dec = config["training"], config["decoding"]
    shared = {
        "updates": t["updates"],
        "eval_every": t["eval_every"] if seed == 0 else 0,
        "eval_problems": t["eval_problems"],
        "checkpoint_every": t["checkpoint_every"],
        "gen_length": dec["gen_length"],
        "eval_cell": {k: dec[k] for k in ("gen_length", "block_length", "steps", "schedule", "compute_dtype")}
        | {"remasking": "lcr"},
    }
    if algorithm != "sft":
        shared |= {"steps": dec["steps"], "reward_processes": config["evaluation"]["reward_processes"],
                   "compute_dtype": dec["compute_dtype"]}
    if algorithm == "mdpo":
        shared["semi_ar_block"] = min(config["evaluation"]["grid"]["block_length"])
        if method in MDPO_MODES:
            shared["rollout_modes"] = list(MDPO_MODES[method])
        if method == "mdpo_null":
            shared["null_signal"] = True
    if algorithm == "diffu_grpo":
        shared["block_length"] = min(config["evaluation"]["grid"]["block_length"])
    section = dict(t.get(algorithm) or {})
    if seed:
        section.pop("eval_every", None)
    chosen = tuned_values(config, method) if tuned else {}
    fields = CONFIG_CLASSES[algorithm].__dataclass_fields__
    chosen = {k: v for k, v in chosen.items() if k in fields}
    both = sorted(set(chosen) & set(section))
    if both:
        raise SettingsError(f"config key training.{algorithm}: {both} also set by the tuned file training.tuned="
                         f"{t['tuned']} (for {method}); remove one of them")
    return build(CONFIG_CLASSES[algorithm], shared | chosen | section, f"training.{algorithm}")
