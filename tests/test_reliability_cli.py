"""Errors keep their cause (issue 12, item 7).

The CLI prints the project's own input errors (InputError; a FileNotFoundError of an input path)
as one line, and everything else (a ValueError from inside torch, a missing file that is not an
input) with its traceback; the exit status is non-zero either way.
"""

from __future__ import annotations

import json
import logging

import pytest

import maskdiff.cli as cli
from maskdiff.cli import main
from maskdiff.errors import InputError


def _errors(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR]


def _command(monkeypatch, body) -> list[str]:
    """Run ``body`` as the precision-combine command (its arguments: one input, one output)."""
    monkeypatch.setattr(cli, "cmd_precision_combine", lambda args: body(args))
    return ["precision-combine", "--inputs", "in.csv", "--out", "out.csv"]


def test_input_error_is_one_line(tmp_path, caplog):
    bad = tmp_path / "test.jsonl"
    bad.write_text(json.dumps({"id": "bad-row"}) + "\n")
    code = main(["evaluate", "--model", str(tmp_path / "m"), "--data", str(bad), "--groups", json.dumps([{"name": "g", "cells": [{"gen_length": 4, "block_length": 4, "steps": 2}], "max_problems": 0}]),
                 "--out", str(tmp_path / "e")])
    assert code == 2
    [record] = _errors(caplog)
    assert record.getMessage().startswith(f"{bad}:1 (bad-row): ") and record.exc_info is None
    assert "Traceback" not in caplog.text


def test_missing_input_file_is_one_line(tmp_path, caplog):
    missing = tmp_path / "nowhere" / "test.jsonl"
    code = main(["evaluate", "--model", str(tmp_path / "m"), "--data", str(missing), "--groups", json.dumps([{"name": "g", "cells": [{"gen_length": 4, "block_length": 4, "steps": 2}], "max_problems": 0}]),
                 "--out", str(tmp_path / "e")])
    assert code == 2
    [record] = _errors(caplog)
    assert str(missing) in record.getMessage() and record.exc_info is None


def test_missing_model_directory_is_one_line(tmp_path, caplog):
    data = tmp_path / "test.jsonl"
    data.write_text(json.dumps({"id": "p", "task": "arithmetic", "prompt": "1+1=", "answer": "2", "solution": "2"}) + "\n")
    code = main(["evaluate", "--model", str(tmp_path / "no" / "model"), "--data", str(data), "--groups", json.dumps([{"name": "g", "cells": [{"gen_length": 4, "block_length": 4, "steps": 2}], "max_problems": 0}]),
                 "--out", str(tmp_path / "e")])
    assert code == 2 and "model directory not found" in caplog.text and "Traceback" not in caplog.text


def test_value_error_from_inside_torch_keeps_its_traceback(monkeypatch, caplog):
    import torch

    argv = _command(monkeypatch, lambda args: torch.tensor([[1.0, 2.0], [3.0]]))  # ragged: ValueError in torch
    assert main(argv) == 1
    [record] = _errors(caplog)
    assert record.exc_info is not None and record.exc_info[0] is ValueError
    assert "Traceback (most recent call last)" in caplog.text and "torch.tensor" in caplog.text


def test_other_missing_file_keeps_its_traceback(monkeypatch, caplog, tmp_path):
    internal = tmp_path / "cache" / "internal.bin"
    argv = _command(monkeypatch, lambda args: open(internal))
    assert main(argv) == 1
    [record] = _errors(caplog)
    assert record.exc_info is not None and record.exc_info[0] is FileNotFoundError
    assert "Traceback" in caplog.text


def test_input_error_subclasses_are_one_line(monkeypatch, caplog):
    def body(args):
        raise InputError("config key x: bad")

    assert main(_command(monkeypatch, body)) == 2
    assert [r.getMessage() for r in _errors(caplog)] == ["config key x: bad"]


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyError("prompt")])
def test_unexpected_errors_exit_non_zero_with_traceback(monkeypatch, caplog, exc):
    def body(args):
        raise exc

    assert main(_command(monkeypatch, body)) == 1
    assert "Traceback" in caplog.text


@pytest.mark.parametrize("groups, message", [
    ([{"name": "g", "cells": [{"gen_length": 4, "block_length": 4, "steps": 2, "remaskng": "lcr"}]}], "bad decoding cell"),
    ([{"name": "g", "cells": [{"gen_length": 4, "block_length": 3, "steps": 2}]}], "block_length 3 must divide"),
    ([{"name": "g", "cells": []}], "cells must be a non-empty list"),
    ([], "expected a non-empty JSON list"),
])
def test_bad_evaluation_groups_are_one_line(tmp_path, caplog, groups, message):
    data = tmp_path / "test.jsonl"
    data.write_text(json.dumps({"id": "p", "task": "arithmetic", "prompt": "1+1=", "answer": "2", "solution": "2"}) + "\n")
    code = main(["evaluate", "--model", str(tmp_path / "m"), "--data", str(data), "--groups", json.dumps(groups),
                 "--out", str(tmp_path / "e")])
    assert code == 2 and message in caplog.text and "Traceback" not in caplog.text
