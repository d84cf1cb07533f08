"""Integration: the paper rehearsal DAG through a real SLURM cluster (`snakemake --profile slurm`).

The rehearsal preset (config/presets/paper_rehearsal.yaml) is the paper preset with only sizes and
sources changed: the LLaDA-architecture remote-code fixture fetched through fetch_base, the hub
datasets' formats, the paper's prompts, reward rules, trainer switches and grid shape, all six
trainers (on one fake GPU each), evaluation and report. So the paper's own DAG runs end to end,
job by job through sbatch, before a lab spends GPU-hours on it.

tests/slurm/cluster.sh installs SLURM from Debian packages (if needed), starts a one-node cluster
on this machine (partition `ci`, two fake GPUs) and stops it again; the module fixture always stops
it. Skipped only when not root or when the packages cannot be installed. Every job is a real
`sbatch` submission by snakemake-executor-plugin-slurm; the tests check that against SLURM's own
records (slurmctld log, `scontrol show job`) and the plugin's per-job logs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from workflow_helpers import BIN, ROOT, copy_project, project_env

pytestmark = [pytest.mark.slow, pytest.mark.slurm]

CLUSTER = ROOT / "tests/slurm/cluster.sh"
STATE = Path(os.environ.get("MASKDIFF_SLURM_STATE", "/tmp/maskdiff-slurm"))
CTLD_LOG = STATE / "log/slurmctld.log"
PARTITION = "ci"
PRESET = "paper_rehearsal"
SMOKE = ["--configfile", f"config/presets/{PRESET}.yaml"]  # the DAG run through SLURM
# The overrides a user would pass on their cluster. A command-line --default-resources replaces
# the profile's whole block, hence runtime/mem_mb/cpus_per_task are repeated (smaller here).
# Without slurmdbd any account name is accepted. Status checks start after 1 s (the plugin's
# minimum; the profile's 20 s is for real clusters): the plugin then waits 10 s longer after each
# check that finds no job finished, so the rehearsal's short jobs finish in waves of 1 + 11 s
# (2 + 12 s with 2). Successful jobs keep their SLURM logs so they can be counted.
SLURM_ARGS = ["--profile", "slurm", "--default-resources", f"slurm_partition={PARTITION}", "slurm_account=ci",
              "runtime=30", "mem_mb=2000", "cpus_per_task=threads",
              "--slurm-init-seconds-before-status-checks", "1", "--slurm-keep-successful-logs"]
DAG_LIMIT = 1800  # seconds; `timeout -s INT` so that Snakemake cancels its SLURM jobs and exits
LOCAL_RULES = ("fetch_base", "prepare_data")  # workflow/rules/{base_model,data}.smk, paper sources
SUBMITTED = re.compile(r"Job \d+ has been submitted with SLURM jobid (\d+)")


def cluster(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(CLUSTER), *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def ctld_submissions() -> list[str]:
    """Job ids of every batch submission slurmctld accepted (its log survives MinJobAge)."""
    if not CTLD_LOG.exists():
        return []
    return re.findall(r"_slurm_rpc_submit_batch_job: JobId=(\d+)", CTLD_LOG.read_text(errors="replace"))


def scontrol_job(jobid: str) -> str:
    return subprocess.run(["scontrol", "-d", "show", "job", jobid], capture_output=True, text=True, check=True).stdout


def pending(jobid: str) -> str | None:
    """The job's record while it waits in the queue, else None."""
    job = scontrol_job(jobid)
    return job if "JobState=PENDING" in job else None


def slurm_snakemake(workdir: Path, *args: str, limit: int = DAG_LIMIT) -> subprocess.CompletedProcess:
    cmd = ["timeout", "-s", "INT", "-k", "60", str(limit), str(BIN / "snakemake"), *SLURM_ARGS, *args]
    return subprocess.run(cmd, cwd=workdir, env=project_env(workdir), capture_output=True, text=True,
                          timeout=limit + 120, stdin=subprocess.DEVNULL)


def output_of(proc: subprocess.CompletedProcess) -> str:
    return proc.stdout + proc.stderr


def explain(proc: subprocess.CompletedProcess) -> str:
    return f"snakemake exited {proc.returncode}:\n{output_of(proc)[-6000:]}"


