"""Command-line entry point: ``maskdiff <subcommand>``. Snakemake rules call these. Here: the
parser (shared options defined once as parent parsers, one flag name per idea, deprecated aliases
read for one release), usage errors as one line, and ``main``; what each subcommand does is its
handler in :mod:`maskdiff.commands`."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from . import __version__
from .config_keys import schema_entry
from .commands import (cmd_curves, cmd_evaluate, cmd_fetch_model, cmd_figures, cmd_mine, cmd_precision_combine,
                       cmd_precision_model, cmd_precision_model_free, cmd_prepare_data, cmd_pretrain, cmd_rollout,
                       cmd_score_validation, cmd_summarize, cmd_trajectories, cmd_train, cmd_tune_stage, cmd_tune_summary)
from .errors import InputError

log = logging.getLogger("maskdiff")


def _json(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from None


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line (exit 2), and which reads its deprecated
    flag aliases (``aliases``: old flag -> new flag, kept for one release) as the new names."""

    aliases: dict[str, str] = {}

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def parse_known_args(self, args=None, namespace=None):
        if not self.aliases:
            return super().parse_known_args(args, namespace)
        args, used = _renamed(sys.argv[1:] if args is None else list(args), self.aliases)
        namespace, rest = super().parse_known_args(args, namespace)
        if used:
            namespace._deprecated = [f"{self.prog}: {old} is a deprecated alias of {self.aliases[old]}" for old in used]
        return namespace, rest


def _renamed(argv: list[str], aliases: dict[str, str]) -> tuple[list[str], list[str]]:
    """``argv`` with every deprecated flag (``--base`` or ``--base=x``) under its new name, and the
    old flags that were used."""
    out, used = [], []
    for i, token in enumerate(argv):
        if token == "--":
            out.extend(argv[i:])
            break
        flag, eq, value = token.partition("=")
        if flag in aliases:
            used.append(flag)
            token = aliases[flag] + eq + value
        out.append(token)
    return out, used


def _parent(*flags: str, **kwargs) -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(*flags, **kwargs)
    return parent


# The options several subcommands share, each defined once (argparse parents: every subcommand's
# option is this very action). What the model or the output is in one subcommand is in its
# description; tests/test_cli_names.py fails when a subcommand names one of these ideas otherwise.
MODEL = _parent("--model", required=True, help="model directory or hub id")
MODEL_OPTIONS = _parent("--model-options", type=_json, default={},
                        help="JSON: trust_remote_code_for, remote_code_sha256, revision, mask_token_id, chat_template, dtype")
SEED = _parent("--seed", type=int, default=0, help="random seed")
THREADS = _parent("--threads", type=int, default=1, help="torch CPU threads")
REWARDS = _parent("--rewards", type=_json, default={}, help="RewardSettings fields (JSON; config section rewards)")
OUT = _parent("--out", required=True, help="what the command writes (file or directory: see above)")
SHARED = {"--model": MODEL, "--model-options": MODEL_OPTIONS, "--seed": SEED, "--threads": THREADS,
          "--rewards": REWARDS, "--out": OUT}

# Old flag -> new flag, per subcommand: read for one release (the workflow's rules move to the new
# names), listed in each subcommand's --help and the README's CLI table.
DEPRECATED = {
    "prepare-data": {"--out-dir": "--out"},
    "fetch-model": {"--name": "--model"},
    "evaluate": {"--name": "--model-name", "--out-dir": "--out"},
    "train-sft": {"--base": "--model", "--eval": "--validation"},
    "train-diffu-grpo": {"--base": "--model", "--eval": "--validation"},
    "train-mdpo": {"--base": "--model", "--eval": "--validation"},
    "score-validation": {"--data": "--validation"},
    "tune-stage": {"--model": "--model-name"},
    "tune-summary": {"--base": "--model"},
}


