"""The tiny model world: tokenizer and bidirectional model round-trip through Auto classes."""

from __future__ import annotations

import json

import pytest
import torch

from maskdiff.models import TinyModelSpec, build_char_tokenizer, build_tiny_model, load_model, load_tokenizer, token_ids
from maskdiff.models.forward import forward_logits


def test_tokenizer_is_char_level_with_specials(tokenizer):
    ids = token_ids(tokenizer)
    assert (ids.pad, ids.mask, ids.eos) == (0, 1, 2)
    text = "3,7,12=33 \\frac{1}{2}"
    enc = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(enc) == len(text)
    assert tokenizer.decode(enc) == text
    assert tokenizer.decode([5, 6, ids.eos, ids.pad], skip_special_tokens=True) == tokenizer.decode([5, 6])


def test_tokenizer_and_model_round_trip(tmp_path, tokenizer, tiny_model):
    tokenizer.save_pretrained(tmp_path)
    tiny_model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    assert not list(tmp_path.glob("*.bin")), "weights must be safetensors only"
    tok2 = load_tokenizer(str(tmp_path))
    model2 = load_model(str(tmp_path))
    assert tok2("1+2=")["input_ids"] == tokenizer("1+2=")["input_ids"]
    assert tok2.mask_token == "[MASK]"
    x = torch.randint(4, 30, (2, 9))
    with torch.no_grad():
        assert torch.allclose(forward_logits(tiny_model, x), forward_logits(model2, x), atol=1e-6)


def test_model_is_bidirectional(tiny_model):
    x = torch.randint(4, 30, (1, 10))
    y = x.clone()
    y[0, -1] = (y[0, -1] + 1) % 30 + 4
    with torch.no_grad():
        a, b = forward_logits(tiny_model, x), forward_logits(tiny_model, y)
    assert not torch.allclose(a[0, 0], b[0, 0]), "an early position must see a later token"


def test_causal_llama_is_refused(tmp_path, tokenizer, tiny_model):
    tiny_model.save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["is_causal"] = True
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="is_causal"):
        load_model(str(tmp_path))


def test_remote_code_needs_explicit_allowlist(tmp_path, tiny_model):
    from maskdiff.models.loading import _remote_code_allowed

    assert not _remote_code_allowed("GSAI-ML/LLaDA-8B-Instruct", [])
    assert _remote_code_allowed("GSAI-ML/LLaDA-8B-Instruct", ["GSAI-ML/LLaDA-8B-Instruct"])
    tiny_model.save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["maskdiff_base_model"] = "GSAI-ML/LLaDA-8B-Instruct"
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    assert _remote_code_allowed(str(tmp_path), ["GSAI-ML/LLaDA-8B-Instruct"])
    assert not _remote_code_allowed(str(tmp_path), ["someone/else"])


def test_model_init_is_seeded(tokenizer):
    ids = token_ids(tokenizer)
    spec = TinyModelSpec(hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32)
    special = {"mask": ids.mask, "pad": ids.pad, "eos": ids.eos}
    a, b = build_tiny_model(spec, len(tokenizer), special, 5), build_tiny_model(spec, len(tokenizer), special, 5)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_charset_must_be_unique():
    with pytest.raises(ValueError, match="duplicate"):
        build_char_tokenizer("aab")
