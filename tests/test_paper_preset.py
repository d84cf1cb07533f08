"""The paper preset, verified without a GPU: its config, and a SLURM dry run of the whole DAG
whose planned jobs and resources must match what the preset states."""

from __future__ import annotations

import re

import pytest

from maskdiff.config import load_config
from workflow_helpers import ROOT, dry_run_jobs, snakemake

PAPER = ["--configfile", "config/presets/paper.yaml"]


def test_paper_preset_states_the_papers_settings():
    """The settings each trainer is built with (as the workflow builds them), against the paper
    and the released code (docs/fidelity.md gives the source of each)."""
    from maskdiff.rewards import RewardSettings
    from maskdiff.settings import build
    from maskdiff.pipeline.trainer_settings import trainer_config

    cfg = load_config("config/presets/paper.yaml")
    assert cfg["model"]["name_or_path"] == "GSAI-ML/LLaDA-8B-Instruct"
    assert cfg["model"]["trust_remote_code_for"] == ["GSAI-ML/LLaDA-8B-Instruct"]
    assert cfg["model"]["mask_token_id"] == 126336 and cfg["model"]["chat_template"]
    assert cfg["decoding"]["gen_length"] == 512
    assert cfg["evaluation"]["grid"] == {"steps": [64, 128, 256], "block_length": [128, 512],
                                         "remasking": ["lcr", "rcr-max", "rcr-latest"]}
    assert cfg["training"]["updates"] == 100, "paper: 100 weight updates for every method"
    m = trainer_config(cfg, "mdpo")
    assert (m.updates, m.lr, m.group_size, m.top_k_steps, m.temperature, m.prompts_per_update) == (100, 7e-7, 8, 8, 0.4, 16)
    assert (m.clip_eps, m.beta, m.steps, m.mu, m.gen_length, m.semi_ar_block) == (0.2, 0.02, 128, 1, 512, 128)
    assert (m.confidence, m.kl_weight, m.step_reduction, m.step_selection) == ("tempered", "conf", "sum", "rollout")
    assert (m.warmup, m.rollout_block) == (0, "mined")  # HF's "constant" schedule ignores the recipe's warm-up
    assert (m.adam_betas, m.weight_decay, m.grad_clip) == ((0.9, 0.999), 0.0, 1.0)
    g = trainer_config(cfg, "diffu_grpo")
    assert (g.updates, g.lr, g.group_size, g.prompts_per_update, g.temperature, g.block_length) == (100, 3e-6, 8, 16, 0.1, 32)
    assert (g.beta, g.clip_eps, g.p_mask_prompt, g.mu, g.steps, g.gen_length) == (0.04, 0.5, 0.15, 1, 128, 512)
    assert (g.adam_betas, g.weight_decay, g.grad_clip, g.warmup) == ((0.9, 0.99), 0.1, 0.2, 10)
    assert (g.ref_sync_every, g.ref_sync_alpha) == (64, 0.6)
    f = trainer_config(cfg, "sft")
    assert (f.updates, f.lr, f.weight_decay) == (100, 1e-5, 0.1)
    # SFT data are the OpenR1 solutions (Countdown training problems have none): 5 epochs of 3000.
    assert f.updates * f.batch_size / cfg["data"]["hub"]["math500"]["n_train"] == pytest.approx(5, abs=0.1), "5 epochs"
    assert (f.response_length, f.max_length, f.lr_schedule) == (1024, 1024, "linear")  # the authors' sft_llada.py
    assert cfg["evaluation"]["top_p"] == 0.95 and cfg["data"]["hub"]["math500"]["gold"] == "solution"
    assert build(RewardSettings, cfg["rewards"], "rewards") == RewardSettings.released()
    assert cfg["rollouts"]["block_lengths"] == [32, 512] and not cfg["rollouts"]["every_block_length"]
    assert cfg["resources"]["train"]["gpu"] == 8
    assert cfg["mining"]["premined"]["math500"].endswith("answer_backslide_openr1_40k_epoch1.csv")


# "authors'": the MDPO authors' files missing from their public repository, read in copies of it
# (docs/fidelity_research.md names where: the diffu-GRPO recipe and trainer, the SFT script).
SOURCE_TAGS = ("paper §", "DESIGN §", "released", "d1", "LLaDA", "project", "authors'")


