"""Configuration: JSON-schema validation with defaults and errors that name the offending key.

Defaults are the ``local`` preset, and each is defined once. A key that is a field of a settings
dataclass takes its default from the dataclass; every other key's default is in the schema
(``workflow/schemas/config.schema.yaml``). The schema refers to the dataclasses in two ways, both
generated when it is loaded (:func:`maskdiff.config_schema.load_schema`):

* ``x-defaults-from: module.Class`` (the precision sections): one property per field with the
  dataclass's default, filled into the config, so a preset that sets one key leaves the others at
  the dataclass's values and the filled config shows what runs.
* ``x-documents: module.Class`` (the trainer sections ``training.sft`` / ``diffu_grpo`` / ``mdpo``):
  documented, not filled. One property per field with its type, its default as ``x-default`` and
  its source comment as description, but nothing is copied into the config:
  :func:`maskdiff.pipeline.trainer_settings.trainer_config` merges the section over the shared keys and the
  tuned file, which a filled section would override. ``x-default-from`` names the config key a
  field's value comes from when the section does not set it; ``x-set-by-workflow`` the fields a
  section may not set.

Hand-written sections that mirror a dataclass (``pretrain``, ``data.countdown``,
``data.arithmetic``, ``model.tiny``) are checked equal to it by ``tests/test_config_defaults.py``.
Presets are partial YAML files merged over the defaults. Both Snakemake
(``workflow/rules/common.smk``) and the tests validate through this module.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator, ValidationError, validators

from .config_schema import load_schema
from .errors import InputError

PRESETS_DIR = Path(__file__).resolve().parents[2] / "config" / "presets"
LOCAL_DATA_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")


class ConfigError(InputError):
    """An invalid configuration; the message names the key path (or the file and line)."""


# ---------------------------------------------------------------- YAML: duplicate keys, line numbers
class _StrictLoader(yaml.SafeLoader):
    """A YAML loader that rejects a key given twice in one mapping (plain YAML keeps the last one
    silently, so a second ``pretrain:`` block would replace the whole first one)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first given on line {seen[key] + 1})", key_node.start_mark)
        seen[key] = key_node.start_mark.line
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_yaml(path: str | Path) -> Any:
    """A YAML file, strictly: syntax errors and duplicate keys raise ConfigError with ``file:line``."""
    try:
        with open(path) as fh:
            return yaml.load(fh, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        context, start = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        if context and start and mark and start.line != mark.line:  # an unclosed [ or { is found lines later
            problem += f" ({context} at {path}:{start.line + 1}:{start.column + 1})"
        raise ConfigError(f"{where}: {problem}") from None


def check_config_files(paths) -> None:
    """Re-read the YAML files a run was configured with, strictly (Snakemake's own loader keeps the
    last of two equal keys and reports syntax errors without a line)."""
    for path in paths:
        data = read_yaml(path)
        if data is None:
            raise ConfigError(f"{path}: the config file is empty (it should map keys to values, e.g. `preset: local`)")
        if not isinstance(data, dict):
            raise ConfigError(f"{path}:1:1: a config file maps keys to values at its top level; this one holds a "
                              f"{type(data).__name__}")


# ---------------------------------------------------------------- JSON schema with defaults
def _with_defaults(validator_class):
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if "x-documents" in schema:
            # Documented, not filled (see the module docstring): building the dataclass checks the
            # types and names an unknown key with a did-you-mean hint (check_sections).
            taken = sorted(set(instance) & set(schema.get("x-set-by-workflow", {}))) if isinstance(instance, dict) else []
            if taken:
                sources = "; ".join(f"{k}: {schema['x-set-by-workflow'][k]}" for k in taken)
                yield ValidationError(f"{taken} set by the workflow, not by this section ({sources})")
            return
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    # JSON Schema counts 30.0 as an integer (and Python's True as one): a trainer would then get a
    # float where it counts. Integers are ints here, numbers are never booleans.
    type_checker = validator_class.TYPE_CHECKER.redefine_many({
        "integer": lambda _, x: isinstance(x, int) and not isinstance(x, bool),
        "number": lambda _, x: isinstance(x, (int, float)) and not isinstance(x, bool),
    })
    strict = validators.extend(validator_class, type_checker=type_checker)
    return validators.extend(strict, {"properties": set_defaults})


_DefaultFilling = _with_defaults(Draft202012Validator)


def _describe(error) -> str:
    where = ".".join(str(p) for p in error.absolute_path) or "<top level>"
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        return f"config key {where}: unknown key(s) {unknown}; allowed keys: {allowed}"
    return f"config key {where}: {error.message}"


def validate_config(config: dict, schema: dict | None = None) -> dict:
    """Fill defaults into ``config`` (in place) and validate it: the schema, the cross-field rules,
    and every settings dataclass the jobs will build. Raise ConfigError naming the key."""
    schema = schema or load_schema()
    errors = sorted(_DefaultFilling(schema).iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(_describe(e) for e in errors))
    check_consistency(config)
    check_sections(config)
    return config


def check_consistency(config: dict) -> None:
    """Cross-field rules JSON schema cannot express."""
    dec, grid = config["decoding"], config["evaluation"]["grid"]
    gen = dec["gen_length"]
    for prefix, blocks, all_steps in (("decoding", [dec["block_length"]], [dec["steps"]]),
                                      ("evaluation.grid", grid["block_length"], grid["steps"])):
        for block in blocks:
            if gen % block:
                raise ConfigError(f"config key {prefix}.block_length: {block} does not divide decoding.gen_length={gen}")
            for steps in all_steps:
                if steps % (gen // block):
                    raise ConfigError(
                        f"config key {prefix}.steps: {steps} steps cannot be split evenly over the {gen // block} blocks "
                        f"that {prefix}.block_length={block} makes of decoding.gen_length={gen} (steps must be a "
                        "multiple of gen_length / block_length)")
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
    _check_data(config)
    _check_model(config)
    _check_files(config)
    pre = config["pretrain"]
    if pre["warmup_steps"] > pre["steps"]:
        raise ConfigError(f"config key pretrain.warmup_steps: {pre['warmup_steps']} exceeds pretrain.steps={pre['steps']}")
    if config["precision"]["enabled"] and config["precision"]["task"] not in config["data"]["tasks"]:
        raise ConfigError(f"config key precision.task: {config['precision']['task']!r} is not in data.tasks "
                          f"{config['data']['tasks']}")


GENERATED_TASKS = ("countdown", "arithmetic")
HUB_TASKS = ("math500", "countdown")


def _check_data(config: dict) -> None:
    data = config["data"]
    tasks = data["tasks"]
    if len(set(tasks)) != len(tasks):
        raise ConfigError(f"config key data.tasks: a task is listed twice: {tasks}")
    allowed = GENERATED_TASKS if data["source"] == "generated" else HUB_TASKS
    bad = [t for t in tasks if t not in allowed]
    if bad:
        raise ConfigError(f"config key data.tasks: {bad} cannot be built with data.source: {data['source']} "
                          f"(it builds {list(allowed)})")
    if data["source"] == "generated":
        from .settings import build
        from .tasks.arithmetic import ArithmeticSpec
        from .tasks.countdown import CountdownSpec

        specs = {"countdown": CountdownSpec, "arithmetic": ArithmeticSpec}
        for task in tasks:
            section = data[task]
            fields = {k: v for k, v in section.items() if k in specs[task].__dataclass_fields__}
            build(specs[task], fields, f"data.{task}")
            for split in ("train", "test") + (("pretrain",) if config["model"]["source"] == "tiny" else ()):
                if section.get(f"n_{split}", 1) < 1 and not (split == "test" and section.get("test_file")):
                    raise ConfigError(f"config key data.{task}.n_{split}: must be >= 1 (the {split} split of "
                                      f"{task} would be empty), got {section[f'n_{split}']}")
            space = problem_space(task, section)
            wanted = section["n_test"] * (not section.get("test_file")) + section["n_train"] + section["n_validation"]
            if space is not None and wanted > 0.9 * space:
                raise ConfigError(f"config key data.{task}: n_test + n_validation + n_train = {wanted} distinct problems asked for, but "
                                  f"these settings have only {space} (the generator stalls beyond ~90%); widen the "
                                  "number/target ranges or lower the split sizes")
            training = config["training"]
            if training["eval_every"] and training["eval_problems"] > section["n_validation"]:
                raise ConfigError(f"config key training.eval_problems: {training['eval_problems']} validation problems per "
                                  f"curve point, but data.{task}.n_validation is {section['n_validation']}")
            if task not in config["mining"]["premined"] and config["rollouts"]["shards"] > section["n_train"]:
                raise ConfigError(f"config key rollouts.shards: {config['rollouts']['shards']} shards for "
                                  f"{section['n_train']} {task} training prompts would leave shards empty")


def problem_space(task: str, section: dict) -> int | None:
    """How many distinct problems the generator can make (None when too costly to count: Countdown
    with more than 3 numbers)."""
    if task == "arithmetic":
        from .tasks.arithmetic import _TEMPLATES

        values = section["max_number"] - section["min_number"] + 1
        return sum(values ** _TEMPLATES[t][0] for t in section["templates"])
    if section["num_count"] != 3:
        return None
    from .tasks.countdown import countdown_targets

    import itertools

    numbers = range(section["min_number"], section["max_number"] + 1)
    return sum(
        sum(1 for t in countdown_targets(triple, section["operators"]) if section["min_target"] <= t <= section["max_target"])
        for triple in itertools.combinations_with_replacement(numbers, 3)
    )


def max_prompt_length(config: dict) -> int:
    """An upper bound on the compact prompts' lengths in characters (= tokens of the char tokenizer)."""
    from .tasks.arithmetic import _TEMPLATES

    data, longest = config["data"], 0
    if "countdown" in data["tasks"]:
        c = data["countdown"]
        digits = len(str(c["max_number"]))
        target = max(len(str(c["min_target"])), len(str(c["max_target"])))
        longest = max(longest, c["num_count"] * digits + c["num_count"] - 1 + 1 + target)
    if "arithmetic" in data["tasks"]:
        a = data["arithmetic"]
        digits = len(str(a["max_number"]))
        longest = max(longest, max(len(t) + _TEMPLATES[t][0] * (digits - 1) + 1 for t in a["templates"]))
    return longest


def _check_model(config: dict) -> None:
    model = config["model"]
    if model["source"] != "tiny":
        return
    tiny = model["tiny"]
    if tiny["hidden_size"] % tiny["num_heads"]:
        raise ConfigError(f"config key model.tiny.num_heads: {tiny['num_heads']} heads do not divide "
                          f"hidden_size={tiny['hidden_size']}")
    if config["data"]["source"] == "generated" and config["data"]["prompt_style"] == "compact":
        longest = max(max_prompt_length(config) + config["decoding"]["gen_length"],
                      config["pretrain"]["unconditional_length"])
        if tiny["max_positions"] < longest:
            raise ConfigError(f"config key model.tiny.max_positions: {tiny['max_positions']} is shorter than the "
                              f"longest sequence ({longest} tokens: prompt + decoding.gen_length, or "
                              "pretrain.unconditional_length)")


def _is_local_path(value: str) -> bool:
    """A path in the repository rather than a hub id (``org/name``)."""
    return value.startswith((".", "/")) or value.endswith(LOCAL_DATA_SUFFIXES) or value.count("/") >= 2


def _check_files(config: dict) -> None:
    """Every local file the config names exists (jobs would fail much later otherwise)."""
    checks = [("data.countdown.test_file", config["data"]["countdown"].get("test_file"))]
    checks += [(f"mining.premined.{task}", path) for task, path in config["mining"]["premined"].items()]
    for task, hub in config["data"]["hub"].items():
        checks += [(f"data.hub.{task}.{k}", hub.get(k)) for k in ("source", "train_source")]
    if config["model"]["source"] == "pretrained":
        checks.append(("model.name_or_path", config["model"]["name_or_path"]))
    if config["resources"]["train"].get("gpu", 0) > 1 and config["training"]["accelerate_config"]:
        path = config["training"]["accelerate_config"]
        if not os.path.isfile(path):
            raise ConfigError(f"config key training.accelerate_config: {path} does not exist (it launches the "
                              f"trainers on resources.train.gpu={config['resources']['train']['gpu']} GPUs)")
    for key, value in checks:
        if value and _is_local_path(value) and not os.path.exists(value):
            raise ConfigError(f"config key {key}: {value} does not exist (relative paths are from the project root)")


def check_sections(config: dict) -> None:
    """Build every settings dataclass the jobs will build, so a bad field fails now, naming its key."""
    from .precision_settings import ModelFreeSettings, ModelStudySettings
    from .settings import build
    from .pipeline.models import TRAINERS, split_model, trained_models
    from .pipeline.trainer_settings import trainer_config
    from .train.configs import CONFIG_CLASSES

    training = config["training"]
    models = trained_models(config)
    models += [a for a in CONFIG_CLASSES if training.get(a) and a not in models]  # sections set but unused
    gpus = config["resources"]["train"].get("gpu", 0)
    for model in models:
        cfg = trainer_config(config, model)
        per_update = getattr(cfg, "prompts_per_update", None) or getattr(cfg, "batch_size", None)
        if gpus > 1 and training["accelerate_config"] and per_update % gpus:
            algorithm = "sft.batch_size" if model == "sft" else f"{TRAINERS[split_model(model)[0]]}.prompts_per_update"
            raise ConfigError(f"config key training.{algorithm}: {per_update} must be a multiple of "
                              f"resources.train.gpu={gpus} (each process takes an equal share)")
    from .rewards.settings import RewardSettings
    from .pipeline.layout import Layout
    from .tracking import settings_from_config

    build(RewardSettings, config["rewards"], "rewards")
    try:
        settings_from_config(config["tracking"], Layout.of(config["preset"]).tracking, config["preset"])
    except InputError as exc:
        raise ConfigError(str(exc)) from None
    precision = config["precision"]
    if precision["enabled"]:
        build(ModelFreeSettings, precision["model_free"] | {"seed": config["seed"]}, "precision.model_free")
        build(ModelStudySettings, precision["model"] | {"seed": config["seed"], "gen_length": config["decoding"]["gen_length"],
                                                        "unconditional_length": config["pretrain"]["unconditional_length"]},
              "precision.model")


def resolve_extends(config: dict, presets_dir: str | Path = PRESETS_DIR) -> dict:
    """A preset with ``extends: <name>`` is preset ``<name>`` with its own keys merged over it (so a
    rehearsal of the paper run states only what it changes, and cannot drift from the paper
    preset). Chains are followed; a cycle or a missing preset is a ConfigError naming the key."""
    seen: list[str] = []
    while "extends" in config:
        name = config.pop("extends")
        if not isinstance(name, str) or not name:
            raise ConfigError(f"config key extends: expected a preset name, got {name!r}")
        if name in seen:
            raise ConfigError(f"config key extends: presets extend each other in a cycle: {seen + [name]}")
        seen.append(name)
        path = Path(presets_dir) / f"{name}.yaml"
        if not path.is_file():
            raise ConfigError(f"config key extends: no preset {name!r} ({path} does not exist)")
        base = read_yaml(path) or {}
        if not isinstance(base, dict):
            raise ConfigError(f"{path}: a preset must be a YAML mapping")
        config = deep_update(base, config)
    return config


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
        data = read_yaml(path) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: a preset must be a YAML mapping")
        config = deep_update(config, data)
    if overrides:
        config = deep_update(config, overrides)
    return validate_config(resolve_extends(config))
