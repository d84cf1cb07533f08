"""Why SLURM ended a job, in one line that names the rule, the resource and the fix.

A job that outgrows its ``runtime`` or ``mem_mb`` is killed by SLURM, and Snakemake reports only that
the job failed (the executor plugin's status is ``TIMEOUT`` or ``OUT_OF_MEMORY``; the reason is in the
job's SLURM log under ``.snakemake/slurm_logs/rule_<rule>/``). The workflow's ``onerror`` handler
reads the logs of this run's failed jobs and says which resource ran out and how to raise it for that
rule only. Without enforcement by the cluster (no cgroup or job accounting limits) nothing is killed
and nothing is reported.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

# slurmstepd's messages (SLURM 22-24): the time limit, and the memory limit (cgroup OOM killer or
# job accounting's OverMemoryKill).
TIME_LIMIT = re.compile(r"DUE TO TIME LIMIT")
MEMORY_LIMIT = re.compile(r"oom-kill|out-of-memory|exceeded (job )?memory limit|memory limit exceeded", re.IGNORECASE)
RESOURCE = {"time": ("runtime", "minutes"), "memory": ("mem_mb", "megabytes")}
# The preset's resources section of each rule (config `resources.<stage>`; workflow/rules/*.smk).
STAGE_OF_RULE = {"train_sft": "train", "train_diffu_grpo": "train", "train_mdpo": "train", "evaluate": "evaluate",
                 "rollout_shard": "rollouts", "mine_answer_backslide": "mining", "pretrain_base": "base_model",
                 "fetch_base": "base_model", "prepare_data": "prepare_data", "aggregate_sweep": "report",
                 "report": "report", "training_curves": "report", "figures": "report", "trajectories": "evaluate",
                 "precision_model_free": "precision", "precision_model": "precision", "precision_report": "precision"}


@dataclass(frozen=True)
class ResourceKill:
    rule: str
    job: str  # the SLURM job id (the log's name)
    resource: str  # "time" or "memory"
    log: Path

    def message(self) -> str:
        key, unit = RESOURCE[self.resource]
        stage = STAGE_OF_RULE.get(self.rule, "<stage>")
        return (f"rule {self.rule} (SLURM job {self.job}) was killed by SLURM for exceeding its {self.resource} limit "
                f"(resource {key}, {unit}; {self.log}). Raise it for this rule only: "
                f"--set-resources {self.rule}:{key}=<{unit}>, or resources.{stage}.{key} in the preset.")


def classify(text: str) -> str | None:
    """"time", "memory" or None for the text of one SLURM job log."""
    if TIME_LIMIT.search(text):
        return "time"
    if MEMORY_LIMIT.search(text):
        return "memory"
    return None


def resource_kills(workdir: str | Path = ".", since: float = 0.0) -> list[ResourceKill]:
    """The resource kills among the SLURM job logs written after ``since`` (seconds since the epoch)."""
    kills = []
    root = Path(workdir) / ".snakemake" / "slurm_logs"
    for log in sorted(root.glob("rule_*/**/*.log")):
        if log.stat().st_mtime < since:
            continue
        kind = classify(log.read_text(errors="replace"))
        if kind:
            rule = next(p for p in log.relative_to(root).parts if p.startswith("rule_"))[len("rule_"):]
            kills.append(ResourceKill(rule, log.stem, kind, log))
    return kills


def report(workdir: str | Path = ".", since: float | None = None) -> list[str]:
    """The messages for this run (``since``: when it started; default the last day)."""
    since = time.time() - 86400 if since is None else since
    return [k.message() for k in resource_kills(workdir, since)]
