"""Frozen settings dataclasses built from config sections, strictly typed.

Trainer, study and generator settings are plain frozen dataclasses (their defaults are the one
place those defaults live). The workflow builds each of them from the config at parse time, so a
misspelt field, a float where an integer belongs or a broken cross-field rule stops
``snakemake -n`` before any job, with the key path in the message. The same builder turns a
job's JSON settings back into the dataclass, so what was validated is what runs.

This module imports no torch: Snakemake imports it on every invocation.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any, TypeVar

from .errors import InputError

T = TypeVar("T")


class SettingsError(InputError):
    """A settings section that does not build; the message names the key path."""


def build(cls: type[T], values: dict | None, section: str) -> T:
    """``cls(**values)`` after checking every key and value against ``cls``'s fields.

    Lists become tuples where the field is a tuple; ints are accepted for floats; nothing else is
    coerced (``30.0`` is not an integer, ``"1e-4"`` is not a number, ``true`` is not 1). Errors
    name ``<section>.<field>``; the dataclass's own ``__post_init__`` checks (cross-field rules)
    are reported with the section too.
    """
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise SettingsError(f"config key {section}: expected a mapping, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        hints = [f"{k!r} (did you mean {difflib.get_close_matches(k, fields, 1)[0]!r}?)"
                 if difflib.get_close_matches(k, fields, 1) else repr(k) for k in unknown]
        raise SettingsError(f"config key {section}: unknown key(s) {', '.join(hints)}; allowed keys: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in values.items():
        kwargs[name] = _coerce(value, hints[name], f"{section}.{name}")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:  # InputError is a ValueError: it gets the key path too
        raise SettingsError(f"config key {section}: {exc}") from None


def as_dict(settings: Any) -> dict:
    """A settings dataclass as plain JSON-friendly values (tuples as lists)."""
    return {k: _plain(v) for k, v in dataclasses.asdict(settings).items()}


def _plain(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """``value`` checked against ``annotation`` (int, float, str, bool, dict, tuple[...], X | None, Literal)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except SettingsError as exc:
                errors.append(str(exc))
        raise SettingsError(errors[0] if len(errors) == 1 else f"config key {key}: {value!r} matches none of {_name(annotation)}")
    if origin is typing.Literal:
        if value not in args:
            raise SettingsError(f"config key {key}: {value!r} is not one of {list(args)}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise SettingsError(f"config key {key}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise SettingsError(f"config key {key}: expected {len(args)} values, got {len(value)}")
        return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if origin is dict or annotation is dict:
        if not isinstance(value, dict):
            raise SettingsError(f"config key {key}: expected a mapping, got {value!r}")
        return dict(value)
    if annotation is bool:
        if not isinstance(value, bool):
            raise SettingsError(f"config key {key}: expected true or false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SettingsError(f"config key {key}: expected an integer, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SettingsError(f"config key {key}: expected a number, got {value!r}")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise SettingsError(f"config key {key}: expected a string, got {value!r}")
        return value
    if annotation is Any:
        return value
    raise TypeError(f"settings field {key}: unsupported annotation {annotation!r}")


def _name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def require(condition: bool, message: str) -> None:
    """A cross-field rule of a settings dataclass (``__post_init__``)."""
    if not condition:
        raise ValueError(message)
