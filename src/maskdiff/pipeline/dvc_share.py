"""Running and sharing a preset's DVC stages while its DAG runs (stage definitions:
:mod:`maskdiff.pipeline.dvc_yaml`).

Snakemake stays the executor: a stage's command is one ``snakemake`` call on that stage's targets,
computed from the preset when it runs (so ``dvc exp run -S`` on a grid value still targets the
right cells), and Snakemake decides what is stale. ``push`` commits and uploads only *finished*
stages: every output exists and ``snakemake --summary`` plans no job that writes into them (a
running job's outputs are marked incomplete, so they count as unfinished). ``push-checkpoints``
snapshots the last checkpoint of trainers that have not finished (preempted, or still running) so
that another machine can resume them. ``pull`` fetches the requested stages and everything upstream
of them, then records the complete ones as up to date for Snakemake (``snakemake --touch
--forceall`` on their targets only), so that ``snakemake -n`` afterwards plans exactly the stages
that were not pulled.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from .dvc_yaml import DVC_LOCK, Stage, preset_stages

# --------------------------------------------------------------------------- running and sharing


def _tool(name: str) -> str:
    """A CLI of this interpreter's environment (the project's .venv), even when it is not activated."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


def _echo(cmd: list[str]) -> None:
    print("+ " + shlex.join(cmd), flush=True)


def _call(cmd: list[str]) -> None:
    _echo(cmd)
    rc = subprocess.call(cmd)
    if rc:
        raise SystemExit(f"{cmd[0]} failed (exit {rc})")


def run_command(s: Stage) -> list[str]:
    # `--configfile=` (one value): a bare --configfile would take the targets for config files too.
    return [_tool("snakemake"), "--profile", s.profile, f"--configfile={s.preset_file}", *s.targets]


