"""One flag name per idea across ``maskdiff`` subcommands (issue 18, item 4).

The options several subcommands share are argparse parent parsers defined once in
:mod:`maskdiff.cli` (every subcommand's ``--seed`` is the same action); an idea has one flag
(the model is ``--model``, never ``--base`` or ``--name``; an output is ``--out``, never
``--out-dir``); the old names still parse, for one release, to the new option; usage and input
errors are one line with exit 2; the README's CLI table lists exactly the parser's options.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest

from maskdiff import __version__
from maskdiff.cli import DEPRECATED, SHARED, build_parser, main

ROOT = Path(__file__).resolve().parents[1]

# Each idea's one flag, by its argparse dest: an option with this dest must be spelt this way.
IDEAS = {
    "model": "--model", "model_options": "--model-options", "seed": "--seed", "threads": "--threads",
    "rewards": "--rewards", "out": "--out", "model_name": "--model-name", "validation": "--validation",
}
# Old spellings of those ideas: only deprecated aliases may use them.
RETIRED = {"--base", "--name", "--out-dir", "--out-json", "--eval"}
# Outputs besides --out, named after what they are (mine writes three files).
NAMED_OUTPUTS = {"--out-mined", "--out-all", "--out-stats"}


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return {name: p for name, p in sub.choices.items() if name != "run"}  # run: every argument is Snakemake's


def _options(p: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in p._actions if a.option_strings and not isinstance(a, argparse._HelpAction)]


def _parent_actions() -> dict[str, argparse.Action]:
    actions = {}
    for flag, parent in SHARED.items():
        [action] = _options(parent)
        assert action.option_strings == [flag]
        actions[flag] = action
    return actions


def test_shared_options_are_the_parent_parsers_actions():
    parents = _parent_actions()
    by_dest = {a.dest: flag for flag, a in parents.items()}
    used = {flag: 0 for flag in parents}
    for name, p in _subcommands().items():
        for action in _options(p):
            flags = set(action.option_strings) & set(parents)
            if action.dest in by_dest:  # e.g. add_argument("--base", dest="model")
                flags.add(by_dest[action.dest])
            for flag in flags:
                assert action is parents[flag], f"{name}: {action.option_strings} is not the shared {flag} (cli.SHARED)"
                used[flag] += 1
    assert all(n >= 2 for n in used.values()), f"a shared option used by fewer than two subcommands: {used}"


def test_one_flag_name_per_idea():
    dests: dict[str, set[str]] = {}
    for name, p in _subcommands().items():
        for action in _options(p):
            flags = set(action.option_strings)
            assert not flags & RETIRED, f"{name}: {sorted(flags & RETIRED)} is a retired name (keep it in cli.DEPRECATED only)"
            assert len(flags) == 1, f"{name}: {sorted(flags)}: one spelling per option (old ones go in cli.DEPRECATED)"
            [flag] = flags
            if action.dest in IDEAS:
                assert flag == IDEAS[action.dest], f"{name}: {flag} names the idea {action.dest!r}, spelt {IDEAS[action.dest]}"
            if flag.startswith("--out"):
                assert flag == "--out" or flag in NAMED_OUTPUTS, f"{name}: {flag}: an output is --out"
            dests.setdefault(flag, set()).add(action.dest)
    assert {f: d for f, d in dests.items() if len(d) > 1} == {}, "a flag with two meanings (dests)"


def _value(action: argparse.Action) -> list[str]:
    if action.choices:
        value = str(next(iter(action.choices)))
    elif action.type is int:
        value = "1"
    elif action.type is not None and action.type.__name__ == "_json":
        value = "{}"
    else:
        value = f"v-{action.dest}"
    return [] if action.nargs == 0 else [value]


def _minimal(p: argparse.ArgumentParser, skip: str | None = None) -> list[str]:
    argv = []
    for action in _options(p):
        if action.required and action.option_strings[0] != skip:
            argv += [action.option_strings[0], *_value(action)]
    return argv


@pytest.mark.parametrize("command, old, new", [(c, o, n) for c, m in DEPRECATED.items() for o, n in m.items()])
def test_deprecated_alias_parses_to_the_new_option(command, old, new):
    p = _subcommands()[command]
    flags = {f for a in _options(p) for f in a.option_strings}
    assert new in flags and old not in flags, f"{command}: {old} must be an alias only, of an existing {new}"
    [action] = [a for a in _options(p) if new in a.option_strings]
    value = _value(action) or ["x"]
    rest = _minimal(p, skip=new)
    parser = build_parser()
    expected = vars(parser.parse_args([command, *rest, new, *value]))
    for spelt in ([old, *value], [f"{old}={value[0]}"]):
        got = vars(parser.parse_args([command, *rest, *spelt]))
        assert got.pop("_deprecated") == [f"maskdiff {command}: {old} is a deprecated alias of {new}"]
        assert got == expected


# What the workflow's rules ran before the rename (workflow/rules/*.smk): still the same arguments.
RULE_CALLS = [
    ("prepare-data --source generated --task countdown --settings {} --seed 0 --prompt-style compact --out-dir d",
     "prepare-data --source generated --task countdown --settings {} --seed 0 --prompt-style compact --out d"),
    ("fetch-model --name org/m --model-options {} --out m", "fetch-model --model org/m --model-options {} --out m"),
    ("evaluate --model m --model-options {} --name base --data t.jsonl --groups [] --out-dir e --batch-size 8"
     " --reward-processes 0 --rewards {} --seed 0 --threads 1",
     "evaluate --model m --model-options {} --model-name base --data t.jsonl --groups [] --out e --batch-size 8"
     " --reward-processes 0 --rewards {} --seed 0 --threads 1"),
    ("train-mdpo --base b --model-options {} --train t.jsonl --out m --checkpoint-dir c --settings {}"
     " --eval countdown=v.jsonl --fallback-train f.jsonl --rewards {} --seed 0 --threads 1",
     "train-mdpo --model b --model-options {} --train t.jsonl --out m --checkpoint-dir c --settings {}"
     " --validation countdown=v.jsonl --fallback-train f.jsonl --rewards {} --seed 0 --threads 1"),
    ("score-validation --model m --model-options {} --data countdown=v.jsonl --cell {} --rewards {} --seed 0 --out s"
     " --threads 1",
     "score-validation --model m --model-options {} --validation countdown=v.jsonl --cell {} --rewards {} --seed 0"
     " --out s --threads 1"),
    ("tune-stage --model mdpo --stage 0 --settings {} --tie-break [] --points p --out t",
     "tune-stage --model-name mdpo --stage 0 --settings {} --tie-break [] --points p --out t"),
    ("tune-summary --stages s --settings {} --preset local --base b --out c",
     "tune-summary --stages s --settings {} --preset local --model b --out c"),
]


@pytest.mark.parametrize("old, new", RULE_CALLS)
def test_the_rules_old_calls_still_parse(old, new):
    got = vars(build_parser().parse_args(old.split()))
    got.pop("_deprecated")
    assert got == vars(build_parser().parse_args(new.split()))


def test_usage_errors_are_one_line_with_exit_2(capsys):
    for argv in (["evaluate"], ["evaluate", "--model", "m", "--groups", "{bad", "--data", "d", "--out", "e"],
                 ["prepare-data", "--task", "nope", "--settings", "{}", "--out", "d"]):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and err.count("\n") == 1 and err.startswith(f"maskdiff {argv[0]}: error: "), err


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"maskdiff {__version__}"


@pytest.mark.parametrize("command, cell, message", [
    ("score-validation", {"gen_length": 4, "block_length": 4, "steps": 2, "blok": 1}, "--cell: bad decoding cell"),
    ("score-validation", {"gen_length": 4, "block_length": 3, "steps": 2}, "block_length 3 must divide"),
    ("trajectories", {"gen_length": 4, "block_length": 3, "steps": 2}, "block_length 3 must divide"),
])
def test_a_bad_cell_is_one_line(tmp_path, caplog, command, cell, message):
    data = tmp_path / "validation.jsonl"
    data.write_text(json.dumps({"id": "p", "task": "arithmetic", "prompt": "1+1=", "answer": "2", "solution": "2"}) + "\n")
    code = main([command, "--model", str(tmp_path / "no-model"), "--validation", f"arithmetic={data}",
                 "--cell", json.dumps(cell), "--out", str(tmp_path / "out.json")])
    assert code == 2 and message in caplog.text and "Traceback" not in caplog.text


@pytest.mark.parametrize("flag, value, message", [
    ("--settings", {"stepz": 3}, "--settings: "), ("--model-spec", {"layerz": 1}, "--model-spec: "),
    ("--model-spec", [1], "--model-spec: expected a JSON object"),
])
def test_bad_pretrain_settings_are_one_line(tmp_path, caplog, flag, value, message):
    argv = {"--settings": "{}", "--model-spec": "{}", flag: json.dumps(value)}
    code = main(["pretrain", "--data", str(tmp_path / "p.jsonl"), "--out", str(tmp_path / "m"), "--checkpoint-dir",
                 str(tmp_path / "c"), "--gen-length", "4", *[x for kv in argv.items() for x in kv]])
    assert code == 2 and message in caplog.text and "Traceback" not in caplog.text


def _readme_table() -> tuple[dict[str, dict[str, bool]], str]:
    """README's CLI table: subcommand -> {flag: required?} (``[`--x`]`` is optional), and the section."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("### The command line"):]
    section = section[: section.index("\n#")]
    rows = {}
    for line in section.splitlines():
        match = re.match(r"\| `([a-z-]+(?:`, `[a-z-]+)*)` \|[^|]*\|(.*)\|$", line)
        if match:
            for name in match.group(1).split("`, `"):
                rows[name] = {flag: not bracket for bracket, flag in re.findall(r"(\[?)`(--[a-z][a-z-]*)`", match.group(2))}
    return rows, section


def test_the_readme_table_lists_every_option_once_named():
    rows, section = _readme_table()
    parsers = _subcommands()
    assert set(rows) == set(parsers)
    for name, p in parsers.items():
        assert rows[name] == {a.option_strings[0]: a.required for a in _options(p)}, name
    for command, aliases in DEPRECATED.items():
        for old, new in aliases.items():
            assert f"`{old}` -> `{new}`" in section or f"`{old}` → `{new}`" in section, (command, old)
