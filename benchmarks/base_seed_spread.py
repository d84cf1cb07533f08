"""How much the base model moves between pretraining seeds (issue: seeds and reproducibility).

The RL comparisons pair every trainer with ONE base model; this measures, once, how far a second
pretraining seed lands from it on the same data and test sets, at the default decoding cell. It
reuses the finished run's data and its seed-0 base model, pretrains the other seeds with exactly the
preset's settings (the same CLI the `pretrain_base` rule calls), evaluates each at the default cell
on every test problem, and compares each seed with the first (paired McNemar test, Newcombe interval).

    .venv/bin/python benchmarks/base_seed_spread.py [--preset local] [--seeds 0 1]

Prints a table and writes benchmarks/results/base_seed_spread_<preset>.json (or --out; the README cites
docs/results/base_seed_spread_local.json); the models go to
results/<preset>/seed_spread/ (a DAG output directory, git-ignored). About 15 min per extra seed on
2 CPU cores for `local`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from maskdiff.config import load_config
from maskdiff.io import read_jsonl, write_json
from maskdiff.learning import compare_pairs
from maskdiff.stats import wilson_interval

ROOT = Path(__file__).resolve().parents[1]
CLI = str(Path(sys.executable).parent / "maskdiff")


def run(cmd: list[str], log: Path) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as fh:
        proc = subprocess.run(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT)
    if proc.returncode:
        raise SystemExit(f"{cmd[1]} failed (exit {proc.returncode}); see {log}")


def pretrain(config: dict, seed: int, data: list[str], out: Path) -> None:
    if (out / "model.safetensors").is_file():
        return
    print(f"pretraining seed {seed} -> {out}", flush=True)
    run([CLI, "pretrain", "--data", *data, "--out", str(out), "--checkpoint-dir", str(out.parent / f"checkpoints-s{seed}"),
         "--model-spec", json.dumps(config["model"]["tiny"]), "--settings", json.dumps(config["pretrain"]),
         "--gen-length", str(config["decoding"]["gen_length"]), "--seed", str(seed),
         "--threads", str(config["pretrain"]["threads"])], out.parent / f"pretrain-s{seed}.log")


def evaluate(config: dict, model: Path, name: str, task: str, data_dir: Path, out_dir: Path) -> dict[str, bool]:
    """Per-problem correctness at the default cell (every test problem)."""
    problems = out_dir / f"{name}-{task}.problems.jsonl"
    if not problems.is_file():
        dec = config["decoding"]
        cell = {k: dec[k] for k in ("gen_length", "block_length", "steps", "remasking", "schedule")}
        run([CLI, "evaluate", "--model", str(model), "--name", name, "--data", str(data_dir / task / "test.jsonl"),
             "--cells", json.dumps([cell]), "--out-json", str(out_dir / f"{name}-{task}.json"),
             "--out-problems", str(problems), "--batch-size", str(config["evaluation"]["batch_size"]),
             "--max-problems", "0", "--rewards", json.dumps(config.get("rewards") or {}), "--seed", str(config["seed"]),
             "--threads", "2"], out_dir / f"evaluate-{name}-{task}.log")
    return {row["id"]: row["reward"] >= 1.0 for row in read_jsonl(problems)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="local")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--out", type=Path, default=None, help="JSON path (default benchmarks/results/base_seed_spread_<preset>.json)")
    args = ap.parse_args()
    config = load_config(ROOT / f"config/presets/{args.preset}.yaml")
    data_dir = ROOT / f"data/{config['preset']}/tasks"
    run_dir = ROOT / f"results/{config['preset']}"
    tasks = list(config["data"]["tasks"])
    out_dir = run_dir / "seed_spread"
    pretrain_data = [str(data_dir / t / "pretrain.jsonl") for t in tasks]
    for path in pretrain_data + [str(data_dir / t / "test.jsonl") for t in tasks]:
        if not Path(path).is_file():
            raise SystemExit(f"{path} is missing: run the {args.preset} DAG first (make run PRESET={args.preset})")

    t0 = time.monotonic()
    correct: dict[int, dict[str, dict[str, bool]]] = {}
    for seed in args.seeds:
        model = run_dir / "models/base" if seed == config["seed"] else out_dir / f"base-s{seed}"
        if seed != config["seed"]:
            pretrain(config, seed, pretrain_data, model)
        correct[seed] = {t: evaluate(config, model, f"base-s{seed}", t, data_dir, out_dir) for t in tasks}

    first = args.seeds[0]
    rows = []
    print(f"\nbase model at the default cell, by pretraining seed ({args.preset}):")
    print(f"{'seed':>4} {'task':<11} {'n':>5} {'accuracy % [95% CI]':<22} {'vs seed ' + str(first):<30}")
    for seed in args.seeds:
        for task in tasks:
            ok = correct[seed][task]
            n, k = len(ok), sum(ok.values())
            low, high = wilson_interval(k, n)
            row = {"seed": seed, "task": task, "n": n, "accuracy": k / n, "ci_low": low, "ci_high": high}
            diff = ""
            if seed != first:
                ref = correct[first][task]
                cmp = compare_pairs([(ok[i], ref[i]) for i in sorted(ok)])
                row.update({f"vs_seed{first}_{key}": cmp[key] for key in ("difference", "ci_low", "ci_high", "p_value")})
                diff = (f"{100 * cmp['difference']:+.1f} [{100 * cmp['ci_low']:+.1f}, {100 * cmp['ci_high']:+.1f}]"
                        f" p={cmp['p_value']:.3g}")
            rows.append(row)
            print(f"{seed:>4} {task:<11} {n:>5} {f'{100 * k / n:.1f} [{100 * low:.1f}, {100 * high:.1f}]':<22} {diff:<30}")
    out = (args.out or ROOT / f"benchmarks/results/base_seed_spread_{args.preset}.json").absolute()
    write_json(out, {"preset": args.preset, "seeds": args.seeds, "rows": rows, "seconds": round(time.monotonic() - t0, 1)})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
