"""Does bf16 inference change the science? The base model at the default cell, fp32 vs bf16 forward.

Decodes every validation problem of every task (never the test set) at the preset's default cell
with the network forward in fp32 and under bf16 autocast (the categorical draw and confidences stay
fp64 either way), and compares the two paired per problem: accuracy of each, the difference with
Newcombe's 95% interval, the exact McNemar p, how many completions differ, and the decode time.
Prints a table and writes docs/results/bf16_accuracy_<preset>.json.
    .venv/bin/python benchmarks/bf16_accuracy.py [--preset local] [--threads 1]
"""

from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path

import torch

from maskdiff.config import load_config
from maskdiff.evaluate import evaluate_cell
from maskdiff.io import write_json
from maskdiff.learning import paired_comparison
from maskdiff.models import load_model, load_tokenizer, token_ids
from maskdiff.sampling.generate import settings_from_config
from maskdiff.tasks.records import read_task_records

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="local")
    parser.add_argument("--model", default=None, help="default: results/<preset>/models/base")
    parser.add_argument("--data", default=None, help="default: data/<preset>/tasks (a validation.jsonl per task)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = load_config(ROOT / f"config/presets/{args.preset}.yaml")
    model_dir = args.model or str(ROOT / f"results/{args.preset}/models/base")
    data_dir = Path(args.data or ROOT / f"data/{args.preset}/tasks")
    model, tok = load_model(model_dir), load_tokenizer(model_dir)
    ids = token_ids(tok, model.config)
    dec = config["decoding"]
    cell = {k: dec[k] for k in ("gen_length", "block_length", "steps", "schedule")} | {"remasking": "lcr"}
    rows = []
    for task in config["data"]["tasks"]:
        records = read_task_records(data_dir / task / "validation.jsonl", "validation")
        out = {}
        for dtype in ("fp32", "bf16"):
            t0 = time.perf_counter()
            summary, problems = evaluate_cell(model, tok, ids, records, settings_from_config(cell | {"compute_dtype": dtype}),
                                              config["evaluation"]["batch_size"], config["seed"])
            out[dtype] = (summary, problems, time.perf_counter() - t0)
        (s32, p32, t32), (s16, p16, t16) = out["fp32"], out["bf16"]
        cmp = paired_comparison({r["id"]: r["reward"] > 0.5 for r in p16}, {r["id"]: r["reward"] > 0.5 for r in p32})
        differ = sum(a["completion"] != b["completion"] for a, b in zip(p16, p32))
        rows.append({"task": task, "n": cmp["n"], "fp32": s32["accuracy"], "bf16": s16["accuracy"],
                     "difference": cmp["difference"], "ci_low": cmp["ci_low"], "ci_high": cmp["ci_high"],
                     "mcnemar_p": cmp["p_value"], "completions_differ": differ, "fp32_seconds": t32, "bf16_seconds": t16})
    print(f"model {model_dir}, default cell {cell}, validation problems")
    print(f"{'task':<11} {'n':>5} {'fp32 %':>7} {'bf16 %':>7} {'bf16 - fp32 [95% CI]':>26} {'McNemar p':>10} "
          f"{'differ':>7} {'fp32 s':>7} {'bf16 s':>7}")
    for r in rows:
        ci = f"{100 * r['difference']:+.1f} [{100 * r['ci_low']:+.1f}, {100 * r['ci_high']:+.1f}]"
        print(f"{r['task']:<11} {r['n']:>5} {100 * r['fp32']:>7.1f} {100 * r['bf16']:>7.1f} {ci:>26} "
              f"{r['mcnemar_p']:>10.3g} {r['completions_differ']:>7} {r['fp32_seconds']:>7.1f} {r['bf16_seconds']:>7.1f}")
    out_path = Path(args.out or ROOT / f"docs/results/bf16_accuracy_{args.preset}.json")
    shown = Path(model_dir).resolve()
    shown = shown.relative_to(ROOT) if shown.is_relative_to(ROOT) else shown
    sha = hashlib.sha256((Path(model_dir) / "model.safetensors").read_bytes()).hexdigest()
    write_json(out_path, {"preset": args.preset, "model": shown.as_posix(), "model_sha256": sha, "cell": cell,
                          "threads": args.threads, "rows": rows})
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
