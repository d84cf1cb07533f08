"""The config schema file and its hand-written entries by key, for code that needs one default or
choice list without loading (and generating) the whole schema: the CLI's defaults and choices are
read from here, so each exists once (the schema).

Imports nothing of maskdiff: every subcommand loads it.
"""

from __future__ import annotations

import functools
from pathlib import Path

import yaml

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


@functools.cache
def _raw_schema() -> dict:
    with open(SCHEMA_PATH) as fh:
        return yaml.safe_load(fh)


def schema_entry(key: str) -> dict:
    """The schema entry of config key ``key`` (``evaluation.batch_size``) as written in the file."""
    node = _raw_schema()
    for part in key.split("."):
        node = node["properties"][part]
    return node
