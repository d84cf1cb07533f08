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


def _planned_jobs_with_resources(configfile: str) -> list[tuple[str, dict]]:
    """(rule, resources) of every job the DAG plans, through Snakemake's Python API (the CLI's
    dry-run log shows each rule's one-line message instead of its resources)."""
    from pathlib import Path

    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, DAGSettings, OutputSettings, Quietness, ResourceSettings

    with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
        workflow = api.workflow(resource_settings=ResourceSettings(cores=1),
                                config_settings=ConfigSettings(configfiles=[Path(configfile)]),
                                snakefile=ROOT / "Snakefile", workdir=ROOT)
        dag = workflow.dag(DAGSettings())
        dag.execute_workflow(executor="dryrun")
        return [(job.rule.name, dict(job.resources.items())) for job in workflow._workflow.dag.jobs]


@pytest.mark.slow
def test_paper_dry_run_through_the_slurm_profile():
    proc = snakemake(ROOT, "-n", "--profile", "slurm", *PAPER, timeout=300)
    out = proc.stdout + proc.stderr
    table = dict(re.findall(r"^(\w+)\s+(\d+)$", out.split("Job stats:", 1)[1].split("Reasons:", 1)[0], re.M))
    expected_counts = {"fetch_base": 1, "prepare_data": 2, "rollout_shard": 8, "mine_answer_backslide": 2,
                       "train_sft": 1, "train_diffu_grpo": 1, "train_mdpo": 4, "evaluate": 7 * 2 * 6,
                       "aggregate_sweep": 1, "report": 1, "all": 1}
    assert {k: int(v) for k, v in table.items() if k != "total"} == expected_counts
    assert "accelerate launch --config_file config/accelerate/deepspeed_zero2.yaml --num_processes 8" in out
    assert "maskdiff fetch-model --name GSAI-ML/LLaDA-8B-Instruct" in out

    cfg = load_config("config/presets/paper.yaml")["resources"]
    by_rule: dict[str, list[dict]] = {}
    for rule, res in _planned_jobs_with_resources("config/presets/paper.yaml"):
        by_rule.setdefault(rule, []).append(res)
    stage_of = {"train_sft": "train", "train_diffu_grpo": "train", "train_mdpo": "train", "evaluate": "evaluate",
                "rollout_shard": "rollouts", "fetch_base": "base_model", "prepare_data": "prepare_data",
                "mine_answer_backslide": "mining", "aggregate_sweep": "report", "report": "report"}
    for rule, stage in stage_of.items():
        for res in by_rule[rule]:
            for key, value in cfg[stage].items():
                assert res.get(key) == value, (rule, key, res.get(key), value)
            if not cfg[stage].get("gpu"):
                assert "gpu" not in res, (rule, res)
    assert {res["gpu"] for r in ("train_sft", "train_diffu_grpo", "train_mdpo") for res in by_rule[r]} == {8}
    assert {res["gpu"] for r in ("rollout_shard", "evaluate") for res in by_rule[r]} == {1}
