"""The ``paper`` preset's loaders (MATH-500, OpenR1-Math, Countdown-Tasks-3to4, pre-mined Answer
Backslide CSV) on tiny fixtures in the real formats, and ``build_paper_task``'s files + manifest."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from maskdiff.io import read_json, read_jsonl, sha256_file
from maskdiff.tasks.build import build_task, load_countdown_test_file, write_manifest
from maskdiff.tasks.countdown import problem_key
from maskdiff.tasks.paper import (
    ANSWER_BACKSLIDE_CSV,
    COUNTDOWN_TEST_FILE,
    build_paper_task,
    load_answer_backslide_csv,
    load_countdown_tasks,
    load_hf_dataset,
    load_math500,
    load_openr1,
)
from maskdiff.tasks.prompts import COUNTDOWN_PAPER_INSTRUCTION, MATH_PAPER_SUFFIX, countdown_prompt

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "paper"
MATH500 = FIXTURES / "math500_test.jsonl"
OPENR1 = FIXTURES / "openr1_train.parquet"
COUNTDOWN = FIXTURES / "countdown_tasks.parquet"
CD_TEST = ROOT / COUNTDOWN_TEST_FILE
AB_CSV = ROOT / ANSWER_BACKSLIDE_CSV
BOXED_INSTRUCTION = MATH_PAPER_SUFFIX.strip()


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """Keep datasets' Arrow cache out of the home directory."""
    return tmp_path_factory.mktemp("hf_datasets_cache")


@pytest.fixture(scope="module")
def test_keys():
    return {problem_key(r["numbers"], r["target"]) for r in load_countdown_test_file(CD_TEST, "paper")}


# --- MATH-500 -------------------------------------------------------------------------------------


def test_math500_maps_real_columns(cache):
    rows = read_jsonl(MATH500)
    assert set(rows[0]) == {"problem", "solution", "answer", "subject", "level", "unique_id"}
    records = load_math500(MATH500, cache_dir=cache)
    assert len(records) == 5
    assert [r["id"] for r in records] == [
        "math500-test-precalculus-101", "math500-test-prealgebra-202", "math500-test-algebra-303",
        "math500-test-number_theory-404", "math500-test-geometry-505",
    ]
    assert records[0]["answer"] == "\\left( 3, \\frac{\\pi}{2} \\right)"
    assert records[1]["answer"] == "\\frac{14}{3}"
    for record, row in zip(records, rows):
        assert record["task"] == "math500"
        suffix = "\nLet's think step by step and output the final answer within \\boxed{}."
        assert record["prompt"] == row["problem"] + suffix
        assert record["prompt"].count(BOXED_INSTRUCTION) == 1
        assert record["answer"] == row["answer"] and record["solution"] == row["solution"]
        assert record["subject"] == row["subject"] and record["level"] == row["level"]


def test_math500_limit_style_and_directory_source(tmp_path, cache):
    first = load_math500(MATH500, limit=2, prompt_style="compact", cache_dir=cache)
    assert len(first) == 2 and first[0]["prompt"] == read_jsonl(MATH500)[0]["problem"]
    shutil.copy(MATH500, tmp_path / "test.jsonl")  # a directory laid out like the hub repo
    assert load_math500(tmp_path, cache_dir=cache) == load_math500(MATH500, cache_dir=cache)
    with pytest.raises(ValueError, match="could not load split 'train'"):
        load_math500(tmp_path, split="train", cache_dir=cache)


def test_math500_missing_columns_named(tmp_path, cache):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "1+1?", "final": "2"}) + "\n")
    with pytest.raises(ValueError, match=r"bad\.jsonl.*missing column.*'problem'"):
        load_math500(bad, cache_dir=cache)


def test_missing_local_source_is_not_mistaken_for_a_hub_id(cache):
    with pytest.raises(FileNotFoundError, match="neither an existing local file"):
        load_hf_dataset("./no/such/file.parquet", "train", cache_dir=cache)


# --- OpenR1-Math ------------------------------------------------------------------------------------


