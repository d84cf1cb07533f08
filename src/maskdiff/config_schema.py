"""The config schema as the workflow reads it: ``workflow/schemas/config.schema.yaml`` with the
sections that mirror a settings dataclass generated from that dataclass when it is loaded, so each
of their defaults exists once (the dataclass). Two ways, see :mod:`maskdiff.config`:
``x-defaults-from`` (keys and defaults filled into the config) and ``x-documents`` (keys, types,
defaults and the fields' source comments documented, nothing filled).

This module imports no torch: Snakemake imports it on every invocation.
"""

from __future__ import annotations

import functools
from pathlib import Path

import yaml

from .config_keys import SCHEMA_PATH


def load_schema(path: str | Path = SCHEMA_PATH) -> dict:
    """The schema, with every ``x-defaults-from`` and ``x-documents`` section's keys generated from
    its dataclass."""
    with open(path) as fh:
        schema = yaml.safe_load(fh)
    _generate_sections(schema)
    return schema


def _generate_sections(node) -> None:
    """A section marked ``x-defaults-from: module.Class`` gets one property per field of the settings
    dataclass, with the dataclass's default (the one copy): a preset that sets one key of it leaves
    every other key at that default, and the filled config shows the values that run. Fields the
    workflow sets itself (``x-set-by-workflow``) are not config keys. Types and unknown keys are
    checked by :func:`maskdiff.settings.build`, which names the key. A section marked
    ``x-documents: module.Class`` gets its fields documented (:func:`documented_fields`), not filled."""
    if isinstance(node, dict):
        if "x-defaults-from" in node:
            import dataclasses

            from .settings import as_dict

            cls = _import(node["x-defaults-from"])
            defaults = as_dict(cls())
            skip = set(node.get("x-set-by-workflow", []))
            node["properties"] = {f.name: {"default": defaults[f.name]} for f in dataclasses.fields(cls)
                                  if f.init and f.name not in skip}
            node["additionalProperties"] = False
            node["default"] = {}
        if "x-documents" in node:
            node["properties"] = documented_fields(_import(node["x-documents"]), node.get("x-set-by-workflow", {}),
                                                   node.get("x-default-from", {}))
        for value in node.values():
            _generate_sections(value)
    elif isinstance(node, list):
        for value in node:
            _generate_sections(value)


def _import(dotted: str):
    import importlib

    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def documented_fields(cls, set_by_workflow=(), default_from: dict | None = None) -> dict:
    """Schema properties of the fields of settings dataclass ``cls`` a config section may set: the
    JSON-schema type of each annotation, the dataclass default as ``x-default`` (documented, never
    filled), the config key it comes from instead (``x-default-from``), and the field's source
    comment as description. Fields in ``set_by_workflow`` are left out."""
    import dataclasses
    import json
    import typing

    from .settings import as_dict
    from .pipeline.trainer_settings import APPLIED_TUNED_KEYS

    default_from = default_from or {}
    hints, defaults, comments = typing.get_type_hints(cls), as_dict(cls()), field_comments(cls)
    properties = {}
    for f in dataclasses.fields(cls):
        if not f.init or f.name in set_by_workflow:
            continue
        prop = json_type(hints[f.name])
        prop["x-default"] = defaults[f.name]
        text = comments.get(f.name, "")
        text = text if not text or text.endswith(".") else text + "."
        default = json.dumps(defaults[f.name])
        if f.name in default_from:
            prop["x-default-from"] = default_from[f.name]
            text += f" Default: {default_from[f.name]} (the dataclass's {default} when built outside the workflow)."
        else:
            text += f" Default: {default}."
        if f.name in APPLIED_TUNED_KEYS:
            text += " A preset's tuned file (training.tuned) may choose it per model; then it may not be set here."
        prop["description"] = text.strip()
        properties[f.name] = prop
    return properties


def json_type(annotation) -> dict:
    """The JSON-schema type of a settings field's annotation (int, float, bool, str, dict,
    Literal, tuple, X | None)."""
    import types
    import typing

    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        if len(options) != 1:
            raise TypeError(f"unsupported settings annotation {annotation!r}")
        out = json_type(options[0])
        if type(None) in args:
            out["type"] = [out["type"], "null"]
            if "enum" in out:
                out["enum"] = [*out["enum"], None]
        return out
    if origin is typing.Literal:
        return {"type": json_type(type(args[0]))["type"], "enum": list(args)}
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return {"type": "array", "items": json_type(args[0])}
        if len(set(args)) != 1:
            raise TypeError(f"unsupported settings annotation {annotation!r}")
        return {"type": "array", "items": json_type(args[0]), "minItems": len(args), "maxItems": len(args)}
    names = {bool: "boolean", int: "integer", float: "number", str: "string", dict: "object"}
    if annotation in names or origin is dict:
        return {"type": names[origin or annotation]}
    raise TypeError(f"unsupported settings annotation {annotation!r}")


@functools.cache
def field_comments(cls) -> dict[str, str]:
    """Each field's source comment: the ``#`` lines right above its definition and the one at its
    end, from the most derived class of ``cls``'s MRO that defines the field with a comment."""
    comments: dict[str, str] = {}
    for klass in cls.__mro__:
        if "__dataclass_fields__" in vars(klass):
            for name, text in _class_comments(klass).items():
                comments.setdefault(name, text)
    return comments


def _class_comments(klass) -> dict[str, str]:
    import ast
    import inspect
    import io
    import textwrap
    import tokenize

    source = textwrap.dedent(inspect.getsource(klass))
    comment_at, code_lines = {}, set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comment_at[tok.start[0]] = tok.string.lstrip("#").strip()
        elif tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER):
            code_lines.update(range(tok.start[0], tok.end[0] + 1))
    out = {}
    for node in ast.parse(source).body[0].body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        above, line = [], node.lineno - 1
        while line in comment_at and line not in code_lines:
            above.insert(0, comment_at[line])
            line -= 1
        text = " ".join(above + [comment_at[node.end_lineno]] if node.end_lineno in comment_at else above)
        if text:
            out[node.target.id] = text
    return out
