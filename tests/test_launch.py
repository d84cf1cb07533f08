"""``maskdiff run``: a config file that does not read is reported with its file and line before
Snakemake starts (Snakemake's own message has neither); a good one hands over to Snakemake."""

from __future__ import annotations

import subprocess

import pytest

from maskdiff.launch import config_files
from workflow_helpers import BIN, ROOT, project_env


def maskdiff_run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "maskdiff"), "run", *args], cwd=ROOT, env=project_env(ROOT), capture_output=True,
                          text=True, timeout=300, stdin=subprocess.DEVNULL)


def test_config_files_are_found_in_every_spelling():
    assert config_files(["-n", "--configfile", "a.yaml", "b.yaml", "--cores", "2", "t"]) == ["a.yaml", "b.yaml"]
    assert config_files(["--configfile=a.yaml", "target", "--configfiles", "c.yaml"]) == ["a.yaml", "c.yaml"]
    assert config_files(["results/x", "--profile", "p"]) == []


def test_a_yaml_syntax_error_names_file_and_line(tmp_path):
    """The issue's reproduction: `steps: 30` -> `steps: [30` in the smoke preset."""
    text = (ROOT / "config/presets/smoke.yaml").read_text()
    assert "steps: 30" in text
    bad = tmp_path / "b.yaml"
    bad.write_text(text.replace("steps: 30", "steps: [30", 1))
    line = next(i for i, row in enumerate(bad.read_text().splitlines(), 1) if "steps: [30" in row)
    proc = maskdiff_run("-n", "--configfile", str(bad))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert f"(while parsing a flow sequence at {bad}:{line}:" in proc.stderr, proc.stderr
    assert proc.stderr.startswith(f"maskdiff run: {bad}:{line + 1}:"), proc.stderr
    # Snakemake alone says neither the file nor the line (why the wrapper exists).
    raw = subprocess.run([str(BIN / "snakemake"), "-n", "--configfile", str(bad)], cwd=ROOT, env=project_env(ROOT),
                         capture_output=True, text=True, timeout=300)
    assert raw.returncode != 0 and "not valid JSON or YAML" in raw.stderr + raw.stdout and str(bad) not in raw.stderr


@pytest.mark.parametrize("content, words", [("", "the config file is empty"), ("- a\n- b\n", ":1:1: a config file maps keys")])
def test_an_empty_or_list_shaped_config_file_is_named(tmp_path, content, words):
    bad = tmp_path / "c.yaml"
    bad.write_text(content)
    proc = maskdiff_run("-n", f"--configfile={bad}")
    assert proc.returncode == 2 and f"maskdiff run: {bad}" in proc.stderr and words in proc.stderr, proc.stderr


def test_a_good_config_file_hands_over_to_snakemake():
    proc = maskdiff_run("-n", "--quiet", "rules", "--configfile", "config/presets/smoke.yaml")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "prepare_data" in proc.stdout and "dry-run" in proc.stdout + proc.stderr


def test_version_is_the_packages():
    """`maskdiff --version` prints the installed package's version (pyproject.toml, one source)."""
    import tomllib

    proc = subprocess.run([str(BIN / "maskdiff"), "--version"], capture_output=True, text=True, timeout=60)
    want = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert proc.returncode == 0 and proc.stdout.strip() == f"maskdiff {want}", proc.stdout + proc.stderr
