"""version / verack: the handshake that opens every connection, and proves each side's identity.

Each side sends `version` first and answers the other's `version` with `verack`;
no other message is valid before both have crossed. `version` says who the node
is (its identity key, which directed messages are addressed to), what it serves
(service bits and the model ids it can run) and how far its chain reaches, and
carries a fresh random `challenge`. `verack` signs both challenges with the
identity key (camelid.p2p.auth), so a node id is never merely claimed.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import ClassVar

from camelid.p2p.schema import COMMAND_CHARS, Blob, ListOf, Message, NodeId, Text, UInt, wire

PROTOCOL_VERSION = 3  # 2: version carries a challenge and verack signs the handshake; 3: `prices`
PRICES_VERSION = 3  # peers announcing less refuse unknown commands: they are sent no `prices`
MIN_PROTOCOL_VERSION = 2  # peers announcing less are disconnected during the handshake
MAX_MODELS = 64  # model ids one node may announce
MAX_USER_AGENT = 256
MODEL_ID_SIZE = 32
CHALLENGE_SIZE = 32
MAX_SIGNATURE_SIZE = 72  # strict DER ECDSA


class ServiceFlags(enum.IntFlag):
    """What a node offers; unknown bits are kept so that later services need no new protocol version."""

    NONE = 0
    FULL_NODE = 1 << 0  # keeps and serves the whole chain
    MINER = 1 << 1  # mines blocks
    COMPUTE = 1 << 2  # runs completions for the model ids it announces


@dataclass(frozen=True)
class Version(Message):
    command: ClassVar[str] = "version"
    max_payload: ClassVar[int] = 4096  # the largest valid version is about 2,700 bytes

    network: str = wire(Text(16, COMMAND_CHARS, min_len=1))  # ChainParams.name; must equal ours
    protocol_version: int = wire(UInt(32))
    services: int = wire(UInt(64))  # ServiceFlags bits
    best_height: int = wire(UInt(32))
    node_id: bytes = wire(NodeId())
    models: tuple[bytes, ...] = wire(ListOf(Blob(MODEL_ID_SIZE), MAX_MODELS))
    user_agent: str = wire(Text(MAX_USER_AGENT))
    timestamp: int = wire(UInt(64))  # sender's clock, seconds since the epoch
    listen_port: int = wire(UInt(16))  # 0: the sender accepts no inbound connections
    nonce: int = wire(UInt(64))  # random per node; seeing our own nonce means we dialled ourselves
    challenge: bytes = wire(Blob(CHALLENGE_SIZE))  # random per connection; the peer's verack signs it


@dataclass(frozen=True)
class Verack(Message):
    """Acknowledges the peer's version and proves the sender holds its node key; usable once both have one.

    `signature`: ECDSA by the sender's node id over camelid.p2p.auth.handshake_digest.
    """

    command: ClassVar[str] = "verack"
    max_payload: ClassVar[int] = 96

    signature: bytes = wire(Blob(1, MAX_SIGNATURE_SIZE))
