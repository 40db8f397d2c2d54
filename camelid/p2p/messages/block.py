"""block: one serialised block, the answer to getdata(BLOCK).

The P2P layer only bounds its size; parsing and validation are the chain's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from camelid.core.consensus import MAX_BLOCK_SIZE
from camelid.p2p.schema import Blob, Message, wire


@dataclass(frozen=True)
class BlockMessage(Message):
    command: ClassVar[str] = "block"
    max_payload: ClassVar[int] = MAX_BLOCK_SIZE + 64

    block: bytes = wire(Blob(1, MAX_BLOCK_SIZE))