def test_openr1_fixture_has_real_columns():
    columns = set(pd.read_parquet(OPENR1).columns)
    assert {"problem", "solution", "answer", "problem_type", "question_type", "source", "uuid"} <= columns
    assert {"generations", "messages", "correctness_math_verify"} <= columns


def test_openr1_seeded_subset(cache):
    frame = pd.read_parquet(OPENR1)
    a = load_openr1(OPENR1, n=4, seed=0, cache_dir=cache)
    assert a == load_openr1(OPENR1, n=4, seed=0, cache_dir=cache), "same seed, same subset"
    b = load_openr1(OPENR1, n=4, seed=1, cache_dir=cache)
    assert [r["id"] for r in a] != [r["id"] for r in b], "another seed, another subset"
    for record in a + b:
        row = frame.iloc[record["source_row"]]
        assert record["task"] == "openr1"
        assert record["id"] == f"openr1-{row['uuid']}"
        assert record["prompt"] == row["problem"] + MATH_PAPER_SUFFIX
        assert record["answer"] == row["answer"] and record["solution"] == row["solution"]
        assert "\\boxed" in record["solution"]
    assert len({r["id"] for r in a}) == 4


def test_openr1_require_boxed_filter(cache):
    boxed = load_openr1(OPENR1, n=None, cache_dir=cache)
    everything = load_openr1(OPENR1, n=12, require_boxed=False, cache_dir=cache)
    assert len(boxed) == 8 and all("\\boxed" in r["solution"] for r in boxed)
    assert len(everything) == 12 and sum("\\boxed" not in r["solution"] for r in everything) == 4


def test_openr1_exclude_problems_and_too_small(cache):
    kept = load_openr1(OPENR1, n=None, exclude_problems=["Solve  for $x$:\n$2x + 7 = 19$."], cache_dir=cache)
    assert len(kept) == 7 and all("2x + 7" not in r["problem"] for r in kept)
    with pytest.raises(ValueError, match=r"openr1_train\.parquet: 9 rows requested but only 8 remain"):
        load_openr1(OPENR1, n=9, cache_dir=cache)


def test_openr1_missing_columns_named(tmp_path, cache):
    bad = tmp_path / "wrong.parquet"
    pd.DataFrame({"question": ["q"], "response": ["r"]}).to_parquet(bad)
    with pytest.raises(ValueError, match=r"wrong\.parquet.*'problem', 'solution', 'answer'"):
        load_openr1(bad, n=1, cache_dir=cache)


# --- Countdown-Tasks-3to4 ---------------------------------------------------------------------------


def test_countdown_tasks_exclude_test_duplicates(cache, test_keys):
    frame = pd.read_parquet(COUNTDOWN)
    assert list(frame.columns) == ["target", "nums"] and len(frame) == 20
    keys = [problem_key(list(nums), t) for nums, t in zip(frame["nums"], frame["target"])]
    dupes = [i for i, key in enumerate(keys) if key in test_keys]
    assert dupes == [5, 13], "the fixture repeats two test problems (numbers reordered)"
    assert len(load_countdown_tasks(COUNTDOWN, cache_dir=cache)) == 20
    records = load_countdown_tasks(COUNTDOWN, seed=0, exclude=test_keys, cache_dir=cache)
    assert len(records) == 18
    assert not {problem_key(r["numbers"], r["target"]) for r in records} & test_keys
    for record in records:
        row = frame.iloc[record["source_row"]]
        assert record["numbers"] == list(row["nums"]) and record["target"] == row["target"]
        assert record["task"] == "countdown" and record["solution"] == "" and record["answer"] == str(row["target"])
        assert record["prompt"] == countdown_prompt(record["numbers"], record["target"], "paper")
        assert record["prompt"].startswith(COUNTDOWN_PAPER_INSTRUCTION + "\n\nNumbers: ")
    assert len({r["id"] for r in records}) == 18


