"""SLURM's resource kills, read from the job logs the executor plugin keeps, in one line naming the
rule, the resource and how to raise it (the workflow's onerror handler prints these)."""

from __future__ import annotations

import os
import time

from maskdiff.cluster_failures import classify, report, resource_kills

# slurmstepd's own lines (SLURM 22.05, Debian bookworm), as they end a job's log.
TIMEOUT = "slurmstepd: error: *** JOB 41 ON vm CANCELLED AT 2026-12-07T03:10:11 DUE TO TIME LIMIT ***\n"
OOM_CGROUP = ("slurmstepd: error: Detected 1 oom-kill event(s) in StepId=42.batch. Some of your processes may have "
              "been killed by the cgroup out-of-memory handler.\n")
OOM_ACCOUNTING = "slurmstepd: error: Job 43 exceeded memory limit (2150400 > 2048000), being killed\n"


def test_classify_the_kills_slurm_writes():
    assert classify("training...\n" + TIMEOUT) == "time"
    assert classify(OOM_CGROUP) == classify(OOM_ACCOUNTING) == "memory"
    assert classify("Traceback (most recent call last):\nValueError: no training prompts\n") is None
    assert classify("slurmstepd: error: *** JOB 44 ON vm CANCELLED AT 2026-12-07T03:10:11 ***\n") is None  # scancel


def test_messages_name_rule_resource_and_fix(tmp_path):
    logs = tmp_path / ".snakemake/slurm_logs"
    for rule, sub, job, text in (("train_mdpo", "mdpo/math500", "41", TIMEOUT), ("evaluate", "base/countdown", "42",
                                 OOM_CGROUP), ("train_sft", "sft", "44", "ValueError: bad input\n")):
        path = logs / f"rule_{rule}" / sub / f"{job}.log"
        path.parent.mkdir(parents=True)
        path.write_text(text)
    kills = resource_kills(tmp_path)
    assert [(k.rule, k.job, k.resource) for k in kills] == [("evaluate", "42", "memory"), ("train_mdpo", "41", "time")]
    lines = report(tmp_path, since=0)
    assert "rule train_mdpo (SLURM job 41) was killed by SLURM for exceeding its time limit (resource runtime" in lines[1]
    assert "--set-resources train_mdpo:runtime=<minutes>" in lines[1] and "resources.train.runtime" in lines[1]
    assert "--set-resources evaluate:mem_mb=<megabytes>" in lines[0] and "resources.evaluate.mem_mb" in lines[0]
    old = time.time() - 3600  # a kill of an earlier run is not this run's
    for log in logs.rglob("*.log"):
        os.utime(log, (old, old))
    assert report(tmp_path, since=time.time() - 60) == []
