"""The one reader of task-record files (JSON lines), validating every record by its task.

A malformed record would otherwise surface far from its cause: a missing ``prompt`` as a bare
``KeyError`` deep in batching, Countdown ``numbers`` that are not integers as a reward of 0 on
every completion (the reference is parsed only when a completion is non-empty, and a reward never
raises), an empty pretraining file as a model trained on the other task only. So every file of
records is checked when it is read, and an error names ``<path>:<line> (<id>)`` and what is wrong.

Checks: each line is a JSON object; ``id``, ``task``, ``prompt``, ``answer`` are non-empty strings;
``solution`` is a string (non-empty where the split trains on it: ``pretrain``, or when
``require_solution``); ``task`` is known; ids are unique and the file holds one task (the evaluator
scores a whole file with the reward of its first record). Countdown: ``numbers`` a non-empty list
of non-negative integers (the reward rejects unary minus, so a negative number could never be
used) and ``target`` a finite number. Math: the reference is ``answer``; math-verify parses any
non-empty text (unbalanced braces included), so non-empty is the check that matters.
"""

from __future__ import annotations

import json
import math
import os
from typing import Iterable

from ..errors import InputError
from . import REWARD_KIND, reward_kind

TEXT_FIELDS = ("id", "task", "prompt", "answer")
TRAINS_ON_SOLUTION = ("pretrain",)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)) and math.isfinite(value)


def record_problem(record, require_solution: bool = False) -> str | None:
    """What is wrong with one record (None if nothing): the checks of the module docstring."""
    if not isinstance(record, dict):
        return f"expected a JSON object, got {type(record).__name__}"
    for key in TEXT_FIELDS:
        if key not in record:
            return f"missing field {key!r}"
        if not isinstance(record[key], str):
            return f"field {key!r} must be a string, got {type(record[key]).__name__} {record[key]!r:.60}"
        if not record[key].strip():
            return f"field {key!r} is empty"
    if record["task"] not in REWARD_KIND:
        return f"unknown task {record['task']!r}; known tasks: {sorted(REWARD_KIND)}"
    if "solution" not in record:
        return "missing field 'solution' (a reference completion; may be empty outside pretraining/SFT)"
    if not isinstance(record["solution"], str):
        return f"field 'solution' must be a string, got {type(record['solution']).__name__}"
    if require_solution and not record["solution"].strip():
        return "field 'solution' is empty, but this file is trained on its solutions"
    if reward_kind(record["task"]) == "countdown":
        numbers, target = record.get("numbers"), record.get("target")
        if not isinstance(numbers, list) or not numbers or not all(_is_int(n) and n >= 0 for n in numbers):
            return f"countdown field 'numbers' must be a non-empty list of non-negative integers, got {numbers!r:.60}"
        if not _is_number(target):
            return f"countdown field 'target' must be a finite number, got {target!r:.60}"
    return None


def _where(path, lineno: int, record) -> str:
    rid = record.get("id") if isinstance(record, dict) else None
    label = rid if isinstance(rid, str) and rid.strip() else "no id"
    return f"{path}:{lineno} ({label})"


def read_task_records(
    path: str | os.PathLike,
    split: str | None = None,
    *,
    require_solution: bool | None = None,
    allow_empty: bool = False,
) -> list[dict]:
    """Every record of a task-record JSONL file, validated; raises InputError naming path:line (id).

    ``split`` ("pretrain", "train", "validation", "test" or None) sets what is required: a ``pretrain`` file is
    trained on its solutions, so they must be non-empty (``require_solution`` overrides, e.g. True
    for SFT). An empty file is an error unless ``allow_empty`` (a mined Answer Backslide set may
    legitimately be empty; its trainer then falls back to other prompts). Extra fields (``mining``,
    ``problem``, ``source_row``...) are kept.
    """
    need_solution = split in TRAINS_ON_SOLUTION if require_solution is None else require_solution
    records: list[dict] = []
    first_line: dict[str, int] = {}
    task = None
    try:
        with open(path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line.rstrip("\r\n"))  # without the newline, a cut line's column is on it
                except json.JSONDecodeError as exc:
                    raise InputError(f"{path}:{lineno} (no id): invalid JSON: {exc.msg} (column {exc.colno})") from None
                problem = record_problem(record, need_solution)
                if problem:
                    raise InputError(f"{_where(path, lineno, record)}: {problem}")
                rid = record["id"]
                if rid in first_line:
                    raise InputError(f"{_where(path, lineno, record)}: duplicate id (first on line {first_line[rid]})")
                first_line[rid] = lineno
                if task is None:
                    task = record["task"]
                elif record["task"] != task:
                    raise InputError(
                        f"{_where(path, lineno, record)}: task {record['task']!r} in a file of {task!r} records "
                        "(one task per file: a file is scored with one reward)"
                    )
                records.append(record)
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if not records and not allow_empty:
        what = f"{split} " if split else ""
        raise InputError(f"{path}: no {what}records (the file is empty)")
    return records


def read_task_files(paths: Iterable[str | os.PathLike], split: str | None = None, **kwargs) -> list[dict]:
    """The records of several files, each validated by :func:`read_task_records` (so an empty one of
    them is an error even when the others hold records)."""
    return [r for path in paths for r in read_task_records(path, split, **kwargs)]