def _command(sub, name: str, text: str, *shared: str, notes: dict[str, str] | None = None) -> argparse.ArgumentParser:
    """Subcommand ``name`` with the shared options ``shared`` (flags of :data:`SHARED`); ``notes``
    say what a shared option is in this subcommand (``{"--out": "model directory"}``)."""
    description = "\n".join([text, *(f"  {flag}: {what}" for flag, what in (notes or {}).items())])
    aliases = DEPRECATED.get(name, {})
    epilog = "\n".join(["deprecated aliases (read for one release):",
                        *(f"  {old} -> {new}" for old, new in aliases.items())]) if aliases else None
    p = sub.add_parser(name, help=text, description=description, epilog=epilog, parents=[SHARED[f] for f in shared],
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.aliases = aliases
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="maskdiff", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"maskdiff {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="<subcommand>")

    sub.add_parser("run", help="snakemake <arguments>, after reading its --configfile files strictly (errors with file:line)",
                   add_help=False)
    p = _command(sub, "prepare-data", "generate one task's pretrain/train/test splits and manifest", "--seed", "--out",
                 notes={"--out": "the task's directory (splits and manifest.json)"})
    p.add_argument("--task", required=True, choices=schema_entry("data.tasks")["items"]["enum"])
    p.add_argument("--source", default=schema_entry("data.source")["default"], choices=schema_entry("data.source")["enum"],
                   help="seeded generators or the paper's datasets (config data.source)")
    p.add_argument("--settings", type=_json, required=True, help="the task's config section (JSON)")
    p.add_argument("--prompt-style", default=schema_entry("data.prompt_style")["default"],
                   choices=schema_entry("data.prompt_style")["enum"], help="config data.prompt_style")
    p.set_defaults(func=cmd_prepare_data)

    p = _command(sub, "pretrain", "pretrain the tiny base model with the masked-diffusion loss", "--seed", "--threads",
                 "--out", notes={"--out": "model directory (save_pretrained)"})
    p.add_argument("--data", nargs="+", required=True, help="pretraining JSONL files")
    p.add_argument("--checkpoint-dir", required=True, help="resumable checkpoint directory")
    p.add_argument("--model-spec", type=_json, required=True)
    p.add_argument("--settings", type=_json, required=True, help="the pretrain config section (JSON)")
    p.add_argument("--gen-length", type=int, required=True)
    p.set_defaults(func=cmd_pretrain)

    p = _command(sub, "fetch-model", "download a hub model once and save it (safetensors) as the base model",
                 "--model", "--model-options", "--out",
                 notes={"--model": "hub id or local path", "--model-options": "trust_remote_code_for, remote_code_sha256, revision, dtype",
                        "--out": "the saved model directory"})
    p.set_defaults(func=cmd_fetch_model)

    p = _command(sub, "evaluate", "evaluate a model on a task over groups of decoding cells",
                 "--model", "--model-options", "--rewards", "--seed", "--threads", "--out",
                 notes={"--out": "directory: <group>.json and <group>.problems.jsonl per group"})
    p.add_argument("--model-name", default="", help="model name recorded in the outputs")
    p.add_argument("--data", required=True, help="test JSONL")
    p.add_argument("--groups", type=_json, required=True,
                   help='JSON list of cell groups: [{"name": "B16-S16", "cells": [...], "max_problems": 0}, ...]')
    p.add_argument("--batch-size", type=int, default=schema_entry("evaluation.batch_size")["default"],
                   help="config evaluation.batch_size")
    p.add_argument("--reward-processes", type=int, default=schema_entry("evaluation.reward_processes")["default"],
                   help="config evaluation.reward_processes")
    p.set_defaults(func=cmd_evaluate)

    p = _command(sub, "trajectories", "step-by-step denoising of a few Answer Backslide validation problems",
                 "--model", "--model-options", "--rewards", "--seed", "--threads", "--out",
                 notes={"--model": "the base model (its decoding picks the cases)", "--out": "JSON the report draws"})
    p.add_argument("--compare", nargs="*", default=[], help="name=model dir (per task: name@task=dir), decoded on the same cases")
    p.add_argument("--validation", nargs="+", required=True, help="task=validation JSONL")
    p.add_argument("--cell", type=_json, required=True, help="the decoding cell (JSON, as the config's default cell)")
    p.add_argument("--cases", type=int, default=schema_entry("evaluation.trajectory_cases")["default"],
                   help="cases per task (config evaluation.trajectory_cases)")
    p.add_argument("--scan", type=int, default=schema_entry("evaluation.trajectory_scan")["default"],
                   help="validation problems per task the base model decodes to find them (config evaluation.trajectory_scan)")
    p.set_defaults(func=cmd_trajectories)

    p = _command(sub, "rollout", "decode one shard of training prompts with per-step correctness",
                 "--model", "--model-options", "--rewards", "--seed", "--threads", "--out",
                 notes={"--out": "the shard's rows (JSONL)"})
    p.add_argument("--data", required=True, help="training JSONL")
    p.add_argument("--shard", type=int, required=True, help="0-based shard index")
    p.add_argument("--num-shards", type=int, required=True)
    p.add_argument("--settings", type=_json, required=True, help="gen_length, steps, block_lengths, remasking, schedule")
    p.add_argument("--batch-size", type=int, default=schema_entry("rollouts.batch_size")["default"],
                   help="config rollouts.batch_size")
    p.add_argument("--reward-processes", type=int, default=schema_entry("evaluation.reward_processes")["default"],
                   help="config evaluation.reward_processes")
    p.set_defaults(func=cmd_rollout)

    p = _command(sub, "mine", "gather rollout shards into the Answer Backslide set, all-data set and stats")
    p.add_argument("--train", required=True, help="training JSONL")
    p.add_argument("--shards", nargs="*", default=[], help="rollout shard JSONLs")
    p.add_argument("--premined", default=None, help="use this pre-mined CSV (Problem, Solution) instead of mining")
    p.add_argument("--out-mined", required=True)
    p.add_argument("--out-all", required=True)
    p.add_argument("--out-stats", required=True)
    p.set_defaults(func=cmd_mine)

    from .train.configs import CONFIG_CLASSES, TITLES  # the parser's table, not a handler's code (code_deps)

    for name in CONFIG_CLASSES:
        algorithm = name.replace("_", "-")
        p = _command(sub, f"train-{algorithm}", f"fine-tune: {TITLES[name]}",
                     "--model", "--model-options", "--rewards", "--seed", "--threads", "--out",
                     notes={"--model": "the base model directory", "--out": "the trained model directory"})
        p.add_argument("--train", nargs="+", required=True, help="training JSONL files")
        p.add_argument("--checkpoint-dir", required=True)
        p.add_argument("--settings", type=_json, required=True, help="the algorithm's config (JSON)")
        p.add_argument("--validation", nargs="*", default=[],
                       help="task=validation.jsonl pairs for the training curves (never the test set)")
        p.add_argument("--fallback-train", nargs="*", default=[], help="(mdpo) prompts used if --train files are empty")
        p.set_defaults(func=cmd_train, algorithm=algorithm)

    p = _command(sub, "score-validation", "a model's accuracy on the validation splits at one cell (tuning score)",
                 "--model", "--model-options", "--rewards", "--seed", "--threads", "--out",
                 notes={"--out": "validation.json"})
    p.add_argument("--validation", nargs="+", required=True, help="task=validation.jsonl pairs")
    p.add_argument("--cell", type=_json, required=True, help="decoding cell (JSON)")
    p.set_defaults(func=cmd_score_validation)

    p = _command(sub, "tune-stage", "one tuning stage's table and choice from its scored points", "--out",
                 notes={"--out": "the stage's table (JSON)"})
    p.add_argument("--model-name", required=True, help="the tuned model's name, recorded in the table")
    p.add_argument("--stage", type=int, required=True)
    p.add_argument("--settings", type=_json, required=True, help="the stage's config (JSON)")
    p.add_argument("--tie-break", type=_json, required=True)
    p.add_argument("--previous", default=None, help="the previous stage's table (its choice is carried forward)")
    p.add_argument("--points", nargs="+", required=True, help="point directories (model/, validation.json)")
    p.set_defaults(func=cmd_tune_stage)

    p = _command(sub, "tune-summary", "the tuning search's chosen settings, grid and scores (chosen.json)",
                 "--model", "--out", notes={"--model": "the base model the search started from", "--out": "chosen.json"})
    p.add_argument("--stages", nargs="+", required=True)
    p.add_argument("--settings", type=_json, required=True, help="tuning stages and tie_break (JSON)")
    p.add_argument("--preset", required=True)
    p.set_defaults(func=cmd_tune_summary)

    p = _command(sub, "precision-model-free", "fp32 vs fp64 categorical draws against a mask class (simulated + analytic)",
                 "--threads", "--out", notes={"--out": "CSV"})
    p.add_argument("--settings", type=_json, required=True, help="ModelFreeSettings fields (JSON)")
    p.set_defaults(func=cmd_precision_model_free)

    p = _command(sub, "precision-model", "ancestral fp32/fp64 vs FHS sampling on a trained model",
                 "--model", "--model-options", "--threads", "--out", notes={"--out": "CSV"})
    p.add_argument("--data", required=True, help="prompts (test JSONL) for the prompted mode")
    p.add_argument("--max-problems", type=int, default=0)
    p.add_argument("--settings", type=_json, required=True, help="ModelStudySettings fields (JSON)")
    p.set_defaults(func=cmd_precision_model)

    p = _command(sub, "precision-combine", "concatenate precision CSVs", "--out", notes={"--out": "CSV"})
    p.add_argument("--inputs", nargs="+", required=True)
    p.set_defaults(func=cmd_precision_combine)

    p = _command(sub, "summarize", "gather evaluation JSONs into one CSV table", "--out",
                 notes={"--out": "the full table (one row per model x task x cell)"})
    p.add_argument("--inputs", nargs="+", required=True)
    p.add_argument("--headline", default=None, help="also write the rows of the default cell here")
    p.add_argument("--default-cell", type=_json, default=None, help='e.g. {"block_length": 16, "steps": 16}')
    p.add_argument("--metrics", default=None, help="also write the headline as nested JSON metrics (DVC)")
    p.set_defaults(func=cmd_summarize)
    p = _command(sub, "curves", "trained models' metrics logs as per-run CSV tables (what dvc plots draws)", "--out",
                 notes={"--out": "directory: train/<run>.csv, validation/<run>.csv"})
    p.add_argument("--models", nargs="*", default=[], help="trained model directories (each with metrics.jsonl)")
    p.set_defaults(func=cmd_curves)
    p = _command(sub, "figures", "headline figures of a run as SVG (what snakemake --report attaches)", "--out",
                 notes={"--out": "directory of the SVG files"})
    p.add_argument("--summary", required=True)
    p.add_argument("--sweep", required=True)
    p.add_argument("--curves", required=True, help="the directory `maskdiff curves` wrote")
    p.set_defaults(func=cmd_figures)
    add_results_commands(sub)
    return parser


def add_results_commands(sub) -> None:
    """README results generated from a run (:mod:`maskdiff.results_readme`): ``results-snapshot``
    writes every number the README shows into a JSON snapshot, ``results-readme`` rewrites the
    README between its results markers from that snapshot (``--check``: only compare)."""

    def snapshot(args) -> None:
        from .results_readme import snapshot_command

        snap = snapshot_command(args.results, args.preset, args.out, args.date, args.replicates, args.tuned)
        log.info("wrote %s (preset %s, run of %s)", args.out, snap["preset"], snap["date"])

    def readme(args) -> None:
        from .results_readme import readme_command

        same = readme_command(args.snapshot, args.readme, args.check)
        log.info("%s: results section %s", args.readme, "up to date" if same else f"rewritten from {args.snapshot}")

    p = _command(sub, "results-snapshot", "every number the README shows, from a finished run, into a JSON snapshot", "--out",
                 notes={"--out": "the snapshot JSON, e.g. docs/results/local.json"})
    p.add_argument("--results", required=True, help="the run's results directory, e.g. results/local")
    p.add_argument("--preset", default=None, help="preset name recorded in the snapshot (default: the directory's name)")
    p.add_argument("--date", default=None, help="run date recorded (default: the date summary.csv was written)")
    p.add_argument("--replicates", nargs="*", default=[],
                   help="results directories of the same preset with other base seeds (make replicate)")
    p.add_argument("--tuned", default=None, help="the tuned file the preset read (config/tuned/<preset>.json)")
    p.set_defaults(func=snapshot)

    def perf(args) -> None:
        from .perf_readme import readme_command as perf_command

        same = perf_command(args.readme, args.check)
        log.info("%s: performance section %s", args.readme, "up to date" if same else "rewritten")

    p = _command(sub, "perf-readme", "rewrite the README between <!-- performance:begin/end --> from the benchmarks' JSON")
    p.add_argument("--readme", default="README.md")
    p.add_argument("--check", action="store_true", help="only check (exit 2 if the section differs)")
    p.set_defaults(func=perf)

    p = _command(sub, "results-readme", "rewrite the README between <!-- results:begin/end --> from a snapshot")
    p.add_argument("--snapshot", required=True, help="a results-snapshot JSON; the README cites this path")
    p.add_argument("--readme", default="README.md")
    p.add_argument("--check", action="store_true", help="only check that the README is what the snapshot gives (exit 2 if not)")
    p.set_defaults(func=readme)


def _input_paths(args) -> list[Path]:
    """Every path-like argument of the command (``--validation`` pairs give their path part)."""
    values = []
    for key, value in vars(args).items():
        if key.startswith("_"):  # bookkeeping (deprecated aliases used), not an argument
            continue
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and item:
                values.append(item)
                _, sep, path = item.partition("=")
                if sep and path:
                    values.append(path)
    return [Path(v).absolute() for v in values]


def _is_input_error(exc: BaseException, args) -> bool:
    """The project's own input errors, reported in one line: InputError, and a FileNotFoundError of
    an argument's path (or of a file inside it), or one this package raised naming its input."""

    if isinstance(exc, InputError):
        return True
    if not isinstance(exc, FileNotFoundError):
        return False
    if exc.filename is not None:
        missing = Path(str(exc.filename)).absolute()
        return any(missing == p or p in missing.parents for p in _input_paths(args))
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    package = Path(__file__).resolve().parent
    return tb is not None and package in Path(tb.tb_frame.f_code.co_filename).resolve().parents


def _run_snakemake(args: list[str]) -> int:
    """``maskdiff run``: exit 2 with one line when a config file does not read; otherwise Snakemake
    replaces this process."""
    from .launch import run

    try:
        run(args)
    except InputError as exc:
        print(f"maskdiff run: {exc}", file=sys.stderr)
        return 2
    return 0  # not reached: run() execs Snakemake


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand. Exit 2 with one log line for an input error (the message names the key,
    file or line to fix); exit 1 with the full traceback for anything else, which is a bug or an
    environment failure whose cause is deep in the stack."""
    from .progress import quiet_library_bars

    quiet_library_bars()
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["run"]:  # every later argument is Snakemake's, options included
        return _run_snakemake(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for note in getattr(args, "_deprecated", []):
        log.warning("%s", note)
    try:
        args.func(args)
    except Exception as exc:  # noqa: BLE001 - every failure is reported, with its cause unless it is an input error
        if _is_input_error(exc, args):
            log.error("%s", exc)
            return 2
        log.exception("%s failed: %s: %s", args.command, type(exc).__name__, exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
