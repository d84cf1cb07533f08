"""DVC stage by stage: the generated dvc.yaml, and sharing a smoke run with the real CLIs.

Fast checks: dvc.yaml is exactly what ``python -m maskdiff.dvc_stages`` generates from the presets,
and `dvc stage list` shows every preset's stages. Slow ones (real snakemake / dvc / make / git on a
private copy of the project, a local directory remote beside it, as in the committed .dvc/config):

* the stages' outputs cover every file and job of each preset's DAG, and nothing twice;
* a producer runs the smoke DAG up to training and pushes the finished stages *while* a later
  stage is running; a fresh clone pulls them (`make pull`), and `snakemake -n` plans exactly the
  evaluation and the report; `dvc repro` of one evaluation stage then runs just that stage;
* a trainer preempted after its first checkpoint: the checkpoint is pushed, a fresh clone pulls
  it, runs the trainer, and gets the weights of an uninterrupted run, bit for bit;
* an object corrupted in the remote: `make pull` fails loudly and installs nothing (and with the
  remote's `verify` off, the same pull installs the tampered file: the setting is what protects);
* `dvc exp run -S` on a grid value reruns only the new evaluation cells.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from maskdiff.pipeline import dvc_share, dvc_yaml
from maskdiff.config import load_config
from maskdiff.pipeline.models import split_model, trained_models, trains_per_task
from maskdiff.pipeline.trainer_settings import trainer_config
from workflow_helpers import (BIN, GIT, ROOT, SMOKE_PRODUCED, clone_tree, copy_project, planned_jobs, project_env, run,
                              smoke_stages, snakemake)

SMOKE = "config/presets/smoke.yaml"
SMOKE_ARG = f"--configfile={SMOKE}"  # one value: a bare --configfile would swallow the targets
DVC = str(BIN / "dvc")
REMOTE = "store"


# --------------------------------------------------------------------------- generated dvc.yaml


def test_dvc_yaml_is_generated_from_the_presets():
    problem = dvc_yaml.check(ROOT)
    assert not problem, problem


@pytest.mark.parametrize("preset_file", sorted(p.name for p in (ROOT / "config/presets").glob("*.yaml")))
def test_every_preset_has_a_stage_per_shared_piece(preset_file):
    path = ROOT / "config/presets" / preset_file
    cfg = load_config(path)  # a preset stands alone, as the Snakefile reads it
    p = cfg["preset"]
    trained = trained_models(cfg)  # the methods, the rollout-mode ablation, RL-seed replicates
    want = ({f"{p}-{k}" for k in ("data", "base", "mining", "report")} | {f"{p}-train-{m}" for m in trained}
            | {f"{p}-eval-{m}" for m in ["base", *trained]} | ({f"{p}-precision"} if cfg["precision"]["enabled"] else set()))
    stages = dvc_yaml.stages_for(path, ROOT)
    assert {s.name for s in stages} == want
    profile = "profiles/slurm" if any(r.get("gpu") for r in cfg["resources"].values()) else "profiles/local"
    for s in stages:
        assert dvc_share.run_command(s)[1:4] == ["--profile", profile, f"--configfile=config/presets/{preset_file}"]
        assert all(o.startswith((f"data/{p}", f"results/{p}/")) for o in s.all_outs), s.all_outs
    for m in trained:
        train = next(s for s in stages if s.name == f"{p}-train-{m}")
        if trains_per_task(cfg, m):  # one model per task inside models/<m>; curves inside checkpoints/<m>
            assert train.targets == [f"results/{p}/models/{m}/{t}" for t in cfg["data"]["tasks"]]
            assert f"results/{p}/checkpoints/{m}" in train.outs and f"results/{p}/models/{m}" in train.outs
        else:
            assert f"results/{p}/checkpoints/{m}.metrics.jsonl" in train.outs
        settings = trainer_config(cfg, m)  # the trainer's own checkpoint_every / updates (a section may override)
        if settings.checkpoint_every < settings.updates:
            assert train.checkpoint == f"results/{p}/checkpoints/{m}" and train.checkpoint in train.outs
        else:  # no mid-run checkpoint: nothing to push or pull (paper_rehearsal's diffu-GRPO: 20 >= 4 updates)
            assert train.checkpoint is None, (m, train.checkpoint)


@pytest.mark.parametrize("preset", ["paper", "paper_rehearsal"])
def test_paper_presets_have_their_stages(preset):
    """The paper run's six trained models (and, once its preset exists, the rehearsal's)."""
    if not (ROOT / f"config/presets/{preset}.yaml").exists():
        pytest.skip(f"no config/presets/{preset}.yaml yet")
    names = {s.name for s in dvc_yaml.preset_stages(preset, ROOT)}
    six = ["sft", "diffu_grpo", "mdpo", "mdpo_all_data", "mdpo_semi_ar", "mdpo_pure_diff"]
    assert {f"{preset}-train-{m}" for m in six} <= names
    assert {f"{preset}-eval-{m}" for m in ["base", *six]} <= names
    assert {f"{preset}-{k}" for k in ("data", "base", "mining", "report")} <= names
    assert f"{preset}-precision" not in names  # the precision study runs on the local presets only
    train = next(s for s in dvc_yaml.preset_stages(preset, ROOT) if s.name == f"{preset}-train-mdpo")
    assert dvc_share.run_command(train)[1:3] == ["--profile", "profiles/slurm"]


def test_dvc_stage_list_shows_every_preset(tmp_path):
    shutil.copy(ROOT / "dvc.yaml", tmp_path / "dvc.yaml")
    (tmp_path / ".dvc").mkdir()
    shutil.copy(ROOT / ".dvc/config", tmp_path / ".dvc/config")
    run(["git", "init", "-q"], tmp_path)
    listed = run([DVC, "stage", "list"], tmp_path).stdout
    names = [line.split()[0] for line in listed.splitlines() if line.strip()]
    assert names == [s.name for s in dvc_yaml.all_stages(ROOT)]
    presets = {p.stem for p in (ROOT / "config/presets").glob("*.yaml")}
    assert {"local", "smoke", "paper"} <= presets
    assert {n.rsplit("-", 1)[0].split("-")[0] for n in names if n.endswith("-report")} == presets
    run([DVC, "dag", "smoke-report"], tmp_path)  # a valid graph: no overlapping outputs, no cycle


def test_remote_verifies_what_it_downloads():
    cfg = (ROOT / ".dvc/config").read_text()
    assert f"remote = {REMOTE}" in cfg and f"['remote \"{REMOTE}\"']" in cfg
    assert "verify = true" in cfg


# --------------------------------------------------------------------------- the real CLIs


def _commit_all(repo: Path, message: str) -> None:
    run(["git", "add", "-A"], repo)
    run([*GIT, "commit", "-q", "-m", message], repo)


def _make(repo: Path, target: str, *variables: str, check: bool = True) -> subprocess.CompletedProcess:
    """The project's Makefile target with the venv running these tests (never rebuilt: -o stamp)."""
    venv = BIN.parent
    return run(["make", "--no-print-directory", "-o", f"{venv}/.installed", target, f"VENV={venv}", *variables], repo,
               timeout=900, check=check)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _store(repo: Path) -> Path:
    return repo.parent / "maskdiff-dvc-store"  # the committed remote: ../maskdiff-dvc-store beside the clone


