"""The workflow's names for the models it trains: which trainer (algorithm) each model runs, its
RL-seed replicates, and which models a preset trains.

A *model* is what the study compares (``mdpo``, ``mdpo_all_data``, ``mdpo_null``, ...); its
*algorithm* is the trainer that makes it (``mdpo``); ``mdpo-s2`` is its RL-seed replicate 2. The
trainers' settings live in :mod:`maskdiff.train.configs`; these names are the workflow's.

This module imports no torch: Snakemake imports it on every invocation.
"""

from __future__ import annotations

# Model name -> trainer (algorithm): every model the workflow can train.
TRAINERS = {"sft": "sft", "diffu_grpo": "diffu_grpo", "mdpo": "mdpo", "mdpo_all_data": "mdpo",
            "mdpo_null": "mdpo", "mdpo_semi_ar": "mdpo", "mdpo_pure_diff": "mdpo"}
# Models trained on every training prompt rather than the mined Answer Backslide set.
ALL_DATA_MODELS = ("sft", "diffu_grpo", "mdpo_all_data", "mdpo_null")
# The rollout-mode ablation: model name -> MDPO rollout modes (plain `mdpo` is mixed).
MDPO_MODES = {"mdpo_semi_ar": ("semi_ar",), "mdpo_pure_diff": ("pure_diff",)}
SEED_SUFFIX = "-s"


def split_model(model: str) -> tuple[str, int]:
    """``mdpo-s2`` -> ``("mdpo", 2)``; a name without a suffix is seed 0 (``mdpo`` -> ``("mdpo", 0)``)."""
    method, sep, seed = model.rpartition(SEED_SUFFIX)
    if sep and seed.isdigit() and method in TRAINERS:
        return method, int(seed)
    return model, 0


def trained_models(config: dict) -> list[str]:
    """Every model the workflow trains: the configured methods (seed 0 keeps the plain name), the
    rollout-mode ablation, and the RL-seed replicates ``<method>-s1`` ... of the configured methods."""
    t = config["training"]
    methods = list(t["models"])
    models = methods + (list(MDPO_MODES) if t["ablation"] else [])
    return models + [f"{m}{SEED_SUFFIX}{k}" for k in range(1, t["seeds"]) for m in methods]


def trains_per_task(config: dict, model: str) -> bool:
    """Whether ``model`` is trained once per task (its algorithm is in ``training.per_task``):
    ``models/<model>/<task>``, each on that task's prompts and evaluated on that task; otherwise one
    model on every task's prompts, evaluated on every task."""
    return TRAINERS[split_model(model)[0]] in config["training"]["per_task"]
