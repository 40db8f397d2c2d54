"""inv / getdata / notfound: announcing and fetching objects by hash.

A node announces what it has with `inv`, the peer asks for what it lacks with
`getdata`, and the node answers each item with the object (`tx`, `block`) or
lists it in `notfound`. Jobs (whitepaper 2.4) travel the same way as
transactions, under their own inventory type.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import ClassVar

from camelid.p2p.schema import Blob, Choice, ListOf, Message, Record, wire

MAX_INV = 50_000  # as Bitcoin's MAX_INV_SZ
_INV_ENTRY_SIZE = 36  # array header, type, bin8 hash


class InvType(enum.IntEnum):
    TX = 1
    BLOCK = 2
    JOB = 3


@dataclass(frozen=True)
class InvItem:
    type: InvType = wire(Choice(InvType))
    hash: bytes = wire(Blob(32))  # internal byte order


@dataclass(frozen=True)
class Inv(Message):
    command: ClassVar[str] = "inv"
    max_payload: ClassVar[int] = MAX_INV * _INV_ENTRY_SIZE + 64

    items: tuple[InvItem, ...] = wire(ListOf(Record(InvItem), MAX_INV))


@dataclass(frozen=True)
class GetData(Message):
    command: ClassVar[str] = "getdata"
    max_payload: ClassVar[int] = MAX_INV * _INV_ENTRY_SIZE + 64

    items: tuple[InvItem, ...] = wire(ListOf(Record(InvItem), MAX_INV))


@dataclass(frozen=True)
class NotFound(Message):
    command: ClassVar[str] = "notfound"
    max_payload: ClassVar[int] = MAX_INV * _INV_ENTRY_SIZE + 64

    items: tuple[InvItem, ...] = wire(ListOf(Record(InvItem), MAX_INV))
