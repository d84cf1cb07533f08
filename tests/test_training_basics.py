"""Masked-diffusion loss, supervised batches, pretraining checkpoints and exact resume."""

from __future__ import annotations

import math

import pytest
import torch

from maskdiff.io import read_jsonl
from maskdiff.models import TinyModelSpec
from maskdiff.train.data import build_supervised
from maskdiff.train.diffusion_loss import diffusion_loss_from_logits, mask_responses
from maskdiff.train.pretrain import PretrainConfig, pretrain
from maskdiff.tasks.build import build_task
from helpers import weights


def test_masking_touches_responses_only(ids):
    x = torch.arange(4, 24).reshape(2, 10)
    response = torch.zeros(2, 10, dtype=torch.bool)
    response[:, 4:] = True
    noisy, masked, p = mask_responses(x, response, ids.mask, torch.Generator().manual_seed(0))
    assert not bool(masked[:, :4].any())
    assert torch.equal(noisy[~masked], x[~masked]) and bool((noisy[masked] == ids.mask).all())
    assert bool((p[:, 0] > 0).all()) and bool((p[:, 0] <= 1).all())


def test_loss_matches_hand_computation():
    # One sequence, 2 response tokens, one masked with t = 0.5; uniform logits over 4 classes.
    logits = torch.zeros(1, 3, 4)
    targets = torch.tensor([[0, 1, 2]])
    masked = torch.tensor([[False, True, False]])
    p_mask = torch.full((1, 3), 0.5)
    response = torch.tensor([[False, True, True]])
    loss = diffusion_loss_from_logits(logits, targets, masked, p_mask, response)
    assert float(loss) == pytest.approx(math.log(4) / 0.5 / 2)


def test_supervised_examples_end_with_eos(tokenizer, ids):
    recs = [{"id": "a", "prompt": "1,2=3", "solution": "1+2"}, {"id": "b", "prompt": "10,2=5", "solution": "10/2"}]
    data = build_supervised(tokenizer, recs, 6, ids)
    assert data.responses[0].tolist()[3:] == [ids.eos] * 3
    batch = data.batch([0, 1], ids.pad)
    assert batch["input_ids"].shape == (2, 6 + 6)
    assert batch["attention_mask"][0, 0] == 0 and batch["attention_mask"][1, 0] == 1
    with pytest.raises(ValueError, match="gen_length=3"):
        build_supervised(tokenizer, recs, 3, ids, source="x.jsonl")


def test_unconditional_rows_are_whole_examples_with_every_token_in_the_loss(tokenizer, ids):
    recs = [{"id": "a", "prompt": "1,2=3", "solution": "1+2"}, {"id": "b", "prompt": "10,2=5", "solution": "10/2"}]
    data = build_supervised(tokenizer, recs, 6, ids, unconditional_length=14)
    batch = data.batch([0, 1, 1], ids.pad, unconditional=[False, True, False])
    assert batch["input_ids"].shape == (3, 14)  # the wider of 6 + 6 (conditional) and 14 (whole)
    cond, whole = batch["input_ids"][0], batch["input_ids"][2]  # conditional rows first, then whole ones
    assert tokenizer.decode(whole[:11]) == "10,2=5 10/2" and whole[11:].tolist() == [ids.eos] * 3
    assert batch["response_mask"][2].all() and batch["attention_mask"][2].all()
    assert batch["response_mask"][0].sum() == 6 and not batch["response_mask"][0, :8].any()  # 2 pad + 6 prompt
    assert tokenizer.decode(cond[cond != ids.pad][:5]) == "1,2=3"
    with pytest.raises(ValueError, match="unconditional_length=11"):
        build_supervised(tokenizer, recs, 6, ids, source="x.jsonl", unconditional_length=11)
    with pytest.raises(ValueError, match="without unconditional_length"):
        build_supervised(tokenizer, recs, 6, ids).batch([0], ids.pad, unconditional=[True])


def test_valid_unconditional_examples():
    from maskdiff.tasks.unconditional import unconditional_text, valid_example

    assert valid_example(unconditional_text({"prompt": "3,7,12=33", "solution": "3*7+12"})) == "countdown"
    assert valid_example("3,7,12=33 3*7+11") is None  # wrong numbers
    assert valid_example("3,7,12=34 3*7+12") is None  # wrong target
    assert valid_example("6/4-8/3= -\\frac{7}{6}") == "arithmetic"
    assert valid_example("6/4-8/3= -\\frac{14}{12}") is None  # not the task's canonical form
    assert valid_example("6+1*9= 15") == "arithmetic" and valid_example("6+1*9= 16") is None
    for garbage in ("", " ", "3,7,12=33", "=33 1", "__import__('os')= 1", "1/0= 1", "9" * 500 + "= 1"):
        assert valid_example(garbage) is None


