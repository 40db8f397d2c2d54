"""The numbers each component reports to getresourceinfo: how full its bounded tables are, against their limits."""

from __future__ import annotations

import random
import tracemalloc
from types import SimpleNamespace

from camelid.core.fill import Fill
from camelid.core.transaction import Transaction, TxIn, TxOut
from camelid.crypto.keys import PrivateKey
from camelid.p2p import banlist
from camelid.p2p.addrbook import BUCKET_SIZE, NEW_BUCKET_COUNT, TRIED_BUCKET_COUNT, AddressBook
from camelid.p2p.banlist import BanList
from camelid.p2p.messages import NetAddress
from camelid.p2p.messages.inv import MAX_INV
from camelid.p2p.routing import MAX_REVERSE_ROUTES, MAX_SENDERS, SEEN_DIRECTED, DirectedRouter
from camelid.p2p.sync import KNOWN_INVENTORY, KnownInventory
from camelid.p2p.tx_orphans import MAX_ORPHAN_SIZE, TxOrphanage

NOW = 1_800_000_000


def test_a_fill_leaves_out_what_its_table_does_not_count():
    assert Fill(3, 10).to_json() == {"size": 3, "limit": 10}
    assert Fill(2, None, 900, 1000).to_json() == {"size": 2, "bytes": 900, "byte_limit": 1000}


def test_discouraged_ips_count_up_to_their_cap(monkeypatch):
    monkeypatch.setattr(banlist, "MAX_DISCOURAGED", 3)
    bans = BanList(clock=lambda: NOW)
    assert bans.discouraged_fill() == Fill(0, 3)
    for i in range(5):
        bans.discourage(f"10.0.0.{i}")
        assert bans.discouraged_fill() == Fill(min(i + 1, 3), 3)
    bans.discourage("10.0.0.4")  # again: no new entry, and nobody else evicted
    assert bans.discouraged_fill().size == 3
    assert all(bans.is_discouraged(f"10.0.0.{i}") for i in (2, 3, 4))
    bans.discourage("10.0.0.2")  # again: now the newest, so 10.0.0.3 is the oldest
    bans.discourage("10.0.0.5")
    assert [bans.is_discouraged(f"10.0.0.{i}") for i in (2, 3, 4, 5)] == [True, False, True, True]


def test_the_orphan_pool_reports_its_count_and_serialized_bytes():
    pool = TxOrphanage(capacity=2, rng=random.Random(1))
    txs = [Transaction(inputs=(TxIn(bytes([i]) * 32, 0),), outputs=(TxOut(1, b"\x51" * 50 * i),)) for i in (1, 2, 3)]
    assert pool.fill() == Fill(0, 2, 0, 2 * MAX_ORPHAN_SIZE)
    pool.add(txs[0], peer_id=1)
    pool.add(txs[1], peer_id=1)
    assert pool.fill() == Fill(2, 2, txs[0].size + txs[1].size, 2 * MAX_ORPHAN_SIZE)
    pool.add(txs[2], peer_id=2)  # full: a random one goes
    held = [tx for tx in txs if tx.hash in pool]
    assert pool.fill() == Fill(2, 2, sum(tx.size for tx in held), 2 * MAX_ORPHAN_SIZE)
    pool.drop_peer(1)
    assert pool.fill().size == len([tx for tx in held if tx is txs[2]])


def test_the_address_book_reports_its_new_and_tried_tables():
    book = AddressBook(b"\x01" * 32, clock=lambda: NOW, routable=lambda ip: True)
    book.add([NetAddress(f"11.{i}.0.1", 9733, 1, NOW - 60) for i in range(5)], source="8.8.8.8")
    book.good("11.0.0.1", 9733)
    assert book.fill() == {
        "addresses_new": Fill(4, NEW_BUCKET_COUNT * BUCKET_SIZE),
        "addresses_tried": Fill(1, TRIED_BUCKET_COUNT * BUCKET_SIZE),
    }


def test_the_router_reports_the_ids_it_remembers():
    router = DirectedRouter(PrivateKey.generate().public_key.to_bytes(), lambda: [])
    assert router.fill()["directed_ids"] == Fill(0, SEEN_DIRECTED)
    for _ in range(3):
        recipient = PrivateKey.generate().public_key.to_bytes()
        router.send(recipient, "ping", b"")  # no peer to send it to, but its id is remembered against echoes
    assert router.fill() == {
        "directed_ids": Fill(3, SEEN_DIRECTED),
        "reverse_routes": Fill(0, MAX_REVERSE_ROUTES),
        "directed_senders": Fill(0, MAX_SENDERS),
    }


def test_known_inventory_counts_every_peers_hashes_against_a_cap_per_peer():
    known = KnownInventory()
    one, two = SimpleNamespace(id=1), SimpleNamespace(id=2)
    for i in range(3):
        known.add(one, bytes([i]) * 32)
    known.add(two, b"\x00" * 32)
    assert known.fill(2) == Fill(4, 2 * KNOWN_INVENTORY)
    known.keep_only({2})
    assert known.fill(1) == Fill(1, KNOWN_INVENTORY)


def test_one_maximal_inv_costs_a_peers_known_inventory_under_a_mebibyte():
    """A 50,000-item inv (the most one message may name) marks every item as known to its sender; what that costs
    is bounded per peer, and so over the 125 connections a node takes (1 GB at the old 50,000-hash cap)."""
    known = KnownInventory()
    peer = SimpleNamespace(id=1)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(MAX_INV):
            known.add(peer, i.to_bytes(32, "little"))
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert known.fill(1) == Fill(KNOWN_INVENTORY, KNOWN_INVENTORY)
    assert held < 1 << 20, held