@pytest.fixture(scope="module")
def slurm_cluster(request):
    if os.geteuid() != 0:
        pytest.skip("the SLURM test installs packages and starts slurmctld/slurmd/munged: needs root")
    try:
        install = cluster("install", timeout=1800)
    except (OSError, subprocess.TimeoutExpired) as err:
        pytest.skip(f"SLURM packages could not be installed: {err}")
    if install.returncode != 0:
        pytest.skip(f"SLURM packages (slurm-wlm, munge) could not be installed:\n{install.stderr[-2000:]}")
    # Registered before `start`, so even a half-started cluster is stopped.
    request.addfinalizer(lambda: print(cluster("stop").stderr))
    start = cluster("start")
    assert start.returncode == 0, f"cluster.sh start failed:\n{start.stdout}\n{start.stderr}"
    return STATE


@dataclass
class SlurmRun:
    workdir: Path
    proc: subprocess.CompletedProcess
    seconds: float
    submissions: list[str]  # SLURM job ids accepted by slurmctld during the run


def slurm_project(dest: Path) -> Path:
    """copy_project plus the root `slurm` link that `--profile slurm` resolves (./slurm)."""
    work = copy_project(dest)
    (work / "slurm").symlink_to("profiles/slurm")
    return work


@pytest.fixture(scope="module")
def slurm_run(slurm_cluster, tmp_path_factory) -> SlurmRun:
    work = slurm_project(tmp_path_factory.mktemp("slurm_project"))
    before = ctld_submissions()
    t0 = time.monotonic()
    proc = slurm_snakemake(work, *SMOKE)
    seconds = time.monotonic() - t0
    submissions = ctld_submissions()[len(before):]
    return SlurmRun(work, proc, seconds, submissions)


