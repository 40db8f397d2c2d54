"""Orphan transactions between a real camelidd and a raw peer: a child that arrives before its parent is
held, its parent is asked of the child's sender, and both enter the mempool once the parent arrives."""

from __future__ import annotations

import pytest

from camelid.core.transaction import OutPoint, Transaction, TxOut
from camelid.crypto.keys import PrivateKey
from camelid.node.jobs.contract import Spent
from camelid.p2p.messages import GetData, InvType, TxMessage
from camelid.p2p.tx_orphans import MAX_ORPHANS

from .framework import TestNode, wait_until
from .hostile import block_on_tip, fund, p2pkh_spend
from .p2p_raw import RawPeer

pytestmark = pytest.mark.slow

FEE = 10_000


def chain_of(coin: Spent, key: PrivateKey, length: int) -> list[Transaction]:
    """`length` transactions, each spending the one before's only output back to `key`."""
    txs = []
    for _ in range(length):
        tx = p2pkh_spend(coin, key, (TxOut(coin.out.value - FEE, coin.out.script_pubkey),))
        txs.append(tx)
        coin = Spent(OutPoint(tx.hash, 0), tx.outputs[0])
    return txs


def funded_node(camelid_nodes) -> tuple[TestNode, PrivateKey, Spent]:
    (node,) = camelid_nodes(1)
    node.createwallet("miner")
    mine_to = node.getnewaddress()
    node.generatetoaddress(101, mine_to)
    key = PrivateKey.generate(network="regtest")
    return node, key, fund(node, mine_to, key)


def requested_txids(peer: RawPeer) -> set[bytes]:
    request = peer.expect(GetData)
    return {item.hash for item in request.items if item.type is InvType.TX}


def test_children_sent_before_their_parent_enter_the_mempool_when_it_arrives(camelid_nodes):
    node, key, coin = funded_node(camelid_nodes)
    parent, child, grandchild = chain_of(coin, key, 3)
    peer = RawPeer.connect(node.p2p_port)
    peer.handshake()

    peer.send(TxMessage(grandchild.to_bytes()))
    assert requested_txids(peer) == {child.hash}  # its sender must have its parent: we ask it
    peer.send(TxMessage(child.to_bytes()))
    assert requested_txids(peer) == {parent.hash}
    assert node.getrawmempool() == []

    peer.send(TxMessage(parent.to_bytes()))
    expected = sorted(tx.txid() for tx in (parent, child, grandchild))
    wait_until(lambda: sorted(node.getrawmempool()) == expected, what="the parent and both orphans in the mempool")
    peer.close()


def test_an_orphan_waits_for_a_parent_that_a_block_brings(camelid_nodes):
    node, key, coin = funded_node(camelid_nodes)
    parent, child = chain_of(coin, key, 2)
    peer = RawPeer.connect(node.p2p_port)
    peer.handshake()
    peer.send(TxMessage(child.to_bytes()))
    assert requested_txids(peer) == {parent.hash}

    # The parent never reaches the mempool: a block brings it, and the child is tried again at the new tip.
    assert node.submitblock(block_on_tip(node, parent).to_bytes().hex()) is None
    wait_until(lambda: node.getrawmempool() == [child.txid()], what="the orphan in the mempool")
    peer.close()


def test_a_flood_of_orphans_is_held_within_its_bound_and_costs_the_sender_nothing_else(camelid_nodes):
    node, key, coin = funded_node(camelid_nodes)
    peer = RawPeer.connect(node.p2p_port)
    peer.handshake()
    # Orphans whose parents do not exist: free to make, and nothing lets the node tell them from real ones.
    for i in range(3 * MAX_ORPHANS):
        missing = Spent(OutPoint(i.to_bytes(32, "big"), 0), coin.out)
        peer.send(TxMessage(p2pkh_spend(missing, key, (TxOut(1_000, coin.out.script_pubkey),)).to_bytes()))
    peer.send(TxMessage(p2pkh_spend(coin, key, (TxOut(coin.out.value - FEE, coin.out.script_pubkey),)).to_bytes()))
    wait_until(lambda: len(node.getrawmempool()) == 1, what="the valid transaction after the flood")
    assert node.getmempoolinfo()["orphans"] == MAX_ORPHANS
    assert len(node.getpeerinfo()) == 1  # orphans are no offence: the sender stays connected
    peer.close()
    wait_until(lambda: node.getmempoolinfo()["orphans"] == 0, what="the orphans of a peer that left dropped")
