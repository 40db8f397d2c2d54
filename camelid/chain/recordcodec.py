"""Dataclass records to msgpack-ready maps and back, driven by their type hints (for the job store).

The job pool's records and the client's and compute node's job records change shape as the protocol
grows; writing a to_dict/from_dict pair per class by hand is where fields get forgotten. Here a
record's declared field types say how to store it: bytes, int, float, str, bool and None as they
are, enums by value, tuples/lists/dicts item by item, a class with `to_bytes`/`from_bytes`
(Transaction, JobParams) as its canonical bytes, other dataclasses as maps of their fields. A field
missing from a stored map takes its default, so a record written before a field existed still loads.
Everything that does not fit raises ValueError naming the field: stored bytes are input like any other.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from functools import cache
from typing import Any, TypeVar, Union

Record = TypeVar("Record")
_SCALARS = (bytes, int, float, str, bool)


def encode_record(record: object) -> dict[str, Any]:
    """The dataclass `record` as a map of plain values (msgpack can pack it)."""
    if not dataclasses.is_dataclass(record) or isinstance(record, type):
        raise TypeError(f"{record!r} is not a dataclass instance")
    hints = _hints(type(record))
    return {f.name: _encode(getattr(record, f.name), hints[f.name]) for f in dataclasses.fields(record)}


def decode_record(cls: type[Record], data: Any) -> Record:
    """An instance of dataclass `cls` from what encode_record made; ValueError naming the first bad field."""
    return _decode(data, cls, cls.__name__)


def _encode(value: Any, hint: Any) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if value is None:
        return None
    if origin in (Union, types.UnionType):
        return _encode(value, next(a for a in args if a is not type(None) and _matches(value, a)))
    if origin in (list, tuple):
        return [_encode(item, hint) for item, hint in zip(value, _item_hints(origin, args, len(value)), strict=True)]
    if origin is dict:
        return [[_encode(k, args[0]), _encode(v, args[1])] for k, v in value.items()]
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return value.value
    if hasattr(hint, "from_bytes") and hasattr(value, "to_bytes") and hint not in _SCALARS:
        return value.to_bytes()
    if dataclasses.is_dataclass(hint):
        return encode_record(value)
    return value


def _decode(raw: Any, hint: Any, where: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        if raw is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) != 1:
            raise ValueError(f"{where}: cannot store a union of {options}")
        return _decode(raw, options[0], where)
    if origin in (list, tuple):
        if not isinstance(raw, list | tuple):
            raise ValueError(f"{where}: expected a list, got {type(raw).__name__}")
        hints = _item_hints(origin, args, len(raw))
        if len(hints) != len(raw):
            raise ValueError(f"{where}: expected {len(hints)} items, got {len(raw)}")
        items = [_decode(item, hint, f"{where}[{i}]") for i, (item, hint) in enumerate(zip(raw, hints, strict=True))]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(raw, list | tuple) or not all(isinstance(p, list | tuple) and len(p) == 2 for p in raw):
            raise ValueError(f"{where}: expected a list of key-value pairs")
        return {_decode(k, args[0], f"{where} key"): _decode(v, args[1], f"{where}[{k!r}]") for k, v in raw}
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        try:
            return hint(raw)
        except ValueError:
            raise ValueError(f"{where}: {raw!r} is not a {hint.__name__}") from None
    if hasattr(hint, "from_bytes") and hint not in _SCALARS:
        if not isinstance(raw, bytes):
            raise ValueError(f"{where}: expected the bytes of a {hint.__name__}")
        try:
            return hint.from_bytes(raw)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
    if dataclasses.is_dataclass(hint):
        return _decode_dataclass(raw, hint, where)
    if hint is float and isinstance(raw, int) and not isinstance(raw, bool):
        return float(raw)
    if not isinstance(raw, hint) or (hint is int and isinstance(raw, bool)):
        raise ValueError(f"{where}: expected {hint.__name__}, got {type(raw).__name__}")
    return raw


def _decode_dataclass(raw: Any, cls: type[Record], where: str) -> Record:
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: expected a map, got {type(raw).__name__}")
    hints = _hints(cls)
    values = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name in raw:
            values[f.name] = _decode(raw[f.name], hints[f.name], f"{where}.{f.name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ValueError(f"{where}: field {f.name!r} is missing")
    return cls(**values)


def _item_hints(origin: Any, args: tuple[Any, ...], count: int) -> tuple[Any, ...]:
    """The hint of each item: list[X] and tuple[X, ...] repeat X; tuple[X, Y] names each position."""
    if origin is list or (len(args) == 2 and args[1] is Ellipsis):
        return (args[0],) * count
    return args


def _matches(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint) or hint
    return isinstance(value, origin) if isinstance(origin, type) else True


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)
