"""Task generators and loaders: seeded, solvable, disjoint splits, paper formats."""

from __future__ import annotations

import json

import pytest

from maskdiff.io import read_jsonl, sha256_file
from maskdiff.rewards import countdown_reward, math_reward
from maskdiff.tasks import reference_of, reward_kind
from maskdiff.tasks.arithmetic import ArithmeticSpec, generate_arithmetic, latex_number
from maskdiff.tasks.build import build_task, load_countdown_test_file
from maskdiff.tasks.countdown import CountdownSpec, countdown_from_paper_row, generate_countdown, problem_key
from maskdiff.tasks.prompts import COUNTDOWN_PAPER_INSTRUCTION, countdown_prompt, math_prompt

from fractions import Fraction


def test_countdown_is_seeded_and_solvable():
    a = generate_countdown(200, seed=3)
    b = generate_countdown(200, seed=3)
    c = generate_countdown(200, seed=4)
    assert a == b and a != c
    for r in a:
        assert len(r["numbers"]) == 3 and 1 <= r["target"] <= 100
        assert countdown_reward(r["solution"], r["numbers"], r["target"]) == 1.0, r
        assert r["prompt"] == ",".join(map(str, r["numbers"])) + f"={r['target']}"


def test_countdown_splits_are_disjoint():
    exclude: set = set()
    test = generate_countdown(100, 0, split="test", exclude=exclude)
    train = generate_countdown(100, 0, split="train", exclude=exclude)
    pre = generate_countdown(2000, 0, split="pretrain", exclude=exclude, unique=False)
    keys = lambda rows: {problem_key(r["numbers"], r["target"]) for r in rows}  # noqa: E731
    assert len(keys(test)) == 100 and len(keys(train)) == 100
    assert not keys(test) & keys(train)
    assert not (keys(test) | keys(train)) & keys(pre)


def test_countdown_spec_is_validated():
    with pytest.raises(ValueError, match="operators"):
        CountdownSpec(operators="+%")
    with pytest.raises(RuntimeError, match="distinct"):
        generate_countdown(10_000, 0, CountdownSpec(max_number=3, max_target=10))


def test_arithmetic_answers_are_exact_latex():
    assert latex_number(Fraction(11, 12)) == "\\frac{11}{12}"
    assert latex_number(Fraction(-3, 2)) == "-\\frac{3}{2}"
    assert latex_number(Fraction(-7)) == "-7"
    rows = generate_arithmetic(100, seed=1)
    assert len({r["prompt"] for r in rows}) == 100
    for r in rows[:40]:
        assert math_reward(r["solution"], r["answer"]) == 1.0, r
    with pytest.raises(ValueError, match="templates"):
        ArithmeticSpec(templates=("a^b",))


def test_paper_prompts():
    p = countdown_prompt([30, 100, 93], 23, "paper")
    assert p.startswith(COUNTDOWN_PAPER_INSTRUCTION) and p.endswith("Numbers: [30, 100, 93]\nTarget: 23")
    assert math_prompt("What is 1+1?", "paper").endswith("within \\boxed{}.")
    with pytest.raises(ValueError, match="prompt style"):
        countdown_prompt([1], 1, "chatty")


def test_paper_countdown_test_set_loads(tmp_path):
    rows = load_countdown_test_file("data/reference/countdown_cd3_test.jsonl", "paper")
    assert len(rows) == 256
    assert rows[0]["numbers"] == [30, 100, 93] and rows[0]["target"] == 23
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"input": "1,2,3", "output": "6"}) + "\n" + json.dumps({"inputs": "1"}) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:2 \(countdown-test-000001\): countdown row 1"):
        load_countdown_test_file(bad)
    with pytest.raises(ValueError, match="row 0"):
        countdown_from_paper_row({"input": "a,b", "output": 3}, 0)


def test_build_task_writes_splits_and_manifest(tmp_path):
    settings = {"n_pretrain": 50, "n_train": 10, "n_test": 10, "max_number": 12}
    entry = build_task("countdown", settings, 0, tmp_path)
    for split in ("pretrain", "train", "test"):
        path = tmp_path / f"{split}.jsonl"
        assert entry["files"][split]["count"] == len(read_jsonl(path))
        assert entry["files"][split]["sha256"] == sha256_file(path)
    again = build_task("countdown", settings, 0, tmp_path / "again")
    assert again["files"] == entry["files"], "same seed must give byte-identical data"
    with pytest.raises(ValueError, match="no local generator"):
        build_task("math500", settings, 0, tmp_path)


