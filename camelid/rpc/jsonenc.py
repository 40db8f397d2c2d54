"""JSON encoding that writes amounts the way Bitcoin Core does: a number with exactly 8 decimals.

The standard json module formats floats with repr (50.0, 1e-08) and cannot emit
Decimal at all, so replies are serialised here; amounts travel as Decimal
values quantised to 8 places, which clients that parse floats as Decimal
(python-bitcoinlib, camelid-cli) read back exactly.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from camelid.core.amounts import amount

__all__ = ["amount", "dumps"]  # amount lives in core (the node's job texts use it too); RPC code takes it here


def dumps(value: Any, indent: int | None = None) -> str:
    """Serialise JSON-compatible data, Decimal included: compact, or pretty with `indent` spaces."""
    return "".join(_encode(value, indent, 0))


def _encode(value: Any, indent: int | None, depth: int) -> Iterator[str]:
    if isinstance(value, Decimal):
        yield format(value, "f")  # never exponent form: 0.00000001, not 1E-8
    elif isinstance(value, dict | list | tuple):
        is_dict = isinstance(value, dict)
        items = list(value.items()) if is_dict else list(value)
        opening, closing = "{}" if is_dict else "[]"
        if not items:
            yield opening + closing
            return
        inner = "" if indent is None else "\n" + " " * (indent * (depth + 1))
        outer = "" if indent is None else "\n" + " " * (indent * depth)
        separator = ": " if indent is not None else ":"
        yield opening
        for i, item in enumerate(items):
            yield ("," if i else "") + inner
            if is_dict:
                key, item = item
                yield json.dumps(str(key)) + separator
            yield from _encode(item, indent, depth + 1)
        yield outer + closing
    else:
        yield json.dumps(value)
