"""README results generated from a run: the snapshot (every number, checked against the fixture's
raw files), the rendered section, the marker rewrite, the CLI, and the committed README itself."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from maskdiff.cli import main
from maskdiff.errors import InputError
from maskdiff.io import read_json, read_jsonl
from maskdiff.learning import FELL, FLAT, NA, ROSE, mcnemar_exact_p
from maskdiff.results_readme import (BEGIN, END, SNAPSHOT_KEYS, build_snapshot, cited_snapshot, readme_section,
                                     render_results, update_readme)

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests/fixtures/report/results"
SMOKE = ROOT / "tests/fixtures/report/smoke/results"


@pytest.fixture(scope="module")
def snap():
    return build_snapshot(FIXTURE, "fixture", "2026-12-01")


@pytest.fixture(scope="module")
def smoke_snap():
    return build_snapshot(SMOKE, "smoke", "2026-12-01")


def _correct(model: str, task: str) -> dict[str, bool]:
    rows = read_jsonl(FIXTURE / "eval" / model / task / "B16-S16.problems.jsonl")
    return {r["id"]: r["reward"] > 0.5 for r in rows if r["cell"] == "L16-B16-S16-lcr"}


# ----------------------------------------------------------------------------- the snapshot
def test_snapshot_has_every_key_and_is_strict_json(snap, smoke_snap):
    for s in (snap, smoke_snap):
        assert tuple(s) == SNAPSHOT_KEYS
        json.dumps(s, allow_nan=False)
    assert snap["default_cell"]["label"] == "L16-B16-S16-lcr" and snap["tasks"] == ["countdown", "arithmetic"]
    assert snap["n_test"] == {"countdown": 120, "arithmetic": 80} and snap["seeds"] == 3 and snap["updates"] == 40


def test_seed_statistics_equal_the_summary_table(snap):
    summary = pd.read_csv(FIXTURE / "summary.csv")
    for method in ("sft", "diffu_grpo", "mdpo", "mdpo_all_data"):
        for task in ("countdown", "arithmetic"):
            rows = summary[(summary["task"] == task) & (summary["remasking"] == "lcr")
                           & summary["model"].isin([method, f"{method}-s1", f"{method}-s2"])]
            accs = rows.set_index("model").loc[[method, f"{method}-s1", f"{method}-s2"], "accuracy"].to_numpy()
            t = snap["trainers"][method][task]
            assert t["n_seeds"] == 3 and [s["seed"] for s in t["seeds"]] == [0, 1, 2]
            assert t["mean"] == pytest.approx(accs.mean(), abs=1e-4)
            assert t["std"] == pytest.approx(accs.std(ddof=1), abs=1e-4)
    assert snap["trainers"]["mdpo_pure_diff"]["countdown"]["n_seeds"] == 1
    assert snap["trainers"]["mdpo_pure_diff"]["countdown"]["std"] is None  # one seed: no spread (JSON null)


def test_per_seed_mcnemar_diagnostics_equal_counts_over_the_problem_files(snap):
    base = _correct("base", "countdown")
    c = next(c for c in snap["comparisons"] if (c["task"], c["a"], c["b"]) == ("countdown", "mdpo", "base"))
    assert len(c["per_seed"]) == 3
    for seed, model in enumerate(("mdpo", "mdpo-s1", "mdpo-s2")):
        a = _correct(model, "countdown")
        only_a, only_b = sum(a[k] and not base[k] for k in a), sum(base[k] and not a[k] for k in a)
        x = c["per_seed"][seed]
        assert (x["seed_a"], x["n"]) == (seed, len(a))
        assert x["difference"] == pytest.approx((only_a - only_b) / len(a), abs=1e-6)
        assert x["p_value"] == pytest.approx(mcnemar_exact_p(only_a, only_b), rel=1e-2)
    head = next(c for c in snap["comparisons"] if (c["a"], c["b"]) == ("mdpo", "diffu_grpo"))
    assert [(s["seed_a"], s["seed_b"]) for s in head["per_seed"]] == [(0, 0), (1, 1), (2, 2)]


def test_study_of_one_run_is_conditional_on_its_base_model(snap):
    """Without replicates the seed-aware comparison spans the run's RL seeds and problems only: its
    mean is the mean of the per-seed differences, and it says what it counts."""
    study = snap["study"]
    assert study["base_seeds"] == [0] and study["n_test"] == {"countdown": 120, "arithmetic": 80}
    c = next(c for c in study["comparisons"] if (c["task"], c["a"], c["b"]) == ("countdown", "mdpo", "base"))
    per_seed = next(x for x in snap["comparisons"] if (x["task"], x["a"], x["b"]) == ("countdown", "mdpo", "base"))["per_seed"]
    assert c["mean"] == pytest.approx(np.mean([x["difference"] for x in per_seed]), abs=1e-6)
    assert c["units"] == "RL seeds and problems, for one base model" and c["runs"] == 3 and c["problems"] == 120
    assert c["low"] < c["mean"] < c["high"] and c["p_holm"] >= c["p"]
    pairs = {(c["a"], c["b"]) for c in study["comparisons"]}
    assert {("sft", "base"), ("diffu_grpo", "base"), ("mdpo", "base"), ("mdpo", "diffu_grpo"), ("mdpo", "sft"),
            ("mdpo", "mdpo_all_data")} <= pairs
    learn = {x["method"]: x for x in study["learning"]}
    assert learn["mdpo"]["units"] == "RL seeds" and learn["mdpo"]["n"] == 3 and "sft" not in learn


def test_replicated_study_spans_base_seeds(tmp_path, snap):
    """A copy of the fixture run with another base seed (and one flipped outcome) is a replicate:
    the comparisons then count base seeds, and each base seed's mean is its own run's."""
    import shutil

    other = tmp_path / "results_b1"
    shutil.copytree(FIXTURE, other)
    (other / "models" / "base" / "metrics.jsonl").write_text(json.dumps({"event": "config", "seed": 1}) + "\n")
    path = other / "eval" / "mdpo" / "countdown" / "B16-S16.problems.jsonl"
    rows = read_jsonl(path)
    flip = next(i for i, r in enumerate(rows) if r["cell"] == "L16-B16-S16-lcr" and r["reward"] < 0.5)
    rows[flip]["reward"] = 1.0
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    replicated = build_snapshot(FIXTURE, "fixture", "2026-12-01", replicates=[other])
    study = replicated["study"]
    assert study["base_seeds"] == [0, 1]
    c = next(c for c in study["comparisons"] if (c["task"], c["a"], c["b"]) == ("countdown", "mdpo", "base"))
    one = next(c for c in snap["study"]["comparisons"] if (c["task"], c["a"], c["b"]) == ("countdown", "mdpo", "base"))
    assert c["units"] == "base seeds (RL seeds within them) and problems" and c["runs"] == 6
    assert c["per_base"]["0"] == pytest.approx(one["mean"], abs=1e-6)
    assert c["per_base"]["1"] == pytest.approx(one["mean"] + 1 / 120 / 3, abs=1e-6)
    text = render_results(replicated, "docs/results/fixture.json")
    assert "**The replicated study**: 2 base models" in text and "Holm p" in text
    with pytest.raises(InputError, match="same base seed"):
        build_snapshot(FIXTURE, "fixture", "2026-12-01", replicates=[FIXTURE])


def test_learning_signal_budgets_and_mining(snap):
    learning = snap["learning"]
    assert learning["mdpo"]["verdict"] == ROSE and learning["mdpo"]["p_value"] < 0.05
    assert learning["diffu_grpo"]["verdict"] == FLAT
    assert learning["mdpo_pure_diff"]["verdict"] == FELL
    assert learning["sft"]["verdict"] == NA and learning["sft"]["start"] is None  # no rollout reward
    slopes = {x["method"]: x for x in snap["study"]["learning"]}
    assert slopes["mdpo"]["slope_per_100"] > 0 and slopes["mdpo_pure_diff"]["slope_per_100"] < 0
    assert set(learning["mdpo"]["per_seed_verdicts"]) == {"0", "1", "2"}
    held = learning["sft"]["held_out"]["countdown"]
    assert (held["start_update"], held["end_update"], held["n"]) == (0, 40, 64)
    assert held["peak"] >= max(held["start"], held["end"])
    signal = snap["signal"]
    assert signal["diffu_grpo"]["final_spread_mean"] is None and signal["mdpo"]["final_spread_mean"] is not None
    assert signal["mdpo"]["mean"] > signal["diffu_grpo"]["mean"]
    assert snap["budgets"]["diffu_grpo"] == {"updates": 40, "rollout_sequences": 4 * 6 * 40, "rollout_nfe": 4 * 6 * 40 * 16}
    assert snap["budgets"]["mdpo"]["rollout_sequences"] == 4 * 8 * 40 and snap["budgets"]["sft"]["rollout_sequences"] is None
    eq = snap["equal_budget"]
    assert eq["rollout_sequences"] == 960 and eq["accuracy"]["mdpo"]["countdown"]["update"] == 30
    for task in ("countdown", "arithmetic"):
        stats = read_json(FIXTURE / "mining" / task / "stats.json")
        m = snap["mining"][task]
        assert m["mined"] == stats["mined"] and m["prompts"] == stats["prompts"]
        assert m["overall"]["backslide_rate"] == pytest.approx(stats["overall"]["backslide_rate"])
    gaps = {g["comparison"]: g for g in snap["decoding"]}
    assert set(gaps) == {"rcr-max - lcr", "rcr-latest - lcr", "rcr-max - rcr-latest", "semi-AR - pure-Diff"}
    assert all(g["a_better"] + g["b_better"] + g["ties"] == g["cells"] for g in gaps.values())
    assert snap["precision"]["model_free"] and set(snap["precision"]["model"]) == {"prompted", "unconditional"}


def test_smoke_run_snapshot_says_na(smoke_snap):
    assert smoke_snap["seeds"] == 1 and smoke_snap["precision"] is None
    assert smoke_snap["learning"]["mdpo"]["verdict"] == NA  # 4 updates, no reward
    assert smoke_snap["mining"]["arithmetic"]["overall"] is None  # pre-mined
    assert "mdpo_all_data" not in smoke_snap["trainers"]
    text = render_results(smoke_snap, "docs/results/smoke.json")
    assert "n/a" in text and "a pre-mined set" in text and "no difference established" in text


# ----------------------------------------------------------------------------- rendering
def test_rendered_numbers_come_from_the_snapshot(snap):
    text = render_results(snap, "docs/results/fixture.json")
    assert text.startswith("<!-- generated by `maskdiff results-readme --snapshot docs/results/fixture.json`")
    assert cited_snapshot(text) == "docs/results/fixture.json"
    base = snap["base"]["countdown"]
    assert f"Countdown **{100 * base['accuracy']:.1f}%** [{100 * base['ci_low']:.1f}, {100 * base['ci_high']:.1f}]" in text
    acc = next(a for a in snap["study"]["accuracy"] if (a["method"], a["task"]) == ("mdpo", "arithmetic"))
    assert f"{100 * acc['mean']:.1f} ({100 * acc['per_base']['0']:.1f})" in text
    c = snap["study"]["comparisons"][0]
    assert f"{100 * c['mean']:+.1f} [{100 * c['low']:+.1f}, {100 * c['high']:+.1f}]" in text
    assert "**Did the trainers learn?**" in text and "**Precision / FHS study**" in text
    # Change a number in the snapshot: the text follows.
    changed = json.loads(json.dumps(snap))
    changed["base"]["countdown"]["accuracy"] = 0.5
    assert "Countdown **50.0%**" in render_results(changed, "docs/results/fixture.json")
    # Every percentage in the base grid table is a grid value of the snapshot.
    grid_values = {f"{100 * r['accuracy']:.1f}" for g in snap["base_grid"].values() for r in g}
    table = next(line for line in text.splitlines() if line.startswith("| Countdown | 17.5"))
    assert set(re.findall(r"\d+\.\d", table)) <= grid_values
    with pytest.raises(InputError, match="not a results snapshot"):
        render_results({"preset": "x"}, "x.json")


def test_update_readme_rewrites_only_between_the_markers(snap):
    readme = f"# Title\n\nintro\n\n{BEGIN}\nold typed numbers 12.3%\n{END}\n\n## Next\n"
    new = update_readme(readme, snap, "docs/results/fixture.json")
    assert new.startswith("# Title\n\nintro\n\n" + BEGIN + "\n") and new.endswith(END + "\n\n## Next\n")
    assert "old typed numbers" not in new
    assert readme_section(new) == render_results(snap, "docs/results/fixture.json")
    assert update_readme(new, snap, "docs/results/fixture.json") == new  # idempotent
    assert readme_section("no markers here") is None
    with pytest.raises(InputError, match="no results markers"):
        update_readme("no markers here", snap, "x.json")
    for bad in (f"{BEGIN}\n{BEGIN}\n{END}\n", f"{END}\n{BEGIN}\n", f"{BEGIN}\nonly the start\n"):
        with pytest.raises(InputError, match="exactly one"):
            readme_section(bad)


def test_cli_snapshot_then_readme_then_check(tmp_path):
    out = tmp_path / "docs" / "results" / "fixture.json"
    assert main(["results-snapshot", "--results", str(FIXTURE), "--preset", "fixture", "--date", "2026-12-01",
                 "--out", str(out)]) == 0
    snap = read_json(out)
    assert snap["date"] == "2026-12-01" and snap["preset"] == "fixture"
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n{BEGIN}\n{END}\n")
    assert main(["results-readme", "--snapshot", str(out), "--readme", str(readme)]) == 0
    section = readme_section(readme.read_text())
    assert cited_snapshot(section) == "docs/results/fixture.json"  # cited relative to the README
    assert main(["results-readme", "--snapshot", str(out), "--readme", str(readme), "--check"]) == 0
    readme.write_text(readme.read_text().replace("Preset `fixture`", "Preset `typed`"))
    assert main(["results-readme", "--snapshot", str(out), "--readme", str(readme), "--check"]) == 2
    assert main(["results-snapshot", "--results", str(tmp_path / "missing"), "--out", str(tmp_path / "s.json")]) == 2


# ----------------------------------------------------------------------------- the committed README
def test_readme_numbers_equal_the_committed_snapshot_it_cites():
    """The README's results section is exactly what its cited, committed snapshot renders to."""
    section = readme_section((ROOT / "README.md").read_text())
    if section is None:
        pytest.skip(f"README.md has no {BEGIN} / {END} markers yet: its results are still typed; the lead adds "
                    "the markers with a real run's committed snapshot (docs/results/<preset>.json)")
    cited = cited_snapshot(section)
    assert cited, "the generated section must name the snapshot it was made from"
    path = ROOT / cited
    assert path.is_file(), f"README cites {cited}, which is not in the repository"
    snap = read_json(path)
    assert section == render_results(snap, cited), (
        f"README.md differs from {cited}: run `maskdiff results-readme --snapshot {cited} --readme README.md`")
    assert np.all([k in snap for k in SNAPSHOT_KEYS])


