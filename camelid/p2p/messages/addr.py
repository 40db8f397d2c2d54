"""getaddr / addr: peer discovery (whitepaper 2.1.1).

A node asks a new outbound peer for addresses with `getaddr` and answers with a
sample of its address book; it also relays fresh `addr` announcements on. Each
address carries the services the node offered and when it was last heard of.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from camelid.p2p.schema import IPAddress, ListOf, Message, Record, UInt, wire

MAX_ADDR = 1000  # as Bitcoin: addresses per addr message
_ADDR_ENTRY_SIZE = 40  # array header, bin16 ip, port, u64 services, u64 last_seen, at their longest


@dataclass(frozen=True)
class NetAddress:
    ip: str = wire(IPAddress())  # IPv4 dotted quad or IPv6, sent as 16 bytes
    port: int = wire(UInt(16))
    services: int = wire(UInt(64))
    last_seen: int = wire(UInt(64))  # seconds since the epoch


@dataclass(frozen=True)
class GetAddr(Message):
    """Asks for a sample of the peer's address book."""

    command: ClassVar[str] = "getaddr"
    max_payload: ClassVar[int] = 1


@dataclass(frozen=True)
class Addr(Message):
    command: ClassVar[str] = "addr"
    max_payload: ClassVar[int] = MAX_ADDR * _ADDR_ENTRY_SIZE + 64

    addresses: tuple[NetAddress, ...] = wire(ListOf(Record(NetAddress), MAX_ADDR))
