"""The LLaDA code path on a tiny random stand-in (tests/fixtures/tiny_llada): remote-code loading
behind an allow-list, no padding for a model that ignores attention_mask, equal-length batching,
decoding, the chat template, and an end-to-end evaluation cell."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from maskdiff import evaluate as evaluate_module
from maskdiff.batching import encode_prompts, prompt_batches
from maskdiff.evaluate import evaluate_cell
from maskdiff.models import TokenIds, load_model, load_tokenizer, token_ids
from maskdiff.models.forward import forward_logits, supports_padding
from maskdiff.sampling import DecodeSettings, generate
from maskdiff.tasks.build import load_countdown_test_file
from test_reliability_remote_code import TINY_LLADA_PINS

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "tiny_llada"
LLADA_ID = "GSAI-ML/LLaDA-8B-Instruct"
MASK_ID = 63


@pytest.fixture(scope="module")
def llada():
    return load_model(str(FIXTURE), trust_remote_code_for=[str(FIXTURE)], remote_code_sha256=TINY_LLADA_PINS)


@pytest.fixture(scope="module")
def llada_tokenizer():
    return load_tokenizer(str(FIXTURE), trust_remote_code_for=[str(FIXTURE)], remote_code_sha256=TINY_LLADA_PINS)


@pytest.fixture(scope="module")
def llada_ids(llada, llada_tokenizer):
    return TokenIds(mask=llada.config.mask_token_id, pad=llada_tokenizer.pad_token_id, eos=llada_tokenizer.eos_token_id)


def test_fixture_looks_like_llada():
    config = json.loads((FIXTURE / "config.json").read_text())
    assert config["model_type"] == "llada" and config["mask_token_id"] == MASK_ID
    assert config["auto_map"]["AutoModel"] == "modeling_llada.LLaDAModelLM"
    assert config["auto_map"]["AutoConfig"] == "configuration_llada.LLaDAConfig"
    assert (FIXTURE / "model.safetensors").is_file() and not list(FIXTURE.glob("*.bin"))
    assert sum(p.stat().st_size for p in FIXTURE.iterdir() if p.is_file()) < 200_000


def test_remote_code_only_when_allow_listed(llada):
    with pytest.raises(ValueError, match="trust_remote_code=True"):
        load_model(str(FIXTURE))
    with pytest.raises(ValueError, match="contains custom code"):
        load_model(str(FIXTURE), trust_remote_code_for=[LLADA_ID])
    assert llada.config.model_type == "llada" and type(llada).__name__ == "LLaDAModelLM"
    assert not llada.training


def test_remote_code_allowed_through_base_model_field(tmp_path, llada):
    checkpoint = tmp_path / "sft-checkpoint"
    shutil.copytree(FIXTURE, checkpoint)
    config = json.loads((checkpoint / "config.json").read_text())
    config["maskdiff_base_model"] = LLADA_ID
    (checkpoint / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="trust_remote_code=True"):
        load_model(str(checkpoint), trust_remote_code_for=["someone/else"], remote_code_sha256=TINY_LLADA_PINS)
    model = load_model(str(checkpoint), trust_remote_code_for=[LLADA_ID], remote_code_sha256=TINY_LLADA_PINS)
    x = torch.randint(0, MASK_ID, (2, 7), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(forward_logits(model, x), forward_logits(llada, x))


def test_tokenizer_and_token_ids(llada, llada_tokenizer, llada_ids):
    assert llada_tokenizer.mask_token == "<|mdm_mask|>" and llada_tokenizer.mask_token_id == MASK_ID
    assert token_ids(llada_tokenizer, llada.config) == llada_ids
    assert llada_ids.mask == MASK_ID and len(llada_tokenizer) == llada.config.vocab_size


def test_model_ignores_attention_mask_so_padding_is_refused(llada):
    assert supports_padding(llada) is False
    x = torch.randint(0, MASK_ID, (2, 9), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        plain = llada(input_ids=x).logits
        masked = llada(input_ids=x, attention_mask=torch.zeros_like(x)).logits
        assert torch.equal(plain, masked), "like LLaDA, the fixture ignores attention_mask"
        y = x.clone()
        y[0, -1] = (y[0, -1] + 1) % MASK_ID
        assert not torch.allclose(llada(input_ids=y).logits[0, 0], plain[0, 0]), "bidirectional"
        assert torch.equal(forward_logits(llada, x, torch.ones_like(x)), plain)
    padded = torch.ones_like(x)
    padded[1, :3] = 0
    with pytest.raises(ValueError, match="ignores attention_mask"):
        forward_logits(llada, x, padded)


def test_prompt_batches_without_padding_are_equal_length(llada_tokenizer, llada_ids):
    prompts = ["1+2", "10+20", "3+4", "7*8", "100-1", "5", "9-99"]
    encoded = encode_prompts(llada_tokenizer, prompts, chat_template=True)
    batches = list(prompt_batches(encoded, 2, llada_ids.pad, allow_padding=False))
    seen = []
    for indices, prompt_ids, attention_mask in batches:
        assert attention_mask is None
        assert len({len(encoded[i]) for i in indices}) == 1
        assert prompt_ids.tolist() == [encoded[i] for i in indices]
        seen.extend(indices)
    assert sorted(seen) == list(range(len(prompts)))
    assert any(len(indices) == 2 for indices, _, _ in batches)


def test_chat_template_applied(llada_tokenizer):
    encoded = encode_prompts(llada_tokenizer, ["  2+3=? "], chat_template=True)
    text = llada_tokenizer.decode(encoded[0])
    assert text == (
        "<|startoftext|><|start_header_id|>user<|end_header_id|>\n\n2+3=?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    vocab = llada_tokenizer.get_vocab()
    assert encoded[0][:2] == [vocab["<|startoftext|>"], vocab["<|start_header_id|>"]]
    assert encoded[0][-3:] == [vocab["<|end_header_id|>"], vocab["\n"], vocab["\n"]]
    plain = encode_prompts(llada_tokenizer, ["2+3=?"])
    assert plain[0] == llada_tokenizer("2+3=?", add_special_tokens=False)["input_ids"]
    folded = llada_tokenizer.apply_chat_template(
        [{"role": "system", "content": "be brief"}, {"role": "user", "content": "2+3=?"}], tokenize=False
    )
    assert "system" not in folded and "<|end_header_id|>\n\nbe brief\n\n2+3=?<|eot_id|>" in folded


def test_generate_decodes_a_batch(llada, llada_tokenizer, llada_ids):
    encoded = encode_prompts(llada_tokenizer, ["1+2=", "3*4="], chat_template=True)
    prompt_ids = torch.tensor(encoded)
    calls = []

    def counting_forward(model, x, attention_mask):
        calls.append(attention_mask)
        return forward_logits(model, x, attention_mask)

    settings = DecodeSettings(gen_length=8, block_length=4, steps=4)
    out = generate(llada, prompt_ids, settings, llada_ids, record_trajectory=True, forward=counting_forward)
    assert out.nfe == settings.steps == len(calls) and all(m is None for m in calls)
    assert torch.equal(out.sequences[:, : prompt_ids.shape[1]], prompt_ids)
    assert out.completions.shape == (2, 8)
    assert out.trajectory.x0_hat.shape == (4, 2, 8)
    assert bool((out.trajectory.x_t[0] == MASK_ID).all()), "decoding starts from an all-mask region"
    assert int((out.completions == MASK_ID).sum()) <= int((out.trajectory.x0_hat[-1] == MASK_ID).sum())
    again = generate(llada, prompt_ids, settings, llada_ids)
    assert torch.equal(again.sequences, out.sequences), "greedy decoding is deterministic"


def test_evaluate_cell_end_to_end(llada, llada_tokenizer, llada_ids, monkeypatch):
    records = load_countdown_test_file(ROOT / "data" / "reference" / "countdown_cd3_test.jsonl", "paper")[:3]
    lengths = [len(e) for e in encode_prompts(llada_tokenizer, [r["prompt"] for r in records], chat_template=True)]
    masks_seen, real_generate = [], evaluate_module.generate

    def spy(model, prompt_ids, settings, ids, attention_mask=None, *args, **kwargs):
        masks_seen.append(attention_mask)
        return real_generate(model, prompt_ids, settings, ids, attention_mask, *args, **kwargs)

    monkeypatch.setattr(evaluate_module, "generate", spy)
    settings = DecodeSettings(gen_length=8, block_length=8, steps=4)
    summary, rows = evaluate_cell(
        llada, llada_tokenizer, llada_ids, records, settings, batch_size=2, chat_template=True
    )
    n_batches = sum(-(-lengths.count(n) // 2) for n in set(lengths))
    assert len(masks_seen) == n_batches and all(m is None for m in masks_seen), "equal-length buckets, no padding"
    assert summary["n"] == 3 and summary["task"] == "countdown" and 0 <= summary["accuracy"] <= 1
    assert summary["nfe_per_sequence"] == 4 and summary["nfe_calls"] == 4 * n_batches
    assert [r["id"] for r in rows] == [r["id"] for r in records]
    assert all(len(r["step_correct"]) == 4 and isinstance(r["completion"], str) for r in rows)