def test_learning_beyond_the_null_control_is_the_slope_of_the_paired_reward_difference(tmp_path):
    """MDPO (all data) and its null control see the same prompts in the same order (same RL seed):
    the study tests the slope of their per-update reward difference. A control whose reward falls
    behind by a known ramp gives exactly that slope."""
    import shutil

    from maskdiff.study import Study, learning, load_study
    from maskdiff.summary import load_run

    work = tmp_path / "results"
    shutil.copytree(FIXTURE, work)
    sweep = pd.read_csv(work / "sweep.csv")
    summary = pd.read_csv(work / "summary.csv")
    for seed in ("", "-s1", "-s2"):
        src, dst = f"mdpo_all_data{seed}", f"mdpo_null{seed}"
        shutil.copytree(work / "eval" / src, work / "eval" / dst)
        events = read_jsonl(work / "models" / src / "metrics.jsonl")
        for e in events:
            if e.get("event") == "update":
                e["reward_mean"] -= 0.001 * e["update"]
        (work / "models" / dst).mkdir()
        (work / "models" / dst / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
        sweep = pd.concat([sweep, sweep[sweep["model"] == src].assign(model=dst)])
        summary = pd.concat([summary, summary[summary["model"] == src].assign(model=dst)])
    sweep.to_csv(work / "sweep.csv", index=False)
    summary.to_csv(work / "summary.csv", index=False)
    rows = {x["method"]: x for x in learning(Study({0: load_run(work)}))}
    diff = rows["mdpo_all_data - mdpo_null"]
    assert diff["mean"] == pytest.approx(0.001, abs=1e-9) and diff["n"] == 3 and diff["units"] == "RL seeds"
    assert rows["mdpo_null"]["mean"] == pytest.approx(rows["mdpo_all_data"]["mean"] - 0.001, abs=1e-9)
    study = load_study([work])
    assert "mdpo_null" in study.methods()
