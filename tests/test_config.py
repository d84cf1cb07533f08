"""Config schema: defaults fill the local preset, unknown keys and bad values name the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from maskdiff.config import ConfigError, load_config, validate_config


def test_defaults_are_the_local_preset():
    cfg = load_config("config/presets/local.yaml")
    assert cfg["preset"] == "local"
    assert cfg["decoding"]["gen_length"] == 16
    assert cfg["data"]["countdown"]["num_count"] == 3
    assert cfg["model"]["source"] == "tiny"


def test_smoke_preset_is_valid_and_small():
    cfg = load_config("config/presets/smoke.yaml")
    assert cfg["preset"] == "smoke" and cfg["pretrain"]["steps"] < 100


def test_unknown_key_is_named():
    with pytest.raises(ConfigError, match=r"config key data\.countdown: unknown key\(s\) \['max_numbr'\]"):
        validate_config({"data": {"countdown": {"max_numbr": 3}}})


def test_bad_value_is_named():
    with pytest.raises(ConfigError, match=r"config key pretrain\.steps"):
        validate_config({"pretrain": {"steps": "many"}})
    with pytest.raises(ConfigError, match=r"evaluation\.grid\.remasking"):
        validate_config({"evaluation": {"grid": {"remasking": ["lcr", "fancy"]}}})


def test_cross_field_rules():
    with pytest.raises(ConfigError, match="does not divide"):
        validate_config({"evaluation": {"grid": {"block_length": [5]}}})
    with pytest.raises(ConfigError, match="must be a multiple"):
        validate_config({"evaluation": {"grid": {"block_length": [4], "steps": [6]}}})
    with pytest.raises(ConfigError, match="name_or_path"):
        validate_config({"model": {"source": "pretrained"}})


def test_preset_must_be_a_mapping(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text(yaml.safe_dump([1, 2]))
    with pytest.raises(ConfigError, match="mapping"):
        load_config(p)


def test_local_preset_trains_with_its_committed_tuned_values():
    """The local preset reads config/tuned/local.json (the tuning stage's output): every tuned model
    (and the null control, as MDPO-all-data's twin) trains with the chosen lr, warm-up and KL weight."""
    import json

    from maskdiff.config import load_config
    from maskdiff.pipeline.trainer_settings import TUNED_AS, trainer_config

    root = Path(__file__).resolve().parents[1]
    config = load_config(root / "config/presets/local.yaml")
    tuned = json.loads((root / config["training"]["tuned"]).read_text())
    assert config["training"]["tuned"] == "config/tuned/local.json"
    for model in [*tuned["chosen"], "mdpo_null", "mdpo-s1"]:
        chosen = tuned["chosen"].get(model) or tuned["chosen"][TUNED_AS.get(model.split("-s")[0], model.split("-s")[0])]
        cfg = trainer_config(config, model)
        for key in ("lr", "warmup", "beta"):
            if key in chosen and hasattr(cfg, key):
                assert getattr(cfg, key) == chosen[key], (model, key)
    # The file says which run chose them, and the grid and the selection rule it chose under.
    assert tuned["run"]["commit"] and tuned["run"]["base_weights_sha256"] and tuned["selection"]["tie_break"]
    assert {s["name"] for s in tuned["grid"]} == {"lr", "regularisation", "budget"}


# ----------------------------------------------------------------------------- one copy of each default
def test_every_pretrain_schema_default_is_the_dataclass_default():
    """pretrain.* exists in the schema (documented, range-checked) and in PretrainConfig (what runs
    from Python): the two must agree key by key (they once disagreed on steps and
    unconditional_fraction)."""
    import dataclasses

    from maskdiff.config_schema import load_schema
    from maskdiff.train.pretrain import PretrainConfig

    section = load_schema()["properties"]["pretrain"]["properties"]
    fields = {f.name: list(f.default) if isinstance(f.default, tuple) else f.default
              for f in dataclasses.fields(PretrainConfig)}  # YAML lists are tuples in the dataclass
    shared = set(section) & set(fields) - {"seed"}  # seed: null in the config = the config's seed
    assert shared >= {"steps", "lr", "unconditional_fraction", "unconditional_length", "warmup_steps"}
    for key in sorted(shared):
        assert section[key]["default"] == fields[key], f"pretrain.{key}: schema {section[key]['default']} != {fields[key]}"


@pytest.mark.parametrize("section, cls_name", [("model_free", "ModelFreeSettings"), ("model", "ModelStudySettings")])
def test_precision_sections_have_one_copy_of_their_defaults(section, cls_name):
    """The precision sections' keys come from their dataclasses: setting one key leaves every other
    key at the dataclass default (it once left them at a different, whole-section schema copy), and a
    key the workflow sets itself, or a typo, is an error naming it."""
    import maskdiff.precision_settings as ps
    from maskdiff.settings import as_dict

    defaults = as_dict(getattr(ps, cls_name)())
    key = "min_draws" if section == "model_free" else "num_unconditional"
    cfg = validate_config({"precision": {section: {key: 7}}})
    filled = cfg["precision"][section]
    assert filled[key] == 7
    workflow_set = {"seed"} | ({"gen_length", "unconditional_length", "chat_template"} if section == "model" else set())
    assert set(filled) == set(defaults) - workflow_set
    for name, value in filled.items():
        assert name == key or value == defaults[name], name
    assert validate_config({})["precision"][section] == {k: v for k, v in defaults.items() if k not in workflow_set}
    for bad in ("seed", "min_drawz" if section == "model_free" else "num_uncond"):
        with pytest.raises(ConfigError, match=rf"config key precision\.{section}: unknown key\(s\) \['{bad}'\]"):
            validate_config({"precision": {section: {bad: 1}}})


def test_base_seed_replicates_change_only_the_base_model_and_what_the_study_does_not_read():
    """config/presets/local_b*.yaml: the study's base-seed replicates (README "Results") are the
    local preset with another pretraining seed; apart from it they may only drop work the replicated
    comparisons do not read (grid cells, curves, the precision study, an RL seed)."""
    import copy

    root = Path(__file__).resolve().parents[1] / "config/presets"
    local = load_config(root / "local.yaml")
    replicates = sorted(root.glob("local_b*.yaml"))
    assert len(replicates) >= 2
    seeds = set()
    for path in replicates:
        cfg = load_config(path)
        seeds.add(cfg["pretrain"]["seed"])
        assert cfg["training"]["seeds"] >= 2 and cfg["evaluation"]["grid"]["remasking"] == ["lcr"]
        same = copy.deepcopy(cfg)
        for key, value in [("preset", "local")]:
            same[key] = value
        same["pretrain"]["seed"] = local["pretrain"]["seed"]
        same["training"]["seeds"], same["training"]["eval_every"] = local["training"]["seeds"], local["training"]["eval_every"]
        same["evaluation"]["grid"] = local["evaluation"]["grid"]
        same["precision"]["enabled"] = local["precision"]["enabled"]
        assert same == local, path.name
    assert len(seeds) == len(replicates) and local["pretrain"]["seed"] not in seeds
