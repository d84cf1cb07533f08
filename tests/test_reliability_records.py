"""Bad data names its file, line and row id (issue 12, item 2).

Every bad file below once failed far from its cause (a bare KeyError, a reward of 0 on every
completion, a model pretrained on one task only); each must now fail when read, with
``<path>:<line> (<id>)`` in the message, through every reader: the library function, the CLI
commands that read task records, pretraining and mining.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from maskdiff.cli import main
from maskdiff.errors import InputError
from maskdiff.io import write_jsonl
from maskdiff.mining import mine_files
from maskdiff.models.tiny import TinyModelSpec
from maskdiff.tasks.build import build_task
from maskdiff.tasks.records import read_task_files, read_task_records
from maskdiff.train.pretrain import PretrainConfig, pretrain


def countdown(rid: str = "cd-0", **changes) -> dict:
    record = {"id": rid, "task": "countdown", "prompt": "3,4=7", "numbers": [3, 4], "target": 7, "answer": "7",
              "solution": "3+4"}
    record.update(changes)
    return {k: v for k, v in record.items() if v is not DROP}


def math(rid: str = "m-0", **changes) -> dict:
    record = {"id": rid, "task": "arithmetic", "prompt": "1/2=", "answer": "\\frac{1}{2}", "solution": "\\frac{1}{2}"}
    record.update(changes)
    return {k: v for k, v in record.items() if v is not DROP}


DROP = object()

# name -> (file lines, line of the error, id named, what the message says, split)
BAD = {
    "missing prompt": ([countdown(), {"id": "bad-row"}], 2, "bad-row", "missing field 'task'", None),
    "missing prompt, task given": ([countdown(), countdown("bad-row", prompt=DROP)], 2, "bad-row",
                                   "missing field 'prompt'", None),
    "numbers as text": ([countdown("cd-1", numbers="one,two")], 1, "cd-1", "'numbers' must be a non-empty list", None),
    "negative number": ([countdown(), countdown("cd-2", numbers=[3, -4])], 2, "cd-2", "non-negative integers", None),
    "target not a number": ([countdown("cd-3", target="seven")], 1, "cd-3", "'target' must be a finite number", None),
    "empty math answer": ([math(), math("m-1", answer="  ")], 2, "m-1", "field 'answer' is empty", None),
    "prompt not a string": ([math("m-2", prompt=12)], 1, "m-2", "field 'prompt' must be a string", None),
    "unknown task": ([countdown("x-1", task="sudoku")], 1, "x-1", "unknown task 'sudoku'", None),
    "duplicate id": ([countdown("cd-4"), countdown("cd-5"), countdown("cd-4")], 3, "cd-4",
                     "duplicate id (first on line 1)", None),
    "mixed tasks": ([countdown(), math()], 2, "m-0", "task 'arithmetic' in a file of 'countdown' records", None),
    "pretrain row without solution": ([countdown(), countdown("cd-6", solution="")], 2, "cd-6",
                                      "'solution' is empty", "pretrain"),
    "not an object": ([countdown(), ["a", "list"]], 2, "no id", "expected a JSON object", None),
}


def _write(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("case", list(BAD))
def test_bad_record_names_path_line_and_id(tmp_path, case):
    rows, line, rid, what, split = BAD[case]
    path = _write(tmp_path / "data.jsonl", rows)
    with pytest.raises(InputError) as info:
        read_task_records(path, split)
    assert str(info.value).startswith(f"{path}:{line} ({rid}): ")
    assert what in str(info.value)


def test_invalid_json_names_the_line(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps(countdown()) + "\n\n{\"id\": \"cd-9\", \n")
    with pytest.raises(InputError, match=rf"^{path}:3 \(no id\): invalid JSON"):
        read_task_records(path)


def test_empty_file_is_an_error_unless_allowed(tmp_path):
    path = tmp_path / "pretrain.jsonl"
    path.write_text("\n")
    with pytest.raises(InputError, match=rf"^{path}: no pretrain records \(the file is empty\)"):
        read_task_records(path, "pretrain")
    assert read_task_records(path, allow_empty=True) == []


def test_good_records_and_extra_fields_pass(tmp_path):
    rows = [countdown("a", mining={"steps": 4}), countdown("b", solution="")]
    path = _write(tmp_path / "train.jsonl", rows)
    assert read_task_records(path, "train") == rows
    with pytest.raises(InputError, match=rf"{path}:2 \(b\): field 'solution' is empty"):
        read_task_records(path, "train", require_solution=True)


def test_generated_splits_pass_the_reader(tmp_path):
    settings = {"n_test": 5, "n_train": 5, "n_pretrain": 5, "num_count": 3, "max_number": 9, "max_target": 60}
    build_task("countdown", settings, 0, tmp_path / "countdown")
    build_task("arithmetic", {"n_test": 5, "n_train": 5, "n_pretrain": 5}, 0, tmp_path / "arithmetic")
    for task in ("countdown", "arithmetic"):
        for split in ("test", "train", "pretrain"):
            assert len(read_task_records(tmp_path / task / f"{split}.jsonl", split)) == 5


CELLS = json.dumps([{"gen_length": 4, "block_length": 4, "steps": 2}])


@pytest.mark.parametrize("command", ["evaluate", "rollout", "precision-model"])
def test_cli_commands_report_bad_data_in_one_line(tmp_path, caplog, command):
    """The data is read before the model (which does not even exist here): no KeyError, no traceback."""
    path = _write(tmp_path / "data.jsonl", [countdown(), {"id": "bad-row"}])
    common = ["--model", str(tmp_path / "no-model"), "--data", str(path)]
    argv = {
        "evaluate": ["evaluate", *common, "--groups", json.dumps([{"name": "g", "cells": json.loads(CELLS)}]),
                     "--out", str(tmp_path / "e")],
        "rollout": ["rollout", *common, "--shard", "0", "--num-shards", "1", "--out", str(tmp_path / "r.jsonl"),
                    "--settings", json.dumps({"gen_length": 4, "steps": 2, "block_lengths": [4]})],
        "precision-model": ["precision-model", *common, "--settings", "{}", "--out", str(tmp_path / "p.csv")],
    }[command]
    assert main(argv) == 2
    assert f"{path}:2 (bad-row): missing field 'task'" in caplog.text
    assert "Traceback" not in caplog.text


def test_pretraining_refuses_an_empty_task_file(tmp_path):
    good = _write(tmp_path / "countdown.jsonl", [countdown()])
    empty = tmp_path / "arithmetic.jsonl"
    empty.write_text("")
    spec = TinyModelSpec(hidden_size=8, num_layers=1, num_heads=2, intermediate_size=16, max_positions=32)
    with pytest.raises(InputError, match=rf"^{empty}: no pretrain records"):
        pretrain([good, empty], tmp_path / "model", tmp_path / "ck", spec, PretrainConfig(steps=1), 8)
    with pytest.raises(InputError, match=rf"^{empty}: no pretrain records"):
        read_task_files([good, empty], "pretrain")


def _rollout_row(rid: str, bits: str, reward: float) -> dict:
    hits = [i for i, b in enumerate(bits) if b == "1"]
    return {"id": rid, "task": "countdown", "step_correct": bits, "reward": reward, "block_length": 4, "steps": len(bits),
            "first_correct_step": hits[0] if hits else None, "last_correct_step": hits[-1] if hits else None,
            "backslide": reward == 0 and bool(hits)}


def test_mining_reads_validated_records_and_writes_readable_ones(tmp_path):
    train = _write(tmp_path / "train.jsonl", [countdown("a"), countdown("b"), countdown("c")])
    write_jsonl(tmp_path / "s.jsonl", [_rollout_row("a", "0110", 0.0), _rollout_row("b", "0001", 1.0),
                                        _rollout_row("c", "0000", 0.0)])
    outs = [tmp_path / "mined.jsonl", tmp_path / "all.jsonl", tmp_path / "stats.json"]
    assert mine_files(train, [tmp_path / "s.jsonl"], *outs)["mined"] == 1
    mined = read_task_records(outs[0], "train", allow_empty=True)
    assert [r["id"] for r in mined] == ["a"] and mined[0]["mining"], "mined records keep their extra 'mining' field"
    assert len(read_task_records(outs[1], "train")) == 3
    bad = _write(tmp_path / "bad-train.jsonl", [countdown("a"), countdown("b", numbers="one,two")])
    with pytest.raises(InputError, match=rf"^{bad}:2 \(b\): countdown field 'numbers'"):
        mine_files(bad, [tmp_path / "s.jsonl"], *outs)


def test_invalid_json_names_the_column_on_the_line(tmp_path):
    """A line cut after a field: the column is where that line breaks off, not column 1 of the next
    line (the newline used to be parsed with it)."""
    path = tmp_path / "data.jsonl"
    cut = '{"id": "cd-1", "target": 12,'
    path.write_text(json.dumps(countdown()) + "\n" + cut + "\n")
    with pytest.raises(InputError, match=rf"^{path}:2 \(no id\): invalid JSON: .* \(column {len(cut) + 1}\)"):
        read_task_records(path)
    from maskdiff.io import read_jsonl

    with pytest.raises(InputError, match=rf"^{path}:2: invalid JSON line: .* \(column {len(cut) + 1}\)"):
        read_jsonl(path)