def _store_files(store: Path) -> list[Path]:
    return [p for p in store.rglob("*") if p.is_file()]


def _locked(repo: Path) -> dict:
    path = repo / "dvc.lock"
    return yaml.safe_load(path.read_text())["stages"] if path.exists() else {}


def _clone(repo: Path, dest: Path) -> Path:
    run(["git", "clone", "-q", str(repo), str(dest)], dest.parent)
    return dest


@pytest.fixture(scope="module")
def producer(smoke_up_to_training):
    """A git repo of the project that ran the smoke DAG up to training and the precision study
    (conftest; shared with test_workflow.py, so tests change only clone_tree copies of it)."""
    return smoke_up_to_training


def _dag_files(work: Path, preset_file: str) -> tuple[set[str], set[str]]:
    """(outputs, logs + benchmarks) of every job of the preset's whole DAG, through Snakemake's API."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, DAGSettings, OutputSettings, Quietness, ResourceSettings

    with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
        workflow = api.workflow(resource_settings=ResourceSettings(cores=1),
                                config_settings=ConfigSettings(configfiles=[work / "config/presets" / preset_file]),
                                snakefile=work / "Snakefile", workdir=work)
        workflow.dag(DAGSettings()).execute_workflow(executor="dryrun")
        jobs = list(workflow._workflow.dag.jobs)
    outputs = {str(f) for job in jobs for f in job.output}
    side = {str(f) for job in jobs for f in [*job.log, *([job.benchmark] if job.benchmark else [])]}
    return outputs, side


@pytest.mark.slow
@pytest.mark.parametrize("preset_file", sorted(p.name for p in (ROOT / "config/presets").glob("*.yaml")))
def test_stage_outputs_cover_each_dag_exactly_once(preset_file, tmp_path):
    """Every output, log and benchmark of the preset's whole DAG lies in exactly one stage's
    outputs, and every stage target is a file some job makes (no drift from workflow/rules)."""
    work = copy_project(tmp_path)
    cwd = os.getcwd()
    try:
        outputs, side = _dag_files(work, preset_file)
    finally:
        os.chdir(cwd)
    stages = dvc_yaml.stages_for(ROOT / "config/presets" / preset_file, ROOT)
    assert outputs
    for f in outputs | side:
        owners = [s.name for s in stages for o in s.all_outs if dvc_share._under(f, o)]
        assert len(owners) == 1, (f, owners)
    for s in stages:
        missing = [t for t in s.targets if t not in outputs]
        assert not missing, (s.name, missing)


@pytest.mark.slow
def test_produced_files_all_belong_to_a_stage(producer):
    """What the jobs write beside their declared outputs (checkpoints, training curves, logs) is
    tracked too: every file under data/smoke and results/smoke is in exactly one stage's outputs."""
    stages = dvc_yaml.preset_stages("smoke", producer)
    files = [p.relative_to(producer).as_posix() for d in ("data/smoke", "results/smoke")
             for p in (producer / d).rglob("*") if p.is_file()]
    assert any("/checkpoints/sft/" in f for f in files)
    for f in files:
        owners = [s.name for s in stages for o in s.all_outs if dvc_share._under(f, o)]
        assert len(owners) == 1, (f, owners)
    for s in smoke_stages(producer, *SMOKE_PRODUCED):
        assert all((producer / o).exists() for o in s.all_outs), s.name


