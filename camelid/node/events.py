"""Events the node's services exchange over the bus (camelid.node.bus).

Each event is a frozen dataclass; subscribers select by exact type. The chain
service is the only publisher of chain events, so their order on the bus is the
order in which the chain state changed: for a reorganisation, every
BlockDisconnected (tip first), then every BlockConnected (lowest first), then one
TipChanged.
"""

from __future__ import annotations

from dataclasses import dataclass

from camelid.core.block import Block
from camelid.core.transaction import Transaction


@dataclass(frozen=True)
class BlockConnected:
    """`block` became part of the active chain at `height`."""

    block: Block
    height: int


@dataclass(frozen=True)
class BlockDisconnected:
    """`block`, which was at `height`, left the active chain in a reorganisation."""

    block: Block
    height: int


@dataclass(frozen=True)
class TipChanged:
    """The active chain now ends at block `hash` (internal byte order) at `height`.

    Published once per accepted block or reorganisation, after all its Block*
    events; a miner working on an older tip abandons its template on this.
    """

    hash: bytes
    height: int


@dataclass(frozen=True)
class TxAccepted:
    """`tx` entered the mempool (from RPC or, later, from a peer)."""

    tx: Transaction


@dataclass(frozen=True)
class ShutdownRequested:
    """Some service (the `stop` RPC, a signal handler, a fatal error) asks the node to stop."""

    reason: str


@dataclass(frozen=True)
class JobChanged:
    """Job `job_id` changed: its state in the job pool, or this node's part in it (a verdict, a txid).

    Published by the job service; the /v1 API and waitforjob (camelid-cli complete) wait on it.
    """

    job_id: bytes
