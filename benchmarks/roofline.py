"""Roofline of the `local` model on this machine: what the CPU can do, and what each kind of work gets.

Measured, per thread count (1, 2) and compute dtype (fp32, bf16 autocast):

* peak: a large square matmul (fp32; bf16 inputs), the machine's attainable GFLOP/s;
* the model's forward pass on an evaluation batch, a training step (forward + backward + AdamW),
  a full decode of a batch (every step of the sampler, trajectories recorded as evaluation does),
  each as achieved GFLOP/s (analytic FLOPs / median time) and share of that dtype's peak;
* one RL update of each trainer (diffu-GRPO, MDPO) on the local preset's settings, split into where
  its time goes (sampling, scoring, reference/old log-probs, forward + backward, optimizer), read
  from the trainer's own per-update timings.

Prints a table and writes docs/results/roofline.json. No assertions: the README cites the JSON.
    .venv/bin/python benchmarks/roofline.py [--model results/local/models/base] [--repeats 20]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from maskdiff.io import read_jsonl, write_json, write_jsonl
from maskdiff.models import TinyModelSpec, build_char_tokenizer, build_tiny_model, load_model, load_tokenizer, token_ids
from maskdiff.sampling.generate import DecodeSettings, generate
from maskdiff.tasks.countdown import generate_countdown

ROOT = Path(__file__).resolve().parents[1]
DTYPES = ("fp32", "bf16")


def median_seconds(fn, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def autocast(dtype: str):
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16")


def peak_gflops(dtype: str, repeats: int, n: int = 2048) -> float:
    """A large square matmul: 2 n^3 FLOPs."""
    torch_dtype = torch.bfloat16 if dtype == "bf16" else torch.float32
    a = torch.randn(n, n).to(torch_dtype)
    b = torch.randn(n, n).to(torch_dtype)
    return 2 * n**3 / median_seconds(lambda: a @ b, max(3, repeats // 4)) / 1e9


def forward_flops(model, batch: int, tokens: int) -> float:
    """Analytic FLOPs of one forward pass of a Llama-style model (2 per multiply-add): the linear
    layers of every block, attention scores and values, and the output head."""
    c = model.config
    d, inter, layers, vocab = c.hidden_size, c.intermediate_size, c.num_hidden_layers, c.vocab_size
    per_token = layers * (2 * 4 * d * d + 2 * 3 * d * inter + 2 * 2 * tokens * d) + 2 * d * vocab
    return float(batch * tokens * per_token)


def load_or_build(path: str | None):
    if path and (Path(path) / "model.safetensors").is_file():
        shown = Path(path).resolve()
        shown = shown.relative_to(ROOT) if shown.is_relative_to(ROOT) else shown
        return load_model(path), load_tokenizer(path), shown.as_posix()
    tok = build_char_tokenizer()
    ids = token_ids(tok)
    model = build_tiny_model(TinyModelSpec(), len(tok), {"mask": ids.mask, "pad": ids.pad, "eos": ids.eos})
    return model, tok, "untrained local-size model"


def kernel_rows(model, tok, threads: int, dtype: str, repeats: int, peaks: dict) -> list[dict]:
    ids = token_ids(tok)
    problems = generate_countdown(512, seed=123, split="bench")
    encoded = [tok(p["prompt"], add_special_tokens=False)["input_ids"] for p in problems]
    length = max(set(map(len, encoded)), key=[len(e) for e in encoded].count)  # the commonest prompt length
    batch_size, gen = 128, 16
    prompts = torch.tensor([e for e in encoded if len(e) == length][:batch_size])
    batch = prompts.shape[0]
    x = torch.cat([prompts, torch.full((batch, gen), ids.mask)], dim=1)
    tokens = x.shape[1]
    fwd_flops = forward_flops(model, batch, tokens)
    rows = []

    model.eval()

    def forward():
        with torch.no_grad(), autocast(dtype):
            model(input_ids=x).logits.float()

    t = median_seconds(forward, repeats)
    rows.append(dict(work=f"forward (batch {batch} x {tokens} tokens)", seconds=t, gflop=fwd_flops / 1e9))

    settings = DecodeSettings(gen, gen, 16, "lcr", compute_dtype=dtype)

    def decode():
        generate(model, prompts, settings, ids, generator=torch.Generator().manual_seed(0), record_trajectory=True)

    t = median_seconds(decode, max(3, repeats // 4), warmup=1)
    rows.append(dict(work=f"full decode (batch {batch}, 16 steps, trajectories)", seconds=t, gflop=16 * fwd_flops / 1e9))

    train_model = build_tiny_model(TinyModelSpec(**{k: getattr(model.config, a) for k, a in (
        ("hidden_size", "hidden_size"), ("num_layers", "num_hidden_layers"), ("num_heads", "num_attention_heads"),
        ("intermediate_size", "intermediate_size"), ("max_positions", "max_position_embeddings"))}),
        model.config.vocab_size, {"mask": ids.mask, "pad": ids.pad, "eos": ids.eos})
    train_model.load_state_dict(model.state_dict())
    train_model.train()
    opt = torch.optim.AdamW(train_model.parameters(), lr=1e-5)
    targets = torch.randint(0, model.config.vocab_size, x.shape)

    def train_step():
        with autocast(dtype):
            logits = train_model(input_ids=x).logits
        loss = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), targets.flatten())
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    t = median_seconds(train_step, max(3, repeats // 2))
    rows.append(dict(work=f"training step (batch {batch} x {tokens}, fwd + bwd + AdamW)", seconds=t,
                     gflop=3 * fwd_flops / 1e9))
    for row in rows:
        row |= dict(threads=threads, dtype=dtype, gflops=row["gflop"] / row["seconds"],
                    share_of_peak=row["gflop"] / row["seconds"] / peaks[(threads, dtype)])
    return rows


def rl_update_breakdown(model_dir: str, threads: int, dtype: str, updates: int) -> list[dict]:
    """Where an RL update's time goes, from the trainers' own per-update timings (local settings)."""
    from maskdiff.config import load_config
    from maskdiff.pipeline.trainer_settings import trainer_config
    from maskdiff.train.diffu_grpo import train_diffu_grpo
    from maskdiff.train.mdpo import train_mdpo

    config = load_config(ROOT / "config/presets/local.yaml")
    config["decoding"]["compute_dtype"] = dtype
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        records = generate_countdown(256, seed=7, split="bench-train")
        write_jsonl(Path(tmp) / "train.jsonl", records)
        for name, train in (("diffu_grpo", train_diffu_grpo), ("mdpo_all_data", train_mdpo)):
            cfg = trainer_config(config, name)
            import dataclasses

            cfg = dataclasses.replace(cfg, updates=updates, eval_every=0, checkpoint_every=updates)
            torch.set_num_threads(threads)
            train(model_dir, [str(Path(tmp) / "train.jsonl")], f"{tmp}/{name}", f"{tmp}/ck-{name}", cfg)
            events = [e for e in read_jsonl(f"{tmp}/ck-{name}.metrics.jsonl") if e.get("event") == "update"][1:]
            keys = [k for k in events[0] if k.startswith("time_")]
            parts = {k[len("time_"):-len("_s")]: statistics.median(e[k] for e in events) for k in keys}
            rows.append(dict(trainer=name, threads=threads, dtype=dtype, update_seconds=statistics.median(
                e["seconds"] for e in events), **parts))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "results/local/models/base"))
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--rl-updates", type=int, default=6, help="updates per RL timing run (the first is dropped)")
    parser.add_argument("--out", default=str(ROOT / "docs/results/roofline.json"))
    args = parser.parse_args()
    model, tok, source = load_or_build(args.model)
    peaks, rows, rl = {}, [], []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for dtype in DTYPES:
            peaks[(threads, dtype)] = peak_gflops(dtype, args.repeats)
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for dtype in DTYPES:
            rows += kernel_rows(model, tok, threads, dtype, args.repeats, peaks)
    if source != "untrained local-size model":
        for threads in (1, 2):
            for dtype in DTYPES:
                rl += rl_update_breakdown(args.model, threads, dtype, args.rl_updates)

    print(f"model: {source}; torch {torch.__version__}; {platform.processor() or platform.machine()}")
    print(f"\n{'peak (2048^3 matmul)':<58} {'threads':>7} {'dtype':>5} {'GFLOP/s':>9}")
    for (threads, dtype), value in peaks.items():
        print(f"{'':<58} {threads:>7} {dtype:>5} {value:>9.1f}")
    print(f"\n{'work':<58} {'threads':>7} {'dtype':>5} {'ms':>9} {'GFLOP/s':>9} {'of peak':>8}")
    for r in rows:
        print(f"{r['work']:<58} {r['threads']:>7} {r['dtype']:>5} {1000 * r['seconds']:>9.1f} {r['gflops']:>9.1f} "
              f"{100 * r['share_of_peak']:>7.1f}%")
    if rl:
        parts = [k for k in rl[0] if k not in ("trainer", "threads", "dtype", "update_seconds")]
        print(f"\n{'RL update (s, median)':<22} {'threads':>7} {'dtype':>5} {'total':>7} " + " ".join(f"{p:>12}" for p in parts))
        for r in rl:
            print(f"{r['trainer']:<22} {r['threads']:>7} {r['dtype']:>5} {r['update_seconds']:>7.2f} "
                  + " ".join(f"{r.get(p, float('nan')):>12.2f}" for p in parts))
    write_json(args.out, {
        "model": source, "torch": torch.__version__, "machine": platform.machine(),
        "cpu_flags": sorted(f for f in ("amx_bf16", "avx512_bf16", "avx512f") if f in Path("/proc/cpuinfo").read_text()),
        "peak_gflops": [{"threads": t, "dtype": d, "gflops": v} for (t, d), v in peaks.items()],
        "kernels": rows, "rl_updates": rl,
    })
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
