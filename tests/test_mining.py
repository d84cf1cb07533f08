"""Rollout sharding, seeded block draws, and Answer Backslide mining statistics."""

from __future__ import annotations

import pytest

from maskdiff.backslide import answer_backslide
from maskdiff.io import read_json, read_jsonl, write_jsonl
from maskdiff.mining import backslide_stats, mine, mine_files
from maskdiff.rollouts import draw_block_length, rollout_records, shard_records


def _row(rid, bits, reward, block=4):
    """A rollout row as rollouts.py writes it (the flags from the shared pure function)."""
    flags = answer_backslide([b == "1" for b in bits], reward > 0.5).as_row()
    flags.pop("final_correct")
    return {"id": rid, "task": "countdown", "reward": reward, "block_length": block, "steps": len(bits), **flags}


def test_shards_partition_the_records():
    records = [{"id": str(i)} for i in range(10)]
    shards = [shard_records(records, i, 3) for i in range(3)]
    assert sorted(r["id"] for s in shards for r in s) == sorted(r["id"] for r in records)
    with pytest.raises(ValueError, match="out of range"):
        shard_records(records, 3, 3)


def test_block_draw_is_per_prompt_and_seeded():
    draws = [draw_block_length(f"p{i}", [4, 16], seed=0) for i in range(200)]
    assert set(draws) == {4, 16} and 60 < draws.count(4) < 140
    assert draws == [draw_block_length(f"p{i}", [16, 4], seed=0) for i in range(200)]


def test_mine_keeps_only_backslides():
    train = [{"id": f"p{i}", "task": "countdown", "prompt": "x"} for i in range(4)]
    rows = [_row("p0", "0110", 0.0), _row("p1", "0011", 1.0), _row("p2", "0000", 0.0, block=16), _row("p3", "1000", 0.0, block=16)]
    mined, stats = mine(train, rows)
    assert [m["id"] for m in mined] == ["p0", "p3"]
    assert mined[0]["mining"] == [{"block_length": 4, "steps": 4, "step_correct": "0110", "first_correct_step": 1,
                                   "last_correct_step": 2}]
    assert stats["overall"]["backslide_rate"] == 0.5 and stats["overall"]["od_rate"] == pytest.approx(2 / 3)
    assert stats["per_block_length"]["16"]["backslide"] == 1 and stats["per_block_length"]["4"]["backslide"] == 1
    assert stats["first_correct_step_hist"] == {"0": 1, "1": 1, "2": 1}
    assert stats["backslide_first_correct_step_hist"] == {"0": 1, "1": 1}
    assert stats["backslide_last_correct_step_hist"] == {"0": 1, "2": 1}
    assert stats["mined_prompt_rate"] == 0.5 and stats["rollouts_per_prompt"] == 1
    with pytest.raises(ValueError, match="no rollout"):
        mine(train + [{"id": "p9"}], rows)


def test_mine_with_several_rollouts_per_prompt():
    """A prompt rolled out with every block length is mined when any of its rollouts backslides."""
    train = [{"id": f"p{i}", "task": "countdown", "prompt": "x"} for i in range(3)]
    rows = [_row("p0", "0110", 0.0, 4), _row("p0", "0011", 1.0, 16),
            _row("p1", "0000", 0.0, 4), _row("p1", "0000", 0.0, 16),
            _row("p2", "1000", 0.0, 4), _row("p2", "1100", 0.0, 16)]
    mined, stats = mine(train, rows)
    assert [m["id"] for m in mined] == ["p0", "p2"]
    assert [m["block_length"] for m in mined[1]["mining"]] == [4, 16]
    assert stats["overall"]["n"] == 6 and stats["overall"]["backslide"] == 3
    assert stats["rollouts_per_prompt"] == 2 and stats["mined_prompt_rate"] == pytest.approx(2 / 3)


def test_mine_files(tmp_path):
    train = [{"id": rid, "task": "countdown", "prompt": "1,2=3", "numbers": [1, 2], "target": 3, "answer": "3",
              "solution": "1+2"} for rid in ("a", "b")]
    write_jsonl(tmp_path / "train.jsonl", train)
    write_jsonl(tmp_path / "s1.jsonl", [_row("a", "10", 0.0)])
    write_jsonl(tmp_path / "s2.jsonl", [_row("b", "01", 1.0)])
    stats = mine_files(tmp_path / "train.jsonl", [tmp_path / "s1.jsonl", tmp_path / "s2.jsonl"], tmp_path / "m.jsonl",
                       tmp_path / "all.jsonl", tmp_path / "stats.json")
    assert stats["mined"] == 1 and len(read_jsonl(tmp_path / "all.jsonl")) == 2
    assert read_json(tmp_path / "stats.json")["overall"]["n"] == 2


def test_rollouts_record_compact_rows(tokenizer, ids, tiny_model):
    records = [{"id": f"p{i}", "task": "countdown", "prompt": f"{i},2,3={i + 5}", "numbers": [i, 2, 3], "target": i + 5,
                "answer": str(i + 5), "solution": f"{i}+2+3"} for i in range(1, 7)]
    settings = {"gen_length": 8, "steps": 4, "block_lengths": [4, 8], "remasking": "lcr"}
    rows = rollout_records(tiny_model, tokenizer, ids, records, settings, seed=0, batch_size=4)
    assert [r["id"] for r in rows] == [r["id"] for r in records]
    assert all(len(r["step_correct"]) == 4 and r["block_length"] in (4, 8) for r in rows)
    again = rollout_records(tiny_model, tokenizer, ids, records, settings, seed=0, batch_size=3)
    assert [r["completion"] for r in again] == [r["completion"] for r in rows], "batching must not change results"
    every = rollout_records(tiny_model, tokenizer, ids, records, settings | {"every_block_length": True}, seed=0, batch_size=4)
    assert [(r["id"], r["block_length"]) for r in every] == [(r["id"], b) for r in records for b in (4, 8)]
    assert backslide_stats(rows)["overall"]["n"] == 6
