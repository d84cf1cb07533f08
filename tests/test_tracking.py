"""Training curves through accelerate's trackers: every trainer and the pretraining write each listed
scalar and the validation curve to TensorBoard event files, only when asked, without changing a weight;
bad tracker names stop the config check naming the key."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from maskdiff.config import ConfigError, load_config
from maskdiff.io import write_jsonl
from maskdiff.models.tiny import TinyModelSpec
from maskdiff.tasks.countdown import generate_countdown
from maskdiff.tracking import ENV, run_name
from maskdiff.train.diffu_grpo import DiffuGRPOConfig, train_diffu_grpo
from maskdiff.train.mdpo import MDPOConfig, train_mdpo
from maskdiff.train.pretrain import PretrainConfig, pretrain
from maskdiff.train.sft import SFTConfig, train_sft
from parity_reward_cli import parity_reward  # a reward a random model earns half the time
from workflow_helpers import ROOT

CELL = {"gen_length": 8, "block_length": 8, "steps": 4, "remasking": "lcr"}
RL = dict(updates=2, prompts_per_update=2, group_size=3, steps=4, gen_length=8, temperature=1.0, checkpoint_every=2,
          eval_every=1, eval_problems=4, eval_cell=CELL)
TRAINERS = {
    "sft": (train_sft, SFTConfig(updates=2, batch_size=8, gen_length=12, checkpoint_every=2, eval_every=1, eval_problems=4,
                                 eval_cell=CELL | {"gen_length": 12, "block_length": 12})),
    "diffu_grpo": (train_diffu_grpo, DiffuGRPOConfig(**RL, block_length=4, beta=0.04)),
    "mdpo": (train_mdpo, MDPOConfig(**RL, top_k_steps=2, semi_ar_block=4, beta=0.04)),
}
COMMON = ["loss", "grad_norm", "lr", "tokens_per_s"]
RL_SCALARS = ["reward_mean", "reward_std", "groups_with_signal", "kl", "clip_fraction"]


@pytest.fixture(scope="module")
def world(new_world):
    root = new_world("world")
    write_jsonl(root / "train.jsonl", generate_countdown(12, seed=0, split="train"))
    write_jsonl(root / "validation.jsonl", generate_countdown(4, seed=1, split="validation"))
    return root


def scalars_of(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar tag of a run's event files with its (step, value) points."""
    out: dict[str, list[tuple[int, float]]] = {}
    for events in sorted(run_dir.rglob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events))
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            out.setdefault(tag, []).extend((e.step, e.value) for e in acc.Scalars(tag))
    return out


def sha256(path: Path) -> str:
    return hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest()


def tracked(monkeypatch, directory: Path, log_with=("tensorboard",)) -> None:
    monkeypatch.setenv(ENV, json.dumps({"log_with": list(log_with), "dir": str(directory), "project": "test"}))


@pytest.mark.parametrize("name", list(TRAINERS))
def test_each_trainer_writes_every_listed_scalar_to_tensorboard(world, tmp_path, monkeypatch, name):
    import maskdiff.train.groups as groups

    monkeypatch.setattr(groups, "score_completions", parity_reward)
    train, cfg = TRAINERS[name]
    args = dict(seed=0, eval_files={"countdown": str(world / "validation.jsonl")})
    files = [str(world / "train.jsonl")]
    monkeypatch.delenv(ENV, raising=False)
    train(str(world / "base"), files, str(tmp_path / "plain"), str(tmp_path / "checkpoints" / "plain"), cfg, **args)
    assert not list(tmp_path.rglob("events.out.tfevents.*")), "no tracker unless asked"

    tracked(monkeypatch, tmp_path / "tracking")
    ckpt = tmp_path / "checkpoints" / f"{name}-s1"
    train(str(world / "base"), files, str(tmp_path / "tracked"), str(ckpt), cfg, **args)
    assert sha256(tmp_path / "tracked") == sha256(tmp_path / "plain"), "a tracker must not change the weights"

    run = tmp_path / "tracking" / run_name(ckpt)
    assert run_name(ckpt) == f"{name}-s1"
    scalars = scalars_of(run)
    want = [f"train/{k}" for k in COMMON + (RL_SCALARS if name != "sft" else [])] + ["validation/eval_accuracy/countdown"]
    missing = [tag for tag in want if tag not in scalars]
    assert not missing, (missing, sorted(scalars))
    assert [step for step, _ in scalars["train/loss"]] == [1, 2]
    assert [step for step, _ in scalars["validation/eval_accuracy/countdown"]] == [0, 1, 2]
    logged = [json.loads(line) for line in (tmp_path / "tracked" / "metrics.jsonl").read_text().splitlines()]
    updates = [r for r in logged if r.get("event") == "update"]
    assert [v for _, v in scalars["train/loss"]] == pytest.approx([u["loss"] for u in updates], rel=1e-6)
    assert list(run.rglob("hparams.yml")), "the run's config as hyperparameters"


def test_pretraining_writes_its_curve(tmp_path, monkeypatch):
    data = tmp_path / "pretrain.jsonl"
    write_jsonl(data, generate_countdown(16, seed=0, split="pretrain"))
    tracked(monkeypatch, tmp_path / "tracking")
    cfg = PretrainConfig(steps=4, batch_size=4, log_every=2, checkpoint_every=4, warmup_steps=1, seed=0)
    spec = TinyModelSpec(hidden_size=16, intermediate_size=32, num_layers=1, num_heads=2, max_positions=64)
    pretrain([data], tmp_path / "base", tmp_path / "checkpoints" / "base", spec, cfg, gen_length=16)
    scalars = scalars_of(tmp_path / "tracking" / "base")
    assert [s for s, _ in scalars["train/loss"]] == [2, 4] and "train/tokens_per_s" in scalars and "train/lr" in scalars


def test_run_names_follow_the_layout():
    assert run_name("results/local/checkpoints/mdpo-s2") == "mdpo-s2"
    assert run_name("results/paper/checkpoints/mdpo/countdown") == "mdpo/countdown"
    assert run_name("results/local/checkpoints/base") == "base"
    # Tuning points train side by side: each its own run (they once shared "checkpoint", and one
    # job's fresh start removed the other's event file: CI of 4fe0ea0).
    a = run_name("results/smoke/tuning/sft/lr=0.0001,warmup=0,updates=4/checkpoint")
    b = run_name("results/smoke/tuning/sft/lr=0.001,warmup=0,updates=4/checkpoint")
    assert a == "tuning/sft/lr=0.0001,warmup=0,updates=4" and a != b


@pytest.mark.parametrize("log_with, words", [
    (["comet_ml"], "needs a server"), (["neptune"], "tracking.log_with"), (["none", "tensorboard"], "'none' together"),
])
def test_bad_trackers_name_the_key(tmp_path, log_with, words):
    preset = tmp_path / "p.yaml"
    preset.write_text(json.dumps({"extends": "smoke", "preset": "p", "tracking": {"log_with": log_with}}))
    from maskdiff.config import resolve_extends, validate_config
    import yaml

    with pytest.raises(ConfigError, match="tracking.log_with") as err:
        validate_config(resolve_extends(yaml.safe_load(preset.read_text()), ROOT / "config/presets"))
    assert words in str(err.value)


def test_tracking_is_on_by_default_and_not_a_rule_parameter():
    assert load_config(ROOT / "config/presets/local.yaml")["tracking"]["log_with"] == ["tensorboard"]
    common = (ROOT / "workflow/rules/common.smk").read_text()
    assert "os.environ[TRACKING_ENV]" in common
    assert "tracking" not in (ROOT / "workflow/rules/train.smk").read_text()
