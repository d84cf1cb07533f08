"""The ``paper`` preset's datasets: MATH-500, OpenR1-Math-220k, Countdown-Tasks-3to4, and the
pre-mined Answer Backslide file of the MDPO authors.

Every loader goes through ``datasets.load_dataset`` and accepts either a hub id (the cluster,
optionally pinned with ``revision``) or a local parquet / JSON-lines / CSV file or a directory of
them (tests use small fixtures in the real formats). Records are the plain dicts of
``maskdiff.tasks`` (``id``, ``task``, ``prompt``, ``answer``, ``solution``; Countdown also
``numbers`` and ``target``); math records also keep the bare ``problem`` text, and subsets of a
larger dataset keep the ``source_row`` they came from.

Subsets are deterministic: the eligible rows (after filters) are permuted with a generator derived
from the seed and the first ``n`` are taken, so the same seed always gives the same problems and
asking for too many is an error naming the source rather than a silently smaller set.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable

import numpy as np

from ..errors import InputError
from ..io import sha256_file, write_jsonl
from ..pipeline.layout import REFERENCE_COUNTDOWN_TEST
from ..seeding import derive_seed
from .build import load_countdown_test_file
from .countdown import countdown_record, problem_key
from .prompts import MATH_PAPER_SUFFIX, math_prompt

MATH500_SOURCE = "HuggingFaceH4/MATH-500"
OPENR1_SOURCE = "open-r1/OpenR1-Math-220k"
COUNTDOWN_SOURCE = "Jiayi-Pan/Countdown-Tasks-3to4"
COUNTDOWN_TEST_FILE = REFERENCE_COUNTDOWN_TEST  # the paper's Countdown test set (one copy: the layout's)
ANSWER_BACKSLIDE_CSV = "data/reference/answer_backslide_openr1_40k_epoch1.csv"

# Columns each loader needs (the real datasets have more; see the fixtures in tests/fixtures/paper).
MATH500_COLUMNS = ("problem", "solution", "answer")
OPENR1_COLUMNS = ("problem", "solution", "answer")
COUNTDOWN_COLUMNS = ("nums", "target")
BACKSLIDE_COLUMNS = ("Problem", "Solution")

PAPER_TASKS = ("math500", "countdown")
DEFAULT_N_VALIDATION = 256  # validation problems per paper task (training curves, every choice)
DEFAULT_N_TRAIN = {"math500": 3000, "countdown": None}  # paper: 3000 OpenR1 problems; Countdown: all

_LOCAL_BUILDERS = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".csv": "csv"}
_BOXED_SUFFIX = MATH_PAPER_SUFFIX.strip()


def load_hf_dataset(
    source: str | Path,
    split: str,
    revision: str | None = None,
    name: str | None = None,
    cache_dir: str | Path | None = None,
):
    """One split of a dataset: a local file / directory, or a hub id (``revision`` pins the commit).

    A single local file is read as the requested split whatever its name; a directory is handed to
    ``load_dataset``, which infers splits from file names (``test.jsonl``, ``train-*.parquet``...).
    ``revision`` and ``name`` only apply to hub datasets.
    """
    import datasets

    cache = str(cache_dir) if cache_dir is not None else None
    path = Path(source).expanduser()
    try:
        if path.is_file():
            builder = _LOCAL_BUILDERS.get(path.suffix.lower())
            if builder is None:
                raise InputError(
                    f"{path}: unsupported data file type {path.suffix!r} (use one of {sorted(_LOCAL_BUILDERS)})"
                )
            return datasets.load_dataset(builder, data_files={split: str(path)}, split=split, cache_dir=cache)
        if path.is_dir():
            return datasets.load_dataset(str(path), split=split, cache_dir=cache)
    except ValueError as exc:
        if str(exc).startswith(str(path)):
            raise
        raise InputError(f"{path}: could not load split {split!r}: {exc}") from exc
    text = str(source)
    if text.startswith((".", "/", "~")) or path.suffix.lower() in _LOCAL_BUILDERS or text.count("/") > 1:
        raise FileNotFoundError(
            f"dataset {text!r} is neither an existing local file/directory nor a hub id ('owner/name')"
        )
    return datasets.load_dataset(text, name, split=split, revision=revision, cache_dir=cache)


def _require_columns(dataset, required: Iterable[str], source) -> None:
    missing = [c for c in required if c not in dataset.column_names]
    if missing:
        raise InputError(
            f"{source}: missing column(s) {missing}; expected columns {list(required)}, found {dataset.column_names}"
        )


def _sanitise(text: str) -> str:
    text = re.sub(r"\.json$", "", str(text).strip())
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")


def _unique_id(prefix: str, raw, index: int, seen: set[str]) -> str:
    core = _sanitise(raw) if raw not in (None, "") else ""
    ident = f"{prefix}-{core}" if core else f"{prefix}-{index:06d}"
    if ident in seen:
        ident = f"{ident}-{index:06d}"
    seen.add(ident)
    return ident


def _text(value) -> str:
    return "" if value is None else str(value)


def _normalise_problem(text: str) -> str:
    return " ".join(str(text).split())


def _seeded_subset(eligible: list[int], n: int | None, seed: int, purpose: str, source, detail: str) -> list[int]:
    """``n`` of the ``eligible`` row indices in a seeded random order (all of them if ``n`` is None)."""
    if n is not None and n < 0:
        raise InputError(f"{source}: subset size must be >= 0, got {n}")
    if n is not None and len(eligible) < n:
        raise InputError(
            f"{source}: {n} rows requested but only {len(eligible)} remain ({detail}); "
            "lower the subset size or relax the filters"
        )
    order = np.random.default_rng(derive_seed(seed, "paper-subset", purpose)).permutation(len(eligible))
    if n is not None:
        order = order[:n]
    return [eligible[i] for i in order.tolist()]


def load_math500(
    source: str | Path = MATH500_SOURCE,
    split: str = "test",
    prompt_style: str = "paper",
    limit: int | None = None,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    gold: str = "answer",
) -> list[dict]:
    """MATH-500 (columns ``problem, solution, answer, subject, level, unique_id``) in file order.
    ``gold`` is the column the reward parses as the reference (``answer``; ``solution``: the whole
    worked solution, whose first LaTeX match the released evaluation takes)."""
    if gold not in ("answer", "solution"):
        raise InputError(f"math500 gold must be 'answer' or 'solution', got {gold!r}")
    dataset = load_hf_dataset(source, split, revision, cache_dir=cache_dir)
    _require_columns(dataset, MATH500_COLUMNS, source)
    if limit is not None:
        dataset = dataset.select(range(min(int(limit), len(dataset))))
    records, seen = [], set()
    for index, row in enumerate(dataset):
        record = {
            "id": _unique_id("math500", row.get("unique_id"), index, seen),
            "task": "math500",
            "prompt": math_prompt(_text(row["problem"]), prompt_style),
            "answer": _text(row[gold]),
            "solution": _text(row["solution"]),
            "problem": _text(row["problem"]),
        }
        for extra in ("subject", "level"):
            if row.get(extra) is not None:
                record[extra] = row[extra]
        records.append(record)
    return records


def load_openr1(
    source: str | Path = OPENR1_SOURCE,
    n: int | None = 3000,
    seed: int = 0,
    split: str = "train",
    require_boxed: bool = True,
    prompt_style: str = "paper",
    exclude_problems: Iterable[str] = (),
    revision: str | None = None,
    name: str | None = None,
    cache_dir: str | Path | None = None,
) -> list[dict]:
    """A seeded subset of OpenR1-Math (columns ``problem, solution, answer, problem_type,
    question_type, source, uuid``, ...); ``n=None`` keeps every eligible row (shuffled).

    ``require_boxed`` keeps only rows whose reference ``solution`` contains ``\\boxed`` (the
    paper's SFT data); ``exclude_problems`` drops problems (whitespace-insensitive) such as the
    evaluation set's.
    """
    dataset = load_hf_dataset(source, split, revision, name, cache_dir)
    _require_columns(dataset, OPENR1_COLUMNS, source)
    columns = dataset.select_columns(["problem", "solution"]).to_dict()
    excluded = {_normalise_problem(p) for p in exclude_problems}
    eligible = [
        i
        for i, (problem, solution) in enumerate(zip(columns["problem"], columns["solution"]))
        if (not require_boxed or "\\boxed" in _text(solution)) and _normalise_problem(_text(problem)) not in excluded
    ]
    detail = f"of {len(dataset)} in split {split!r}, require_boxed={require_boxed}, {len(excluded)} problems excluded"
    chosen = _seeded_subset(eligible, n, seed, "openr1", source, detail)
    has_uuid = "uuid" in dataset.column_names
    records, seen = [], set()
    for row_index, row in zip(chosen, dataset.select(chosen)):
        problem = _text(row["problem"])
        records.append(
            {
                "id": _unique_id("openr1", row.get("uuid") if has_uuid else None, row_index, seen),
                "task": "openr1",
                "prompt": math_prompt(problem, prompt_style),
                "answer": _text(row["answer"]),
                "solution": _text(row["solution"]),
                "problem": problem,
                "source_row": row_index,
            }
        )
    return records


def load_countdown_tasks(
    source: str | Path = COUNTDOWN_SOURCE,
    n: int | None = None,
    seed: int = 0,
    split: str = "train",
    exclude: set | frozenset = frozenset(),
    prompt_style: str = "paper",
    num_count: int | None = None,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
) -> list[dict]:
    """A seeded subset of Countdown-Tasks-3to4 (columns ``nums`` list of ints, ``target`` int).

    Rows whose ``problem_key(nums, target)`` is in ``exclude`` (the test set's keys) are dropped,
    as are rows with other than ``num_count`` numbers when it is given. ``n=None`` keeps all.
    """
    dataset = load_hf_dataset(source, split, revision, cache_dir=cache_dir)
    _require_columns(dataset, COUNTDOWN_COLUMNS, source)
    columns = dataset.select_columns(list(COUNTDOWN_COLUMNS)).to_dict()
    problems = []
    for i, (nums, target) in enumerate(zip(columns["nums"], columns["target"])):
        try:
            numbers = [int(x) for x in nums]
            target = float(target)
        except (TypeError, ValueError) as exc:
            raise InputError(f"{source}: row {i}: expected nums=list of ints and target=number ({exc})") from None
        if not target.is_integer():
            raise InputError(f"{source}: row {i}: target {target} is not an integer")
        problems.append((numbers, int(target)))
    eligible = [
        i
        for i, (numbers, target) in enumerate(problems)
        if (num_count is None or len(numbers) == num_count) and problem_key(numbers, target) not in exclude
    ]
    detail = f"of {len(problems)} in split {split!r}, num_count={num_count}, {len(exclude)} test keys excluded"
    chosen = _seeded_subset(eligible, n, seed, "countdown", source, detail)
    records = []
    for k, row_index in enumerate(chosen):
        numbers, target = problems[row_index]
        records.append({**countdown_record(k, split, numbers, target, prompt_style), "source_row": row_index})
    return records


def load_answer_backslide_csv(path: str | Path = ANSWER_BACKSLIDE_CSV, prompt_style: str = "paper") -> list[dict]:
    """The MDPO authors' pre-mined Answer Backslide problems (CSV: unnamed index, ``Problem``, ``Solution``).

    ``Problem`` already ends with the paper's "Let's think step by step ... \\boxed{}." instruction
    and is used as given (whitespace-stripped) for ``paper`` prompts; ``compact`` prompts drop the
    instruction. ``Solution`` is the gold final answer (e.g. ``7``, ``-n``), kept as text.
    """
    import pandas as pd

    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a readable CSV with columns {list(BACKSLIDE_COLUMNS)} ({exc})") from None
    missing = [c for c in BACKSLIDE_COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(
            f"{path}: missing column(s) {missing}; expected an unnamed index column and columns "
            f"{list(BACKSLIDE_COLUMNS)}, found {list(frame.columns)}"
        )
    index_column = next((c for c in frame.columns if c == "" or c.startswith("Unnamed:")), None)
    records, seen = [], set()
    for row_number, row in enumerate(frame.to_dict("records")):
        given = row["Problem"].strip()
        answer = row["Solution"].strip()
        if not given or not answer:
            raise InputError(f"{path}: row {row_number} has an empty Problem or Solution")
        problem = given[: -len(_BOXED_SUFFIX)].rstrip() if given.endswith(_BOXED_SUFFIX) else given
        if prompt_style == "paper" and given.endswith(_BOXED_SUFFIX):
            prompt = given
        else:
            prompt = math_prompt(problem, prompt_style)
        raw_index = row[index_column] if index_column else None
        records.append(
            {
                "id": _unique_id("openr1-backslide", raw_index, row_number, seen),
                "task": "openr1",
                "prompt": prompt,
                "answer": answer,
                "solution": "",
                "problem": problem,
            }
        )
    return records


def split_validation(pool: list[dict], n_train: int | None, n_validation: int, task: str) -> tuple[list[dict], list[dict]]:
    """``(train, validation)`` from a seeded pool: training first (so it equals the subset drawn
    without validation), validation after it; with every row for training (``n_train`` None),
    validation first. Countdown validation ids are renamed to their split."""
    if n_train:
        train, validation = pool[:n_train], pool[n_train:]
    else:
        validation, train = pool[:n_validation], pool[n_validation:]
    if not train:
        raise InputError(f"{task}: {len(pool)} eligible training rows leave none for training after the "
                         f"{n_validation} validation rows; lower n_validation")
    if task == "countdown":
        validation = [{**r, "id": f"countdown-validation-{k:06d}"} for k, r in enumerate(validation)]
    return train, validation


def build_paper_task(
    task: str,
    settings: dict,
    seed: int,
    out_dir: str | Path,
    test_file: str | Path | None = None,
    cache_dir: str | Path | None = None,
) -> dict:
    """Write ``pretrain.jsonl`` (empty: the paper does no pretraining), ``train.jsonl`` and
    ``test.jsonl`` for a ``paper`` task; return its manifest entry (the shape of ``build_task``'s).

    ``math500``: test = MATH-500 (``source``, pinned by ``revision``), train = a seeded OpenR1 subset
    (``train_source``, ``train_revision``) with ``\\boxed`` solutions and no MATH-500 problem.
    ``countdown``: test = the paper's test file (``test_file`` argument, else ``settings["source"]``,
    else data/reference/countdown_cd3_test.jsonl), train = Countdown-Tasks-3to4 (``train_source``,
    ``train_revision`` or ``revision``) minus every test problem. ``n_test``/``n_train`` of 0 (or
    absent ``n_test``) mean all rows; ``n_train`` defaults to 3000 for math500 and all for countdown.

    ``validation.jsonl`` (``n_validation`` problems, default 256) is what training curves and any
    choice read, so the test set is read once, by the final evaluation: the next ``n_validation``
    rows of the same seeded order as the training subset, so the training data are exactly those
    of the subset alone (when ``n_train`` is all rows, validation is taken first and training keeps
    the rest).
    """
    if task not in PAPER_TASKS:
        raise InputError(f"no paper loader for task {task!r} (known: {', '.join(PAPER_TASKS)})")
    out_dir = Path(out_dir)
    prompt_style = settings.get("prompt_style", "paper")
    n_test = int(settings.get("n_test") or 0) or None
    n_train = settings.get("n_train", DEFAULT_N_TRAIN[task])
    n_train = int(n_train) if n_train else None
    n_validation = int(settings.get("n_validation", DEFAULT_N_VALIDATION))
    n_pool = n_train + n_validation if n_train else None
    if task == "math500":
        source = str(settings.get("source") or MATH500_SOURCE)
        train_source = str(settings.get("train_source") or OPENR1_SOURCE)
        revision, train_revision = settings.get("revision"), settings.get("train_revision")
        full_test = load_math500(source, "test", prompt_style, None, revision, cache_dir, settings.get("gold", "answer"))
        pool = load_openr1(
            train_source, n_pool, seed, "train", bool(settings.get("require_boxed", True)), prompt_style,
            exclude_problems=[r["problem"] for r in full_test], revision=train_revision,
            name=settings.get("train_config"), cache_dir=cache_dir,
        )
        test = full_test[:n_test]
        spec = {
            "gold": settings.get("gold", "answer"),
            "require_boxed": bool(settings.get("require_boxed", True)),
            "train_config": settings.get("train_config"),
        }
    else:
        source = str(test_file or settings.get("source") or COUNTDOWN_TEST_FILE)
        train_source = str(settings.get("train_source") or COUNTDOWN_SOURCE)
        revision = None
        train_revision = settings.get("train_revision", settings.get("revision"))
        if not Path(source).is_file():
            raise FileNotFoundError(
                f"countdown test file {source!r} not found (the paper's test set, JSONL with input 'a,b,c' and output)"
            )
        full_test = load_countdown_test_file(source, prompt_style)
        exclude = {problem_key(r["numbers"], r["target"]) for r in full_test}
        num_count = settings.get("num_count")
        pool = load_countdown_tasks(
            train_source, n_pool, seed, "train", exclude, prompt_style, num_count, train_revision, cache_dir
        )
        test = full_test[:n_test]
        spec = {"num_count": num_count, "test_file_sha256": sha256_file(source)}
    train, validation = split_validation(pool, n_train, n_validation, task)
    spec = {
        "source": source,
        "revision": revision,
        "train_source": train_source,
        "train_revision": train_revision,
        "n_test": n_test or 0,
        "n_train": n_train or 0,
        "n_validation": n_validation,
        **spec,
    }
    files = {}
    for split, records in (("test", test), ("validation", validation), ("train", train), ("pretrain", [])):
        path = out_dir / f"{split}.jsonl"
        write_jsonl(path, records)
        files[split] = {"path": path.name, "count": len(records), "sha256": sha256_file(path)}
    return {"task": task, "seed": seed, "prompt_style": prompt_style, "spec": spec, "files": files}
