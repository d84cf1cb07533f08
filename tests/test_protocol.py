"""The experimental protocol at the library level: trainers with validation curves run with every
test file made unreadable (the test set is read once, by the final evaluation), and a run is
reproducible: the same config gives sha256-identical weights."""

from __future__ import annotations

import json

import pytest

from maskdiff.cli import main
from maskdiff.io import read_jsonl, sha256_file
from maskdiff.tasks.build import build_task

GEN = 8
SHARED = {"updates": 2, "lr": 1e-3, "gen_length": GEN, "checkpoint_every": 2, "eval_every": 1, "eval_problems": 4,
          "eval_cell": {"gen_length": GEN, "block_length": GEN, "steps": 4, "remasking": "lcr", "schedule": "even"}}
SETTINGS = {
    "sft": SHARED | {"batch_size": 4},
    "diffu-grpo": SHARED | {"prompts_per_update": 2, "group_size": 2, "steps": 4, "block_length": 4},
    "mdpo": SHARED | {"prompts_per_update": 2, "group_size": 2, "steps": 4, "top_k_steps": 2, "semi_ar_block": 4},
}


@pytest.fixture(scope="module")
def world(new_world):
    root = new_world("protocol")
    for task in ("countdown", "arithmetic"):
        build_task(task, {"n_pretrain": 8, "n_train": 8, "n_test": 8, "n_validation": 8}, 0, root / "tasks" / task)
        test = root / "tasks" / task / "test.jsonl"
        test.unlink()
        test.mkdir()  # unreadable as a file, even for root: any read of a test file fails
    return root


@pytest.mark.parametrize("algorithm", list(SETTINGS))
def test_trainers_with_curves_never_read_a_test_file(world, tmp_path, algorithm):
    tasks = world / "tasks"
    argv = [f"train-{algorithm}", "--model", str(world / "base"), "--out", str(tmp_path / "model"),
            "--checkpoint-dir", str(tmp_path / "ck"), "--settings", json.dumps(SETTINGS[algorithm]),
            "--train", *(str(tasks / t / "train.jsonl") for t in ("countdown", "arithmetic")),
            "--validation", *(f"{t}={tasks / t / 'validation.jsonl'}" for t in ("countdown", "arithmetic"))]
    assert main(argv) == 0
    curve = [e for e in read_jsonl(tmp_path / "model" / "metrics.jsonl") if e.get("event") == "eval"]
    assert [e["update"] for e in curve] == [0, 1, 2] and "eval_accuracy/countdown" in curve[0]
    # The same run pointed at a test file fails: the replacement is what a test read would meet.
    wrong = argv[: argv.index("--validation")] + ["--out", str(tmp_path / "m2"), "--checkpoint-dir", str(tmp_path / "ck2"),
                                             "--validation", f"countdown={tasks / 'countdown' / 'test.jsonl'}"]
    assert main(wrong) != 0


def test_the_same_config_gives_identical_weights(world, tmp_path):
    """Determinism at a fixed thread count: two runs of pretraining and of a trainer (SFT: its masking
    noise is seeded per update) in separate directories give sha256-identical weights. (The RL
    trainers' exact resume and determinism: tests/test_trainers.py, tests/test_distributed.py.)"""
    tasks = world / "tasks"
    digests = []
    for k in range(2):
        assert main(["pretrain", "--data", str(tasks / "countdown" / "pretrain.jsonl"), "--out", str(tmp_path / f"p{k}"),
                     "--checkpoint-dir", str(tmp_path / f"pck{k}"), "--model-spec",
                     json.dumps({"hidden_size": 32, "num_layers": 2, "num_heads": 2, "intermediate_size": 64}),
                     "--settings", json.dumps({"steps": 6, "batch_size": 8, "warmup_steps": 2, "log_every": 2}),
                     "--gen-length", "16", "--seed", "3", "--threads", "1"]) == 0
        assert main(["train-sft", "--model", str(tmp_path / f"p{k}"), "--out", str(tmp_path / f"m{k}"),
                     "--checkpoint-dir", str(tmp_path / f"mck{k}"), "--settings", json.dumps(SETTINGS["sft"] | {"eval_every": 0}),
                     "--train", str(tasks / "countdown" / "train.jsonl"), "--seed", "1", "--threads", "1"]) == 0
        digests.append((sha256_file(tmp_path / f"p{k}" / "model.safetensors"),
                        sha256_file(tmp_path / f"m{k}" / "model.safetensors")))
    assert digests[0] == digests[1]
    assert digests[0][0] != digests[0][1]  # the trainer moved the weights
