"""tx: one serialised transaction, announced by inv(TX) and sent on getdata.

The P2P layer only bounds its size; parsing and validation are the mempool's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from camelid.core.consensus import MAX_TX_SIZE
from camelid.p2p.schema import Blob, Message, wire


@dataclass(frozen=True)
class TxMessage(Message):
    command: ClassVar[str] = "tx"
    max_payload: ClassVar[int] = MAX_TX_SIZE + 64

    tx: bytes = wire(Blob(1, MAX_TX_SIZE))