def pending_outputs(preset_file: str) -> set[str]:
    """Output files that the preset's whole DAG would (re)make now: `snakemake --summary` rows
    whose plan is not "no update" (missing, stale, or incomplete: a job that is running)."""
    cmd = [_tool("snakemake"), "--summary", "--cores", "1", "--rerun-incomplete", f"--configfile={preset_file}"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{shlex.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    rows = [line.split("\t") for line in proc.stdout.splitlines()]
    header = next((r for r in rows if r[0] == "output_file"), None)
    if header is None or "plan" not in header:
        raise SystemExit(f"unexpected `snakemake --summary` output:\n{proc.stdout[-3000:]}")
    plan = header.index("plan")
    return {r[0] for r in rows[rows.index(header) + 1:] if len(r) > plan and r[plan] != "no update"}


def _under(path: str, out: str) -> bool:
    return path == out or path.startswith(out.rstrip("/") + "/")


def finished_stages(stages: list[Stage]) -> list[Stage]:
    """Stages whose outputs all exist and into which no job of the preset's DAG would write now."""
    candidates = [s for s in stages if all(Path(o).exists() for o in s.all_outs)]
    if not candidates:
        return []
    pending = pending_outputs(stages[0].preset_file)
    return [s for s in candidates if not any(_under(f, o) for f in pending for o in s.all_outs)]


def _select(stages: list[Stage], names: list[str]) -> list[Stage]:
    if not names:
        return stages
    by_name = {s.name: s for s in stages}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise SystemExit(f"unknown stage(s) {unknown}; stages of this preset: {', '.join(by_name)}")
    return [by_name[n] for n in names]


def push(preset: str, names: list[str]) -> int:
    """Commit (dvc.lock + cache) and upload every finished stage among ``names`` (default: all)."""
    wanted = _select(preset_stages(preset), names)
    done = finished_stages(wanted)
    waiting = [s.name for s in wanted if s not in done]
    if waiting:
        print(f"not finished (skipped): {' '.join(waiting)}")
    if not done:
        print("nothing finished to push")
        return 0
    targets = [s.name for s in done]
    t0 = time.time()
    _dvc_commit(targets)
    _call([_tool("dvc"), "push", *targets])
    print(f"pushed {len(targets)} stage(s) in {time.time() - t0:.1f} s: {' '.join(targets)}\n"
          f"share the record: git add dvc.lock && git commit -m 'DVC: {preset} stages' && git push")
    return 0


def _dvc_commit(names: list[str], allow_missing: bool = False) -> None:
    """`dvc commit -f <stages>` through DVC's API in one pass: the CLI reads dvc.yaml and dvc.lock
    again for every target (~2 s each here), and cannot record a stage with missing outputs."""
    from dvc.repo import Repo

    print(f"+ dvc commit -f {' '.join(names)}" + ("  (outputs may be missing)" if allow_missing else ""), flush=True)
    with Repo(".") as repo, repo.lock:
        by_name = {s.addressing: s for s in repo.index.stages}
        stages = [by_name[n] for n in names]
        for stage in stages:
            stage.save(allow_missing=allow_missing)
            stage.commit(allow_missing=allow_missing)
        stages[0].dvcfile.dump_stages(stages, update_pipeline=False)


def _checkpoint_identity(ckpt: Path) -> tuple:
    """Trainers replace the checkpoint directory by a rename (atomic_dir): an unchanged inode and
    progress file before and after a commit mean the commit saw one whole checkpoint."""
    progress = ckpt / "progress.json"
    return ckpt.stat().st_ino, progress.read_bytes() if progress.is_file() else None


def push_checkpoints(preset: str, models: list[str]) -> int:
    """Snapshot and upload the last checkpoint of every unfinished trainer (default: all of the
    preset's trainers): a stage entry with the checkpoint and the training curve so far, and no
    model yet. A clone that pulls it and runs the trainer resumes from that checkpoint."""
    trainers = [s for s in preset_stages(preset) if s.checkpoint]
    if models:
        trainers = _select(trainers, [f"{preset}-train-{m}" for m in models])
    done = {s.name for s in finished_stages(trainers)}
    pushed = []
    for s in trainers:
        ckpt = Path(s.checkpoint)
        if s.name in done:
            print(f"{s.name}: finished, `make push` shares the whole stage")
            continue
        if not (ckpt / "progress.json").is_file():
            print(f"{s.name}: no checkpoint yet")
            continue
        for attempt in range(1, 6):
            try:
                before = _checkpoint_identity(ckpt)
                _dvc_commit([s.name], allow_missing=True)
                if _checkpoint_identity(ckpt) == before:
                    break
            except Exception:  # e.g. the directory was gone for a moment, between the two renames
                if attempt == 5:
                    raise
            print(f"{s.name}: the trainer replaced its checkpoint during the commit; again")
            time.sleep(2)
        else:
            raise SystemExit(f"{s.name}: the checkpoint kept changing during the commit")
        present = [o for o in s.all_outs if Path(o).exists()]
        _call([_tool("dvc"), "push", *present])
        print(f"{s.name}: checkpoint of update {_read_update(ckpt)} pushed ({', '.join(present)})")
        pushed.append(s.name)
    if pushed:
        print(f"share the record: git add dvc.lock && git commit -m 'DVC: {preset} checkpoints' && git push")
    return 0


def _read_update(ckpt: Path):
    progress = json.loads((ckpt / "progress.json").read_text())
    return progress.get("update", progress.get("step"))


def _lock_entries() -> dict:
    if not DVC_LOCK.exists():
        return {}
    return (yaml.safe_load(DVC_LOCK.read_text()) or {}).get("stages", {})


def pull(preset: str, names: list[str]) -> int:
    """Fetch the stages ``names`` (default: every stage of the preset recorded in dvc.lock) and
    all their upstream stages, then record the complete ones as up to date for Snakemake."""
    stages = {s.name: s for s in preset_stages(preset)}
    lock = _lock_entries()
    wanted = [s.name for s in _select(list(stages.values()), names)] if names else [n for n in stages if n in lock]
    if not wanted:
        raise SystemExit(f"dvc.lock records no stage of preset {preset}: nothing was pushed yet (make push PRESET={preset})")
    closure, todo = [], list(wanted)
    while todo:
        n = todo.pop()
        if n not in closure:
            closure.append(n)
            todo += stages[n].upstream
    closure = [n for n in stages if n in closure]  # upstream first
    missing = [n for n in closure if n not in lock]
    if missing:
        raise SystemExit(f"not in dvc.lock (never pushed): {' '.join(missing)}; needed for {' '.join(wanted)}")
    complete, partial = [], []
    for n in closure:
        (partial if any("md5" not in o for o in lock[n].get("outs", [])) else complete).append(n)
    for n in partial:
        needed_by = [m for m in closure if n in stages[m].upstream]
        if needed_by:
            raise SystemExit(f"{n} holds only a checkpoint snapshot, not a finished model: {' '.join(needed_by)} cannot be pulled")
    # Stages and single outputs in separate pulls: dvc 3.67 given both checks out only some of them.
    checkpoints = [o["path"] for n in partial for o in lock[n]["outs"] if "md5" in o]
    # A pull that fails half-way (objects still on their way to the remote, a colleague pushing at the
    # same time) must not leave half a stage behind: Snakemake would take an output that exists as done.
    before = {o for n in closure for o in stages[n].all_outs if Path(o).exists()}
    for targets in (complete, checkpoints):
        if targets and not _dvc_pull(targets):
            removed = _remove_new_outputs([o for n in closure for o in stages[n].all_outs], before)
            if removed:
                print(f"removed what the failed pull had installed ({len(removed)} outputs, none recorded as done): "
                      f"{' '.join(removed[:6])}{' ...' if len(removed) > 6 else ''}")
            return 1
    touch = [t for n in complete for t in stages[n].targets]
    if touch:
        # Pulled files have new mtimes and no Snakemake metadata: record exactly these jobs (and their
        # upstream, pulled too) as done, with provenance, so a later change reruns what it invalidates.
        preset_file = stages[complete[0]].preset_file
        cmd = [_tool("snakemake"), "--cores", "1", f"--configfile={preset_file}", "--touch", "--forceall", *touch]
        _echo(cmd[:-len(touch)] + [f"<{len(touch)} targets of the pulled stages>"])
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode:
            raise SystemExit(f"snakemake --touch failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    print(f"pulled and recorded as up to date: {' '.join(complete) or '-'}")
    if partial:
        print(f"pulled checkpoints (run snakemake to resume these trainers): {' '.join(partial)}")
    return 0


def _remove_new_outputs(outs: list[str], before: set[str]) -> list[str]:
    """Delete the outputs among ``outs`` that did not exist before the pull; returns them."""
    removed = []
    for out in outs:
        path = Path(out)
        if out in before or not (path.exists() or path.is_symlink()):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
        removed.append(out)
    return removed


def _dvc_pull(targets: list[str]) -> bool:
    """`dvc pull`, verbose into .dvc/tmp/pull.log; on failure say which objects failed their hash."""
    cmd = [_tool("dvc"), "pull", "-v", *targets]
    _echo(cmd)
    t0 = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    text = proc.stdout + proc.stderr
    log_path = Path(".dvc/tmp/pull.log")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_text(text)
    # The verbose log interleaves debug records and tracebacks with what a plain pull prints: keep
    # the summary lines and the warnings / errors, count the per-path checkout lines.
    changed, in_message = 0, False
    for line in text.splitlines():
        record = re.match(r"^\d{4}-\d\d-\d\d [\d:,]+ (\w+): (.*)", line)
        if record:
            in_message = record.group(1) in ("WARNING", "ERROR")
            if in_message:
                print(f"{record.group(1)}: {record.group(2)}")
        elif line.startswith("Traceback"):
            in_message = False
        elif in_message:
            print(line)  # the rest of a warning or error (e.g. the outputs a checkout failed for)
        elif re.match(r"^[AMD] {2,}\S", line):
            changed += 1
        elif re.match(r"^(\d+ files? |Everything is up to date)", line):
            print(line)
    if proc.returncode == 0:
        print(f"dvc pull: {changed} paths checked out in {time.time() - t0:.1f} s")
        return True
    corrupted = re.findall(r"corrupted cache file '([^']+)'", text)
    msg = [f"dvc pull FAILED (exit {proc.returncode}); nothing was recorded for Snakemake. Full log: {log_path}"]
    for path in corrupted:
        oid = "".join(Path(path).parts[-2:])
        msg.append(f"  object {oid} downloaded from the remote does not match its hash (corrupted or tampered):"
                   f" discarded, NOT installed (the remote has verify = true)")
    if corrupted:
        msg.append("  fix the remote (push the object again from a good cache) before pulling.")
    print("\n".join(msg), file=sys.stderr)
    return False
