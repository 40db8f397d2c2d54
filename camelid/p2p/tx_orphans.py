"""Transactions whose parents have not arrived yet, held briefly until they do (as Bitcoin Core's orphanage).

A peer relays a transaction as soon as it accepts it, so a child can reach us before its parent: two
peers announce them in a different order, or a client chains job escrows on unconfirmed change. Refused
as `bad-txns-inputs-missingorspent`, the child would be lost until someone announced it again, so the
relay keeps it here, asks its sender for the missing parents, and tries the child again once a parent
is accepted or a block arrives.

An orphan cannot be validated (its inputs are unknown), so anyone can fill this pool with junk: it is
bounded in count (a random one goes when it is full, so a flooder cannot pin the pool's content), in
size per transaction, and in age, and a peer's orphans go when it disconnects.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from camelid.core.fill import Fill
from camelid.core.transaction import Transaction

MAX_ORPHANS = 100
"""Orphans held at once (Bitcoin Core's default)."""
MAX_ORPHAN_SIZE = 100_000
"""Bytes an orphan may have: a standard transaction's size; larger ones are not worth the memory to hold blind."""
ORPHAN_EXPIRY = 20 * 60
"""Seconds an orphan is held waiting for its parents."""


@dataclass(frozen=True)
class Orphan:
    tx: Transaction
    peer_id: int  # who sent it: asked for the parents, and its orphans go when it disconnects
    expires: float


class TxOrphanage:
    """Orphan transactions by txid, indexed by the parent txids they wait for."""

    def __init__(
        self,
        capacity: int = MAX_ORPHANS,
        expiry: float = ORPHAN_EXPIRY,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.capacity = capacity
        self.expiry = expiry
        self._clock = clock
        self._rng = rng or random.Random()
        self._orphans: dict[bytes, Orphan] = {}
        self._by_parent: dict[bytes, set[bytes]] = {}

    def __len__(self) -> int:
        return len(self._orphans)

    def __contains__(self, txid: object) -> bool:
        return txid in self._orphans

    def fill(self) -> Fill:
        """How many orphans are held, and their serialized bytes."""
        held = sum(orphan.tx.size for orphan in self._orphans.values())
        return Fill(len(self._orphans), self.capacity, held, self.capacity * MAX_ORPHAN_SIZE)

    def add(self, tx: Transaction, peer_id: int) -> bool:
        """Hold `tx` from `peer_id`; False if it is too large or already held. Expired orphans go first, then a
        random one while the pool is over capacity (possibly `tx` itself)."""
        if tx.size > MAX_ORPHAN_SIZE or tx.hash in self._orphans:
            return False
        self.expire()
        self._orphans[tx.hash] = Orphan(tx, peer_id, self._clock() + self.expiry)
        for parent in parents(tx):
            self._by_parent.setdefault(parent, set()).add(tx.hash)
        while len(self._orphans) > self.capacity:
            self.remove(self._rng.choice(list(self._orphans)))
        return tx.hash in self._orphans

    def remove(self, txid: bytes) -> Orphan | None:
        orphan = self._orphans.pop(txid, None)
        if orphan is None:
            return None
        for parent in parents(orphan.tx):
            waiting = self._by_parent.get(parent)
            if waiting is not None:
                waiting.discard(txid)
                if not waiting:
                    del self._by_parent[parent]
        return orphan

    def children_of(self, txids: Iterable[bytes]) -> list[Orphan]:
        """The orphans spending an output of any of `txids`, each once, oldest first."""
        found = {child for txid in txids for child in self._by_parent.get(txid, ())}
        return sorted((self._orphans[txid] for txid in found), key=lambda orphan: orphan.expires)

    def all(self) -> list[Orphan]:
        return sorted(self._orphans.values(), key=lambda orphan: orphan.expires)

    def expire(self) -> int:
        """Drop the orphans held longer than `expiry`; returns how many went."""
        now = self._clock()
        old = [txid for txid, orphan in self._orphans.items() if orphan.expires <= now]
        for txid in old:
            self.remove(txid)
        return len(old)

    def drop_peer(self, peer_id: int) -> int:
        """Drop the orphans `peer_id` sent (it disconnected); returns how many went."""
        gone = [txid for txid, orphan in self._orphans.items() if orphan.peer_id == peer_id]
        for txid in gone:
            self.remove(txid)
        return len(gone)


def parents(tx: Transaction) -> set[bytes]:
    """The txids whose outputs `tx` spends."""
    return {txin.prev_txid for txin in tx.inputs}
