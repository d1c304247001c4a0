"""Pydantic models of parameter sections, and their errors as one line naming the dotted key.

A :class:`Section` rejects unknown keys, is frozen and validates its defaults too. :func:`one_line`
turns the first error of a :class:`pydantic.ValidationError` into ``<dotted.key>: <message>, got <value>``
(``data.categories[0]: ...``), in the words the model configuration's own errors use (:mod:`glcf.typed`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

__all__ = ["Section", "check_value", "dotted", "one_line"]


class Section(BaseModel):
    """A section of a parameter file: unknown keys rejected, frozen, no NaN or infinity, defaults checked."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, validate_default=True)


# error type -> message (", got <value>" follows); the error's ctx fills the braces, {integer} names int fields
_MESSAGES = {
    "missing": "required",
    "int_type": "must be an integer",
    "float_type": "must be a number",
    "finite_number": "must be a finite number",
    "bool_type": "must be true or false",
    "string_type": "must be a string",
    "string_too_short": "must not be empty",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "tuple_type": "must be a list",
    "list_type": "must be a list",
    "too_short": "must hold at least {min_length} value(s)",
    "too_long": "must hold at most {max_length} value(s)",
    "greater_than": "must be {integer}> {gt}",
    "greater_than_equal": "must be {integer}>= {ge}",
    "less_than": "must be {integer}< {lt}",
    "less_than_equal": "must be {integer}<= {le}",
}


def dotted(loc: tuple[int | str, ...]) -> str:
    """``("data", "categories", 0)`` -> ``data.categories[0]``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _keys(model: type[BaseModel]) -> dict[str, Any]:
    """The keys of a model as the file spells them (a field's alias, else its name) -> the field."""
    return {f.alias or name: f for name, f in model.model_fields.items()}


def _field(model: type[BaseModel] | None, loc: tuple[int | str, ...]) -> tuple[type[BaseModel] | None, Any]:
    """The model that holds the last key of ``loc`` and that key's annotation (``None`` when not a field)."""
    annotation: Any = None
    for i, part in enumerate(loc):
        if isinstance(part, int) and get_origin(annotation) in (list, tuple):  # an item of a sequence field
            annotation = get_args(annotation)[0]
            continue
        keys = _keys(model) if model is not None else {}
        if part not in keys:
            return (model, None) if i == len(loc) - 1 else (None, None)
        annotation = keys[part].annotation
        if i < len(loc) - 1:
            model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    return model, annotation


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _message(error: ErrorDetails, model: type[BaseModel] | None) -> str:
    etype, loc, ctx = error["type"], tuple(error["loc"]), dict(error.get("ctx") or {})
    if etype in ("value_error", "assertion_error"):
        return str(ctx.get("error", error["msg"]))
    if etype == "extra_forbidden":
        holder, _ = _field(model, loc)
        what = "section" if len(loc) == 1 else "key"
        known = f" (known: {', '.join(sorted(_keys(holder)))})" if holder is not None else ""
        return f"unknown {what}{known}"
    _, annotation = _field(model, loc)
    if etype == "literal_error" and get_origin(annotation) is Literal:
        text = f"must be one of {', '.join(map(str, get_args(annotation)))};"
    elif etype in _MESSAGES:
        ctx = {k: _number(v) for k, v in ctx.items()}
        text = _MESSAGES[etype].format(integer="an integer " if annotation is int else "", **ctx) + ","
    else:
        text = error["msg"][:1].lower() + error["msg"][1:] + ","
    if etype == "missing":
        return text.rstrip(",")
    value = error["input"]
    container = isinstance(value, Mapping | list | tuple) and etype.endswith("_type")
    return f"{text} got {type(value).__name__ if container else repr(value)}"


def one_line(exc: ValidationError, model: type[BaseModel] | None = None, label: str = "") -> str:
    """The first error as ``<dotted.key>: <message>`` (``model``: the validated class, for the known keys).

    ``label`` names a value validated on its own (``--cron``). An error raised by a model validator
    has no location: its message names the key itself.
    """
    error = exc.errors(include_url=False)[0]
    where = ".".join(p for p in (label, dotted(tuple(error["loc"]))) if p)
    message = _message(error, model)
    return f"{where}: {message}" if where else message


def check_value(annotation: Any, value: Any, label: str, context: Mapping[str, Any] | None = None) -> Any:
    """``value`` validated as ``annotation`` (a type of a section's field); a ``ValueError`` naming ``label``."""
    try:
        return TypeAdapter(annotation).validate_python(value, context=dict(context or {}))
    except ValidationError as exc:
        raise ValueError(one_line(exc, label=label)) from None
