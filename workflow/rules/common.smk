# Helpers shared by the rules: config validation, paths, the decoding grid, and the library
# source files each stage depends on (Snakemake does not track imported Python code by itself).
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "src"))
from maskdiff.config import validate_config  # noqa: E402

validate_config(config)

# Rules call the `maskdiff` console script of the interpreter running Snakemake (the project's
# .venv), even when that environment is not activated.
_venv_bin = os.path.dirname(sys.executable)
os.environ.update(PATH=os.pathsep.join([_venv_bin, os.getenv("PATH", "")]))

PRESET = config["preset"]
DATA = f"data/{PRESET}"
RESULTS = f"results/{PRESET}"
LOGS = f"{RESULTS}/logs"
TASKS = config["data"]["tasks"]
SPLITS = ["pretrain", "train", "test"]
# Tasks whose Answer Backslide set is mined from rollouts (the others use a pre-mined file).
ROLLOUT_TASKS = [t for t in TASKS if t not in config["mining"]["premined"]]
CONDA_ENV = "../../envs/maskdiff.yaml"


wildcard_constraints:
    task="|".join(TASKS),
    split="|".join(SPLITS),
    group=r"B\d+-S\d+",
    mdpo_variant="mdpo|mdpo_all_data|mdpo_semi_ar|mdpo_pure_diff",


def as_json(value):
    """A config section as compact JSON, passed to the CLI (and tracked as a param)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def library_code(*parts):
    """Source files of the library modules a rule runs (directories expand to their .py files).
    Listed as inputs so that editing the science reruns exactly the stages that use it."""
    base = Path(workflow.basedir) / "src" / "maskdiff"
    files = {"__init__.py", "cli.py", "io.py", "seeding.py"}
    for part in parts:
        path = base / part
        if path.is_dir():
            files.update(str(p.relative_to(base)) for p in sorted(path.glob("*.py")))
        else:
            files.add(part)
    return sorted(f"src/maskdiff/{f}" for f in files)


# Rollout-mode ablation: model name -> MDPO rollout modes (plain `mdpo` is mixed).
MDPO_MODES = {"mdpo_semi_ar": ["semi_ar"], "mdpo_pure_diff": ["pure_diff"]}
TRAINED_MODELS = list(config["training"]["models"]) + (list(MDPO_MODES) if config["training"]["ablation"] else [])
EVAL_MODELS = ["base"] + TRAINED_MODELS


def base_model_path():
    return f"{RESULTS}/models/base"


def model_dir(wildcards):
    return f"{RESULTS}/models/{wildcards.model}"


def cell_groups():
    """Evaluation jobs: one per (block length, steps) pair of the grid, plus the default cell."""
    grid, dec = config["evaluation"]["grid"], config["decoding"]
    pairs = {(b, s) for b in grid["block_length"] for s in grid["steps"]}
    pairs.add((dec["block_length"], dec["steps"]))
    return [f"B{b}-S{s}" for b, s in sorted(pairs)]


def group_cells(group):
    """Decoding cells of one group: every remasking rule of the grid (and the default one)."""
    block, steps = (int(part[1:]) for part in group.split("-"))
    remaskings = list(config["evaluation"]["grid"]["remasking"])
    if config["decoding"]["remasking"] not in remaskings:
        remaskings.append(config["decoding"]["remasking"])
    dec = config["decoding"]
    return [
        {"gen_length": dec["gen_length"], "block_length": block, "steps": steps, "remasking": r, "schedule": dec["schedule"]}
        for r in remaskings
    ]


def model_options():
    m = config["model"]
    return as_json({k: m[k] for k in ("trust_remote_code_for", "mask_token_id", "chat_template")})
