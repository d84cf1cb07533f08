"""The trainers on two processes, and under DeepSpeed, on the CPU.

``accelerate launch --multi_gpu --num_processes 2`` runs DDP over gloo on the CPU, the same code
path (rank shares, balanced micro-batches, synchronised gradients, main-process I/O) as the paper
preset's 8-GPU jobs. The model is the LLaDA-like fixture, which cannot pad: prompts are bucketed by
length, so the two ranks have different numbers of micro-batches, and a rank that ran fewer passes
than the other would hang the collective. The project's DeepSpeed config (ZeRO-2, optimizer
offloaded to the CPU, bf16) runs on the CPU too, with one process: checkpoints through
``accelerator.save_state`` and one optimizer step per update whatever the number of micro-batches.
"""

from __future__ import annotations

import json

import pytest
import torch

from maskdiff.cli import main
from maskdiff.io import read_jsonl, write_jsonl
from maskdiff.tasks.countdown import generate_countdown
from helpers import weights
from test_reliability_remote_code import TINY_LLADA_PINS
from workflow_helpers import BIN, ROOT, free_port, run

pytestmark = pytest.mark.slow
FIXTURE = "tests/fixtures/tiny_llada"
OPTIONS = {"trust_remote_code_for": [str(ROOT / FIXTURE)], "remote_code_sha256": TINY_LLADA_PINS}  # remote code allowed, pinned
EVAL_CELL = {"gen_length": 8, "block_length": 8, "steps": 4, "remasking": "lcr"}
SETTINGS = {
    "train-mdpo": {"updates": 4, "prompts_per_update": 4, "group_size": 2, "top_k_steps": 2, "steps": 4, "gen_length": 8,
                   "semi_ar_block": 4, "temperature": 1.0, "micro_batch": 3, "checkpoint_every": 2, "eval_every": 2,
                   "eval_problems": 4, "eval_cell": EVAL_CELL, "beta": 0.02},
    "train-diffu-grpo": {"updates": 4, "prompts_per_update": 4, "group_size": 2, "steps": 4, "gen_length": 8,
                         "block_length": 4, "temperature": 1.0, "micro_batch": 3, "checkpoint_every": 2, "eval_every": 2,
                         "eval_problems": 4, "eval_cell": EVAL_CELL, "mu": 2},
    "train-sft": {"updates": 4, "batch_size": 4, "gen_length": 12, "checkpoint_every": 2, "eval_every": 2,
                  "eval_problems": 4, "eval_cell": EVAL_CELL | {"gen_length": 12, "block_length": 12}},
}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The LLaDA-like fixture model fetched as the CLI does (conftest's ``new_world`` holds the tiny model)."""
    root = tmp_path_factory.mktemp("ddp")
    records = generate_countdown(16, seed=3, split="train")
    assert len({len(r["prompt"]) for r in records}) > 2, "prompts of several lengths: unequal micro-batch counts"
    write_jsonl(root / "train.jsonl", records)
    write_jsonl(root / "test.jsonl", generate_countdown(4, seed=3, split="test"))
    assert main(["fetch-model", "--model", str(ROOT / FIXTURE), "--model-options",
                 json.dumps(OPTIONS), "--out", str(root / "base")]) == 0
    return root


def _launch(world, command: str, out: str, processes: int = 2, die_after: int | None = None, check: bool = True,
            launcher: list[str] | None = None, settings: dict | None = None):
    launcher = launcher or ["--multi_gpu", "--num_processes", str(processes), "--num_machines", "1",
                            "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port())]
    cmd = [str(BIN / "accelerate"), "launch", *launcher,
           str(ROOT / "tests/parity_reward_cli.py"), command, "--model", str(world / "base"),
           "--model-options", json.dumps(OPTIONS),
           "--train", str(world / "train.jsonl"), "--out", str(world / out), "--checkpoint-dir", str(world / f"ck-{out}"),
           "--settings", json.dumps(settings or SETTINGS[command]), "--validation", f"countdown={world / 'test.jsonl'}", "--seed", "0"]
    env = {"MASKDIFF_TEST_DIE_AFTER_UPDATE": str(die_after)} if die_after else {}
    return run(cmd, ROOT, timeout=600, check=check, env=env)


@pytest.mark.parametrize("command", list(SETTINGS))
def test_two_process_training_writes_once_and_synchronises(world, command):
    out = command.replace("-", "_")
    _launch(world, command, out)
    log = read_jsonl(world / out / "metrics.jsonl")
    assert log[0]["event"] == "config" and log[0]["processes"] == 2
    assert sum(r["event"] == "config" for r in log) == 1, "only the main process writes the log"
    assert [r["update"] for r in log if r["event"] == "update"] == [1, 2, 3, 4]
    assert [r["update"] for r in log if r["event"] == "eval"] == [0, 2, 4]
    base, trained = weights(world / "base", **OPTIONS), weights(world / out, **OPTIONS)
    assert any(not torch.equal(base[k], trained[k]) for k in base), "training must change the weights"
    if command != "train-sft":
        # The parity reward over both ranks' rows (4 prompts x 2 rollouts: a mean of k/8).
        rewards = [r["reward_mean"] for r in log if r["event"] == "update"]
        assert all((m * 8) % 1 == 0 for m in rewards) and any(0.0 < m < 1.0 for m in rewards), rewards


def test_two_process_training_resumes_exactly_after_a_kill(world):
    """Both ranks die after update 3 (checkpoint at 2); the rerun continues from 2 on both ranks
    and ends with the weights of the uninterrupted run (so two-process training is deterministic
    too), each update logged once."""
    if not (world / "train_mdpo").exists():
        _launch(world, "train-mdpo", "train_mdpo")
    killed = _launch(world, "train-mdpo", "mdpo_resumed", die_after=3, check=False)
    assert killed.returncode != 0 and not (world / "mdpo_resumed").exists()
    _launch(world, "train-mdpo", "mdpo_resumed")
    a, b = weights(world / "train_mdpo", **OPTIONS), weights(world / "mdpo_resumed", **OPTIONS)
    assert all(torch.equal(a[k], b[k]) for k in a)
    log = read_jsonl(world / "mdpo_resumed" / "metrics.jsonl")
    assert [r["update"] for r in log if r["event"] == "update"] == [1, 2, 3, 4]


DEEPSPEED = ["--config_file", str(ROOT / "config/accelerate/deepspeed_zero2.yaml"), "--num_processes", "1",
             "--main_process_port", "0"]


def test_deepspeed_zero2_trains_steps_once_per_update_and_resumes_exactly(world):
    # 2 x 2 x 2 rows: 3 micro-batches; grad_clip 0.2 must be what DeepSpeed clips at (it ignores
    # clip_grad_norm_'s value and uses its own config's gradient_clipping).
    settings = SETTINGS["train-mdpo"] | {"prompts_per_update": 2, "mixed_precision": "bf16", "grad_clip": 0.2}
    ds = lambda out, **kw: _launch(world, "train-mdpo", out, launcher=DEEPSPEED, settings=settings, **kw)  # noqa: E731
    ds("ds_straight")
    log = read_jsonl(world / "ds_straight" / "metrics.jsonl")
    assert [r["update"] for r in log if r["event"] == "update"] == [1, 2, 3, 4]
    assert log[0]["grad_clip"] == 0.2 and log[0]["effective_grad_clip"] == 0.2, "the engine clips at the trainer's value"
    killed = ds("ds_resumed", die_after=3, check=False)
    assert killed.returncode != 0 and not (world / "ds_resumed").exists()
    ckpt = world / "ck-ds_resumed"
    assert json.loads((ckpt / "progress.json").read_text())["update"] == 2
    engine_state = torch.load(ckpt / "pytorch_model" / "mp_rank_00_model_states.pt", weights_only=False, map_location="cpu")
    assert engine_state["global_steps"] == 2, "DeepSpeed must step once per update, not once per micro-batch"
    assert list((ckpt / "pytorch_model").glob("*optim_states.pt")), "ZeRO optimizer state in the checkpoint"
    ds("ds_resumed")
    a, b = weights(world / "ds_straight", **OPTIONS), weights(world / "ds_resumed", **OPTIONS)
    assert next(iter(a.values())).dtype == torch.bfloat16
    # Resumed = uninterrupted up to the last bf16 bit of a few elements (measured: 2 of 24,736 elements,
    # one bf16 ulp each, on this data; exactly equal on the data of CountdownSpec(max_number=12)),
    # while two uninterrupted runs are bit-identical: the resumed engine's bf16 weights round one
    # ulp apart where its fp32 master weights sit next to a bf16 rounding boundary. A resume from
    # scratch, or a lost optimizer state, moves every tensor far beyond this bound.
    differing = sum(int((a[k] != b[k]).sum()) for k in a)
    ulp = max(float(((a[k].float() - b[k].float()).abs() / a[k].float().abs().clamp(min=1e-30)).max()) for k in a)
    assert differing <= 1e-3 * sum(v.numel() for v in a.values()) and ulp <= 2 ** -7, (differing, ulp)
    assert [r["update"] for r in read_jsonl(world / "ds_resumed" / "metrics.jsonl") if r["event"] == "update"] == [1, 2, 3, 4]