def uncited_value_lines(text: str) -> list[str]:
    """Lines of a YAML preset that set a value (``key: value`` or a list item) without a comment
    naming its source; a block key (``key:`` alone) needs none."""
    bad = []
    for line in text.splitlines():
        code, _, comment = line.partition("#")
        if not code.strip():
            continue
        key, sep, value = code.strip().partition(":")
        if (sep and not value.strip()) or not (sep or code.strip().startswith("-")):
            continue
        if not any(tag in comment for tag in SOURCE_TAGS):
            bad.append(line.strip())
    return bad


def test_every_paper_preset_value_cites_its_source():
    assert uncited_value_lines((ROOT / "config/presets/paper.yaml").read_text()) == []
    # The check itself: an uncited value and a wrongly tagged one are caught, block keys are not.
    assert uncited_value_lines("training:\n  updates: 200\n  lr: 1e-5  # DESIGN §7\n  mu: 1  # a guess\n") == [
        "updates: 200", "mu: 1  # a guess"]


def _planned_jobs_with_resources(configfile: str) -> list[tuple[str, dict]]:
    """(rule, resources) of every job the DAG plans (the CLI's dry-run log shows each rule's one-line
    message instead of its resources)."""
    return dry_run_jobs(configfile, lambda job: (job.rule.name, dict(job.resources.items())))


@pytest.mark.slow
def test_paper_dry_run_through_the_slurm_profile():
    proc = snakemake(ROOT, "-n", "--profile", "slurm", *PAPER, timeout=300)
    out = proc.stdout + proc.stderr
    table = dict(re.findall(r"^(\w+)\s+(\d+)$", out.split("Job stats:", 1)[1].split("Reasons:", 1)[0], re.M))
    expected_counts = {"fetch_base": 1, "prepare_data": 2, "rollout_shard": 8, "mine_answer_backslide": 2,
                       "train_sft": 1, "train_diffu_grpo": 2, "train_mdpo": 4 * 2, "evaluate": 7 * 2,  # RL per task
                       "aggregate_sweep": 1, "report": 1, "all": 1, "training_curves": 1, "trajectories": 1,
                       "figures": 1}
    assert {k: int(v) for k, v in table.items() if k != "total"} == expected_counts
    assert "accelerate launch --config_file config/accelerate/deepspeed_zero2.yaml --num_processes 8" in out
    assert "maskdiff fetch-model --model GSAI-ML/LLaDA-8B-Instruct" in out

    cfg = load_config("config/presets/paper.yaml")["resources"]
    by_rule: dict[str, list[dict]] = {}
    for rule, res in _planned_jobs_with_resources("config/presets/paper.yaml"):
        by_rule.setdefault(rule, []).append(res)
    stage_of = {"train_sft": "train", "train_diffu_grpo": "train", "train_mdpo": "train", "evaluate": "evaluate",
                "rollout_shard": "rollouts", "fetch_base": "base_model", "prepare_data": "prepare_data",
                "mine_answer_backslide": "mining", "aggregate_sweep": "report", "report": "report",
                "training_curves": "report", "figures": "report", "trajectories": "evaluate"}
    for rule, stage in stage_of.items():
        for res in by_rule[rule]:
            for key, value in cfg[stage].items():
                assert res.get(key) == value, (rule, key, res.get(key), value)
            if not cfg[stage].get("gpu"):
                assert "gpu" not in res, (rule, res)
    assert {res["gpu"] for r in ("train_sft", "train_diffu_grpo", "train_mdpo") for res in by_rule[r]} == {8}
    assert {res["gpu"] for r in ("rollout_shard", "evaluate") for res in by_rule[r]} == {1}


def test_the_fidelity_values_table_is_what_the_presets_build(tmp_path):
    """docs/fidelity_values.md (the preset columns of the fidelity table) is generated from the built
    configs; a value changed in paper.yaml fails this test until the table is regenerated."""
    import shutil

    from maskdiff.fidelity import OUT, render

    committed = (ROOT / OUT).read_text()
    assert committed == render(ROOT), "run `python -m maskdiff.fidelity write`"
    shutil.copytree(ROOT / "config", tmp_path / "config")
    paper = tmp_path / "config/presets/paper.yaml"
    paper.write_text(paper.read_text().replace("    lr: 7.0e-7 ", "    lr: 8.0e-7 ", 1))
    changed = render(tmp_path)
    assert changed != committed and "| `training.mdpo.lr` | 8e-07 |" in changed
    assert "| `training.mdpo.lr` | 7e-07 | " in committed
