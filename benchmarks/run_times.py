"""Record the measured wall time of a long target and where its job time went, for the README.

The wall time is the last line of a ``/usr/bin/time -f %e`` output file (seconds); the job time is
summed per stage from the Snakemake benchmark files (``s`` column) of the run's results directories.
Each call adds (or replaces) one target in docs/results/run_times.json; ``maskdiff perf-readme`` renders it.
    /usr/bin/time -f %e -o /tmp/run.time make run
    .venv/bin/python benchmarks/run_times.py --command "make run" --what "local DAG from a fresh clone" \\
        --wall-file /tmp/run.time --benchmarks results/local/benchmarks
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = {"prepare_data": "data", "pretrain_base": "pretraining", "fetch_base": "base model", "rollout_shard": "rollouts",
          "mine_answer_backslide": "mining", "train": "training", "evaluate": "evaluation", "aggregate_sweep": "report",
          "report": "report", "precision": "precision", "tuning": "tuning", "training_curves": "report",
          "figures": "report", "trajectories": "evaluation"}


def stage_of(path: Path, root: Path) -> str:
    first = path.relative_to(root).parts[0].removesuffix(".tsv")
    return STAGES.get(first, first)


def job_seconds(roots: list[Path]) -> dict[str, float]:
    totals: dict[str, float] = defaultdict(float)
    for root in roots:
        for path in root.rglob("*.tsv"):
            with open(path) as fh:
                rows = list(csv.DictReader(fh, delimiter="\t"))
            totals[stage_of(path, root)] += sum(float(r["s"]) for r in rows)
    return dict(totals)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--command", required=True, help='what was timed, e.g. "make run"')
    parser.add_argument("--what", required=True, help="one line: what the target does")
    parser.add_argument("--wall-file", required=True, help="the /usr/bin/time -f %%e output")
    parser.add_argument("--benchmarks", nargs="+", required=True, help="Snakemake benchmark directories of the run")
    parser.add_argument("--out", default=str(ROOT / "docs/results/run_times.json"))
    args = parser.parse_args()
    wall = float(Path(args.wall_file).read_text().strip().splitlines()[-1])
    out = Path(args.out)
    data = json.loads(out.read_text()) if out.is_file() else {
        "machine": f"{platform.machine()}, {Path('/proc/cpuinfo').read_text().count('processor')} cores",
        "source": "benchmarks/run_times.py", "targets": []}
    entry = {"command": args.command, "what": args.what, "wall_seconds": round(wall, 1),
             "job_seconds": {k: round(v, 1) for k, v in job_seconds([Path(b) for b in args.benchmarks]).items()}}
    data["targets"] = [t for t in data["targets"] if t["command"] != args.command] + [entry]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    print(json.dumps(entry, indent=2))


if __name__ == "__main__":
    main()