def test_datasets_reads_the_files(tmp_path):
    import datasets

    build_task("arithmetic", {"n_pretrain": 5, "n_train": 5, "n_test": 7}, 0, tmp_path)
    ds = datasets.load_dataset("json", data_files=str(tmp_path / "test.jsonl"), split="train")
    assert ds.num_rows == 7 and set(ds.column_names) >= {"id", "prompt", "answer", "solution", "task"}


def test_reward_kinds():
    assert reward_kind("countdown") == "countdown" and reward_kind("arithmetic") == "math"
    with pytest.raises(ValueError, match="unknown task"):
        reward_kind("chess")
    assert reference_of({"task": "arithmetic", "answer": "3"}) == {"answer": "3"}


@pytest.mark.parametrize("task, settings", [
    ("countdown", {"n_pretrain": 3000, "n_train": 300, "n_test": 200, "n_validation": 150}),
    ("arithmetic", {"n_pretrain": 3000, "n_train": 300, "n_test": 200, "n_validation": 150}),
])
def test_validation_split_is_disjoint_from_every_other_split_on_the_prompt_text(tmp_path, task, settings):
    """Validation is what every choice reads: it must share no problem (prompt text; Countdown
    problems also up to the numbers' order) with test, train (= the mining prompts) or pretraining."""
    entry = build_task(task, settings, 0, tmp_path)
    rows = {split: read_jsonl(tmp_path / f"{split}.jsonl") for split in ("test", "validation", "train", "pretrain")}
    assert entry["files"]["validation"]["count"] == 150 == len(rows["validation"])
    prompts = {split: {r["prompt"] for r in split_rows} for split, split_rows in rows.items()}
    assert len(prompts["validation"]) == 150
    for other in ("test", "train", "pretrain"):
        assert not prompts["validation"] & prompts[other], other
    if task == "countdown":
        keys = {split: {problem_key(r["numbers"], r["target"]) for r in split_rows} for split, split_rows in rows.items()}
        for other in ("test", "train", "pretrain"):
            assert not keys["validation"] & keys[other], other


def test_pretrain_noise_gives_the_teachers_wrong_answers_and_nothing_else(tmp_path):
    from maskdiff.tasks.arithmetic import misconceived_answer
    from maskdiff.tasks.countdown import lazy_countdown_solution

    settings = {"n_pretrain": 4000, "n_train": 50, "n_test": 50, "n_validation": 50}
    for task in ("countdown", "arithmetic"):
        clean = build_task(task, settings, 0, tmp_path / f"{task}-clean")
        noisy = build_task(task, settings | {"pretrain_noise": 0.3}, 0, tmp_path / f"{task}-noisy")
        for split in ("test", "validation", "train"):  # only pretraining changes
            assert clean["files"][split]["sha256"] == noisy["files"][split]["sha256"]
        before = read_jsonl(tmp_path / f"{task}-clean" / "pretrain.jsonl")
        after = read_jsonl(tmp_path / f"{task}-noisy" / "pretrain.jsonl")
        changed = [(a, b) for a, b in zip(before, after) if a != b]
        assert len(changed) == noisy["files"]["pretrain"]["noisy_rows"] and clean["files"]["pretrain"]["noisy_rows"] == 0
        assert 0.15 < len(changed) / len(before) < 0.31  # 30% drawn; rows where the wrong answer is right are kept
        for a, b in changed:
            assert {k for k in a if a[k] != b[k]} == {"solution"}
            if task == "countdown":
                assert b["solution"] == lazy_countdown_solution(a["numbers"], a["target"]) == "+".join(map(str, a["numbers"]))
                assert countdown_reward(b["solution"], a["numbers"], a["target"]) == 0.0
            else:
                assert b["solution"] == misconceived_answer(a) and not math_reward(b["solution"], a["answer"])
        assert noisy["spec"]["pretrain_noise"] == 0.3


def test_misconceptions_of_the_arithmetic_teacher():
    from maskdiff.tasks.arithmetic import misconceived_answer

    def record(template, operands, answer):
        return {"template": template, "operands": operands, "answer": answer}

    assert misconceived_answer(record("a+b*c", [2, 3, 4], "14")) == "20"  # left to right
    assert misconceived_answer(record("(a-b)*c", [7, 2, 3], "15")) == "1"  # parentheses dropped
    assert misconceived_answer(record("a/b-c/d", [1, 2, 1, 3], "\\frac{1}{6}")) == "0"  # (1-1)/(2-3)
    assert misconceived_answer(record("a/b+c", [1, 2, 3], "\\frac{7}{2}")) == "\\frac{1}{5}"
    assert misconceived_answer(record("a*b-c", [2, 3, 4], "2")) is None  # no misconception
    assert misconceived_answer(record("a+b*c", [2, 3, 1], "5")) is None  # (2+3)*1 = 5 happens to be right
