"""Typed reads from a decoded wallet-file map, so a damaged file fails with the field it got wrong."""

from __future__ import annotations

from typing import Any, TypeVar

T = TypeVar("T")


def field(record: Any, name: str, kind: type[T], *, optional: bool = False) -> T:
    """record[name] checked to be a `kind` (None allowed when `optional`); ValueError naming the field otherwise."""
    if not isinstance(record, dict):
        raise ValueError(f"wallet record holding {name!r} is {type(record).__name__}, not a map")
    if name not in record:
        raise ValueError(f"wallet record lacks field {name!r}")
    value = record[name]
    if value is None and optional:
        return value  # type: ignore[return-value]
    # bool is an int subclass; a flag where a number belongs is still damage.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(f"wallet field {name!r} is {type(value).__name__}, expected {kind.__name__}")
    return value
