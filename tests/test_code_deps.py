"""The library files each stage depends on come from the import graph (maskdiff.pipeline.code_deps),
and every output path from one layout module (maskdiff.pipeline.layout)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from maskdiff.pipeline.code_deps import closure, command_entry_modules, notebook_entry_modules, stage_code
from maskdiff.pipeline.layout import Layout, run_name

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / "maskdiff" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_closure_follows_every_kind_of_import(tmp_path):
    src = _package(tmp_path, {
        "__init__.py": "",
        "a.py": "from .b import thing\n",
        "b.py": "def thing():\n    from .c import d  # lazy, inside a function\n    import maskdiff.e\n",
        "c/__init__.py": "",
        "c/d.py": "from ..f import x\n",
        "e.py": "import json\n",
        "f.py": "x = 1\n",
        "unused.py": "from . import a\n",
    })
    names = {p.relative_to(src / "maskdiff").as_posix() for p in closure(["maskdiff.a"], src)}
    assert names == {"__init__.py", "a.py", "b.py", "c/__init__.py", "c/d.py", "e.py", "f.py"}


def test_closure_of_a_real_command_holds_what_importing_it_loads():
    """The static closure is a superset of what Python actually loads for the command's entry modules."""
    for command in ("evaluate", "train-mdpo", "mine", "summarize", "pretrain"):
        entries = sorted(command_entry_modules(command))
        code = ("import sys, importlib\n"
                f"for m in {entries!r}: importlib.import_module(m)\n"
                "print('\\n'.join(sorted(n for n in sys.modules if n == 'maskdiff' or n.startswith('maskdiff.'))))")
        loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                env={"PYTHONPATH": str(SRC), "PATH": ""}).stdout.split()
        files = {p.resolve() for p in closure(entries)}
        missing = [m for m in loaded if _file(m) not in files]
        assert not missing, (command, missing)


def _file(module: str) -> Path:
    base = SRC.joinpath(*module.split("."))
    return (base.with_suffix(".py") if base.with_suffix(".py").is_file() else base / "__init__.py").resolve()


def test_each_command_depends_on_its_own_code_only():
    evaluate = stage_code(["evaluate"])
    assert "src/maskdiff/cli.py" in evaluate and "src/maskdiff/evaluate.py" in evaluate
    assert "src/maskdiff/progress.py" in evaluate  # imported by evaluate.py; the hand-written list had missed it
    assert not [f for f in evaluate if "/train/" in f or f.endswith(("mining.py", "summary.py"))]
    assert "src/maskdiff/train/mdpo.py" in stage_code(["train-mdpo"])
    assert "src/maskdiff/trajectory_report.py" in stage_code(notebooks=["notebooks/report.ipynb"])
    with pytest.raises(ValueError, match="no subcommand"):
        command_entry_modules("no-such-command")


def test_the_handler_naming_rule_matches_the_parser():
    """code_deps finds a subcommand's handler by name (without importing the CLI): every
    subcommand's parser handler in maskdiff.commands is the one the rule names."""
    import argparse

    from maskdiff.cli import build_parser
    from maskdiff.pipeline.code_deps import handler_name

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    checked = 0
    for command, parser in sub.choices.items():
        func = parser.get_default("func")
        if func is not None and func.__module__ == "maskdiff.commands":
            assert handler_name(command) == func.__name__, command
            checked += 1
    assert checked >= 17


def test_notebook_imports_are_read_from_code_cells(tmp_path):
    nb = tmp_path / "n.ipynb"
    nb.write_text(json.dumps({"cells": [
        {"cell_type": "markdown", "source": ["from maskdiff import figures"]},
        {"cell_type": "code", "source": ["%matplotlib inline\n", "from maskdiff.summary import load_run\n"]},
    ]}))
    assert notebook_entry_modules(nb) == {"maskdiff", "maskdiff.summary"}


def test_every_rule_lists_derived_code():
    """No rule keeps a hand-written list of source files: each `code` input is rule_code(...)."""
    for smk in sorted((ROOT / "workflow/rules").glob("*.smk")):
        text = smk.read_text()
        assert "library_code" not in text, smk
        for rule in re.findall(r"^(?:rule|checkpoint) (\w+):", text, flags=re.M):
            body = text.split(f" {rule}:", 1)[1].split("\nrule ", 1)[0].split("\ncheckpoint ", 1)[0]
            if "shell:" in body:
                assert re.search(r"code=(rule_code\(|TRAIN_CODE)", body), f"{smk.name}: rule {rule} has no derived code input"


def test_output_paths_are_written_in_the_layout_module_only():
    """Path templates of the run's outputs appear in maskdiff.pipeline.layout and nowhere else in
    the workflow or the library (docstrings and comments aside)."""
    fragments = ["/eval/", "/models/", "/mining/", "/checkpoints/", "/rollouts/", "/tuning/", "/curves/",
                 "tasks/{", "shard_{", ".metrics.jsonl", "results/{", "data/{", "stage{"]
    files = [*sorted((ROOT / "workflow/rules").glob("*.smk")), ROOT / "Snakefile",
             *sorted((ROOT / "src/maskdiff").rglob("*.py"))]
    offenders = []
    for path in files:
        if path.name == "layout.py":
            continue
        for n, line in enumerate(_code_lines(path.read_text()), 1):
            if any(f in line for f in fragments) and re.search(r"f?[\"'].*(%s)" % "|".join(map(re.escape, fragments)), line):
                offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def _code_lines(text: str) -> list[str]:
    """Lines with comments and docstrings blanked (line numbers kept)."""
    out, in_doc = [], False
    for line in text.splitlines():
        stripped = line.strip()
        quotes = stripped.count('"""')
        if in_doc or (stripped.startswith(('"""', 'r"""')) and quotes == 1):
            out.append("")
            if quotes == 1 and (in_doc or stripped not in ('"""',)):
                in_doc = not in_doc
            continue
        if stripped.startswith(('"""', 'r"""')) or stripped.startswith("#"):
            out.append("")
            continue
        out.append(line.split("  # ")[0])
    return out


def test_layout_names_runs_the_same_everywhere():
    lay = Layout.of("smoke")
    assert lay.model_dir(run_name("mdpo", "countdown")) == "results/smoke/models/mdpo/countdown"
    assert lay.checkpoint_metrics("mdpo-s1") == "results/smoke/checkpoints/mdpo-s1.metrics.jsonl"
    assert lay.log("train", "{mdpo_model}") == "results/smoke/logs/train/{mdpo_model}.log"
    assert lay.benchmark("evaluate", "{model}", "{task}") == "results/smoke/benchmarks/evaluate/{model}/{task}.tsv"
    assert lay.task_file("{task}", "test") == "data/smoke/tasks/{task}/test.jsonl"
    assert Layout.at("/tmp/r").curve("validation", "mdpo/countdown") == "/tmp/r/curves/validation/mdpo/countdown.csv"
