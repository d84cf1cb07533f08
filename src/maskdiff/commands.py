"""What each ``maskdiff`` subcommand does: one handler per subcommand, a thin shell around a
library function that takes the parsed arguments (explicit paths and JSON settings) and logs to
stderr. The parser, the shared options and ``main`` are in :mod:`maskdiff.cli`. Each handler imports
the library it runs inside its body, so a subcommand loads only its own code (and
:mod:`maskdiff.pipeline.code_deps` can read each rule's code from the handler's imports)."""

from __future__ import annotations

import logging
from pathlib import Path

from .errors import InputError

log = logging.getLogger("maskdiff")


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _threads(n: int) -> None:
    import torch

    torch.set_num_threads(max(1, n))


def cmd_prepare_data(args) -> None:
    from .io import write_json
    from .tasks.build import build_task
    from .tasks.paper import build_paper_task

    if args.source == "hub":
        entry = build_paper_task(args.task, {"prompt_style": args.prompt_style, **args.settings}, args.seed, args.out)
    else:
        entry = build_task(args.task, args.settings, args.seed, args.out, args.prompt_style)
    write_json(Path(args.out) / "manifest.json", entry)
    log.info("%s: %s", args.task, {k: v["count"] for k, v in entry["files"].items()})


def cmd_pretrain(args) -> None:
    from .models.tiny import TinyModelSpec
    from .train.pretrain import PretrainConfig, pretrain

    _threads(args.threads)
    settings = {k: v for k, v in args.settings.items() if k != "threads"}
    spec = _construct(TinyModelSpec, args.model_spec, "--model-spec")
    config = _construct(PretrainConfig, {"seed": args.seed, **settings}, "--settings")
    result = pretrain(args.data, args.out, args.checkpoint_dir, spec, config, args.gen_length)
    log.info("pretraining done: %s", result)


def _construct(cls, values, flag: str):
    """``cls(**values)``; a JSON value that is not a mapping, an unknown key or a rejected value is
    one InputError line naming the flag."""
    if not isinstance(values, dict):
        raise InputError(f"{flag}: expected a JSON object, got {values!r:.80}")
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{flag}: {exc}") from None


def _cell(values, flag: str = "--cell"):
    """A decoding cell's JSON -> DecodeSettings; an unknown key or a bad value (e.g. a block length
    that does not divide gen_length) is one InputError line naming ``flag``."""
    from .sampling.generate import settings_from_config

    try:
        return settings_from_config(values)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{flag}: bad decoding cell: {exc}") from None


def _load(args):
    return _load_model(args.model, args.model_options)


def _load_model(path: str, opts: dict):
    """(model, tokenizer, token ids, chat template?) of a model directory or hub id."""
    from .models.loading import load_model, load_tokenizer, remote_code_options, token_ids

    remote = remote_code_options(opts)
    model = load_model(path, dtype=opts.get("dtype"), device="cuda" if _cuda() else None, **remote)
    tokenizer = load_tokenizer(path, **remote)
    return model, tokenizer, token_ids(tokenizer, model.config, opts.get("mask_token_id")), bool(opts.get("chat_template"))


def cmd_trajectories(args) -> None:
    from .io import write_json
    from .tasks.records import read_task_records
    from .trajectories import build_trajectories

    _threads(args.threads)
    records = {task: read_task_records(path, "validation")[: args.scan] for task, path in _eval_files(args.validation, "--validation").items()}
    cell = _cell(args.cell)  # before loading a model: a bad cell fails fast
    model, tokenizer, ids, chat = _load(args)
    others: dict = {}
    for name, path in _eval_files(args.compare, "--compare").items():
        label, _, task = name.partition("@")  # per-task models: mdpo@countdown=models/mdpo/countdown
        loaded = _load_model(path, args.model_options)[:3]
        if task:
            others.setdefault(label, {})[task] = loaded
        else:
            others[label] = loaded
    doc = build_trajectories((model, tokenizer, ids), others, records, cell, args.cases,
                             args.seed, chat, _rewards(args))
    write_json(args.out, doc)
    log.info("trajectories: %s", {t: f"{len(v['cases'])} cases ({v['backslide_found']} Answer Backslide of "
                                    f"{v['scanned']})" for t, v in doc["tasks"].items()})


