"""What stops RL at the local scale? A ladder from a reward that provably climbs to the real one.

Each rung trains a real RL trainer of the library (diffu-GRPO or MDPO on all training prompts, the
`local` preset's settings) from one base model on Countdown's training prompts for a fixed number
of updates, and records the training-reward curve under the rung's reward, its slope, and the
validation accuracy (exact reward, greedy default cell) before and after. Rungs:

* ``times``   a style the base model already shows in part (the answer uses ``*``): dense, reachable,
              unrelated to correctness; it must climb, or the loop cannot move this model at all
              (the direction tests' "starts with a digit" is already ~99% for a trained base);
* ``numbers`` the answer is an expression over exactly the given numbers (any value): a format reward;
* ``near``    such an expression within 10% (at least 2) of the target: a partial-credit reward;
* ``exact``   the task's reward (the expression equals the target).

Then, at the real reward, one knob at a time: rollout temperature, learning rate, prompts per update
(rollouts per update x4) and the number of updates. Runs are resumable (one JSON per run in --out-dir)
and can be split over processes with --runs. The summary table is printed and written to --out.
    .venv/bin/python benchmarks/rl_ladder.py --base results/local/models/base --data data/local/tasks/countdown \
        --out docs/results/rl_ladder_local.json [--runs grpo-exact,mdpo-exact] [--threads 1]
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import re
import time
from pathlib import Path

import numpy as np
import torch

import maskdiff.train.groups as groups
from maskdiff.config import load_config
from maskdiff.evaluate import evaluate_cell
from maskdiff.io import read_jsonl, write_json
from maskdiff.models import load_model, load_tokenizer, token_ids
from maskdiff.replicates import slope
from maskdiff.rewards.countdown import evaluate_expression, extract_countdown_answer
from maskdiff.sampling.generate import settings_from_config
from maskdiff.tasks.records import read_task_records
from maskdiff.pipeline.trainer_settings import trainer_config
from maskdiff.train.diffu_grpo import train_diffu_grpo
from maskdiff.train.mdpo import train_mdpo

ROOT = Path(__file__).resolve().parents[1]
REAL_SCORER = groups.score_completions


def _answer(text: str):
    """``(value, literals)`` of a completion's expression, or None."""
    answer = extract_countdown_answer(text)
    if not answer:
        return None
    value = evaluate_expression(answer.split("=")[0].strip())
    if value is None:
        return None
    return value, sorted(int(n) for n in re.findall(r"\d+", answer.split("=")[0]))


def rung_reward(rung: str, text: str, ref: dict) -> float:
    if rung == "times":
        answer = extract_countdown_answer(text)
        return float(bool(answer) and "*" in answer)
    parsed = _answer(text)
    if parsed is None or parsed[1] != sorted(ref["numbers"]):
        return 0.0
    if rung == "numbers":
        return 1.0
    if rung == "near":
        return float(abs(float(parsed[0]) - ref["target"]) <= max(2.0, 0.1 * abs(ref["target"])))
    raise ValueError(rung)


def patched_scorer(rung: str):
    def score(kind, texts, refs, processes=0, cache=None, settings=None, **kwargs):
        return np.array([rung_reward(rung, t, r) for t, r in zip(texts, refs)], dtype=np.float32)
    return score


TRAINERS = {"grpo": ("diffu_grpo", train_diffu_grpo), "mdpo": ("mdpo_all_data", train_mdpo)}


def run_specs() -> dict[str, dict]:
    """Every run of the study: name -> trainer, rung and overrides of the local settings."""
    specs = {}
    for short in TRAINERS:
        for rung in ("times", "numbers", "near", "exact"):
            specs[f"{short}-{rung}"] = {"trainer": short, "rung": rung, "overrides": {}}
        specs[f"{short}-exact-T0.5"] = {"trainer": short, "rung": "exact", "overrides": {"temperature": 0.5}}
        specs[f"{short}-exact-lr1e-5"] = {"trainer": short, "rung": "exact", "overrides": {"lr": 1e-5}}
        specs[f"{short}-exact-P4x"] = {"trainer": short, "rung": "exact", "overrides": {"prompts_per_update": "x4"}}
        specs[f"{short}-exact-400u"] = {"trainer": short, "rung": "exact", "overrides": {"updates": 400}}
    return specs


def validation_accuracy(model_dir: str, records: list[dict], cell: dict, seed: int) -> float:
    model, tok = load_model(model_dir), load_tokenizer(model_dir)
    summary, _ = evaluate_cell(model, tok, token_ids(tok, model.config), records, settings_from_config(cell), 128, seed)
    return summary["accuracy"]