def test_profile_dry_run_plans_jobs_without_a_cluster(tmp_path):
    """`snakemake --profile slurm -n` from the root plans the DAG (no sbatch, no cluster needed)."""
    work = slurm_project(tmp_path / "p")
    proc = subprocess.run([str(BIN / "snakemake"), "--profile", "slurm", "-n", *SMOKE], cwd=work,
                          env=project_env(work), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, explain(proc)
    out = output_of(proc)
    assert "Using profile slurm" in out
    assert re.search(r"^total\s+\d+$", out, re.M), out[-3000:]
    assert "slurm_partition=CHANGE_ME_partition" in out  # the placeholders reach the jobs


def test_profile_never_sets_gpus():
    """GPU requests come from the rules (the preset's resources); the profile must not override them."""
    profile = yaml.safe_load((ROOT / "profiles/slurm/config.yaml").read_text())
    assert profile["executor"] == "slurm"
    assert profile["slurm-status-command"] == "squeue" and profile["slurm-requeue"] is True
    defaults = profile["default-resources"]
    assert {"slurm_partition", "slurm_account", "runtime", "mem_mb", "cpus_per_task"} <= set(defaults)
    assert not {"gpu", "gpu_model", "gres", "gpus"} & set(defaults)
    assert "gpu" not in str(profile.get("set-resources", "")) and "slurm_extra" not in str(profile)
    assert (ROOT / "slurm").resolve() == (ROOT / "profiles/slurm").resolve()
    assert (ROOT / "local").resolve() == (ROOT / "profiles/local").resolve()


def test_rehearsal_dag_runs_through_sbatch(slurm_run, capsys, record_property):
    run = slurm_run
    out = output_of(run.proc)
    assert run.proc.returncode == 0, explain(run.proc)
    work = run.workdir
    results = work / "results" / PRESET
    assert (results / "summary.csv").stat().st_size > 0
    assert "<html" in (results / "report.html").read_text(errors="replace").lower()
    # The paper's six trainers, the RL ones per task (training.per_task, as the released runs), the
    # remote-code base model (pinned code) and the pre-mined CSV. Each task's model validates on its task only.
    for model in ("diffu_grpo", "mdpo", "mdpo_all_data", "mdpo_semi_ar", "mdpo_pure_diff"):
        for task, other in (("math500", "countdown"), ("countdown", "math500")):
            assert (results / "models" / model / task / "model.safetensors").is_file(), (model, task)
            curve = (results / "models" / model / task / "metrics.jsonl").read_text()
            assert f'"eval_n/{task}"' in curve and f'"eval_n/{other}"' not in curve, (model, task)
    assert (results / "models/sft/model.safetensors").is_file(), "SFT: one model on both tasks"
    assert (results / "models/base/config.json").read_text().count("maskdiff_base_model") == 1
    sft_log = (results / "models/sft/metrics.jsonl").read_text()
    assert '"truncated_solutions": ' in sft_log and '"truncated_solutions": 0,' not in sft_log, "over-long solutions cut"

    done = re.findall(r"(\d+) of (\d+) steps \(100%\) done", out)
    assert done, out[-3000:]
    jobs_run = int(done[-1][0])
    # Every job is one sbatch but the `all` target (no shell command, handled by Snakemake itself) and
    # the hub downloads, which the paper presets declare `localrules` (compute nodes often have no
    # internet): the rehearsal runs them on the submitting host, as the paper run will.
    finished = re.findall(r"Finished jobid: \d+ \(Rule: (\w+)\)", out)
    on_host = [rule for rule in finished if rule in LOCAL_RULES]
    assert sorted(set(on_host)) == sorted(LOCAL_RULES), finished
    expected = jobs_run - 1 - len(on_host)
    reported = SUBMITTED.findall(out)
    slurm_logs = sorted((work / ".snakemake/slurm_logs").rglob("*.log"))
    assert not any(f"rule_{r}" in p.parts for p in slurm_logs for r in LOCAL_RULES), "a localrule went to SLURM"
    assert len(reported) == expected, f"{len(reported)} submissions reported for {jobs_run} jobs"
    assert sorted(run.submissions, key=int) == sorted(reported, key=int), "slurmctld saw other submissions"
    assert len(slurm_logs) == expected and {p.stem for p in slurm_logs} == set(reported)

    with capsys.disabled():
        print(f"\n[slurm] {PRESET} DAG through SLURM: {run.seconds:.0f} s wall, {jobs_run} jobs, "
              f"{len(reported)} sbatch submissions (slurmctld: {len(run.submissions)}, "
              f"plugin logs: {len(slurm_logs)})")
    record_property("slurm_wall_seconds", round(run.seconds, 1))
    record_property("slurm_submitted_jobs", len(reported))


def test_a_second_slurm_run_submits_nothing(slurm_run):
    assert slurm_run.proc.returncode == 0, explain(slurm_run.proc)
    before = ctld_submissions()
    proc = slurm_snakemake(slurm_run.workdir, *SMOKE, limit=300)
    assert proc.returncode == 0, explain(proc)
    assert "Nothing to be done" in output_of(proc)
    assert ctld_submissions() == before


def run_gpu_job(run: SlurmRun, *extra: str) -> tuple[str, str, str]:
    """Rerun only the SFT trainer with a GPU request; return (sbatch line, jobid, scontrol output)."""
    assert run.proc.returncode == 0, explain(run.proc)
    # `--` ends the options: --forcerun/--set-resources take any number of values.
    proc = slurm_snakemake(run.workdir, *extra, "--verbose", "--forcerun", "train_sft", "--",
                           f"results/{PRESET}/models/sft", limit=600)
    out = output_of(proc)
    assert proc.returncode == 0, explain(proc)
    calls = [line[line.index("sbatch --"):] for line in out.splitlines() if "sbatch call:" in line]
    assert len(calls) == 1 and "rule_train_sft" in calls[0], calls
    (jobid,) = SUBMITTED.findall(out)
    return calls[0], jobid, scontrol_job(jobid)


def test_gpu_request_from_the_preset_reaches_slurm(slurm_run, tmp_path, capsys):
    """The training rules take `gpu` from the preset's resources; SLURM schedules it on a fake GPU."""
    extra = tmp_path / "one_gpu.yaml"
    extra.write_text("resources:\n  train: {gpu: 1, runtime: 30}\n")
    sbatch, jobid, job = run_gpu_job(slurm_run, *SMOKE, str(extra))
    with capsys.disabled():
        print(f"\n[slurm] GPU job {jobid}: {sbatch[:sbatch.index(' --wrap=')]}")
    assert " --gpus=1" in sbatch and f" -p {PARTITION}" in sbatch and " -t 30" in sbatch
    assert "JobState=COMPLETED" in job and f"Partition={PARTITION}" in job
    assert re.search(r"TresPerJob=\S*gres:gpu:1", job), job
    assert "JOB_GRES=gpu:fake:1" in job, job  # the node's (fake) GPU was allocated to the job
    # Started by the main scheduler ("sched: Allocate") or, when it runs first, by the backfill scheduler
    # ("sched/backfill: _start_job: Started"): seen both ways on this cluster.
    started = rf"(sched: Allocate JobId={jobid} |sched/backfill: _start_job: Started JobId={jobid} )"
    assert re.search(started, CTLD_LOG.read_text(errors="replace")), CTLD_LOG.read_text(errors="replace")[-3000:]


def test_gpu_model_from_set_resources_reaches_slurm(slurm_run, capsys):
    """The profile's documented gpu_model route (`--set-resources rule:gpu_model=...`)."""
    sbatch, jobid, job = run_gpu_job(slurm_run, *SMOKE, "--set-resources", "train_sft:gpu=1",
                                     "train_sft:gpu_model=fake")
    with capsys.disabled():
        print(f"\n[slurm] GPU job {jobid}: {sbatch[:sbatch.index(' --wrap=')]}")
    assert " --gpus=fake:1" in sbatch
    assert "JobState=COMPLETED" in job and re.search(r"TresPerJob=\S*gres:gpu:fake:1", job), job
    assert "JOB_GRES=gpu:fake:1" in job, job


# ----------------------------------------------------------------------------- faults on the cluster
# Each fault test works on its own `cp -a` copy of the finished rehearsal run (Snakemake's metadata
# included), so the tests above still see the run as it finished.
TARGET_MDPO = f"results/{PRESET}/models/mdpo/math500"  # a per-task MDPO trainer of the rehearsal


def start_snakemake(workdir: Path, *args: str) -> subprocess.Popen:
    """Snakemake through the slurm profile, in the background (its own process, to be killed)."""
    return subprocess.Popen([str(BIN / "snakemake"), *SLURM_ARGS, *args], cwd=workdir, env=project_env(workdir),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)


def queued(comment_prefix: str = "rule_") -> dict[str, tuple[str, str]]:
    """SLURM job id -> (comment, state) of the queued and running jobs whose comment (the plugin's
    rule_<rule>_wildcards_...) starts with ``comment_prefix``."""
    out = subprocess.run(["squeue", "-h", "-o", "%i|%k|%T"], capture_output=True, text=True, check=True).stdout
    rows = [line.split("|") for line in out.splitlines() if line.strip()]
    return {jobid: (comment, state) for jobid, comment, state in rows if comment.startswith(comment_prefix)}


def wait_for(condition, limit: float, what: str, step: float = 0.2):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {limit:.0f} s waiting for {what}")


def sha256_of(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def longer_training(tmp_path: Path, updates: int) -> Path:
    """A config overlay: the rehearsal's trainers run ``updates`` updates, a checkpoint every 2."""
    path = tmp_path / f"updates_{updates}.yaml"
    path.write_text(f"training:\n  updates: {updates}\n  checkpoint_every: 2\n  eval_every: 0\n")
    return path


def test_a_cancelled_trainer_resumes_to_the_uninterrupted_weights(slurm_run, tmp_path, capsys):
    """`scancel` of a running trainer after its first checkpoint: the profile's retry resubmits it, the
    trainer resumes from its last checkpoint (and says from which update), and its final weights are
    sha256-identical to an uninterrupted run's."""
    from workflow_helpers import clone_tree

    assert slurm_run.proc.returncode == 0, explain(slurm_run.proc)
    overlay = longer_training(tmp_path, 40)
    args = [*SMOKE, str(overlay), "--forcerun", "train_mdpo", "--", TARGET_MDPO]
    reference = clone_tree(slurm_run.workdir, tmp_path / "reference")
    proc = slurm_snakemake(reference, *args, limit=900)
    assert proc.returncode == 0, explain(proc)
    want = sha256_of(reference / TARGET_MDPO / "model.safetensors")

    work = clone_tree(slurm_run.workdir, tmp_path / "cancelled")
    checkpoints = work / f"results/{PRESET}/checkpoints/mdpo/math500"
    shutil.rmtree(checkpoints)  # the rehearsal's own last checkpoint (4 updates): not this run's
    progress = checkpoints / "progress.json"
    runner = start_snakemake(work, *args)
    try:
        wait_for(progress.exists, 600, "the trainer's first checkpoint")
        (jobid,) = wait_for(lambda: [j for j, (c, s) in queued("rule_train_mdpo").items() if s == "RUNNING"], 60,
                            "the running trainer job")
        at_cancel = json.loads(progress.read_text())["update"]
        subprocess.run(["scancel", jobid], check=True)
        out, _ = runner.communicate(timeout=900)
    finally:
        if runner.poll() is None:
            runner.kill()
    assert runner.returncode == 0, out[-6000:]
    submitted = SUBMITTED.findall(out)
    assert len(submitted) == 2 and submitted[0] == jobid, submitted  # the cancelled job and its retry
    log = (work / f"results/{PRESET}/logs/train/mdpo/math500.log").read_text()
    resumed = re.search(r"resuming from update (\d+)", log)
    assert resumed and 2 <= int(resumed.group(1)) and int(resumed.group(1)) % 2 == 0, log[-3000:]
    assert int(resumed.group(1)) >= at_cancel
    assert sha256_of(work / TARGET_MDPO / "model.safetensors") == want, "resumed weights differ from the uninterrupted run"
    with capsys.disabled():
        print(f"\n[slurm] trainer job {jobid} cancelled at update >= {at_cancel} of 40; retry {submitted[1]} "
              f"resumed from update {resumed.group(1)}; weights sha256 {want[:12]} = uninterrupted")


def test_b_a_killed_scheduler_restarts_without_rerunning_finished_jobs(slurm_run, tmp_path, capsys):
    """SIGKILL of the Snakemake process while evaluation jobs run on the cluster. Its submitted jobs are
    SLURM's: a job that runs to its end records its output itself (the job-side Snakemake writes the
    metadata on the shared filesystem), one that is cancelled leaves no output and an incomplete mark.
    Here the orphans still running a moment after the kill are cancelled; the documented restart
    (`--unlock`, then the same command) reruns exactly the evaluations without a finished output and
    leaves every finished one untouched (file hashes and mtimes)."""
    from workflow_helpers import clone_tree

    assert slurm_run.proc.returncode == 0, explain(slurm_run.proc)
    work = clone_tree(slurm_run.workdir, tmp_path / "killed")
    evals = work / f"results/{PRESET}/eval"
    shutil.rmtree(evals)
    all_evals = {f"{m}/{t}" for m in ["base", "sft", "diffu_grpo", "mdpo", "mdpo_all_data", "mdpo_semi_ar",
                                      "mdpo_pure_diff"] for t in ("math500", "countdown")}

    def finished():  # an evaluation directory with its results (the job-side Snakemake may create it empty first)
        return {p.relative_to(evals).as_posix() for p in evals.glob("*/*")
                if p.is_dir() and not p.name.startswith(".") and any(p.glob("*.problems.jsonl"))}

    # The evaluations as targets: with them deleted and the tables still there, `all` would need nothing.
    targets = [f"results/{PRESET}/eval/{e}" for e in sorted(all_evals)]

    def recorded():  # finished, and its job has left the queue: the job-side Snakemake recorded the output
        in_queue = {c.split("_wildcards_", 1)[1] for c, _ in queued("rule_evaluate").values()}
        return {e for e in finished() if e.replace("/", "_") not in in_queue}

    def midway():
        assert runner.poll() is None, "Snakemake ended before the kill"
        return len(recorded()) >= 2 and any(s == "RUNNING" for _, s in queued("rule_evaluate").values())

    runner = start_snakemake(work, *SMOKE, "--", *targets)
    try:
        wait_for(midway, 900, "two finished evaluations and one running")
        os.kill(runner.pid, signal.SIGKILL)
        runner.communicate(timeout=60)
    finally:
        if runner.poll() is None:
            runner.kill()
    kept = recorded()
    orphans = queued("rule_")
    running = {c.split("_wildcards_", 1)[1] for c, s in orphans.values() if s == "RUNNING" and c.startswith("rule_evaluate")}
    assert orphans, "the jobs Snakemake had submitted outlive it"
    subprocess.run(["scancel", *orphans], check=True)
    wait_for(lambda: not queued("rule_"), 300, "the cancelled jobs to leave the queue", step=1.0)
    done = finished()
    assert kept and kept <= done, (sorted(kept), sorted(done))  # cancelling the orphans removes no finished output
    before = {path: ((evals / path).stat().st_mtime_ns, _tree_sha(evals / path)) for path in done}

    unlock = slurm_snakemake(work, *SMOKE, "--unlock", limit=300)
    assert unlock.returncode == 0, explain(unlock)
    plan = slurm_snakemake(work, *SMOKE, "-n", "--", *targets, limit=300)
    planned = dict(re.findall(r"^(\w+)\s+(\d+)$", output_of(plan).split("Job stats:", 1)[1], re.M))
    proc = slurm_snakemake(work, *SMOKE, "--", *targets)
    out = output_of(proc)
    assert proc.returncode == 0, explain(proc)
    rerun = {m.group(1).replace(" on ", "/") for m in re.finditer(r"Evaluating (\S+ on \S+)", out)}
    assert rerun == all_evals - done, (sorted(rerun), sorted(all_evals - done))
    assert int(planned.get("evaluate", 0)) == len(rerun), planned
    assert running, "an evaluation was running at the kill"
    # each one running at the kill was rerun (cancelled: no output, marked incomplete) or had just finished
    assert all(any(w == r.replace("/", "_") for r in rerun) or any(w == d.replace("/", "_") for d in done)
               for w in running), (running, sorted(rerun))
    for path, (mtime, sha) in before.items():  # finished before the restart: untouched
        assert (evals / path).stat().st_mtime_ns == mtime and _tree_sha(evals / path) == sha, path
    assert finished() == all_evals
    with capsys.disabled():
        print(f"\n[slurm] scheduler SIGKILLed with {len(running)} evaluation(s) running, {len(orphans)} orphaned "
              f"job(s) cancelled; {len(done)} of 14 evaluations had finished ({len(kept)} recorded before the kill) "
              f"and were kept, the restart reran {len(rerun)}")


def _results_of(eval_dir: Path) -> dict:
    """An evaluation directory's results without its timings (wall time, tokens/s): per-problem rows
    byte for byte, cell summaries as values."""
    out = {}
    for p in sorted(eval_dir.iterdir()):
        if p.name.endswith(".problems.jsonl"):
            out[p.name] = p.read_text()
        elif p.suffix == ".json":
            out[p.name] = [{k: v for k, v in cell.items() if not k.endswith(("_s", "tokens_per_s"))}
                           for cell in json.loads(p.read_text())]
    assert out, eval_dir
    return out


def _tree_sha(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        if p.is_file() and not p.name.startswith("."):
            digest.update(p.relative_to(path).as_posix().encode() + p.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def limit_kills(slurm_run, tmp_path_factory) -> tuple[str, float]:
    """One run, on a copy of the rehearsal, with two trainers over their limits: SFT given mem_mb=200
    and diffu-GRPO runtime=1 (minute), both training far longer than the rehearsal does, so SLURM kills
    both (one run for the two kinds: each SLURM run waits out Snakemake's status-check back-off). The
    cluster is restarted with job accounting's OverMemoryKill for this run only (the other tests' jobs
    are sized for the DAG, not for their memory), and restarted without it afterwards. The run's
    output and its seconds."""
    from workflow_helpers import clone_tree

    assert slurm_run.proc.returncode == 0, explain(slurm_run.proc)
    tmp = tmp_path_factory.mktemp("limits")
    work = clone_tree(slurm_run.workdir, tmp / "work")
    overlay = longer_training(tmp, 100000)
    try:
        restart_cluster(memory_kill=True)
        assert "OverMemoryKill" in subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True).stdout
        t0 = time.monotonic()
        proc = slurm_snakemake(work, *SMOKE, str(overlay), "--retries", "0", "--set-resources",
                               "train_sft:mem_mb=200", "train_diffu_grpo:runtime=1", "train_diffu_grpo:mem_mb=8000",
                               "--forcerun", "train_sft", "train_diffu_grpo", "--",
                               f"results/{PRESET}/models/sft", f"results/{PRESET}/models/diffu_grpo/math500", limit=600)
        seconds = time.monotonic() - t0
    finally:
        restart_cluster(memory_kill=False)
    out = output_of(proc)
    assert proc.returncode != 0, out[-3000:]
    return out, seconds


def assert_named_with_fix(limit_kills, rule: str, kind: str, setting: str, capsys) -> None:
    """The run of ``limit_kills`` has a line naming ``rule`` killed for its ``kind`` (time, memory)
    limit and the fix: ``--set-resources <rule>:<setting>`` or the preset's ``resources.train``."""
    out, seconds = limit_kills
    line = next((x for x in out.splitlines() if f"was killed by SLURM for exceeding its {kind} limit" in x
                 and f"rule {rule} (SLURM job" in x), None)
    assert line is not None, out[-6000:]
    key = setting.split("=")[0]
    assert f"--set-resources {rule}:{setting}" in line and f"resources.train.{key}" in line, line
    with capsys.disabled():
        print(f"\n[slurm] {kind} limit kill named (run of {seconds:.0f} s): {line}")


def test_c_a_job_over_its_time_limit_is_named_with_the_fix(limit_kills, capsys):
    """A trainer with runtime=1 (minute) that needs longer: SLURM ends it at its time limit, and the
    run's error output names the rule, the resource and how to raise it for that rule."""
    assert_named_with_fix(limit_kills, "train_diffu_grpo", "time", "runtime=<minutes>", capsys)


def test_d_a_requeued_evaluation_reruns_to_the_same_outputs(slurm_run, tmp_path, capsys):
    """An evaluation job preempted mid-run (`scontrol requeue`, what SLURM does to a preempted job
    submitted with --requeue): it goes back to the queue, runs again from the start, Snakemake waits for
    it, and its outputs are the uninterrupted run's, file for file."""
    from workflow_helpers import clone_tree

    assert slurm_run.proc.returncode == 0, explain(slurm_run.proc)
    work = clone_tree(slurm_run.workdir, tmp_path / "requeued")
    target = f"results/{PRESET}/eval/base/math500"
    runner = start_snakemake(work, *SMOKE, "--forcerun", "evaluate", "--", target)
    try:
        (jobid,) = wait_for(lambda: [j for j, (c, s) in queued("rule_evaluate").items() if s == "RUNNING"], 600,
                            "the running evaluation job")
        subprocess.run(["scontrol", "requeue", jobid], check=True)
        # Back in the queue (after COMPLETING), SLURM holds a requeued job for ~2 minutes
        # (Reason=BeginTime, EligibleTime = requeue + 121 s, measured); on a real cluster that is part
        # of a preemption's cost. The test makes it eligible now, as an admin can (`scontrol update
        # JobId=<id> StartTime=now`): what is under test is the rerun and its outputs, not the hold.
        requeued = wait_for(lambda: pending(jobid), 60, "the requeued job back in the queue")
        assert "Reason=BeginTime" in requeued, requeued
        subprocess.run(["scontrol", "update", f"JobId={jobid}", "StartTime=now"], check=True)
        out, _ = runner.communicate(timeout=900)
    finally:
        if runner.poll() is None:
            runner.kill()
    assert runner.returncode == 0, out[-6000:]
    final = scontrol_job(jobid)
    assert "Restarts=1" in final and "JobState=COMPLETED" in final, (requeued, final)  # ran again, to its end
    assert SUBMITTED.findall(out) == [jobid], "one submission: the requeued job ran again under its own id"
    assert _results_of(work / target) == _results_of(slurm_run.workdir / target), "outputs differ from the first run's"
    with capsys.disabled():
        print(f"\n[slurm] evaluation job {jobid} requeued while running: ran again (Restarts=1), outputs identical")


def test_e_a_job_over_its_memory_limit_is_named_with_the_fix(limit_kills, capsys):
    """A trainer given mem_mb=200 on a cluster that polices memory: SLURM kills it for memory, and the
    run's error output names the rule, the resource and how to raise it for that rule."""
    assert_named_with_fix(limit_kills, "train_sft", "memory", "mem_mb=<megabytes>", capsys)


def restart_cluster(memory_kill: bool) -> None:
    """Stop the test cluster and start it again, with or without memory policing."""
    stop = cluster("stop")
    assert stop.returncode == 0, stop.stderr
    env = dict(os.environ, MASKDIFF_SLURM_MEMORY_KILL="1" if memory_kill else "0")
    start = subprocess.run(["bash", str(CLUSTER), "start"], capture_output=True, text=True, timeout=300,
                           stdin=subprocess.DEVNULL, env=env)
    assert start.returncode == 0, f"cluster.sh start failed:\n{start.stdout}\n{start.stderr}"