def cmd_fetch_model(args) -> None:
    from .models.loading import fetch_model, remote_code_options

    fetch_model(args.model, args.out, dtype=args.model_options.get("dtype"), **remote_code_options(args.model_options))
    log.info("saved %s to %s", args.model, args.out)


def _rewards(args):
    """The run's reward settings (config section ``rewards``), built by the strict builder."""
    from .rewards import RewardSettings
    from .settings import build

    return build(RewardSettings, args.rewards, "rewards")


def _cell_groups(groups) -> list[dict]:
    """``--groups`` JSON -> groups with DecodeSettings; a bad group or cell is one InputError line."""
    if not isinstance(groups, list) or not groups:
        raise InputError("--groups: expected a non-empty JSON list of {name, cells, max_problems}")
    out = []
    for i, group in enumerate(groups):
        if not isinstance(group, dict) or set(group) - {"name", "cells", "max_problems"} or "name" not in group:
            raise InputError(f"--groups[{i}]: expected an object with name, cells and max_problems, got {group!r:.80}")
        if not isinstance(group.get("cells"), list) or not group["cells"]:
            raise InputError(f"--groups[{i}] ({group['name']}): cells must be a non-empty list")
        cells = [_cell(c, f"--groups[{i}] ({group['name']})") for c in group["cells"]]
        out.append({"name": str(group["name"]), "cells": cells, "max_problems": int(group.get("max_problems") or 0)})
    return out


def cmd_evaluate(args) -> None:
    from .evaluate import evaluate_groups
    from .tasks.records import read_task_records

    _threads(args.threads)
    groups = _cell_groups(args.groups)
    records = read_task_records(args.data, "test")  # before loading the model: bad data fails fast
    model, tokenizer, ids, chat = _load(args)
    evaluate_groups(model, tokenizer, ids, records, groups, out_dir=args.out, batch_size=args.batch_size, seed=args.seed,
                    chat_template=chat, processes=args.reward_processes, model_name=args.model_name, rewards=_rewards(args))


def cmd_rollout(args) -> None:
    from .io import write_jsonl
    from .rollouts import rollout_records, shard_records
    from .tasks.records import read_task_records

    _threads(args.threads)
    records = shard_records(read_task_records(args.data, "train"), args.shard, args.num_shards)
    model, tokenizer, ids, chat = _load(args)
    rows = rollout_records(model, tokenizer, ids, records, args.settings, args.seed, args.batch_size, chat, args.reward_processes,
                           _rewards(args))
    write_jsonl(args.out, rows)
    log.info("shard %d/%d: %d prompts, %d Answer Backslide", args.shard, args.num_shards, len(rows),
             sum(r["backslide"] for r in rows))


def cmd_mine(args) -> None:
    from .mining import mine_files, premined_files

    if args.premined:
        from .tasks.paper import load_answer_backslide_csv

        stats = premined_files(load_answer_backslide_csv(args.premined), args.train, args.out_mined, args.out_all,
                               args.out_stats, source=args.premined)
    else:
        stats = mine_files(args.train, args.shards, args.out_mined, args.out_all, args.out_stats)
    log.info("mined %d Answer Backslide samples (%s)", stats["mined"], stats["source"])


def _eval_files(pairs: list[str], flag: str = "--validation") -> dict[str, str]:
    out = {}
    for pair in pairs:
        task, sep, path = pair.partition("=")
        if not sep:
            raise InputError(f"{flag} expects task=path, got {pair!r}")
        out[task] = path
    return out


