"""The tuning stage's pure parts (point names, staged grids, the selection rule, the tuned file) and
how a preset reads its tuned file."""

from __future__ import annotations

import json

import pytest

from maskdiff.config import load_config
from maskdiff.errors import InputError
from maskdiff.pipeline.trainer_settings import trainer_config
from maskdiff.tuning import parse_point, point_name, read_tuned, select, stage_points, stage_result, summarise

TIES = [{"key": "lr", "prefer": "smaller"}, {"key": "warmup", "prefer": "smaller"}, {"key": "beta", "prefer": "larger"}]


def test_point_names_round_trip_in_a_fixed_key_order():
    values = {"warmup": 10, "lr": 1e-05, "beta": 0.2, "updates": 400}
    name = point_name(values)
    assert name == "lr=1e-05,warmup=10,beta=0.2,updates=400"
    assert parse_point(name) == values
    assert isinstance(parse_point(name)["warmup"], int)
    for bad in ("lr", "lr=abc", "momentum=0.9", "lr=1e-5;rm -rf", "warmup=2.5"):
        with pytest.raises(InputError):
            parse_point(bad)
    # One point, one name, whatever the YAML types: trained once.
    assert point_name({"lr": 1e-4, "beta": 0, "warmup": 10.0}) == point_name({"lr": 0.0001, "beta": 0.0, "warmup": 10})
    assert point_name(parse_point("lr=0.0001,beta=0.0")) == "lr=0.0001,beta=0.0"
    with pytest.raises(InputError, match="whole number"):
        point_name({"warmup": 2.5})


def test_stage_points_start_from_defaults_then_from_the_previous_choice():
    stages = load_config("config/presets/local.yaml")["tuning"]["stages"]
    grpo_fields = {"lr", "warmup", "beta", "updates", "group_size"}
    defaults = {"lr": 1e-4, "warmup": 0, "beta": 0.04, "updates": 100}
    first = stage_points(stages[0], "diffu_grpo", grpo_fields, {}, defaults)
    assert [p["lr"] for p in first] == [1e-6, 3e-6, 1e-5, 3e-5, 1e-4]
    assert all(p["beta"] == 0.04 and p["warmup"] == 0 for p in first)
    second = stage_points(stages[1], "diffu_grpo", grpo_fields, {"lr": 1e-5, "warmup": 0, "beta": 0.04, "updates": 100},
                          defaults)
    assert {(p["warmup"], p["beta"]) for p in second} == {(0, 0.04), (0, 0.4), (10, 0.04), (10, 0.4)}
    assert all(p["lr"] == 1e-5 for p in second)
    # The stage-1 winner is one of stage 2's points: the same name, trained once.
    assert point_name({"lr": 1e-5, "warmup": 0, "beta": 0.04, "updates": 100}) in {point_name(p) for p in second}
    # SFT has no KL weight: its stage 2 is the warm-up alone, and MDPO reads its own KL grid.
    sft = stage_points(stages[1], "sft", {"lr", "warmup", "updates"}, {"lr": 1e-5}, {"lr": 1e-4, "warmup": 0, "updates": 100})
    assert sorted(p["warmup"] for p in sft) == [0, 10] and all("beta" not in p for p in sft)
    mdpo = stage_points(stages[1], "mdpo", grpo_fields, {"lr": 1e-5}, defaults | {"beta": 0.02})
    assert {p["beta"] for p in mdpo} == {0.02, 0.2}


def scored(name, mean):
    return {"point": name, "values": parse_point(name), "mean_accuracy": mean}


