"""Build the local presets' datasets: disjoint pretrain / train / validation / test splits per task
+ manifest.

Splits are generated test first, then validation, so both evaluation sets are fixed by the seed
alone and never overlap the data the models learn from: test, validation and train hold distinct
problems, and pretraining samples may repeat a problem (with different solutions) but never a
test, validation or train problem. Validation is what every choice reads (training curves, the
tuning stage); the test set is read once per model, by the final evaluation.

``pretrain_noise`` makes the base model an imperfect teacher's student: that share of the
pretraining rows carries the teacher's systematic wrong answer instead of the solution (Countdown:
the numbers added in the order given; arithmetic: a misconception of the template, such as left to
right without precedence or fractions added across). The base model then learns a habit that
competes with a skill it also has, which is the room a reward-driven fine-tuning can use (see the
README's "local world").

Files are JSON lines (``datasets.load_dataset("json")`` reads them); ``manifest.json`` records
counts, seed, generator settings and SHA-256 per file.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from ..errors import InputError
from ..io import sha256_file, write_json, write_jsonl
from .arithmetic import ArithmeticSpec, generate_arithmetic, misconceived_answer
from .countdown import CountdownSpec, countdown_from_paper_row, generate_countdown, lazy_countdown_solution, problem_key

SPLITS = ("test", "validation", "train", "pretrain")


def build_task(task: str, settings: dict, seed: int, out_dir: str | Path, prompt_style: str = "compact") -> dict:
    """Write ``<out_dir>/<split>.jsonl`` for one task; return its manifest entry."""
    out_dir = Path(out_dir)
    sizes = {split: int(settings[f"n_{split}"]) for split in SPLITS if split != "validation"}
    sizes["validation"] = int(settings.get("n_validation", 0))  # older settings without one: no validation split
    exclude: set = set()
    splits: dict[str, list[dict]] = {}
    if task == "countdown":
        spec = CountdownSpec(**{k: settings[k] for k in CountdownSpec.__dataclass_fields__ if k in settings})
        test_file = settings.get("test_file")
        if test_file:
            full_test = load_countdown_test_file(test_file, prompt_style)
            splits["test"] = full_test[: sizes["test"] or None]
            # Exclude every problem of the file, also those beyond n_test, from training data.
            exclude.update(problem_key(r["numbers"], r["target"]) for r in full_test)
        for split in SPLITS:
            if split not in splits:
                splits[split] = generate_countdown(
                    sizes[split], seed, spec, split, exclude, prompt_style, unique=split != "pretrain"
                )
        spec_dict = spec.__dict__
    elif task == "arithmetic":
        fields = {k: settings[k] for k in ArithmeticSpec.__dataclass_fields__ if k in settings}
        if "templates" in fields:
            fields["templates"] = tuple(fields["templates"])
        spec = ArithmeticSpec(**fields)
        for split in SPLITS:
            splits[split] = generate_arithmetic(
                sizes[split], seed, spec, split, exclude, prompt_style, unique=split != "pretrain"
            )
        spec_dict = {**spec.__dict__, "templates": list(spec.templates)}
    else:
        raise InputError(f"no local generator for task {task!r} (known: countdown, arithmetic)")
    noise = float(settings.get("pretrain_noise", 0.0))
    splits["pretrain"], noisy = add_pretrain_noise(task, splits["pretrain"], noise, seed)

    files = {}
    for split, records in splits.items():
        path = out_dir / f"{split}.jsonl"
        write_jsonl(path, records)
        files[split] = {"path": path.name, "count": len(records), "sha256": sha256_file(path)}
    files["pretrain"]["noisy_rows"] = noisy  # rows whose solution is the teacher's wrong answer
    return {"task": task, "seed": seed, "prompt_style": prompt_style, "spec": {**spec_dict, "pretrain_noise": noise},
            "files": files}


def add_pretrain_noise(task: str, records: list[dict], share: float, seed: int) -> tuple[list[dict], int]:
    """``share`` of the pretraining ``records`` (a seeded choice) get the teacher's wrong answer as
    their solution; returns the records and how many were changed (rows where the wrong answer would
    be right stay as they are). Only the solution changes: the prompt still states the problem."""
    if not 0.0 <= share <= 1.0:
        raise InputError(f"pretrain_noise must be in [0, 1], got {share}")
    if share == 0.0:
        return records, 0
    rng = random.Random(f"{task}/{seed}/pretrain-noise")
    out, changed = [], 0
    for record in records:
        if rng.random() < share:
            wrong = (lazy_countdown_solution(record["numbers"], record["target"]) if task == "countdown"
                     else misconceived_answer(record))
            if wrong is not None:
                record = {**record, "solution": wrong}
                changed += 1
        out.append(record)
    return out, changed


def load_countdown_test_file(path: str | Path, prompt_style: str = "compact") -> list[dict]:
    """The paper's Countdown test set (JSONL with ``input`` "a,b,c" and ``output`` target); a bad
    row is an InputError naming ``path:line (id)``."""
    rows = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if line.strip():
                rows.append((lineno, line))
    if not rows:
        raise InputError(f"{path}: no Countdown test problems (the file is empty)")
    records = []
    for index, (lineno, line) in enumerate(rows):
        try:
            records.append(countdown_from_paper_row(json.loads(line), index, "test", prompt_style))
        except (ValueError, TypeError) as exc:  # json.JSONDecodeError is a ValueError
            raise InputError(f"{path}:{lineno} (countdown-test-{index:06d}): {exc}") from None
    return records


def write_manifest(path: str | Path, entries: list[dict]) -> None:
    write_json(path, {"tasks": {e["task"]: e for e in entries}})
