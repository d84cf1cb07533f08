"""The command line of the DVC stages: ``python -m maskdiff.dvc_stages <command>``. Stage
definitions and ``dvc.yaml``: :mod:`maskdiff.pipeline.dvc_yaml`; running and sharing:
:mod:`maskdiff.pipeline.dvc_share`::

    python -m maskdiff.dvc_stages write             # regenerate dvc.yaml   (make dvc-yaml)
    python -m maskdiff.dvc_stages check             # exit 1 when dvc.yaml is stale
    python -m maskdiff.dvc_stages run <stage>       # a stage's command (dvc repro calls it)
    python -m maskdiff.dvc_stages push <preset> [stage ...]            # make push
    python -m maskdiff.dvc_stages push-checkpoints <preset> [model ...]  # make push-checkpoints
    python -m maskdiff.dvc_stages pull <preset> [stage ...]            # make pull
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from .pipeline.dvc_share import _echo, pull, push, push_checkpoints, run_command
from .pipeline.dvc_yaml import DVC_YAML, all_stages, check, find_stage, render

# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m maskdiff.dvc_stages", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("write", help="regenerate dvc.yaml from config/presets/*.yaml")
    sub.add_parser("check", help="exit 1 (with a diff) when dvc.yaml differs from the generated one")
    p = sub.add_parser("run", help="a stage's command: snakemake on the stage's targets")
    p.add_argument("stage")
    p.add_argument("--print", action="store_true", help="print the snakemake command, do not run it")
    p = sub.add_parser("push", help="dvc commit + push every finished stage of a preset")
    p.add_argument("preset")
    p.add_argument("stages", nargs="*")
    p = sub.add_parser("push-checkpoints", help="snapshot + push the last checkpoint of unfinished trainers")
    p.add_argument("preset")
    p.add_argument("models", nargs="*")
    p = sub.add_parser("pull", help="dvc pull stages (+ upstream), then snakemake --touch their targets")
    p.add_argument("preset")
    p.add_argument("stages", nargs="*")
    args = parser.parse_args(argv)

    if args.command == "write":
        stages = all_stages()
        DVC_YAML.write_text(render(stages))
        print(f"wrote {DVC_YAML} ({len(stages)} stages)")
        return 0
    if args.command == "check":
        problem = check()
        print(problem or "dvc.yaml is up to date", file=sys.stderr if problem else sys.stdout)
        return 1 if problem else 0
    if args.command == "run":
        cmd = run_command(find_stage(args.stage))
        _echo(cmd)
        return 0 if args.print else subprocess.call(cmd)
    if args.command == "push":
        return push(args.preset, args.stages)
    if args.command == "push-checkpoints":
        return push_checkpoints(args.preset, args.models)
    return pull(args.preset, args.stages)


if __name__ == "__main__":
    sys.exit(main())
