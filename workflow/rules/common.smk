# Helpers shared by the rules: config validation, paths, the decoding grid, and the library
# source files each stage depends on (Snakemake does not track imported Python code by itself).
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "src"))
from maskdiff.config import check_config_files, resolve_extends, validate_config  # noqa: E402
from maskdiff.pipeline.models import ALL_DATA_MODELS, TRAINERS, split_model, trained_models, trains_per_task  # noqa: E402
from maskdiff.pipeline.trainer_settings import trainer_config  # noqa: E402
from maskdiff.train.configs import config_from_json, config_json  # noqa: E402
from maskdiff.tuning import TUNED_KEYS, parse_point, point_name, stage_points  # noqa: E402
from maskdiff.tracking import ENV as TRACKING_ENV, settings_from_config  # noqa: E402
from maskdiff.cluster_failures import report as cluster_failure_report  # noqa: E402
from maskdiff.pipeline import jobs, layout  # noqa: E402
from maskdiff.pipeline.code_deps import stage_code  # noqa: E402
from maskdiff.pipeline.layout import Layout, run_name  # noqa: E402

RUN_STARTED = time.time()  # the onerror handler reports the SLURM resource kills of this run only

# Stop here, before any job, on anything the jobs would trip over: the config files read strictly
# (duplicate keys, YAML errors with their line), then the schema, the cross-field rules and every
# settings dataclass the jobs build. The message names the file and line or the key path.
check_config_files(workflow.configfiles)
_resolved = resolve_extends(dict(config))  # a preset may extend another (paper_rehearsal: paper)
config.clear()
config.update(_resolved)
validate_config(config)

# Rules call the `maskdiff` console script of the interpreter running Snakemake (the project's
# .venv), even when that environment is not activated.
_venv_bin = os.path.dirname(sys.executable)
os.environ.update(PATH=os.pathsep.join([_venv_bin, os.getenv("PATH", "")]))
# OpenMP threads that sleep instead of spinning while they wait: on a machine busier than its
# cores (two jobs of two threads on two cores, or colleagues' jobs) spinning threads slowed a
# 2-thread pretraining step ~1.8x (measured: 3.7 s vs 2.1 s per step under load).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

PRESET = config["preset"]
LAYOUT = Layout.of(PRESET)  # every path of the run (maskdiff.pipeline.layout)
DATA = LAYOUT.data
RESULTS = LAYOUT.results
# Trackers of the training curves (config `tracking`), passed to the jobs through the environment and
# not as a parameter of the rules: turning TensorBoard on or off reruns nothing (maskdiff.tracking).
os.environ[TRACKING_ENV] = settings_from_config(config["tracking"], LAYOUT.tracking, PRESET).to_env()
TASKS = config["data"]["tasks"]
SPLITS = list(layout.SPLITS)
# Tasks whose Answer Backslide set is mined from rollouts (the others use a pre-mined file).
ROLLOUT_TASKS = jobs.rollout_tasks(config)
CONDA_ENV = "../../envs/maskdiff.yaml"
REPORT_NOTEBOOK = layout.REPORT_NOTEBOOK
PRECISION_NOTEBOOK = layout.PRECISION_NOTEBOOK


wildcard_constraints:
    task="|".join(TASKS),
    split="|".join(SPLITS),
    sft_model=r"sft(-s\d+)?",
    grpo_model=r"diffu_grpo(-s\d+)?",
    mdpo_model=r"(mdpo|mdpo_all_data|mdpo_null|mdpo_semi_ar|mdpo_pure_diff)(-s\d+)?",


