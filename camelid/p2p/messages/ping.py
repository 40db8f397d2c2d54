"""ping / pong: liveness and latency.

A node pings each peer periodically and measures the time to the pong that
echoes the nonce; a peer that never answers is disconnected.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from camelid.p2p.schema import Message, UInt, wire


@dataclass(frozen=True)
class Ping(Message):
    command: ClassVar[str] = "ping"
    max_payload: ClassVar[int] = 32

    nonce: int = wire(UInt(64))


@dataclass(frozen=True)
class Pong(Message):
    """Answers a ping with the same nonce."""

    command: ClassVar[str] = "pong"
    max_payload: ClassVar[int] = 32

    nonce: int = wire(UInt(64))
