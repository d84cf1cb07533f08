"""Plain helpers shared by test modules (fixtures are in conftest.py; Snakemake runs in workflow_helpers.py)."""

from __future__ import annotations

import torch

from maskdiff.models import load_model


def weights(path, **load_options) -> dict[str, torch.Tensor]:
    """A saved model's parameters, copied; ``load_options`` go to :func:`maskdiff.models.load_model`
    (remote-code allow-list and pins)."""
    return {k: v.clone() for k, v in load_model(str(path), **load_options).state_dict().items()}
