"""Remote code runs only when it is the code the config pins (issue 12, item 4).

A model directory that claims to be trained from the allow-listed LLaDA and bundles Python is
refused unless every .py file matches the config's ``remote_code_sha256``; nothing of it is
imported. The genuine fixture with its pins loads; fetch-model prints the YAML to paste when the
pins are missing.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from maskdiff.cli import main
from maskdiff.io import read_json, write_jsonl
from maskdiff.models import load_model, load_tokenizer
from maskdiff.models import loading
from maskdiff.models.loading import RemoteCodeError, fetch_model, remote_code_hashes, verify_remote_code

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "tiny_llada"
LLADA_ID = "GSAI-ML/LLaDA-8B-Instruct"
# sha256 of the fixture's Python files: what a config pins for it (tests of other modules import it).
TINY_LLADA_PINS = {
    "configuration_llada.py": "620ea87e953b3651e13bd0f8d081ef6fc6d685b281a0286469b4ef8637491fad",
    "make_fixture.py": "f3f486f1038983f6cc4e1b425db841c53d9556614be1475ba04ea663b68ebe99",
    "modeling_llada.py": "92e536d0f6b3c56333c54f390862b8ca05b710158c2ad13d895907c27764f8de",
}


def _claims_llada(directory: Path) -> None:
    """Make a directory look like a checkpoint trained from the allow-listed hub model."""
    config = json.loads((directory / "config.json").read_text())
    config["maskdiff_base_model"] = LLADA_ID
    (directory / "config.json").write_text(json.dumps(config))


@pytest.fixture
def spoofed(tmp_path):
    """A copy of the fixture whose modeling file writes a marker file when imported."""
    directory = tmp_path / "shared-remote" / "tiny_llada"
    shutil.copytree(FIXTURE, directory)
    _claims_llada(directory)
    marker = tmp_path / "remote-code-ran"
    modeling = directory / "modeling_llada.py"
    modeling.write_text(f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n" + modeling.read_text())
    return directory, marker


def test_pins_are_the_fixture_files():
    assert remote_code_hashes(FIXTURE) == TINY_LLADA_PINS


def test_spoofed_directory_is_refused_and_its_code_never_runs(spoofed):
    directory, marker = spoofed
    with pytest.raises(RemoteCodeError, match=r"modeling_llada\.py: sha256 [0-9a-f]{64} differs from the pinned 92e536d0"):
        load_model(str(directory), [LLADA_ID], remote_code_sha256=TINY_LLADA_PINS)
    with pytest.raises(RemoteCodeError, match="refusing to run its remote code"):
        load_tokenizer(str(directory), [LLADA_ID], remote_code_sha256=TINY_LLADA_PINS)
    assert not marker.exists(), "the spoofed modeling code was imported"


def test_spoofed_directory_is_refused_through_the_cli(spoofed, tmp_path, caplog):
    directory, marker = spoofed
    data = tmp_path / "test.jsonl"
    write_jsonl(data, [{"id": "p0", "task": "countdown", "prompt": "1,2=3", "numbers": [1, 2], "target": 3,
                        "answer": "3", "solution": ""}])
    options = json.dumps({"trust_remote_code_for": [LLADA_ID], "remote_code_sha256": TINY_LLADA_PINS})
    code = main(["evaluate", "--model", str(directory), "--model-options", options, "--data", str(data),
                 "--groups", json.dumps([{"name": "g", "cells": [{"gen_length": 4, "block_length": 4, "steps": 2}], "max_problems": 0}]),
                 "--out", str(tmp_path / "e")])
    assert code == 2
    assert "differs from the pinned" in caplog.text and "Traceback" not in caplog.text
    assert not marker.exists()


def test_genuine_fixture_with_its_pins_loads():
    model = load_model(str(FIXTURE), [str(FIXTURE)], remote_code_sha256=TINY_LLADA_PINS)
    assert type(model).__name__ == "LLaDAModelLM"
    assert load_tokenizer(str(FIXTURE), [str(FIXTURE)], remote_code_sha256=TINY_LLADA_PINS).mask_token_id == 63


def test_allow_listed_but_unpinned_code_is_refused():
    with pytest.raises(RemoteCodeError, match="not pinned.*Set model.remote_code_sha256"):
        load_model(str(FIXTURE), [str(FIXTURE)])


def test_every_python_file_must_be_pinned(tmp_path):
    directory = tmp_path / "model"
    shutil.copytree(FIXTURE, directory)
    (directory / "helpers.py").write_text("import os\n")  # importable by the modeling code
    with pytest.raises(RemoteCodeError, match=r"helpers\.py: not pinned"):
        load_model(str(directory), [str(directory)], remote_code_sha256=TINY_LLADA_PINS)


def test_auto_map_into_another_repository_is_refused(tmp_path):
    directory = tmp_path / "model"
    shutil.copytree(FIXTURE, directory)
    config = json.loads((directory / "config.json").read_text())
    config["auto_map"]["AutoModel"] = "attacker/repo--modeling_llada.LLaDAModelLM"
    (directory / "config.json").write_text(json.dumps(config))
    with pytest.raises(RemoteCodeError, match="another repository"):
        verify_remote_code(directory, TINY_LLADA_PINS)


def test_fetch_model_records_what_it_verified(tmp_path):
    out = tmp_path / "base"
    fetch_model(str(FIXTURE), str(out), (str(FIXTURE),), remote_code_sha256=TINY_LLADA_PINS)
    record = read_json(out / loading.REMOTE_CODE_RECORD)
    assert record["sha256"] == TINY_LLADA_PINS and record["source"] == str(FIXTURE)
    assert type(load_model(str(out), [str(FIXTURE)], remote_code_sha256=TINY_LLADA_PINS)).__name__ == "LLaDAModelLM"
    # The record is informational: editing it does not make changed code acceptable.
    (out / "modeling_llada.py").write_text((out / "modeling_llada.py").read_text() + "\n# edited\n")
    with pytest.raises(RemoteCodeError, match="differs"):
        load_model(str(out), [str(FIXTURE)], remote_code_sha256=TINY_LLADA_PINS)


def test_fetch_without_pins_prints_the_yaml_to_paste(tmp_path):
    with pytest.raises(RemoteCodeError) as info:
        fetch_model(str(FIXTURE), str(tmp_path / "base"), (str(FIXTURE),))
    text = str(info.value)
    assert "remote_code_sha256:\n" in text
    for name, digest in TINY_LLADA_PINS.items():
        assert f"    {name}: {digest}" in text
    assert not (tmp_path / "base").exists()


def test_fetch_from_the_hub_needs_a_revision_and_prints_the_one_it_saw(tmp_path, monkeypatch):
    """The hub snapshot is simulated (no hub here): its directory name is the resolved commit."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = tmp_path / "hub" / "snapshots" / commit
    shutil.copytree(FIXTURE, snapshot)
    asked = []
    monkeypatch.setattr(loading, "_hub_code_snapshot", lambda repo, revision: asked.append(revision) or snapshot)
    with pytest.raises(RemoteCodeError) as info:
        fetch_model(LLADA_ID, str(tmp_path / "base"), (LLADA_ID,), remote_code_sha256=TINY_LLADA_PINS)
    assert "model.revision is not set" in str(info.value)
    assert f"  revision: {commit}\n  remote_code_sha256:\n" in str(info.value)
    (snapshot / "modeling_llada.py").write_text("raise SystemExit('must not run')\n")
    with pytest.raises(RemoteCodeError, match="differs from the pinned"):
        fetch_model(LLADA_ID, str(tmp_path / "base"), (LLADA_ID,), remote_code_sha256=TINY_LLADA_PINS, revision=commit)
    assert asked == [None, commit]