def test_selection_takes_the_best_mean_and_breaks_exact_ties_by_the_stated_order():
    points = [scored("lr=0.0001,warmup=0", 0.30), scored("lr=1e-05,warmup=0", 0.31), scored("lr=1e-06,warmup=0", 0.29)]
    assert select(points, TIES)["point"] == "lr=1e-05,warmup=0"
    tied = [scored("lr=0.0001,warmup=0", 0.31), scored("lr=1e-05,warmup=10", 0.31), scored("lr=1e-05,warmup=0", 0.31)]
    assert select(tied, TIES)["point"] == "lr=1e-05,warmup=0"
    betas = [scored("lr=1e-05,beta=0.02", 0.2), scored("lr=1e-05,beta=0.2", 0.2)]
    assert select(betas, TIES)["point"] == "lr=1e-05,beta=0.2"
    with pytest.raises(InputError):
        select([], TIES)


def test_stage_results_carry_choices_forward_and_a_report_only_stage_chooses_nothing(tmp_path):
    lr_stage = stage_result("sft", 1, {"name": "lr", "grid": {"lr": [1e-5, 1e-4]}},
                            [scored("lr=0.0001,warmup=0,updates=100", 0.2), scored("lr=1e-05,warmup=0,updates=100", 0.25)],
                            None, TIES)
    assert lr_stage["chosen"] == {"lr": 1e-5, "warmup": 0, "updates": 100}
    budget = stage_result("sft", 2, {"name": "budget", "select": False, "grid": {"updates": [100, 400]}},
                          [scored("lr=1e-05,warmup=0,updates=400", 0.9)], lr_stage, TIES)
    assert budget["chosen"] == lr_stage["chosen"] and "winner" not in budget
    for i, stage in enumerate((lr_stage, budget), 1):
        (tmp_path / f"stage{i}.json").write_text(json.dumps(stage))
    summary = summarise([tmp_path / "stage2.json", tmp_path / "stage1.json"], {"stages": [], "tie_break": TIES}, {"preset": "x"})
    assert summary["chosen"] == {"sft": {"lr": 1e-5, "warmup": 0, "updates": 100}}
    assert [s["stage"] for s in summary["models"]["sft"]["stages"]] == [1, 2]


def tuned_file(tmp_path, chosen):
    path = tmp_path / "tuned.json"
    path.write_text(json.dumps({"chosen": chosen}))
    return str(path)


def test_a_preset_trains_with_its_tuned_values(tmp_path):
    path = tuned_file(tmp_path, {"sft": {"lr": 3e-5, "warmup": 10, "updates": 100},
                                 "mdpo_all_data": {"lr": 1e-5, "warmup": 0, "beta": 0.2, "updates": 100}})
    config = load_config("config/presets/local.yaml", overrides={"training": {"tuned": path}})
    sft = trainer_config(config, "sft")
    assert (sft.lr, sft.warmup) == (3e-5, 10)
    # The null control and its seed replicates use MDPO (all data)'s choice; untuned keys stay.
    for model in ("mdpo_null", "mdpo_null-s1", "mdpo_all_data-s2"):
        cfg = trainer_config(config, model)
        assert (cfg.lr, cfg.beta) == (1e-5, 0.2), model
    assert trainer_config(config, "mdpo_null").null_signal
    # A model the file does not cover keeps its untuned settings; tuned=False ignores the file.
    assert trainer_config(config, "diffu_grpo").lr == trainer_config(config, "diffu_grpo", tuned=False).lr
    assert trainer_config(config, "sft", tuned=False).lr != 3e-5


def test_a_value_both_tuned_and_set_is_an_error(tmp_path):
    path = tuned_file(tmp_path, {"sft": {"lr": 3e-5}})
    with pytest.raises(InputError, match=r"training\.sft: \['lr'\] also set by the tuned file"):
        load_config("config/presets/local.yaml", overrides={"training": {"tuned": path, "sft": {"lr": 1e-3}}})


def test_bad_tuned_files_name_the_file(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_tuned(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(InputError, match=r"bad\.json: not valid JSON"):
        read_tuned(tmp_path / "bad.json")
    (tmp_path / "keys.json").write_text(json.dumps({"chosen": {"sft": {"momentum": 0.9}}}))
    with pytest.raises(InputError, match=r"chosen\.sft: unknown tuned keys \['momentum'\]"):
        read_tuned(tmp_path / "keys.json")
