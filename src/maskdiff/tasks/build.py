"""Build the local presets' datasets: disjoint pretrain / train / test splits per task + manifest.

Splits are generated test first, so the evaluation set is fixed by the seed alone and never
overlaps the data the models learn from (test and train hold distinct problems; pretraining
samples may repeat a problem, with different solutions, but never a test or train problem). Files are JSON lines (``datasets.load_dataset("json")``
reads them); ``manifest.json`` records counts, seed, generator settings and SHA-256 per file.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import InputError
from ..io import sha256_file, write_json, write_jsonl
from .arithmetic import ArithmeticSpec, generate_arithmetic
from .countdown import CountdownSpec, countdown_from_paper_row, generate_countdown, problem_key

SPLITS = ("test", "train", "pretrain")


def build_task(task: str, settings: dict, seed: int, out_dir: str | Path, prompt_style: str = "compact") -> dict:
    """Write ``<out_dir>/<split>.jsonl`` for one task; return its manifest entry."""
    out_dir = Path(out_dir)
    sizes = {split: int(settings[f"n_{split}"]) for split in SPLITS}
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

    files = {}
    for split, records in splits.items():
        path = out_dir / f"{split}.jsonl"
        write_jsonl(path, records)
        files[split] = {"path": path.name, "count": len(records), "sha256": sha256_file(path)}
    return {"task": task, "seed": seed, "prompt_style": prompt_style, "spec": spec_dict, "files": files}


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
