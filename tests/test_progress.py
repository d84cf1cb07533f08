"""Progress in log files (issue 21, item 2): a Snakemake rule's log gets plain lines at a steady
interval, no carriage returns or escape codes; a terminal keeps its live bar."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

from maskdiff.progress import PlainLines, progress
from maskdiff.tasks.build import build_task

BIN = Path(sys.executable).parent


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_file_gets_plain_lines_and_a_terminal_a_live_bar(monkeypatch):
    monkeypatch.setenv("MASKDIFF_PROGRESS_INTERVAL", "0")
    log = io.StringIO()
    for _ in progress(range(5), desc="work", file=log):
        pass
    text = log.getvalue()
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert len(lines) >= 2 and all(line.startswith("work:") for line in lines)
    assert "5/5" in lines[-1]
    terminal = FakeTerminal()
    for _ in progress(range(5), desc="work", file=terminal):
        pass
    assert "\r" in terminal.getvalue()  # the live bar redraws in place


def test_the_interval_is_steady_and_leave_false_leaves_nothing(monkeypatch):
    monkeypatch.setenv("MASKDIFF_PROGRESS_INTERVAL", "3600")
    log = io.StringIO()
    for _ in progress(range(1000), desc="slow", file=log):
        pass
    assert len(log.getvalue().splitlines()) == 2, log.getvalue()  # the start and the end, nothing between
    log = io.StringIO()  # a postfix set every step (as the trainers do) does not force a line either
    bar = progress(range(1000), desc="slow", file=log)
    for i in bar:
        bar.set_postfix(loss=i)
    bar.close()
    lines = log.getvalue().splitlines()
    assert len(lines) == 2 and "1000/1000" in lines[-1], lines
    log = io.StringIO()
    PlainLines(log).write("\r\x1b[A" + " " * 40 + "\r")
    assert log.getvalue() == ""


def test_a_cli_job_log_has_no_control_codes(tmp_path):
    """A real `maskdiff pretrain` with its stderr in a file, as a Snakemake rule runs it: the log has
    the pretraining progress as plain lines and no bar of the Hugging Face libraries."""
    build_task("countdown", {"n_pretrain": 64, "n_train": 4, "n_test": 4, "n_validation": 4}, 0, tmp_path / "data")
    spec = {"hidden_size": 16, "num_layers": 1, "num_heads": 2, "intermediate_size": 32, "max_positions": 64}
    settings = {"steps": 6, "batch_size": 4, "warmup_steps": 1, "checkpoint_every": 3, "log_every": 1}
    log = tmp_path / "pretrain.log"
    with open(log, "w") as fh:
        subprocess.run([str(BIN / "maskdiff"), "pretrain", "--data", str(tmp_path / "data/pretrain.jsonl"), "--out",
                        str(tmp_path / "model"), "--checkpoint-dir", str(tmp_path / "ck"), "--model-spec", json.dumps(spec),
                        "--settings", json.dumps(settings), "--gen-length", "12", "--seed", "0", "--threads", "1"],
                       stdout=fh, stderr=subprocess.STDOUT, check=True, timeout=600,
                       env={k: v for k, v in os.environ.items() if k != "MASKDIFF_PROGRESS_INTERVAL"})
    text = log.read_text()
    assert "\r" not in text and "\x1b" not in text, text
    bars = [line for line in text.splitlines() if line.startswith("pretrain:")]
    assert bars and "6/6" in bars[-1] and len(bars) <= 3, text  # start and end (a postfix every step adds none)
    assert "Writing model shards" not in text and "Loading weights" not in text
