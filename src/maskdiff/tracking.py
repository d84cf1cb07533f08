"""Live training curves through accelerate's trackers (TensorBoard by default, any accelerate tracker
that works offline by name).

Every metrics event a trainer or the pretraining writes to its ``metrics.jsonl`` also goes, as
scalars at its update, to the run's trackers: ``train/<key>`` for the update events (loss, reward
mean/std, share of groups with signal, KL, clip fraction, grad norm, lr, tokens/s, ...),
``validation/<key>`` for the validation curve; the run's config becomes its hyperparameters. Only
the main process logs (accelerate's ``log`` and ``init_trackers`` run there only).

The workflow passes the ``tracking`` config section through the environment (``MASKDIFF_TRACKING``,
set by ``workflow/rules/common.smk``), not as a rule parameter: turning a tracker on or off, or
changing its directory, reruns nothing and cannot change a result (loggers draw no random numbers).
No tracker may need a network while a job runs: wandb is started in offline mode, MLflow writes to a
file store under the tracking directory, and trackers that only talk to a server are refused.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InputError
from .pipeline.layout import checkpoint_run

ENV = "MASKDIFF_TRACKING"
# accelerate's trackers that run without a network (a local directory or file store).
OFFLINE_TRACKERS = ("tensorboard", "wandb", "mlflow", "aim", "dvclive")
# accelerate's trackers that need a server while the job runs: refused, naming why.
ONLINE_ONLY = ("comet_ml", "clearml", "swanlab", "trackio")
# The Python package each tracker needs (what `tracking.log_with` is checked against before any job).
PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow", "aim": "aim", "dvclive": "dvclive"}
PREFIX = {"update": "train/", "eval": "validation/"}


@dataclass(frozen=True)
class TrackingSettings:
    """Which trackers, where (``dir``: one subdirectory per run), and the project (the preset)."""

    log_with: tuple[str, ...] = ()
    dir: str = "tracking"
    project: str = "maskdiff"

    def __post_init__(self) -> None:
        check_trackers(self.log_with, "tracking.log_with")

    @property
    def enabled(self) -> bool:
        return bool(self.log_with)

    def to_env(self) -> str:
        return json.dumps({"log_with": list(self.log_with), "dir": self.dir, "project": self.project}, sort_keys=True)


def check_trackers(names, key: str = "tracking.log_with") -> None:
    """Known, offline and installed, or an error that names the key and the fix."""
    import importlib.util

    for name in names:
        if name in ONLINE_ONLY:
            raise InputError(f"config key {key}: {name} needs a server while the job runs; use one of "
                             f"{', '.join(OFFLINE_TRACKERS)} (or none)")
        if name not in OFFLINE_TRACKERS:
            raise InputError(f"config key {key}: unknown tracker {name!r}; choose from {', '.join(OFFLINE_TRACKERS)} "
                             "or none")
        if importlib.util.find_spec(PACKAGES[name]) is None:
            raise InputError(f"config key {key}: {name} is not installed (pip install {PACKAGES[name]})")


def settings_from_config(tracking: dict, default_dir: str, project: str) -> TrackingSettings:
    """The config's ``tracking`` section (``log_with``: tracker names, ``[none]`` or ``[]`` = off);
    ``default_dir`` holds the runs when ``tracking.dir`` is null (the layout's ``results/<preset>/tracking``)."""
    names = tuple(n for n in tracking["log_with"] if n != "none")
    if "none" in tracking["log_with"] and names:
        raise InputError(f"config key tracking.log_with: 'none' together with {list(names)}")
    return TrackingSettings(names, tracking.get("dir") or default_dir, project)


def settings_from_env() -> TrackingSettings:
    """What the workflow set (no variable: no tracker, as for a library call or a test)."""
    text = os.environ.get(ENV)
    if not text:
        return TrackingSettings()
    try:
        values = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"environment variable {ENV} is not JSON: {exc}") from None
    return TrackingSettings(tuple(values.get("log_with", ())), values.get("dir", "tracking"),
                            values.get("project", "maskdiff"))


def run_name(ckpt_dir: str | Path) -> str:
    """The tracker run of a training job, named by its checkpoint directory (see
    :func:`maskdiff.pipeline.layout.checkpoint_run`)."""
    return checkpoint_run(ckpt_dir)


def accelerator_kwargs(settings: TrackingSettings, run: str) -> dict:
    """``Accelerator(...)`` arguments: the trackers and the run's own directory."""
    if not settings.enabled:
        return {}
    return {"log_with": list(settings.log_with), "project_dir": str(Path(settings.dir) / run)}


def _flat(values: dict, prefix: str = "") -> dict[str, Any]:
    """Hyperparameters as trackers take them: nested keys dotted, lists and None as text."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out |= _flat(value, f"{name}.")
        elif isinstance(value, (bool, int, float, str)):
            out[name] = value
        else:
            out[name] = json.dumps(value, default=str)
    return out


def scalars(record: dict, step_key: str) -> dict[str, float]:
    """The finite numbers of an update or eval event, named ``train/<key>`` / ``validation/<key>``."""
    prefix = PREFIX.get(record.get("event"), f"{record.get('event')}/")
    return {f"{prefix}{k}": float(v) for k, v in record.items()
            if k not in (step_key, "event") and isinstance(v, (int, float)) and not isinstance(v, bool)
            and math.isfinite(v)}


class TrackedMetrics:
    """The run's ``metrics.jsonl`` logger, whose update and eval events also reach the trackers."""

    def __init__(self, metrics, accelerator, settings: TrackingSettings, run: str, config: dict, step_key: str,
                 fresh: bool):
        self.metrics, self.accelerator, self.step_key = metrics, accelerator, step_key
        self.active = settings.enabled
        if not self.active:
            return
        if fresh and accelerator.is_main_process:  # a new run: no curve of an earlier attempt stays in view
            shutil.rmtree(Path(settings.dir) / run, ignore_errors=True)
        kwargs = {"wandb": {"name": run, "mode": "offline", "dir": str(Path(settings.dir) / run)},
                  "mlflow": {"run_name": run}}
        if "mlflow" in settings.log_with:
            os.environ.setdefault("MLFLOW_TRACKING_URI", (Path(settings.dir).absolute() / "mlruns").as_uri())
        accelerator.init_trackers(settings.project, config=_flat(config),
                                  init_kwargs={k: v for k, v in kwargs.items() if k in settings.log_with})

    def log(self, **record: Any) -> None:
        self.metrics.log(**record)
        if self.active and record.get("event") in PREFIX and self.step_key in record:
            values = scalars(record, self.step_key)
            if values:
                self.accelerator.log(values, step=int(record[self.step_key]))

    def close(self) -> None:
        self.metrics.close()
        if self.active:
            self.accelerator.end_training()
            self.active = False
