"""Frozen dataclasses built from plain mappings, with every error naming the dotted key.

Hand-written rather than pydantic because the model's configuration is stored in checkpoints as plain
dicts and must load in a process that has only torch and timm (the served model's environment).
A ``Literal`` annotation is the one definition of a choice field: :func:`from_mapping` and
:func:`check_literals` both read it.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, get_args, get_origin, get_type_hints

__all__ = ["check_ints", "check_literals", "check_non_negative", "check_positive", "fail", "from_mapping", "to_dict"]


def fail(path: str, message: str) -> None:
    msg = f"{path}: {message}"
    raise ValueError(msg)


def check_positive(path: str, value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        fail(path, f"must be a positive finite number, got {value!r}")


def check_ints(obj: Any, path: str, names: tuple[str, ...], minimum: int = 1) -> None:
    """Each field ``names`` of ``obj`` is an integer of at least ``minimum`` (0 or 1)."""
    for name in names:
        value = getattr(obj, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            fail(f"{path}.{name}", f"must be a {'positive' if minimum else 'non-negative'} integer, got {value!r}")


def check_non_negative(path: str, value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
        fail(path, f"must be a non-negative finite number, got {value!r}")


def check_literals(obj: Any, path: str = "") -> None:
    """Every ``Literal`` field of dataclass ``obj`` (and of the dataclasses it holds) has a declared value."""
    for f in dataclasses.fields(obj):
        value, where = getattr(obj, f.name), f"{path}.{f.name}" if path else f.name
        tp = _optional_inner(get_type_hints(type(obj))[f.name], value)
        if dataclasses.is_dataclass(value):
            check_literals(value, where)
        elif get_origin(tp) is Literal and value not in get_args(tp):
            fail(where, f"must be one of {', '.join(map(str, get_args(tp)))}; got {value!r}")


def _optional_inner(tp: Any, value: Any) -> Any:
    """``X`` of an ``X | None`` field holding a value (``None`` itself needs no check), else ``tp``."""
    if get_origin(tp) not in (typing.Union, types.UnionType):
        return tp
    args = [a for a in get_args(tp) if a is not type(None)]
    if value is None and len(args) < len(get_args(tp)):
        return type(None)
    return args[0] if len(args) == 1 else tp


def _convert(tp: Any, value: Any, path: str) -> Any:
    inner = _optional_inner(tp, value)
    if inner is type(None):
        return None
    if inner is not tp:
        return _convert(inner, value, path)
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if dataclasses.is_dataclass(value):
            return value
        if not isinstance(value, Mapping):
            fail(path, f"must be a mapping, got {type(value).__name__}")
        return from_mapping(tp, value, path)
    if origin is Literal:
        if value not in get_args(tp):
            fail(path, f"must be one of {', '.join(map(str, get_args(tp)))}; got {value!r}")
        return value
    if origin is tuple:
        args = get_args(tp)
        if not isinstance(value, list | tuple):
            fail(path, f"must be a list of {len(args)} values, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{path}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            fail(path, f"must have {len(args)} values, got {len(value)}")
        return tuple(_convert(a, v, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True)))
    if origin in (typing.Union, types.UnionType):
        return value
    if tp is bool:
        if not isinstance(value, bool):
            fail(path, f"must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            fail(path, f"must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            fail(path, f"must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            fail(path, f"must be a string, got {value!r}")
        return value
    return value


def from_mapping(cls: type, data: Mapping[str, Any], path: str = "") -> Any:
    """Build dataclass ``cls`` from a mapping; unknown keys and wrong types raise ``ValueError`` naming the path."""
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        where = f"{path}." if path else ""
        fail(f"{where}{unknown[0]}", f"unknown key (known: {', '.join(sorted(names))})")
    kwargs = {k: _convert(hints[k], v, f"{path}.{k}" if path else k) for k, v in data.items()}
    return cls(**kwargs)


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain nested dict (tuples as lists) suitable for YAML/JSON."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, tuple | list):
            return [plain(v) for v in value]
        return value

    return plain(cfg)
