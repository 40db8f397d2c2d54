"""getresourceinfo on a real camelidd: tables that raw peers grow show their growth, each against its limit."""

from __future__ import annotations

import os

import pytest

from camelid.core.transaction import Transaction, TxIn, TxOut
from camelid.p2p.banlist import MAX_DISCOURAGED
from camelid.p2p.messages import TxMessage
from camelid.p2p.tx_orphans import MAX_ORPHAN_SIZE, MAX_ORPHANS

from .framework import wait_until
from .p2p_raw import RawPeer, raw_frame

pytestmark = pytest.mark.slow

ATTACKERS = 12


def test_discouraged_ips_and_orphan_transactions_from_raw_peers_show_in_getresourceinfo(camelid_nodes):
    (node,) = camelid_nodes(1)
    assert "getresourceinfo" in node.help()
    before = node.getresourceinfo()
    assert set(before) == {"p2p", "chain", "jobs", "models"}
    assert before["p2p"]["discouraged_ips"] == {"size": 0, "limit": MAX_DISCOURAGED}
    assert before["jobs"]["job_pool"]["size"] == 0 and before["jobs"]["job_pool"]["limit"] == 10_000
    assert before["chain"]["mempool"]["byte_limit"] > 0 and "limit" not in before["chain"]["mempool"]

    for number in range(ATTACKERS):  # each from its own address: junk gets it discouraged
        peer = RawPeer.connect(node.p2p_port, f"127.0.0.{100 + number}")
        peer.send_bytes(raw_frame(b"nosuchcmd", b""))
        assert peer.closed_by_node()
        peer.close()
    wait_until(lambda: node.getresourceinfo()["p2p"]["discouraged_ips"]["size"] == ATTACKERS,
               what=f"{ATTACKERS} discouraged IPs")

    sender = RawPeer.connect(node.p2p_port, "127.0.0.200")
    sender.handshake()
    orphans = [Transaction(inputs=(TxIn(os.urandom(32), 0),), outputs=(TxOut(1000, b"\x51" * 100),)) for _ in range(3)]
    for tx in orphans:
        sender.send(TxMessage(tx.to_bytes()))
    held = {"size": 3, "limit": MAX_ORPHANS, "bytes": sum(tx.size for tx in orphans),
            "byte_limit": MAX_ORPHANS * MAX_ORPHAN_SIZE}
    wait_until(lambda: node.getresourceinfo()["p2p"]["orphan_txs"] == held, what="three orphans held")
    assert node.getresourceinfo()["p2p"]["connections"]["size"] == 1
    sender.close()
    wait_until(lambda: node.getresourceinfo()["p2p"]["orphan_txs"]["size"] == 0, what="the sender's orphans gone")
