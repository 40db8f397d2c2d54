"""The orphan pool's bounds: count, size, age and sender, and finding an orphan by the parent it waits for."""

from __future__ import annotations

import random

from camelid.core.transaction import Transaction, TxIn, TxOut
from camelid.p2p.tx_orphans import MAX_ORPHAN_SIZE, TxOrphanage, parents


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def orphan(*parent_ids: int, size: int = 0) -> Transaction:
    """A transaction spending output 0 of each parent `i` (txid i as 32 bytes); `size` pads its output script."""
    inputs = tuple(TxIn(i.to_bytes(32, "big"), 0) for i in parent_ids)
    return Transaction(inputs=inputs, outputs=(TxOut(1_000, b"\x51" * max(size, 1)),))


def txid(i: int) -> bytes:
    return i.to_bytes(32, "big")


def test_an_orphan_is_found_by_each_parent_it_waits_for_and_forgotten_when_removed():
    pool = TxOrphanage()
    tx = orphan(1, 2)
    assert parents(tx) == {txid(1), txid(2)}
    assert pool.add(tx, peer_id=7)
    assert not pool.add(tx, peer_id=8)  # held already
    assert [o.tx for o in pool.children_of([txid(1)])] == [tx]
    assert [o.tx for o in pool.children_of([txid(1), txid(2)])] == [tx]  # once, though it waits for both
    assert pool.children_of([txid(3)]) == []
    assert pool.remove(tx.hash).peer_id == 7
    assert pool.children_of([txid(1)]) == [] and len(pool) == 0
    assert pool.remove(tx.hash) is None


def test_a_full_pool_evicts_a_random_orphan_and_stays_at_its_capacity():
    pool = TxOrphanage(capacity=10, rng=random.Random(1))
    txs = [orphan(i) for i in range(100)]
    for tx in txs:
        pool.add(tx, peer_id=1)
        assert len(pool) <= 10
    assert len(pool) == 10
    held = [tx for tx in txs if tx.hash in pool]
    assert held != txs[-10:]  # random, not first-in-first-out: a flooder cannot push out a chosen orphan
    # The index holds only what the pool does.
    assert {o.tx.hash for o in pool.children_of(txid(i) for i in range(100))} == {tx.hash for tx in held}


def test_an_oversized_orphan_is_not_held():
    pool = TxOrphanage()
    big = orphan(1, size=MAX_ORPHAN_SIZE)
    assert big.size > MAX_ORPHAN_SIZE
    assert not pool.add(big, peer_id=1)
    assert len(pool) == 0


def test_orphans_expire_and_go_with_their_sender():
    clock = Clock()
    pool = TxOrphanage(expiry=60, clock=clock)
    first, second, third = orphan(1), orphan(2), orphan(3)
    pool.add(first, peer_id=1)
    clock.now += 30
    pool.add(second, peer_id=2)
    pool.add(third, peer_id=1)
    clock.now += 31
    assert pool.expire() == 1  # only the first has waited 60 s
    assert first.hash not in pool and second.hash in pool
    assert pool.drop_peer(1) == 1
    assert [o.tx for o in pool.all()] == [second]
