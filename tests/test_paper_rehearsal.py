"""The paper rehearsal preset is the paper preset with only sizes and sources changed: its planned
DAG has the same rules and the same per-rule job structure (models, tasks, trainers); only the
number of grid cells and rollout shards may differ. (It runs end to end through the one-node SLURM
cluster in tests/test_slurm.py.)"""

from __future__ import annotations

from maskdiff.config import load_config
from workflow_helpers import dry_run_jobs

SIZE_WILDCARDS = {"group", "scatteritem"}  # grid cells and rollout shards: counts, not structure


def planned_wildcards(configfile: str) -> list[tuple[str, dict]]:
    """(rule, wildcards) of every job the DAG of ``configfile`` plans (``workflow_helpers.planned_jobs``
    counts a dry run's jobs per rule instead)."""
    return dry_run_jobs(configfile, lambda job: (job.rule.name, dict(job.wildcards_dict)))


def structure(jobs: list[tuple[str, dict]]) -> dict[str, set]:
    out: dict[str, set] = {}
    for rule, wildcards in jobs:
        out.setdefault(rule, set()).add(tuple(sorted((k, v) for k, v in wildcards.items() if k not in SIZE_WILDCARDS)))
    return out


def test_rehearsal_dag_has_the_paper_dag_structure():
    paper = structure(planned_wildcards("config/presets/paper.yaml"))
    rehearsal = structure(planned_wildcards("config/presets/paper_rehearsal.yaml"))
    assert set(rehearsal) == set(paper), "same rules"
    for rule in paper:
        assert rehearsal[rule] == paper[rule], f"{rule}: {sorted(rehearsal[rule] ^ paper[rule])}"
    assert len(paper["evaluate"]) == 7 * 2, "7 models x 2 tasks"
    # training.per_task [diffu_grpo, mdpo] (the released runs): a train job per method and task, each
    # model evaluated on its task
    tasks = {"countdown", "math500"}
    assert paper["train_mdpo"] == {(("mdpo_model", m), ("task", t)) for m in
                                   ("mdpo", "mdpo_all_data", "mdpo_semi_ar", "mdpo_pure_diff") for t in tasks}
    assert paper["train_sft"] == {(("sft_model", "sft"),)}, "SFT: one model (sft_llada.py, OpenR1) on both tasks"
    assert paper["train_diffu_grpo"] == {(("grpo_model", "diffu_grpo"), ("task", t)) for t in tasks}


def test_rehearsal_changes_only_sizes_and_sources():
    """Every setting that is not a size, a source or a cluster resource is the paper preset's."""
    paper, rehearsal = load_config("config/presets/paper.yaml"), load_config("config/presets/paper_rehearsal.yaml")
    allowed = {
        ("preset",), ("data", "hub"), ("model", "name_or_path"), ("model", "trust_remote_code_for"),
        ("model", "revision"), ("model", "remote_code_sha256"), ("model", "mask_token_id"), ("mining", "premined"),
        # a random fixture model mines no Countdown Answer Backslide prompt; MDPO per task needs one
        ("mining", "fallback_to_all_data"),
        ("decoding", "gen_length"), ("decoding", "block_length"), ("decoding", "steps"),
        ("evaluation", "batch_size"), ("evaluation", "threads"), ("evaluation", "reward_processes"),
        ("evaluation", "grid", "steps"), ("evaluation", "grid", "block_length"),
        ("rollouts", "shards"), ("rollouts", "steps"), ("rollouts", "block_lengths"), ("rollouts", "batch_size"),
        ("rollouts", "threads"), ("training", "updates"), ("training", "eval_every"), ("training", "eval_problems"),
        ("training", "checkpoint_every"), ("training", "threads"), ("resources",),
        *[("training", "sft", k) for k in ("batch_size", "micro_batch", "max_response_length", "max_length")],
        # warm-up and the reference sync are counts of updates: scaled with training.updates
        *[("training", "diffu_grpo", k) for k in ("prompts_per_update", "group_size", "steps", "block_length", "micro_batch",
                                                  "warmup", "ref_sync_every")],
        *[("training", "mdpo", k) for k in ("prompts_per_update", "group_size", "top_k_steps", "steps", "semi_ar_block",
                                            "micro_batch")],
    }

    def differences(a, b, path=()):
        if path in allowed:
            return []
        if isinstance(a, dict) and isinstance(b, dict):
            return [d for k in set(a) | set(b) for d in differences(a.get(k), b.get(k), path + (k,))]
        return [(".".join(path), a, b)] if a != b else []

    assert differences(paper, rehearsal) == []
    # The paper's choices that matter most are inherited, not restated.
    assert rehearsal["rewards"] == paper["rewards"] and rehearsal["data"]["prompt_style"] == "paper"
    assert rehearsal["model"]["chat_template"] and rehearsal["training"]["mdpo"]["kl_weight"] == "conf"
