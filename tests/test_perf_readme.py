"""The README's measured sections (performance, RL ladders) are generated from the committed JSON
files: the committed README equals their rendering, a changed measurement makes the check fail, and
missing inputs or markers are errors that name the file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from maskdiff import perf_readme
from maskdiff.cli import main
from maskdiff.errors import InputError

ROOT = Path(__file__).resolve().parents[1]


def _copy_project(tmp_path: Path) -> Path:
    for rel in [*perf_readme.SOURCES.values(), *perf_readme.LADDERS.values(), "README.md"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, tmp_path / rel)
    return tmp_path


def test_committed_readme_equals_the_rendering_of_the_committed_measurements(monkeypatch):
    monkeypatch.chdir(ROOT)
    assert perf_readme.readme_command("README.md", check=True)


def test_every_measured_number_reaches_the_readme(monkeypatch):
    monkeypatch.chdir(ROOT)
    text = (ROOT / "README.md").read_text()
    times = json.loads((ROOT / perf_readme.SOURCES["times"]).read_text())
    for t in times["targets"]:
        assert f"| `{t['command']}` |" in text and f"**{t['wall_seconds'] / 60:.1f} min**" in text
    for path in perf_readme.LADDERS.values():
        for r in json.loads((ROOT / path).read_text())["runs"]:
            assert f"| `{r['run']}` |" in text, r["run"]


def test_a_changed_measurement_fails_the_check_and_a_rewrite_fixes_it(tmp_path, monkeypatch):
    monkeypatch.chdir(_copy_project(tmp_path))
    bf16 = Path(perf_readme.SOURCES["bf16"])
    data = json.loads(bf16.read_text())
    data["rows"][0]["bf16"] = data["rows"][0]["bf16"] + 0.123
    bf16.write_text(json.dumps(data))
    with pytest.raises(InputError, match="README.md: the performance section differs"):
        perf_readme.readme_command("README.md", check=True)
    main(["perf-readme", "--readme", "README.md"])
    assert perf_readme.readme_command("README.md", check=True)
    assert f"{100 * data['rows'][0]['bf16']:.1f}" in Path("README.md").read_text()


def test_a_changed_ladder_fails_the_check(tmp_path, monkeypatch):
    monkeypatch.chdir(_copy_project(tmp_path))
    ladder = Path(next(iter(perf_readme.LADDERS.values())))
    data = json.loads(ladder.read_text())
    data["runs"][0]["validation_accuracy"] = 0.987654
    ladder.write_text(json.dumps(data))
    with pytest.raises(InputError, match="differs from the committed measurements"):
        perf_readme.readme_command("README.md", check=True)


def test_missing_file_and_missing_markers_are_named(tmp_path, monkeypatch):
    monkeypatch.chdir(_copy_project(tmp_path))
    Path(perf_readme.SOURCES["roofline"]).unlink()
    with pytest.raises(InputError, match="docs/results/roofline.json: not found"):
        perf_readme.readme_command("README.md", check=True)
    with pytest.raises(InputError, match="notes.md: needs exactly one <!-- ladder:begin -->"):
        perf_readme.update("no markers here", "body", "notes.md", perf_readme.LADDER_BEGIN, perf_readme.LADDER_END)
