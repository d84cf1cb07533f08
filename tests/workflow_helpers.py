"""Run the real Snakemake CLI on a private copy of the project (tests never touch the checkout)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROJECT_ITEMS = ["Snakefile", "workflow", "config", "src", "profiles", "envs", "notebooks", "data/reference", "dvc.yaml", "tests/fixtures/paper", "tests/fixtures/tiny_llada",
                 ".dvc/config", ".dvc/.gitignore", ".dvcignore", ".gitignore", "Makefile", "pyproject.toml"]
BIN = Path(sys.executable).parent
GIT = ["git", "-c", "user.name=ci", "-c", "user.email=ci@example.org", "-c", "init.defaultBranch=main"]  # commits in test repos


def free_port() -> int:
    """A TCP port nothing listens on (for a test's own server: sshd, accelerate, TensorBoard)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def copy_project(dest: Path) -> Path:
    for item in PROJECT_ITEMS:
        src = ROOT / item
        if not src.exists():
            continue
        target = dest / item
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", ".ipynb_checkpoints"))
        else:
            shutil.copy2(src, target)
    return dest


def clone_tree(src: Path, dest: Path) -> Path:
    """A copy that keeps mtimes and Snakemake's metadata (cp -a), so reruns are judged as in src."""
    subprocess.run(["cp", "-a", f"{src}/.", str(dest)], check=True)
    return dest


def project_env(workdir: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(workdir / "src")
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("DS_ACCELERATOR", "cpu")  # DeepSpeed on machines without GPUs, without its detection warning
    return env


def run(cmd: list[str], workdir: Path, timeout: int = 900, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=workdir, env=project_env(workdir) | (env or {}), capture_output=True, text=True,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def snakemake(workdir: Path, *args: str, timeout: int = 900, check: bool = True) -> subprocess.CompletedProcess:
    return run([str(BIN / "snakemake"), "--cores", "2", *args], workdir, timeout, check)


def planned_jobs(workdir: Path, *args: str) -> dict[str, int]:
    """Rule -> job count of a dry run (parsed from Snakemake's job-stats table)."""
    out = snakemake(workdir, "-n", "--quiet", "rules", *args).stdout
    counts: dict[str, int] = {}
    in_table = False
    for line in out.splitlines():
        parts = line.split()
        if parts[:2] == ["job", "count"]:
            in_table = True
            continue
        if in_table and len(parts) == 2 and parts[1].isdigit():
            if parts[0] != "total":
                counts[parts[0]] = int(parts[1])
        elif in_table and parts and not set(line.strip()) <= {"-", " "}:
            in_table = False
    return counts


def dry_run_jobs(configfile: str | Path, describe) -> list:
    """``describe(job)`` for every job the DAG of ``configfile`` plans, through Snakemake's Python API
    (a dry run in this process: faster than the CLI, and the jobs' wildcards and resources are at hand)."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, DAGSettings, OutputSettings, Quietness, ResourceSettings

    with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
        workflow = api.workflow(resource_settings=ResourceSettings(cores=1),
                                config_settings=ConfigSettings(configfiles=[Path(configfile)]),
                                snakefile=ROOT / "Snakefile", workdir=ROOT)
        dag = workflow.dag(DAGSettings())
        dag.execute_workflow(executor="dryrun")
        return [describe(job) for job in workflow._workflow.dag.jobs]


# The smoke DAG's stages the DVC tests' producer has finished: all but the evaluations and the report.
SMOKE_PRODUCED = ("data", "base", "mining", "train", "precision")


def smoke_stages(repo: Path, *kinds: str) -> list:
    """The smoke preset's DVC stages of the given kinds (data, base, mining, train, eval, report, ...)."""
    from maskdiff.pipeline import dvc_yaml

    return [s for s in dvc_yaml.preset_stages("smoke", repo) if s.name[len(s.preset) + 1:].split("-")[0] in kinds]