def cmd_train(args) -> None:
    from .train.configs import config_from_json

    _threads(args.threads)
    algorithm = args.algorithm.replace("-", "_")
    cfg = config_from_json(algorithm, args.settings)
    if args.fallback_train and algorithm != "mdpo":
        raise InputError("--fallback-train applies to train-mdpo only")
    if algorithm == "sft":
        from .train.sft import train_sft as train
    elif algorithm == "diffu_grpo":
        from .train.diffu_grpo import train_diffu_grpo as train
    else:
        from .train.mdpo import train_mdpo as train
    extra = {"fallback_files": args.fallback_train} if args.fallback_train else {}
    result = train(args.model, args.train, args.out, args.checkpoint_dir, cfg, args.seed, args.model_options,
                   _eval_files(args.validation, "--validation"), rewards=_rewards(args), **extra)
    log.info("%s done: %s", args.algorithm, result)


def cmd_score_validation(args) -> None:
    from .io import write_json
    from .tasks.records import read_task_records
    from .tuning import validation_scores

    _threads(args.threads)
    records = {task: read_task_records(path, "validation") for task, path in _eval_files(args.validation, "--validation").items()}
    cell = _cell(args.cell)
    model, tokenizer, ids, chat = _load(args)
    scores = validation_scores(model, tokenizer, ids, records, cell, args.seed, chat, _rewards(args))
    write_json(args.out, scores)
    log.info("validation: %s", {t: round(v["accuracy"], 4) for t, v in scores["validation"].items()})


def cmd_tune_stage(args) -> None:
    import json

    from .io import write_json
    from .tuning import read_point, stage_result

    previous = json.loads(Path(args.previous).read_text()) if args.previous else None
    points = [read_point(p) for p in args.points]
    result = stage_result(args.model_name, args.stage, args.settings, points, previous, args.tie_break)
    write_json(args.out, result)
    log.info("%s stage %d: chosen %s", args.model_name, args.stage, result["chosen"])


def cmd_tune_summary(args) -> None:
    import datetime
    import subprocess

    from .io import sha256_file, write_json
    from .tuning import summarise

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    weights = sorted(Path(args.model).glob("*.safetensors"))
    # The search's date: its newest stage table (re-summarising unchanged points changes nothing).
    newest = max(Path(p).stat().st_mtime for p in args.stages)
    date = datetime.datetime.fromtimestamp(newest, datetime.timezone.utc).date().isoformat()
    run = {"preset": args.preset, "date": date, "commit": commit,
           "base_model": args.model, "base_weights_sha256": {p.name: sha256_file(p) for p in weights}}
    write_json(args.out, summarise(args.stages, args.settings, run))


def _settings(cls, values: dict, section: str):
    from .settings import build

    return build(cls, values, section)


def cmd_precision_model_free(args) -> None:
    import pandas as pd

    from .precision import ModelFreeSettings, analytic_model_free, simulate_model_free, write_precision_csv

    _threads(args.threads)
    settings = _settings(ModelFreeSettings, args.settings, "precision.model_free")
    parts = [simulate_model_free(settings), analytic_model_free(settings)]
    write_precision_csv([p for p in parts if not p.empty] or [pd.DataFrame()], args.out)


def cmd_precision_model(args) -> None:
    from .precision import ModelStudySettings, model_study, write_precision_csv
    from .tasks.records import read_task_records

    _threads(args.threads)
    records = read_task_records(args.data, "test")[: args.max_problems or None]
    model, tokenizer, ids, chat = _load(args)
    settings = _settings(ModelStudySettings, {**args.settings, "chat_template": chat}, "precision.model")
    write_precision_csv([model_study(model, tokenizer, ids, records, settings)], args.out)


def cmd_precision_combine(args) -> None:
    import pandas as pd

    from .precision import write_precision_csv

    write_precision_csv([pd.read_csv(p) for p in args.inputs], args.out)


def cmd_curves(args) -> None:
    from .figures import write_curves

    runs = write_curves(args.models, args.out)
    log.info("wrote the training curves of %d runs to %s", len(runs), args.out)


def cmd_figures(args) -> None:
    from .figures import write_figures

    names = write_figures(args.summary, args.sweep, args.curves, args.out)
    log.info("wrote %s to %s", ", ".join(names), args.out)


def cmd_summarize(args) -> None:
    from .summary import summarize

    table = summarize(args.inputs, args.out, args.headline, args.default_cell, args.metrics)
    log.info("wrote %s (%d rows)", args.out, len(table))