def test_countdown_tasks_seeded_subset_and_num_count(cache, test_keys):
    a = load_countdown_tasks(COUNTDOWN, n=5, seed=0, exclude=test_keys, cache_dir=cache)
    assert a == load_countdown_tasks(COUNTDOWN, n=5, seed=0, exclude=test_keys, cache_dir=cache)
    b = load_countdown_tasks(COUNTDOWN, n=5, seed=1, exclude=test_keys, cache_dir=cache)
    assert [r["source_row"] for r in a] != [r["source_row"] for r in b]
    threes = load_countdown_tasks(COUNTDOWN, num_count=3, exclude=test_keys, cache_dir=cache)
    n_three = sum(len(x) == 3 for x in pd.read_parquet(COUNTDOWN)["nums"]) - 2  # minus the 2 test duplicates
    assert len(threes) == n_three and all(len(r["numbers"]) == 3 for r in threes)
    with pytest.raises(ValueError, match=r"countdown_tasks\.parquet: 19 rows requested but only 18 remain"):
        load_countdown_tasks(COUNTDOWN, n=19, exclude=test_keys, cache_dir=cache)


# --- pre-mined Answer Backslide CSV -----------------------------------------------------------------


def test_answer_backslide_csv_real_file():
    records = load_answer_backslide_csv(AB_CSV)
    assert len(records) == 2840
    first = records[0]
    assert first["prompt"].endswith("\n" + BOXED_INSTRUCTION) and first["prompt"].count(BOXED_INSTRUCTION) == 1
    assert first["prompt"].startswith("Example 10 Suppose there are 2009 points")
    assert (first["task"], first["answer"], first["solution"]) == ("openr1", "7", "")
    assert records[1]["answer"] == "-n" and not records[1]["prompt"].startswith("\n")
    assert all(r["prompt"].count(BOXED_INSTRUCTION) == 1 and r["prompt"] == r["prompt"].strip() for r in records)
    assert len({r["id"] for r in records}) == 2840
    compact = load_answer_backslide_csv(AB_CSV, prompt_style="compact")
    assert compact[0]["prompt"] == first["problem"] and BOXED_INSTRUCTION not in compact[0]["prompt"]


def test_answer_backslide_csv_suffix_added_once(tmp_path):
    path = tmp_path / "ab.csv"
    pd.DataFrame(
        {"Problem": ["  What is $1+1$?\n" + BOXED_INSTRUCTION + "\n", "What is $2+2$?"], "Solution": ["2", "NA"]}
    ).to_csv(path)
    records = load_answer_backslide_csv(path)
    assert [r["prompt"] for r in records] == [p + MATH_PAPER_SUFFIX for p in ("What is $1+1$?", "What is $2+2$?")]
    assert records[1]["answer"] == "NA", "answers stay text (no NaN conversion)"


def test_answer_backslide_csv_wrong_columns(tmp_path):
    path = tmp_path / "wrong.csv"
    pd.DataFrame({"question": ["q"], "answer": ["a"]}).to_csv(path)
    with pytest.raises(ValueError, match=r"wrong\.csv: missing column.*\['Problem', 'Solution'\]"):
        load_answer_backslide_csv(path)
    empty = tmp_path / "empty.csv"
    pd.DataFrame({"Problem": ["q"], "Solution": [""]}).to_csv(empty)
    with pytest.raises(ValueError, match=r"empty\.csv: row 0"):
        load_answer_backslide_csv(empty)


# --- build_paper_task -------------------------------------------------------------------------------


def _check_files(entry: dict, out: Path) -> dict[str, list[dict]]:
    written = {}
    for split in ("test", "validation", "train", "pretrain"):
        info = entry["files"][split]
        path = out / info["path"]
        assert path.name == f"{split}.jsonl" and info["sha256"] == sha256_file(path)
        written[split] = read_jsonl(path)
        assert len(written[split]) == info["count"]
    assert written["pretrain"] == [] and (out / "pretrain.jsonl").read_text() == ""
    return written


