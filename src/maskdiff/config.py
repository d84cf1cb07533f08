"""Configuration: JSON-schema validation with defaults and errors that name the offending key.

The schema (``workflow/schemas/config.schema.yaml``) is the single source of defaults: they are
the ``local`` preset. Presets are partial YAML files merged over the defaults. Both Snakemake
(``workflow/rules/common.smk``) and the tests validate through this module.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator, validators

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """An invalid configuration; the message names the key path."""


def _with_defaults(validator_class):
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return validators.extend(validator_class, {"properties": set_defaults})


_DefaultFilling = _with_defaults(Draft202012Validator)


def load_schema(path: str | Path = SCHEMA_PATH) -> dict:
    with open(path) as fh:
        return yaml.safe_load(fh)


def _describe(error) -> str:
    where = ".".join(str(p) for p in error.absolute_path) or "<top level>"
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        return f"config key {where}: unknown key(s) {unknown}; allowed keys: {allowed}"
    return f"config key {where}: {error.message}"


def validate_config(config: dict, schema: dict | None = None) -> dict:
    """Fill defaults into ``config`` (in place) and validate it; raise ConfigError on any problem."""
    schema = schema or load_schema()
    errors = sorted(_DefaultFilling(schema).iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(_describe(e) for e in errors))
    check_consistency(config)
    return config


def check_consistency(config: dict) -> None:
    """Cross-field rules JSON schema cannot express."""
    dec, grid = config["decoding"], config["evaluation"]["grid"]
    gen = dec["gen_length"]
    for key, blocks in (("decoding.block_length", [dec["block_length"]]), ("evaluation.grid.block_length", grid["block_length"])):
        for block in blocks:
            if gen % block:
                raise ConfigError(f"config key {key}: {block} does not divide decoding.gen_length={gen}")
            for steps in grid["steps"] if key.startswith("evaluation") else [dec["steps"]]:
                if steps % (gen // block):
                    raise ConfigError(
                        f"config key {key}: steps {steps} is not a multiple of the {gen // block} blocks of length {block}"
                    )
    for block in config["rollouts"]["block_lengths"]:
        if gen % block or config["rollouts"]["steps"] % (gen // block):
            raise ConfigError(
                f"config key rollouts.block_lengths: {block} must divide decoding.gen_length={gen} into blocks that "
                f"divide rollouts.steps={config['rollouts']['steps']}"
            )
    unknown = set(config["mining"]["premined"]) - set(config["data"]["tasks"])
    if unknown:
        raise ConfigError(f"config key mining.premined: tasks {sorted(unknown)} are not in data.tasks")
    if config["model"]["source"] == "pretrained" and not config["model"]["name_or_path"]:
        raise ConfigError("config key model.name_or_path: required when model.source is 'pretrained'")


def deep_update(base: dict, override: dict) -> dict:
    """Recursively merge ``override`` into a copy of ``base`` (what Snakemake does with configfiles)."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_update(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_config(*preset_files: str | Path, overrides: dict[str, Any] | None = None) -> dict:
    """Merge preset files (and overrides) and validate: the config a DAG run would see."""
    config: dict = {}
    for path in preset_files:
        with open(path) as fh:
            data = yaml.safe_load(fh) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: a preset must be a YAML mapping")
        config = deep_update(config, data)
    if overrides:
        config = deep_update(config, overrides)
    return validate_config(config)