def as_json(value):
    """A config section as compact JSON, passed to the CLI (and tracked as a param)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def rule_code(*commands, notebooks=()):
    """Source files of the library code of a job: the `maskdiff` subcommands (and notebooks) it
    calls and everything they import, derived from the import graph (maskdiff.pipeline.code_deps).
    Listed as inputs so that editing the science reruns exactly the stages that use it."""
    return stage_code(commands, notebooks)


# Trained models: the configured methods, the rollout-mode ablation, and RL-seed replicates
# (<method>-s1, ...), which are evaluated at the default cell only.
TRAINED_MODELS = trained_models(config)
EVAL_MODELS = jobs.eval_models(config)


def per_task(model):
    """training.per_task names the model's algorithm: one model per task (models/<model>/<task>),
    trained on that task's prompts and evaluated on that task, as each released MDPO run is;
    otherwise one model on every task (models/<model>)."""
    return trains_per_task(config, model)


PRECISION_OUTPUTS = [LAYOUT.result("precision.html")] if config["precision"]["enabled"] else []


def pretrain_seed():
    """The base model's seed: pretrain.seed, or the config's seed when it is null."""
    return config["seed"] if config["pretrain"]["seed"] is None else config["pretrain"]["seed"]


def base_model_path():
    return LAYOUT.base_model


def model_dir(wildcards):
    """The model an evaluation job decodes: the base model, or the trained model of that task."""
    if wildcards.model != "base" and per_task(wildcards.model):
        return LAYOUT.model_dir(run_name(wildcards.model, wildcards.task))
    return LAYOUT.model_dir(wildcards.model)


def train_run(wildcard, algorithm):
    """The run pattern of a training job: {<wildcard>}, or {<wildcard>}/{task} when training.per_task
    names the algorithm (one job per model and task)."""
    return run_name(f"{{{wildcard}}}", "{task}" if per_task(algorithm) else None)


def trained_runs():
    """(model, task) of every training job; task None for a model trained on every task."""
    return jobs.trained_runs(config)


def trained_model_dirs():
    """Every trained model's directory (per task: one per model and task)."""
    return [LAYOUT.model_dir(run_name(m, t)) for m, t in trained_runs()]


def default_cell():
    """The headline decoding cell with LCR: validation curves and tuning scores use it."""
    return jobs.default_cell(config)


def eval_groups(model):
    """The evaluation job of a model (per task): every cell group with its cells and problem count."""
    return jobs.eval_groups(config, model)


def stage_resources(stage):
    """The stage's configured resources; gpu only when > 0 (the slurm profile turns gpu into --gpus)."""
    res = dict(config["resources"][stage])
    if not res.get("gpu"):
        res.pop("gpu", None)
    return res


def reward_settings():
    """The config's rewards section, passed to every job that scores completions."""
    return as_json(config["rewards"])


def model_options():
    m = config["model"]
    keys = ("trust_remote_code_for", "remote_code_sha256", "revision", "mask_token_id", "chat_template", "dtype")
    return as_json({k: m[k] for k in keys})


# ---- used by data.smk
def hub_test_file(wildcards):
    """The paper's Countdown test set is a committed file: an input, so editing it reruns the stage."""
    if config["data"]["source"] == "hub" and wildcards.task == "countdown":
        return [config["data"]["hub"].get("countdown", {}).get("source") or layout.REFERENCE_COUNTDOWN_TEST]
    return []


def data_settings(wildcards):
    if config["data"]["source"] == "hub":
        return as_json(config["data"]["hub"].get(wildcards.task, {}))
    return as_json(config["data"][wildcards.task])


# ---- used by rollouts.smk
def shard_index(wildcards):
    """Snakemake's scatter item '3-of-4' -> 0-based shard index 2."""
    return int(wildcards.scatteritem.split("-of-")[0]) - 1


# ---- used by mining.smk
def rollout_shards(task):
    return gather.rollouts(LAYOUT.rollout_shard(task, "{scatteritem}"))


def mining_inputs(wildcards):
    premined = config["mining"]["premined"].get(wildcards.task)
    if premined:
        return {"premined": premined}
    return {"shards": rollout_shards(wildcards.task)}


# ---- used by train.smk
def tuned_file():
    """The preset's tuned file as a list of inputs (none without one): training and the report read it."""
    return [config["training"]["tuned"]] if config["training"]["tuned"] else []


def trainer_settings(model):
    """The settings ``model`` trains with (built and checked at parse time, see validate_config)."""
    return as_json(config_json(trainer_config(config, model)))


def tuning_point_config(model, point):
    """Trainer settings of a tuning point: the untuned settings with the point's values, no curve."""
    values = config_json(trainer_config(config, model, tuned=False)) | parse_point(point) | {"eval_every": 0}
    return config_json(config_from_json(TRAINERS[model], values))


def tuning_stage_points(model, stage, chosen):
    """The points of tuning stage ``stage`` (1-based) of ``model``, starting from ``chosen``."""
    cfg = trainer_config(config, model, tuned=False)
    fields = set(type(cfg).__dataclass_fields__)
    defaults = {key: getattr(cfg, key) for key in TUNED_KEYS if key in fields}
    return stage_points(config["tuning"]["stages"][stage - 1], TRAINERS[model], fields, chosen, defaults)