def test_build_paper_task_math500(tmp_path, cache):
    settings = {"source": str(MATH500), "train_source": str(OPENR1), "n_train": 5, "n_test": 3, "n_validation": 2}
    entry = build_paper_task("math500", settings, seed=0, out_dir=tmp_path / "m", cache_dir=cache)
    written = _check_files(entry, tmp_path / "m")
    # Validation: the next rows of the training subset's seeded order, so the training data are those
    # of the subset alone, and no validation problem is a training or test problem.
    assert len(written["validation"]) == 2
    fewer = build_paper_task("math500", {**settings, "n_validation": 1}, 0, tmp_path / "m1", cache_dir=cache)
    assert fewer["files"]["train"]["sha256"] == entry["files"]["train"]["sha256"]
    problems = {split: {r["problem"] for r in rows} for split, rows in written.items() if split != "pretrain"}
    assert not problems["validation"] & problems["train"] and not problems["validation"] & problems["test"]
    assert entry["task"] == "math500" and entry["seed"] == 0 and entry["prompt_style"] == "paper"
    assert entry["spec"]["source"] == str(MATH500) and entry["spec"]["train_source"] == str(OPENR1)
    assert written["test"] == load_math500(MATH500, limit=3, cache_dir=cache)
    assert len(written["train"]) == 5 and all(r["task"] == "openr1" for r in written["train"])
    test_problems = {r["problem"] for r in load_math500(MATH500, cache_dir=cache)}
    assert not test_problems & {r["problem"] for r in written["train"]}, "MATH-500 problems are kept out of training"
    again = build_paper_task("math500", settings, seed=0, out_dir=tmp_path / "m2", cache_dir=cache)
    assert again["files"] == entry["files"], "deterministic"
    other = build_paper_task("math500", settings, seed=3, out_dir=tmp_path / "m3", cache_dir=cache)
    assert other["files"]["train"]["sha256"] != entry["files"]["train"]["sha256"]
    with pytest.raises(ValueError, match="only 7 remain"):  # 8 boxed minus the MATH-500 problem
        build_paper_task("math500", {**settings, "n_train": 8}, 0, tmp_path / "m4", cache_dir=cache)


def test_build_paper_task_countdown(tmp_path, cache, test_keys):
    settings = {"train_source": str(COUNTDOWN), "n_train": 0, "n_test": 0, "n_validation": 3}
    entry = build_paper_task("countdown", settings, seed=0, out_dir=tmp_path / "c", test_file=CD_TEST, cache_dir=cache)
    written = _check_files(entry, tmp_path / "c")
    assert written["test"] == load_countdown_test_file(CD_TEST, "paper") and len(written["test"]) == 256
    # Every eligible row is for training (n_train 0): validation takes the first 3 of them.
    assert len(written["train"]) == 15 and len(written["validation"]) == 3
    keys = {split: {problem_key(r["numbers"], r["target"]) for r in rows} for split, rows in written.items()}
    assert not keys["validation"] & keys["train"] and not keys["validation"] & test_keys
    assert not {problem_key(r["numbers"], r["target"]) for r in written["train"]} & test_keys
    assert all(r["prompt"].startswith(COUNTDOWN_PAPER_INSTRUCTION) for r in written["train"] + written["test"])
    small = build_paper_task("countdown", {**settings, "n_test": 10, "n_train": 4}, 0, tmp_path / "c2",
                             test_file=CD_TEST, cache_dir=cache)
    assert small["files"]["test"]["count"] == 10 and small["files"]["train"]["count"] == 4

    # The manifest entry has build_task's shape, so write_manifest takes both kinds.
    local = build_task("countdown", {"n_test": 2, "n_train": 2, "n_pretrain": 2}, 0, tmp_path / "local")
    assert set(entry) == set(local) and set(entry["files"]) == set(local["files"])
    assert set(entry["files"]["test"]) == set(local["files"]["test"])
    write_manifest(tmp_path / "manifest.json", [entry])
    assert read_json(tmp_path / "manifest.json")["tasks"]["countdown"]["files"] == entry["files"]


def test_build_paper_task_errors(tmp_path, cache):
    with pytest.raises(ValueError, match="no paper loader for task 'arithmetic'"):
        build_paper_task("arithmetic", {}, 0, tmp_path)
    with pytest.raises(FileNotFoundError, match="countdown test file"):
        build_paper_task("countdown", {"train_source": str(COUNTDOWN)}, 0, tmp_path, test_file=tmp_path / "nope.jsonl")
    assert not (tmp_path / "test.jsonl").exists()
