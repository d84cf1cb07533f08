"""Throughput of the batched decoding engine and of the reward scorer.

Prints a table and writes benchmarks/results/sampler.json. Uses the trained local base model
when it exists (results/local/models/base), else a freshly initialised model of the same size.
    .venv/bin/python benchmarks/bench_sampler.py [--threads 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch

from maskdiff.io import write_json
from maskdiff.models import TinyModelSpec, build_char_tokenizer, build_tiny_model, load_model, load_tokenizer, token_ids
from maskdiff.rewards import RewardCache, score_completions
from maskdiff.sampling.generate import DecodeSettings, generate
from maskdiff.tasks.countdown import generate_countdown

ROOT = Path(__file__).resolve().parents[1]


def load_or_build():
    path = ROOT / "results/local/models/base"
    if (path / "model.safetensors").is_file():
        return load_model(str(path)), load_tokenizer(str(path)), "results/local/models/base"
    tok = build_char_tokenizer()
    ids = token_ids(tok)
    model = build_tiny_model(TinyModelSpec(), len(tok), {"mask": ids.mask, "pad": ids.pad, "eos": ids.eos}).eval()
    return model, tok, "untrained local-size model"


def time_generate(model, prompts, settings, ids, repeats, trajectory):
    best = float("inf")
    for r in range(repeats):
        g = torch.Generator().manual_seed(r)
        t0 = time.perf_counter()
        out = generate(model, prompts, settings, ids, generator=g, record_trajectory=trajectory)
        best = min(best, time.perf_counter() - t0)
    return best, out.nfe


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/sampler.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, tok, source = load_or_build()
    ids = token_ids(tok)
    problems = generate_countdown(256, seed=123, split="bench")
    encoded = [tok(p["prompt"], add_special_tokens=False)["input_ids"] for p in problems]
    length = 9  # an equal-length bucket, as evaluation batches them
    same = [e for e in encoded if len(e) == length]
    rows = []
    for batch in (64, 256):
        prompts = torch.tensor((same * (batch // len(same) + 1))[:batch])
        for block, steps in ((16, 16), (4, 16), (16, 4)):
            for remasking, score in (("lcr", "max"), ("rcr", "max"), ("rcr", "latest"), ("random", "max")):
                for trajectory in (False, True):
                    s = DecodeSettings(16, block, steps, remasking, score)
                    seconds, nfe = time_generate(model, prompts, s, ids, args.repeats, trajectory)
                    rows.append({"batch": batch, "block_length": block, "steps": steps, "remasking": s.label.split("-", 3)[-1],
                                 "trajectory": trajectory, "seconds": seconds, "nfe": nfe,
                                 "tokens_per_s": batch * 16 / seconds, "ms_per_step": 1000 * seconds / steps})
    # Reward scorer: 4096 completions (16 steps x 256 problems), unique answers scored once.
    refs = [{"numbers": p["numbers"], "target": p["target"]} for p in problems] * 16
    texts = [p["solution"] if i % 3 else "1+2" for i, p in enumerate(problems * 16)]
    t0 = time.perf_counter()
    score_completions("countdown", texts, refs)
    countdown_s = time.perf_counter() - t0
    cache = RewardCache()
    math_refs = [{"answer": f"\\frac{{{i % 7 + 1}}}{{{i % 5 + 2}}}"} for i in range(1024)]
    math_texts = [f"\\frac{{{i % 7 + 1}}}{{{i % 5 + 2}}}" if i % 2 else str(i % 9) for i in range(1024)]
    t0 = time.perf_counter()
    score_completions("math", math_texts, math_refs, cache=cache)
    math_cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    score_completions("math", math_texts, math_refs, cache=cache)
    math_warm = time.perf_counter() - t0
    scorer = {"countdown_4096_s": countdown_s, "math_1024_cold_s": math_cold, "math_1024_cached_s": math_warm}

    print(f"model: {source}; threads {args.threads}; best of {args.repeats}; gen length 16")
    print(f"{'batch':>5} {'block':>5} {'steps':>5} {'rule':>12} {'traj':>5} {'tok/s':>9} {'ms/step':>8} {'NFE':>4}")
    for r in rows:
        print(f"{r['batch']:>5} {r['block_length']:>5} {r['steps']:>5} {r['remasking']:>12} {str(r['trajectory']):>5} "
              f"{r['tokens_per_s']:>9.0f} {r['ms_per_step']:>8.1f} {r['nfe']:>4}")
    print("scorer:", {k: round(v, 3) for k, v in scorer.items()})
    write_json(args.out, {"model": source, "threads": args.threads, "machine": platform.machine(),
                          "torch": torch.__version__, "generate": rows, "scorer": scorer})


if __name__ == "__main__":
    main()