def trainer_seed(model):
    """The RL seed of a model: the config's seed, plus k for the replicate <method>-s<k>, plus 1000 per
    step of the base model's seed away from the config's: the base-seed replicates' RL seeds are new
    draws (prompt order, rollout noise), not the same RL seeds again, so RL seeds sit inside base seeds
    as the study's intervals assume."""
    return config["seed"] + split_model(model)[1] + RL_SEEDS_PER_BASE_SEED * (pretrain_seed() - config["seed"])


RL_SEEDS_PER_BASE_SEED = 1000


def launcher():
    """`maskdiff` on one process, or `accelerate launch` with the configured multi-GPU config."""
    gpus = config["resources"]["train"].get("gpu", 0)
    accelerate_config = config["training"]["accelerate_config"]
    if gpus > 1 and accelerate_config:
        return f"accelerate launch --config_file {accelerate_config} --num_processes {gpus} -m maskdiff.cli"
    return "maskdiff"


TRAIN_CODE = rule_code("train-sft", "train-diffu-grpo", "train-mdpo")


def train_tasks(wildcards=None):
    """The tasks a training job reads: its own task (training.per_task), else every task."""
    task = getattr(wildcards, "task", None) if wildcards is not None else None
    return [task] if task else TASKS


def validation_files(wildcards=None):
    """The validation split of the job's tasks: what training curves (and the tuning stage) read. No
    training-time job reads a test file: the test set is read once per model, by `evaluate`."""
    return [LAYOUT.task_file(task, "validation") for task in train_tasks(wildcards)]


def eval_args(wildcards=None):
    return " ".join(f"{task}={path}" for task, path in zip(train_tasks(wildcards), validation_files(wildcards)))


def train_data(name):
    """Input function: the mined set ``name`` (all_data / answer_backslide) of the job's tasks."""

    def files(wildcards):
        return [LAYOUT.mined(task, name) for task in train_tasks(wildcards)]

    return files


def mdpo_train_data(wildcards):
    name = "all_data" if split_model(wildcards.mdpo_model)[0] in ALL_DATA_MODELS else "answer_backslide"
    return train_data(name)(wildcards)


def checkpoint_dir(wildcards, model):
    return LAYOUT.checkpoint_dir(run_name(model, wildcards.task if per_task(model) else None))


def mdpo_fallback(model, tasks=TASKS):
    """Only with mining.fallback_to_all_data, for MDPO on the mined set: all prompts of ``tasks`` when
    the mined set turns out empty."""
    method = split_model(model)[0]
    if not config["mining"]["fallback_to_all_data"] or TRAINERS[method] != "mdpo" or method in ALL_DATA_MODELS:
        return ""
    return "--fallback-train " + " ".join(LAYOUT.mined(task, "all_data") for task in tasks)


# ---- used by report.smk
def eval_outputs(models=None):
    """The evaluation directories (one per model and task; a JSON per cell group inside)."""
    return [LAYOUT.eval_dir(model, task) for model in models or EVAL_MODELS for task in TASKS]


def trajectory_models(wildcards=None):
    """The trained models whose trajectories the report shows next to the base model's: MDPO (per
    task: one per task), when the preset trains it."""
    if "mdpo" not in TRAINED_MODELS:
        return {}
    if per_task("mdpo"):
        return {f"mdpo@{task}": LAYOUT.model_dir(run_name("mdpo", task)) for task in TASKS}
    return {"mdpo": LAYOUT.model_dir("mdpo")}


def dag_benchmarks():
    """Benchmark files of every job the report summarises (stale files of older grids excluded)."""
    return jobs.dag_benchmarks(config, LAYOUT)


# ---- used by tuning.smk


def tuning_settings(wildcards):
    """The trainer settings of one point: the preset's untuned settings plus the point's values
    (no validation curve: a point is scored once, at its final checkpoint)."""
    return as_json(tuning_point_config(wildcards.tmodel, wildcards.point))


def tuning_train_data(wildcards):
    name = "all_data" if wildcards.tmodel in ALL_DATA_MODELS else "answer_backslide"
    return [LAYOUT.mined(task, name) for task in TASKS]


def stage_scores(wildcards):
    """Validation scores of a stage's points; stage k > 1 starts from stage k - 1's choice."""
    k = int(wildcards.stage)
    chosen = {}
    if k > 1:
        previous = checkpoints.tune_stage.get(tmodel=wildcards.tmodel, stage=k - 1).output.table
        with open(previous) as fh:
            chosen = json.load(fh)["chosen"]
    points = tuning_stage_points(wildcards.tmodel, k, chosen)
    return [LAYOUT.tuning_score(wildcards.tmodel, point_name(p)) for p in points]
