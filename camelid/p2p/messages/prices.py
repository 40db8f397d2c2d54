"""prices: what a compute node asks per 1,000 output tokens of each model it serves (its --min-price).

Sent right after the handshake by a node that sells compute to each peer whose protocol_version is at
least PRICES_VERSION (an older node treats an unknown command as misbehaviour); a later one replaces the
earlier. Clients read their peers' prices to offer a reward likely to be taken (estimatejobreward).
Only prices for models the sender announced in its version count; a price is in base units per
1,000 output tokens, judged against a job's max_tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from camelid.p2p.messages.version import MAX_MODELS, MODEL_ID_SIZE
from camelid.p2p.schema import Blob, ListOf, Message, Record, UInt, wire

_ENTRY_SIZE = 48  # array header, bin8 32-byte model id, u64 price, at their longest


@dataclass(frozen=True)
class ModelPrice:
    model_id: bytes = wire(Blob(MODEL_ID_SIZE))
    per_1000_tokens: int = wire(UInt(64))  # base units per 1,000 output tokens (of max_tokens)


@dataclass(frozen=True)
class Prices(Message):
    command: ClassVar[str] = "prices"
    max_payload: ClassVar[int] = MAX_MODELS * _ENTRY_SIZE + 16

    prices: tuple[ModelPrice, ...] = wire(ListOf(Record(ModelPrice), MAX_MODELS))