@pytest.mark.slow
def test_push_while_running_then_a_fresh_clone_continues(producer, tmp_path):
    prod = clone_tree(producer, tmp_path / "producer")
    eval_base = next(s for s in dvc_yaml.preset_stages("smoke", prod) if s.name == "smoke-eval-base")
    # A later stage is running: the base model's evaluation, held (SIGSTOP) inside its first job.
    job = subprocess.Popen([str(BIN / "snakemake"), "--cores", "1", SMOKE_ARG, *eval_base.targets], cwd=prod,
                           env=project_env(prod), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while not any((prod / "results/smoke/logs/evaluate").rglob("*.log")):
            assert job.poll() is None and time.monotonic() < deadline, "the evaluation did not start"
            time.sleep(0.05)
        os.killpg(job.pid, signal.SIGSTOP)
        t0 = time.monotonic()
        pushed = _make(prod, "push", "PRESET=smoke")
        push_s = time.monotonic() - t0
    finally:
        os.killpg(job.pid, signal.SIGCONT)
    assert job.wait(timeout=900) == 0

    produced = {s.name for s in smoke_stages(prod, *SMOKE_PRODUCED)}
    assert set(_locked(prod)) == produced, pushed.stdout
    assert "smoke-eval-base" in pushed.stdout.split("not finished (skipped):")[1].splitlines()[0]
    # Committed while the evaluation ran, still exactly what is on disk now that it has finished.
    status = run([DVC, "status", *sorted(produced)], prod).stdout
    assert "changed" not in status and "deleted" not in status, status
    assert "Cache and remote 'store' are in sync." in run([DVC, "status", "-c", *sorted(produced)], prod).stdout
    store = _store_files(_store(prod))
    print(f"\npush of {len(produced)} smoke stages: {len(store)} objects, "
          f"{sum(p.stat().st_size for p in store) / 1e6:.2f} MB, {push_s:.1f} s (incl. the dry run)")
    _commit_all(prod, "smoke: stages up to training")

    # ---- a colleague's fresh clone
    clone = _clone(prod, tmp_path / "consumer")
    t0 = time.monotonic()
    pulled = _make(clone, "pull", "PRESET=smoke")
    print(f"pull + touch: {time.monotonic() - t0:.1f} s\n{pulled.stdout[-1500:]}")
    for name in ("models/mdpo/model.safetensors", "checkpoints/mdpo/trainer_state.pt", "mining/countdown/stats.json"):
        assert _sha(clone / "results/smoke" / name) == _sha(prod / "results/smoke" / name), name
    assert not (clone / "results/smoke/eval").exists()
    (clone / "src/maskdiff/__pycache__").mkdir(exist_ok=True)  # byte code is no change (.dvcignore)
    (clone / "src/maskdiff/__pycache__/io.cpython-311.pyc").write_bytes(b"\0")
    status = run([DVC, "status", *sorted(produced)], clone).stdout
    assert "changed" not in status and "deleted" not in status, status
    # Snakemake plans exactly what was not pulled: every evaluation, the tables and the report.
    n_eval = sum(len(s.targets) for s in smoke_stages(clone, "eval"))
    assert planned_jobs(clone, SMOKE_ARG) == {"evaluate": n_eval, "aggregate_sweep": 1, "report": 1, "all": 1,
                                              "training_curves": 1, "trajectories": 1, "figures": 1}

    # ---- the colleague continues one stage through DVC: only that stage's jobs run
    repro = run([DVC, "repro", "smoke-eval-base"], clone, timeout=900).stdout
    assert "Stage 'smoke-data' didn't change" in repro and "Running stage 'smoke-eval-base'" in repro, repro
    assert "Running stage 'smoke-base'" not in repro, repro
    for target in eval_base.targets:  # one directory per (model, task): every cell's decoded problems
        cells = sorted(p.relative_to(prod) for p in (prod / target).glob("*.problems.jsonl"))
        assert cells, f"{target}: no decoded problems"
        for problems in cells:
            assert _sha(clone / problems) == _sha(prod / problems), problems
    assert "smoke-eval-base" in _locked(clone)
    assert planned_jobs(clone, SMOKE_ARG)["evaluate"] == n_eval - len(eval_base.targets)
    # The touch recorded provenance: a changed SFT setting reruns the SFT models (and their RL-seed
    # replicates), no other trainer.
    preset = clone / SMOKE
    preset.write_text(preset.read_text().replace("sft: {batch_size: 8}", "sft: {batch_size: 4}"))
    jobs = planned_jobs(clone, SMOKE_ARG)
    n_sft = sum(split_model(s.name.split("-train-")[1])[0] == "sft" for s in smoke_stages(clone, "train"))
    assert jobs["train_sft"] == n_sft and not {"prepare_data", "pretrain_base", "mine_answer_backslide", "train_mdpo"} & set(jobs), jobs


# A trainer preempted right after its first checkpoint: the job dies without any clean-up.
PREEMPT = """\
import os, sys
if os.environ.get("MASKDIFF_TEST_PREEMPT") in sys.argv:
    import maskdiff.train.common as common
    save = common.save_checkpoint
    def save_then_die(*args, **kwargs):
        save(*args, **kwargs)
        os._exit(137)
    common.save_checkpoint = save_then_die
"""


@pytest.mark.slow
def test_pulled_checkpoint_resumes_exactly(producer, tmp_path):
    prod = clone_tree(producer, tmp_path / "producer")
    R = prod / "results/smoke"
    uninterrupted = _sha(R / "models/sft/model.safetensors")
    sft = next(s for s in smoke_stages(prod, "train") if s.name == "smoke-train-sft")
    for out in sft.all_outs:
        path = prod / out
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(PREEMPT)
    env = {"PYTHONPATH": f"{hook}{os.pathsep}{prod / 'src'}", "MASKDIFF_TEST_PREEMPT": "train-sft"}
    killed = run([str(BIN / "snakemake"), "--cores", "1", SMOKE_ARG, *sft.targets], prod, check=False, env=env)
    assert killed.returncode != 0
    assert json.loads((R / "checkpoints/sft/progress.json").read_text())["update"] == 2
    assert not (R / "models/sft").exists()

    pushed = _make(prod, "push", "PRESET=smoke", "STAGES=smoke-data smoke-base smoke-mining smoke-train-sft").stdout
    assert "not finished (skipped): smoke-train-sft" in pushed, pushed
    assert set(_locked(prod)) == {"smoke-data", "smoke-base", "smoke-mining"}
    shared = _make(prod, "push-checkpoints", "PRESET=smoke").stdout
    assert "smoke-train-sft: checkpoint of update 2 pushed" in shared, shared
    entry = {o["path"]: o for o in _locked(prod)["smoke-train-sft"]["outs"]}
    assert "md5" in entry["results/smoke/checkpoints/sft"] and "md5" not in entry["results/smoke/models/sft"]
    _commit_all(prod, "smoke: sft checkpoint")

    clone = _clone(prod, tmp_path / "consumer")
    pulled = _make(clone, "pull", "PRESET=smoke", "STAGES=smoke-train-sft").stdout
    assert "pulled checkpoints (run snakemake to resume these trainers): smoke-train-sft" in pulled, pulled
    C = clone / "results/smoke"
    assert _sha(C / "checkpoints/sft/trainer_state.pt") == _sha(R / "checkpoints/sft/trainer_state.pt")
    assert not (C / "models/sft").exists() and not (C / "models/mdpo").exists()
    assert planned_jobs(clone, SMOKE_ARG, *sft.targets) == {"train_sft": 1}

    snakemake(clone, SMOKE_ARG, *sft.targets)
    assert "resuming from update 2" in (C / "logs/train/sft.log").read_text()
    assert _sha(C / "models/sft/model.safetensors") == uninterrupted, "the resumed run differs from an uninterrupted one"
    updates = [r["update"] for r in map(json.loads, (C / "checkpoints/sft.metrics.jsonl").read_text().splitlines())
               if r["event"] == "update"]
    assert updates == [1, 2, 3, 4]


@pytest.mark.slow
def test_corrupted_remote_object_fails_the_pull(producer, tmp_path):
    prod = clone_tree(producer, tmp_path / "producer")
    _make(prod, "push", "PRESET=smoke", "STAGES=smoke-data smoke-base")
    _commit_all(prod, "smoke: data + base")
    weights = prod / "results/smoke/models/base/model.safetensors"
    obj = _store(prod) / "files/md5" / hashlib.md5(weights.read_bytes()).hexdigest()[:2] / hashlib.md5(weights.read_bytes()).hexdigest()[2:]
    tampered = bytearray(obj.read_bytes())
    tampered[-64:] = bytes(64)  # same size, different weights
    obj.chmod(0o644)
    obj.write_bytes(bytes(tampered))

    clone = _clone(prod, tmp_path / "consumer")
    failed = _make(clone, "pull", "PRESET=smoke", check=False)
    assert failed.returncode != 0
    oid = obj.parent.name + obj.name
    assert f"object {oid} downloaded from the remote does not match its hash" in failed.stderr, failed.stderr
    assert not (clone / "results/smoke/models/base").exists(), "nothing of the corrupted output is installed"
    assert not (clone / ".snakemake/metadata").exists() or not any((clone / ".snakemake/metadata").iterdir())

    # The protection is the remote's `verify`: without it the same pull installs the tampered weights.
    run([DVC, "remote", "modify", "--local", REMOTE, "verify", "false"], clone)
    run([DVC, "pull", "smoke-base"], clone)
    assert (clone / "results/smoke/models/base/model.safetensors").read_bytes() == bytes(tampered)


@pytest.mark.slow
def test_dvc_exp_run_reruns_only_the_invalidated_cells(producer, tmp_path):
    prod = clone_tree(producer, tmp_path / "producer")
    run([DVC, "commit", "-f", "smoke-data", "smoke-base"], prod)
    _commit_all(prod, "smoke: data + base")
    base = prod / "results/smoke/models/base/model.safetensors"
    before = base.stat().st_mtime_ns
    run([DVC, "exp", "run", "smoke-eval-base", "-S", "config/presets/smoke.yaml:evaluation.grid.steps=[8,16]"], prod,
        timeout=900)
    assert base.stat().st_mtime_ns == before, "upstream stages must not rerun"
    groups = sorted(p.name for p in (prod / "results/smoke/eval/base/countdown").glob("*.json"))
    assert groups == ["B16-S16.json", "B16-S8.json", "B4-S16.json", "B4-S8.json"]


@pytest.mark.slow
def test_concurrent_pushes_and_a_pull_between_them(producer, tmp_path):
    """Two clones push different finished stages to one remote at the same time while a third clone
    pulls what the first has recorded: the pull gets complete, verified outputs or fails with a clear
    message and leaves nothing of the stages behind, so Snakemake never takes half a stage as done."""
    shared = tmp_path / "lab"  # the clones sit side by side: the committed remote ../maskdiff-dvc-store is shared
    shared.mkdir()
    first, second = clone_tree(producer, shared / "first"), clone_tree(producer, shared / "second")
    early = [s.name for s in smoke_stages(first, "data", "base", "mining")]
    late = [s.name for s in smoke_stages(second, "train")]
    # The first clone records its stages (dvc.lock, in git) before it uploads them, as a user who commits
    # first: a colleague can clone that record while the objects are still on their way.
    run([str(BIN / "python"), "-c", f"from maskdiff.pipeline.dvc_share import _dvc_commit; _dvc_commit({early!r})"], first)
    _commit_all(first, "smoke: data, base, mining recorded")
    consumer = _clone(first, shared / "consumer")
    targets = [t for s in smoke_stages(consumer, "data", "base", "mining") for t in s.targets]
    outs = [o for s in smoke_stages(consumer, "data", "base", "mining") for o in s.all_outs]

    def check_failed_pull(proc):
        text = proc.stdout + proc.stderr
        assert proc.returncode != 0 and "pulled and recorded as up to date" not in text, text[-2000:]
        assert "dvc pull" in text, text[-2000:]
        assert not [o for o in outs if (consumer / o).exists()], "a failed pull left outputs behind"
        planned = planned_jobs(consumer, SMOKE_ARG, *targets)
        assert planned.get("pretrain_base") == 1 and planned.get("prepare_data") == 2, planned

    # Nothing uploaded yet: the pull fails, naming it, and installs nothing.
    check_failed_pull(_make(consumer, "pull", "PRESET=smoke", f"STAGES={' '.join(early)}", check=False))

    pushes = [subprocess.Popen([str(BIN / "python"), "-m", "maskdiff.dvc_stages", "push", "smoke", *names], cwd=repo,
                               env=project_env(repo), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
              for repo, names in ((first, early), (second, late))]
    t0 = time.monotonic()
    during = _make(consumer, "pull", "PRESET=smoke", f"STAGES={' '.join(early)}", check=False)
    pull_s = time.monotonic() - t0
    logs = [p.communicate(timeout=900)[0] for p in pushes]
    assert [p.returncode for p in pushes] == [0, 0], [text[-3000:] for text in logs]
    if during.returncode == 0:  # everything had arrived: complete, verified, recorded
        assert planned_jobs(consumer, SMOKE_ARG, *targets) == {}
    else:  # some objects were still on their way
        check_failed_pull(during)

    # Both pushes done: the remote holds both clones' stages whole, and the pull succeeds.
    again = _make(consumer, "pull", "PRESET=smoke", f"STAGES={' '.join(early)}")
    assert "pulled and recorded as up to date" in again.stdout
    for name in ("models/base/model.safetensors", "mining/countdown/answer_backslide.jsonl"):
        assert _sha(consumer / "results/smoke" / name) == _sha(first / "results/smoke" / name), name
    assert planned_jobs(consumer, SMOKE_ARG, *targets) == {}
    for repo, names in ((first, early), (second, late)):
        status = run([DVC, "status", "-c", *names], repo).stdout
        assert "Cache and remote 'store' are in sync." in status, status
    print(f"\nconcurrent pushes ({len(early)} + {len(late)} stages), a pull between them "
          f"{'got everything' if during.returncode == 0 else 'failed cleanly'} in {pull_s:.1f} s; after the pushes "
          f"the pull is complete")