def run_one(name: str, spec: dict, args, config: dict, records_val: list[dict], base_acc: float) -> dict:
    method, train = TRAINERS[spec["trainer"]]
    cfg = trainer_config(config, method)
    overrides = dict(spec["overrides"])
    if overrides.get("prompts_per_update") == "x4":
        overrides["prompts_per_update"] = 4 * cfg.prompts_per_update
    cfg = dataclasses.replace(cfg, **{"updates": args.updates, "eval_every": 0, "checkpoint_every": args.updates} | overrides)
    cfg = dataclasses.replace(cfg, checkpoint_every=cfg.updates)
    work = Path(args.out_dir) / name
    groups.score_completions = REAL_SCORER if spec["rung"] == "exact" else patched_scorer(spec["rung"])
    t0 = time.time()
    try:
        train(args.base, [str(Path(args.data) / "train.jsonl")], str(work / "model"), str(work / "checkpoint"), cfg,
              seed=args.seed)
    finally:
        groups.score_completions = REAL_SCORER
    seconds = time.time() - t0
    events = [e for e in read_jsonl(work / "checkpoint.metrics.jsonl") if e.get("event") == "update"]
    reward = [e["reward_mean"] for e in events]
    q = len(reward) // 4
    return {
        "run": name, **spec, "overrides": overrides, "updates": cfg.updates, "lr": cfg.lr, "temperature": cfg.temperature,
        "rollouts_per_update": cfg.prompts_per_update * cfg.group_size, "train_seconds": seconds,
        "reward_first_quarter": float(np.mean(reward[:q])), "reward_last_quarter": float(np.mean(reward[-q:])),
        "reward_slope_per_100_updates": 100 * slope(reward), "reward_curve": reward,
        "groups_with_signal": float(np.mean([e.get("groups_with_signal", np.nan) for e in events])),
        "kl_last": events[-1].get("kl"),
        "validation_accuracy_base": base_acc,
        "validation_accuracy": validation_accuracy(str(work / "model"), records_val, args.cell, args.seed),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default=str(ROOT / "results/local/models/base"))
    parser.add_argument("--data", default=str(ROOT / "data/local/tasks/countdown"), help="directory with train/validation.jsonl")
    parser.add_argument("--preset", default=str(ROOT / "config/presets/local.yaml"))
    parser.add_argument("--updates", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", default="", help="comma-separated run names (default: all)")
    parser.add_argument("--out-dir", default="/tmp/rl_ladder")
    parser.add_argument("--out", default=str(ROOT / "docs/results/rl_ladder_local.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = load_config(args.preset)
    dec = config["decoding"]
    args.cell = {k: dec[k] for k in ("gen_length", "block_length", "steps", "schedule", "compute_dtype")} | {"remasking": "lcr"}
    records_val = read_task_records(Path(args.data) / "validation.jsonl", "validation")
    specs = run_specs()
    chosen = [r for r in args.runs.split(",") if r] or list(specs)
    unknown = set(chosen) - set(specs)
    if unknown:
        parser.error(f"unknown runs {sorted(unknown)}; known: {list(specs)}")
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    base_file = out_dir / "base.json"
    if not base_file.exists():
        write_json(base_file, {"validation_accuracy": validation_accuracy(args.base, records_val, args.cell, args.seed)})
    base_acc = json.loads(base_file.read_text())["validation_accuracy"]
    for name in chosen:
        result_file = out_dir / f"{name}.json"
        if result_file.exists():
            continue
        print(f"--- {name}", flush=True)
        write_json(result_file, run_one(name, specs[name], args, config, records_val, base_acc))
    results = [json.loads((out_dir / f"{n}.json").read_text()) for n in specs if (out_dir / f"{n}.json").exists()]
    print(f"\nbase validation accuracy (Countdown, greedy default cell): {100 * base_acc:.1f}%")
    print(f"{'run':<20} {'rollouts/upd':>12} {'reward q1':>9} {'reward q4':>9} {'slope/100u':>10} {'signal':>7} "
          f"{'val acc':>8}")
    for r in results:
        print(f"{r['run']:<20} {r['rollouts_per_update']:>12} {r['reward_first_quarter']:>9.3f} {r['reward_last_quarter']:>9.3f} "
              f"{r['reward_slope_per_100_updates']:>+10.3f} {r['groups_with_signal']:>7.2f} {100 * r['validation_accuracy']:>7.1f}%")
    base_sha = hashlib.sha256((Path(args.base) / "model.safetensors").read_bytes()).hexdigest()
    write_json(args.out, {"base": args.base, "base_sha256": base_sha, "data": args.data, "seed": args.seed, "updates": args.updates,
                          "base_validation_accuracy": base_acc, "runs": results})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
