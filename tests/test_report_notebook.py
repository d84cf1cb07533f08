"""The report notebook on the committed fixtures, with papermill and a real kernel: the `local`-like
run (seeds, paired tests, learning curves, budgets, README preview) and a `smoke`-like run (one
seed, no reward, missing models, a pre-mined task), where undefined statistics must read "n/a"."""

from __future__ import annotations

import json
import time

import pytest

from workflow_helpers import BIN, ROOT, run

pytestmark = pytest.mark.slow

SECTIONS = ["The project's table in the paper's layout", "## 2. Seeds", "## 3. Comparisons that count what varies",
            "## 4. Accuracy vs steps", "## 5. Answer Backslide", "## 6. Training: learning curves",
            "MDPO's per-step signal", "Groups with a learning signal", "**In words**",
            "## 7. Budgets: equal updates and equal rollout budgets", "## 8. Run summary", "## 10. Tuning",
            "## 11. README results (preview)"]


def _execute(tmp_path, results: str, name: str) -> tuple[dict, str, float]:
    out = tmp_path / f"{name}.ipynb"
    t0 = time.monotonic()
    run([str(BIN / "papermill"), "notebooks/report.ipynb", str(out), "-k", "maskdiff", "-p", "preset", name,
         "-p", "results_dir", results, "--log-level", "ERROR"], ROOT)
    seconds = time.monotonic() - t0
    nb = json.loads(out.read_text())
    text = []
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            text.append("".join(cell["source"]))
        for o in cell.get("outputs", []):
            assert o.get("output_type") != "error", f"{o.get('ename')}: {o.get('evalue')}"
            if o.get("output_type") == "stream":
                assert o.get("name") != "stderr" or "Warning" not in "".join(o["text"]), "".join(o["text"])
            for key in ("text/markdown", "text/plain", "text/html"):
                if key in o.get("data", {}):
                    text.append("".join(o["data"][key]))
    return nb, "\n".join(text), seconds


def test_report_on_the_local_like_fixture(tmp_path):
    nb, text, seconds = _execute(tmp_path, "tests/fixtures/report/results", "fixture")
    print(f"\nreport notebook on the fixture: {seconds:.1f} s")
    for section in SECTIONS:
        assert section in text, section
    images = sum("image/png" in o.get("data", {}) for c in nb["cells"] for o in c.get("outputs", []))
    assert images >= 11  # accuracy vs steps x 6 models, seeds, backslide x 2, learning curves, MDPO steps, budgets
    assert "3 seeds: mean" in text and "s2 " in text  # replicate seeds in the seed table and the words
    assert "RL seeds and problems, for one base model" in text and "Holm p" in text  # seed-aware comparisons
    assert "Per-seed diagnostics" in text and "McNemar p" in text
    assert "no trend established" in text and "[+0.060, +0.776] over 3 RL seeds" in text  # slope verdicts
    assert "no rollout reward" in text  # SFT
    assert "At an equal rollout budget" in text and "960" in text
    assert "No tuned file given" in text
    assert "Preset `fixture`" in text and "**Comparisons**" in text  # the README preview


def test_report_on_a_smoke_like_run_says_na(tmp_path):
    _, text, seconds = _execute(tmp_path, "tests/fixtures/report/smoke/results", "smoke")
    print(f"\nreport notebook on the smoke fixture: {seconds:.1f} s")
    for section in SECTIONS:
        assert section in text, section
    assert "one seed only" in text and "n/a (one run per base model: no test across runs)" in text
    assert "pre-mined" in text and "MDPO (all data)" not in text  # a model the run does not have


def _chromium() -> str | None:
    import shutil

    return shutil.which("chromium-headless-shell") or shutil.which("chromium") or shutil.which("chromium-browser")


def test_trajectory_section_renders_in_headless_chromium(tmp_path):
    """The report's denoising-trajectory section (a real local run's trajectories, committed as a
    fixture) as a browser shows it: rendered to HTML by nbconvert, loaded by headless Chromium, and read
    back from the DOM Chromium built: the section is there, with a table per case, a row per step and
    highlighted correct predictions; an Answer Backslide case has a correct step and a wrong final answer."""
    from bs4 import BeautifulSoup

    browser = _chromium()
    if browser is None:
        pytest.skip("no headless Chromium (apt-get install chromium-headless-shell; .ci/run installs it as root)")
    nb, text, _ = _execute(tmp_path, "tests/fixtures/report/results", "fixture")
    assert "Denoising trajectories" in text
    run([str(BIN / "jupyter"), "nbconvert", "--to", "html", "--no-input", "--output-dir", str(tmp_path), "--output",
         "report", str(tmp_path / "fixture.ipynb")], ROOT)
    html = tmp_path / "report.html"
    proc = run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", html.as_uri()], ROOT, timeout=180)
    dom = BeautifulSoup(proc.stdout, "html.parser")
    section = dom.find(id="denoising-trajectories")
    assert section is not None, proc.stdout[:2000]
    tables = section.find_all("table", class_="trajectory")
    fixture = json.loads((ROOT / "tests/fixtures/report/trajectories.json").read_text())
    cases = sum(len(t["cases"]) + bool(t["remasking"]) for t in fixture["tasks"].values())
    assert len(tables) == cases and cases >= 2
    for table, steps in zip(tables, [len(next(iter(c["views"].values()))["steps"]) for t in fixture["tasks"].values()
                                     for c in t["cases"]]):
        assert len(table.find_all("tr")) == steps + 1  # the header and a row per step
    first = tables[0]
    assert first.find_all("td", class_="correct"), "a correct intermediate prediction is highlighted"
    assert "Answer Backslide" in first.find("tr").get_text() and "final answer wrong" in first.find("tr").get_text()
    assert any("rcr-max" in t.find("tr").get_text() for t in tables), "the RCR vs LCR view"
