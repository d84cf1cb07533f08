"""The paper preset, verified without a GPU: its config, and a SLURM dry run of the whole DAG
whose planned jobs and resources must match what the preset states."""

from __future__ import annotations

import re

import pytest

from maskdiff.config import load_config
from workflow_helpers import ROOT, snakemake

PAPER = ["--configfile", "config/presets/paper.yaml"]


def test_paper_preset_states_the_papers_settings():
    cfg = load_config("config/presets/paper.yaml")
    assert cfg["model"]["name_or_path"] == "GSAI-ML/LLaDA-8B-Instruct"
    assert cfg["model"]["trust_remote_code_for"] == ["GSAI-ML/LLaDA-8B-Instruct"]
    assert cfg["model"]["mask_token_id"] == 126336 and cfg["model"]["chat_template"]
    assert cfg["decoding"]["gen_length"] == 512
    assert cfg["evaluation"]["grid"] == {"steps": [64, 128, 256], "block_length": [128, 512],
                                         "remasking": ["lcr", "rcr-max", "rcr-latest"]}
    m = cfg["training"]["mdpo"]
    assert (m["lr"], m["group_size"], m["top_k_steps"], m["temperature"], m["prompts_per_update"]) == (7e-7, 8, 8, 0.4, 16)
    assert (m["clip_eps"], m["beta"], m["steps"]) == (0.2, 0.02, 128)
    g = cfg["training"]["diffu_grpo"]
    assert (g["lr"], g["group_size"], g["temperature"], g["block_length"], g["beta"], g["clip_eps"]) == (3e-6, 6, 0.1, 32, 0.04, 0.5)
    assert cfg["training"]["sft"]["lr"] == 1e-5
    assert cfg["resources"]["train"]["gpu"] == 8
    assert cfg["mining"]["premined"]["math500"].endswith("answer_backslide_openr1_40k_epoch1.csv")
    # Every comment-less number would be a guess: each value line of the preset cites its source.
    text = (ROOT / "config/presets/paper.yaml").read_text()
    for key in ("lr:", "group_size:", "temperature:", "top_k_steps:", "beta:", "clip_eps:"):
        for line in (l for l in text.splitlines() if l.strip().startswith(key)):
            assert "DESIGN" in line or "paper" in line, f"uncited: {line.strip()}"


def _jobs(dry_run_output: str) -> list[dict]:
    """(rule, resources) of every planned job in a `snakemake -n` log."""
    jobs, current = [], None
    for line in dry_run_output.splitlines():
        m = re.match(r"^(?:local)?rule (\w+):", line.strip())
        if m:
            current = {"rule": m.group(1), "resources": {}}
            jobs.append(current)
        elif current is not None and line.strip().startswith("resources:"):
            for part in line.split(":", 1)[1].split(","):
                key, _, value = part.strip().partition("=")
                current["resources"][key] = value
    return jobs


@pytest.mark.slow
def test_paper_dry_run_through_the_slurm_profile():
    proc = snakemake(ROOT, "-n", "--profile", "slurm", *PAPER, timeout=300)
    jobs = _jobs(proc.stdout + proc.stderr)
    by_rule: dict[str, list[dict]] = {}
    for job in jobs:
        by_rule.setdefault(job["rule"], []).append(job["resources"])
    expected_counts = {"fetch_base": 1, "prepare_data": 2, "rollout_shard": 8, "mine_answer_backslide": 2,
                       "train_sft": 1, "train_diffu_grpo": 1, "train_mdpo": 4, "evaluate": 7 * 2 * 6,
                       "aggregate_sweep": 1, "report": 1}
    assert {rule: len(v) for rule, v in by_rule.items() if rule != "all"} == expected_counts
    for rule in ("train_sft", "train_diffu_grpo", "train_mdpo"):
        for res in by_rule[rule]:
            assert res.get("gpu") == "8" and res.get("runtime") == "2880", (rule, res)
    for rule in ("rollout_shard", "evaluate"):
        for res in by_rule[rule]:
            assert res.get("gpu") == "1", (rule, res)
    assert all("gpu" not in res for res in by_rule["prepare_data"] + by_rule["mine_answer_backslide"])
    assert "accelerate launch --config_file config/accelerate/deepspeed_zero2.yaml --num_processes 8" in proc.stdout
