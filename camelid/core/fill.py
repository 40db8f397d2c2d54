"""How full a bounded table is, as each component reports it for the getresourceinfo RPC."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Fill:
    """`size` entries of at most `limit` (None: bounded by bytes only); `bytes` (of at most `byte_limit`) where the
    table holds bytes."""

    size: int
    limit: int | None
    bytes: int | None = None
    byte_limit: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {key: value for key, value in vars(self).items() if value is not None}


Fills = dict[str, Fill]
"""A component's tables by name."""
