"""JSON objects to typed dataclasses and back: one rule for every message and result.

Why one helper (dacite underneath): the bot and the worker are deployed separately, so a
reader must accept what a newer writer adds (unknown keys are ignored), refuse what it
cannot trust (a wrong type is a `SchemaError`, never a half-built object), and do both the
same way for jobs, results, summaries and explanations. PNG bytes travel as base64.
"""
from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import fields, is_dataclass
from typing import Any, TypeVar

import dacite

from explain_core.errors import SchemaError

T = TypeVar("T")

_HOOKS: dict[Any, Callable[[Any], Any]] = {
    # JSON has one number type: a float field may arrive as an integer (2 for 2.0), so floats accept ints.
    float: lambda value: float(value) if isinstance(value, int) and not isinstance(value, bool) else value,
    bytes: lambda value: base64.b64decode(value, validate=True) if isinstance(value, str) else value,
    # JSON has no tuples: a tuple of strings is written as a list.
    tuple[str, ...]: lambda value: tuple(value) if isinstance(value, list) else value,
}
_CONFIG = dacite.Config(type_hooks=_HOOKS)


def named_tuple(cls: type[T]) -> type[T]:
    """Register a NamedTuple that travels as a JSON object (field names as keys), so that it
    reads back as itself; dacite knows dataclasses only."""
    names: tuple[str, ...] = cls._fields  # type: ignore[attr-defined]  # every NamedTuple has it
    _HOOKS[cls] = lambda value: cls(*(value[name] for name in names)) if isinstance(value, dict) else value
    return cls


def from_object(cls: type[T], data: Any, what: str) -> T:
    """`data` (a parsed JSON object) as a `cls`; `what` names it in the SchemaError."""
    if not isinstance(data, dict):
        raise SchemaError(f"{what} is not a JSON object")
    try:
        return dacite.from_dict(cls, data, config=_CONFIG)
    except (dacite.DaciteError, TypeError, ValueError, binascii.Error) as exc:
        raise SchemaError(f"{what} is malformed: {exc}") from None


def loads(cls: type[T], text: str | bytes, what: str) -> T:
    """`cls` from JSON text; a `SchemaError` naming `what` for text that is not JSON or does not fit."""
    try:
        data = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise SchemaError(f"{what} is not JSON: {exc}") from None
    return from_object(cls, data, what)


def to_object(value: Any) -> Any:
    """A dataclass as a JSON-ready dict: nested dataclasses and named tuples become objects,
    other tuples lists; bytes stay bytes until `dumps`."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_object(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, tuple) and hasattr(value, "_asdict"):
        return {name: to_object(item) for name, item in value._asdict().items()}
    if isinstance(value, list | tuple):
        return [to_object(item) for item in value]
    if isinstance(value, dict):
        return {key: to_object(item) for key, item in value.items()}
    return value


def dumps(data: dict[str, Any]) -> str:
    """Compact, ASCII-only JSON; bytes become base64. ASCII because text from chat may hold lone
    surrogates, which UTF-8 (and so Redis' client) cannot encode but JSON escapes can carry."""
    return json.dumps(data, separators=(",", ":"), default=_encode)


def _encode(value: Any) -> str:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
