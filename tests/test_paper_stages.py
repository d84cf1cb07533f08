"""The paper preset's own stages on local fixtures: fetching a remote-code base model, building
the paper datasets through the CLI, and decoding/training with a LLaDA-like model that cannot pad."""

from __future__ import annotations

import json

import pytest

from maskdiff.cli import main
from maskdiff.io import read_json, read_jsonl
from maskdiff.models import load_model
from test_reliability_remote_code import TINY_LLADA_PINS

FIXTURE = "tests/fixtures/tiny_llada"
OPTIONS = {"trust_remote_code_for": [FIXTURE], "remote_code_sha256": TINY_LLADA_PINS}


def test_fetch_model_saves_safetensors_and_keeps_the_allowlist(tmp_path):
    out = tmp_path / "base"
    assert main(["fetch-model", "--model", FIXTURE, "--model-options", json.dumps(OPTIONS), "--out", str(out)]) == 0
    assert (out / "model.safetensors").is_file() and not list(out.glob("*.bin"))
    assert read_json(out / "config.json")["maskdiff_base_model"] == FIXTURE
    assert type(load_model(str(out), [FIXTURE], remote_code_sha256=TINY_LLADA_PINS)).__name__ == "LLaDAModelLM"
    with pytest.raises(ValueError):
        load_model(str(out), [])  # remote code never runs unless the config allows it


def test_prepare_data_hub_source_on_fixtures(tmp_path):
    settings = json.dumps({"source": "tests/fixtures/paper/math500_test.jsonl",
                           "train_source": "tests/fixtures/paper/openr1_train.parquet", "n_train": 4,
                           "n_validation": 2})
    assert main(["prepare-data", "--source", "hub", "--task", "math500", "--settings", settings,
                 "--prompt-style", "paper", "--out", str(tmp_path)]) == 0
    test = read_jsonl(tmp_path / "test.jsonl")
    assert len(test) == 5 and test[0]["prompt"].endswith("within \\boxed{}.")
    assert len(read_jsonl(tmp_path / "train.jsonl")) == 4 and len(read_jsonl(tmp_path / "validation.jsonl")) == 2
    assert read_json(tmp_path / "manifest.json")["files"]["pretrain"]["count"] == 0


def test_mdpo_trains_a_model_that_ignores_attention_masks(tmp_path):
    """Prompts of different lengths with a LLaDA-like model: generation and training forward passes
    are bucketed by prompt length, never padded."""
    from maskdiff.tasks.countdown import generate_countdown
    from maskdiff.io import write_jsonl
    from maskdiff.train.mdpo import MDPOConfig, train_mdpo

    records = generate_countdown(6, seed=1, split="train")  # prompts of several lengths
    assert len({len(r["prompt"]) for r in records}) > 1
    write_jsonl(tmp_path / "train.jsonl", records)
    assert main(["fetch-model", "--model", FIXTURE, "--model-options", json.dumps(OPTIONS),
                 "--out", str(tmp_path / "base")]) == 0
    cfg = MDPOConfig(updates=2, prompts_per_update=3, group_size=2, top_k_steps=2, steps=4, gen_length=8,
                     semi_ar_block=4, temperature=1.0, checkpoint_every=1, eval_every=0, beta=0.02)
    train_mdpo(str(tmp_path / "base"), [str(tmp_path / "train.jsonl")], str(tmp_path / "mdpo"), str(tmp_path / "ck"),
               cfg, model_options=OPTIONS)
    assert (tmp_path / "mdpo/model.safetensors").is_file()
    assert read_json(tmp_path / "mdpo/config.json")["maskdiff_base_model"] == FIXTURE


def test_sft_trains_a_model_that_ignores_attention_masks(tmp_path):
    """SFT micro-batches hold prompts of one length for such a model (padding it would be silently
    wrong, and forward_logits refuses it): prompts of several lengths in one update must train."""
    from maskdiff.io import write_jsonl
    from maskdiff.tasks.countdown import generate_countdown
    from maskdiff.train.sft import SFTConfig, train_sft

    records = generate_countdown(8, seed=2, split="train")
    assert len({len(r["prompt"]) for r in records}) > 1
    write_jsonl(tmp_path / "train.jsonl", records)
    assert main(["fetch-model", "--model", FIXTURE, "--model-options", json.dumps(OPTIONS),
                 "--out", str(tmp_path / "base")]) == 0
    cfg = SFTConfig(updates=2, batch_size=8, micro_batch=4, gen_length=12, checkpoint_every=2, eval_every=0)
    train_sft(str(tmp_path / "base"), [str(tmp_path / "train.jsonl")], str(tmp_path / "sft"), str(tmp_path / "ck"),
              cfg, model_options=OPTIONS)
    updates = [r for r in read_jsonl(tmp_path / "sft/metrics.jsonl") if r.get("event") == "update"]
    assert [u["update"] for u in updates] == [1, 2] and all(u["loss"] > 0 for u in updates)