@pytest.fixture(scope="module")
def pretrain_data(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    build_task("countdown", {"n_pretrain": 200, "n_train": 4, "n_test": 4}, 0, d)
    return [d / "pretrain.jsonl"]


SPEC = TinyModelSpec(hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32)


def test_pretrain_resume_is_exact(tmp_path, pretrain_data):
    cfg = PretrainConfig(steps=8, batch_size=8, warmup_steps=2, checkpoint_every=4, log_every=1)
    pretrain(pretrain_data, tmp_path / "straight", tmp_path / "ck1", SPEC, cfg, 12)
    # Interrupted run: train 4 updates (checkpoint at 4), then a fresh process continues to 8.
    _run_until(pretrain_data, tmp_path / "ck2", cfg, stop_after=4)
    pretrain(pretrain_data, tmp_path / "resumed", tmp_path / "ck2", SPEC, cfg, 12)
    a, b = weights(tmp_path / "straight"), weights(tmp_path / "resumed")
    assert all(torch.equal(a[k], b[k]) for k in a)
    log = read_jsonl(tmp_path / "resumed" / "metrics.jsonl")
    steps = [r["step"] for r in log if r.get("event") == "update"]
    assert steps == list(range(1, 9)), "metrics continue across the resume without gaps or repeats"


def test_pretrain_with_unconditional_rows_trains_and_resumes(tmp_path, pretrain_data):
    cfg = PretrainConfig(steps=6, batch_size=8, warmup_steps=1, checkpoint_every=3, log_every=1,
                         unconditional_fraction=0.5, unconditional_length=24)
    pretrain(pretrain_data, tmp_path / "straight", tmp_path / "ck1", SPEC, cfg, 12)
    _run_until(pretrain_data, tmp_path / "ck2", cfg, stop_after=3)
    pretrain(pretrain_data, tmp_path / "resumed", tmp_path / "ck2", SPEC, cfg, 12)
    a, b = weights(tmp_path / "straight"), weights(tmp_path / "resumed")
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="unconditional_fraction"):
        pretrain(pretrain_data, tmp_path / "x", tmp_path / "ck3", SPEC, PretrainConfig(unconditional_fraction=1.5), 12)


def test_pretrain_metrics_are_not_duplicated_after_a_kill_past_a_checkpoint(tmp_path, pretrain_data):
    """Killed at step 6 with the last checkpoint at 4: steps 5-6 were logged, are redone, and must
    appear once."""
    import maskdiff.train.pretrain as module

    cfg = PretrainConfig(steps=8, batch_size=8, warmup_steps=2, checkpoint_every=4, log_every=1)
    real = module.JsonlLogger

    class DieAtSix(real):
        def log(self, **record):
            super().log(**record)
            if record.get("step") == 6:
                raise KeyboardInterrupt

    module.JsonlLogger = DieAtSix
    try:
        with pytest.raises(KeyboardInterrupt):
            pretrain(pretrain_data, tmp_path / "never", tmp_path / "ck", SPEC, cfg, 12)
    finally:
        module.JsonlLogger = real
    pretrain(pretrain_data, tmp_path / "resumed", tmp_path / "ck", SPEC, cfg, 12)
    steps = [r["step"] for r in read_jsonl(tmp_path / "resumed" / "metrics.jsonl") if r.get("event") == "update"]
    assert steps == list(range(1, 9))


def _run_until(data, ckpt_dir, cfg, stop_after):
    """Run pretraining and kill it (an exception) right after the checkpoint at ``stop_after``."""
    import maskdiff.train.pretrain as module

    real_save = module.save_checkpoint

    def save_then_die(*args, **kwargs):
        real_save(*args, **kwargs)
        if args[4]["step"] >= stop_after:
            raise KeyboardInterrupt

    module.save_checkpoint = save_then_die
    try:
        with pytest.raises(KeyboardInterrupt):
            pretrain(data, ckpt_dir.parent / "never", ckpt_dir, SPEC, cfg, 12)
    finally:
        module.save_checkpoint = real_save
    assert not (ckpt_dir.parent / "never").exists(), "an interrupted run must not leave a model output"
